//! CPU twin of `shaders/segment_sum.wgsl`: the same tiles, the same pieces,
//! the same order of additions, so the GPU matches it bit for bit.

/// The shader's uniform parameters.
#[derive(Clone, Copy, Debug)]
pub struct SegmentParams {
    /// Entries in the batch: indices, and rows of `grad_out`.
    pub n: usize,
    /// Values per row of `grad_out` and of the table.
    pub dim: usize,
    /// Rows of the table.
    pub num_embeddings: usize,
    /// Tile length in sorted entries (`kernels::segment_sum::tile_len` of
    /// the requested one, by default `CHUNK`).
    pub chunk: usize,
    /// A row that gets no gradient and no update.
    pub padding_idx: Option<usize>,
    /// Divide each row's sum by its count (entries of the batch naming it).
    pub scale_by_freq: bool,
}

impl SegmentParams {
    fn num_tiles(&self) -> usize {
        self.n.div_ceil(self.chunk)
    }
}

const STATUS_OK: u32 = u32::MAX;

use crate::cpu::sgd_update::Weights;

/// Sorted entries `s..e`, column `c`, added in ascending order from 0.
fn run_sum(
    p: &SegmentParams,
    s: usize,
    e: usize,
    c: usize,
    sorted_pos: &[u32],
    grad_out: &[f32],
) -> f32 {
    let mut acc = 0.0f32;
    for &pos in &sorted_pos[s..e] {
        acc += grad_out[pos as usize * p.dim + c];
    }
    acc
}

/// The pieces of segments that cross tiles: `partials[(tile * 2 + piece) * dim + c]`,
/// piece 0 the head (the row at the tile's first entry began earlier), piece 1
/// the tail (the row at its last entry continues and began inside the tile).
pub fn segment_partials(
    p: &SegmentParams,
    status: u32,
    sorted_keys: &[u32],
    sorted_pos: &[u32],
    grad_out: &[f32],
    partials: &mut [f32],
) {
    if status != STATUS_OK || p.n <= p.chunk {
        return;
    }
    for t in 0..p.num_tiles() {
        let begin = t * p.chunk;
        let end = (begin + p.chunk).min(p.n);
        for piece in 0..2 {
            // The piece's ends by binary search over the keys, as the shader's.
            let (r, s, e) = if piece == 0 {
                if begin == 0 || sorted_keys[begin - 1] != sorted_keys[begin] {
                    continue;
                }
                let r = sorted_keys[begin];
                let e = begin + sorted_keys[begin..end].partition_point(|&k| k == r);
                (r as usize, begin, e)
            } else {
                if end >= p.n || sorted_keys[end] != sorted_keys[end - 1] {
                    continue;
                }
                let r = sorted_keys[end - 1];
                let s = begin + sorted_keys[begin..end - 1].partition_point(|&k| k != r);
                if s == begin && begin > 0 && sorted_keys[begin - 1] == r {
                    continue; // the head piece covers the whole tile
                }
                (r as usize, s, end)
            };
            if Some(r) == p.padding_idx {
                continue;
            }
            let slot = (t * 2 + piece) * p.dim;
            for c in 0..p.dim {
                partials[slot + c] = run_sum(p, s, e, c, sorted_pos, grad_out);
            }
        }
    }
}

/// Row `r`'s run of sorted entries `s..e` (`e == s`: the batch has none).
#[derive(Clone, Copy)]
struct Segment {
    r: usize,
    s: usize,
    e: usize,
}

/// `segment_dense`'s rows: row `r`'s run, from the row offsets.
fn segment_of_row(r: usize, offsets: &[u32]) -> Segment {
    Segment {
        r,
        s: offsets[r] as usize,
        e: offsets[r + 1] as usize,
    }
}

/// The update entries' runs (the shader's `segment_at`): every sorted entry
/// that starts its row's run, in sorted order (so rows ascending), each
/// with the run's end found by binary search over the ascending keys. The
/// cost is the batch's, not the vocabulary's.
fn runs(sorted_keys: &[u32]) -> impl Iterator<Item = Segment> + '_ {
    (0..sorted_keys.len())
        .filter(|&i| i == 0 || sorted_keys[i - 1] != sorted_keys[i])
        .map(|i| {
            let r = sorted_keys[i];
            let e = i + 1 + sorted_keys[i + 1..].partition_point(|&k| k == r);
            Segment {
                r: r as usize,
                s: i,
                e,
            }
        })
}

/// A run's gradient: summed (directly, or its pieces in tile order), zero
/// for the padding row, divided by its count with `scale_by_freq`.
fn row_grad(
    p: &SegmentParams,
    seg: Segment,
    sorted_pos: &[u32],
    grad_out: &[f32],
    partials: &[f32],
) -> Vec<f32> {
    let mut g = vec![0.0f32; p.dim];
    if Some(seg.r) == p.padding_idx {
        return g;
    }
    let (s, e) = (seg.s, seg.e);
    if e == s {
        return g;
    }
    let (t0, t1) = (s / p.chunk, (e - 1) / p.chunk);
    for (c, out) in g.iter_mut().enumerate() {
        let mut acc;
        if t0 == t1 {
            acc = run_sum(p, s, e, c, sorted_pos, grad_out);
        } else {
            acc = 0.0f32 + partials[(t0 * 2 + 1) * p.dim + c];
            for t in t0 + 1..=t1 {
                acc += partials[t * 2 * p.dim + c];
            }
        }
        let count = (e - s) as u32;
        if p.scale_by_freq && count > 1 {
            acc /= count as f32;
        }
        *out = acc;
    }
    g
}

/// Whether a run's row gets a sparse row or an update.
fn referenced(p: &SegmentParams, seg: Segment) -> bool {
    seg.e != seg.s && Some(seg.r) != p.padding_idx
}

/// The dense `[num_embeddings, dim]` gradient; rows nobody references are 0.
/// `out` is f32, or f16 (rounded once, as the shader's F16 variant).
pub fn segment_dense<W: Weights + ?Sized>(
    p: &SegmentParams,
    status: u32,
    offsets: &[u32],
    sorted_pos: &[u32],
    grad_out: &[f32],
    partials: &[f32],
    out: &mut W,
) {
    if status != STATUS_OK {
        return;
    }
    for r in 0..p.num_embeddings {
        let g = row_grad(
            p,
            segment_of_row(r, offsets),
            sorted_pos,
            grad_out,
            partials,
        );
        for (c, &gc) in g.iter().enumerate() {
            out.store(r * p.dim + c, gc);
        }
    }
}

/// The sparse gradient: `rows[ranks[s]] = r` and `values[ranks[s], :]` for
/// every referenced row `r` except the padding row, `s` its run's first
/// sorted entry (`ranks`: the scan of the keys' run starts).
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
pub fn segment_sparse<W: Weights + ?Sized>(
    p: &SegmentParams,
    status: u32,
    sorted_keys: &[u32],
    sorted_pos: &[u32],
    grad_out: &[f32],
    partials: &[f32],
    values: &mut W,
    ranks: &[u32],
    rows: &mut [u32],
) {
    if status != STATUS_OK {
        return;
    }
    for seg in runs(sorted_keys) {
        if !referenced(p, seg) {
            continue;
        }
        let slot = ranks[seg.s] as usize;
        rows[slot] = seg.r as u32;
        let g = row_grad(p, seg, sorted_pos, grad_out, partials);
        for (c, &gc) in g.iter().enumerate() {
            values.store(slot * p.dim + c, gc);
        }
    }
}

/// Fused SGD: `weight[r] -= lr * grad[r]` for referenced rows (an f16
/// `weight` rounds each result once).
#[allow(clippy::too_many_arguments)]
pub fn segment_sgd<W: Weights + ?Sized>(
    p: &SegmentParams,
    status: u32,
    sorted_keys: &[u32],
    sorted_pos: &[u32],
    grad_out: &[f32],
    partials: &[f32],
    weight: &mut W,
    lr: f32,
) {
    if status != STATUS_OK {
        return;
    }
    for seg in runs(sorted_keys) {
        if !referenced(p, seg) {
            continue;
        }
        let (r, g) = (seg.r, row_grad(p, seg, sorted_pos, grad_out, partials));
        for (c, &gc) in g.iter().enumerate() {
            let (w, gc) = (weight.load(r * p.dim + c), weight.as_gradient(gc));
            weight.store(r * p.dim + c, w - lr * gc);
        }
    }
}

/// Fused row-wise Adagrad (FBGEMM EXACT_ROWWISE_ADAGRAD) for referenced rows:
/// `state[r] += mean(grad[r]²)` (squares summed over columns ascending), then
/// `weight[r] -= lr / (sqrt(state[r]) + eps) * grad[r]`.
#[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
pub fn segment_adagrad<W: Weights + ?Sized>(
    p: &SegmentParams,
    status: u32,
    sorted_keys: &[u32],
    sorted_pos: &[u32],
    grad_out: &[f32],
    partials: &[f32],
    weight: &mut W,
    state: &mut [f32],
    lr: f32,
    eps: f32,
) {
    if status != STATUS_OK {
        return;
    }
    for seg in runs(sorted_keys) {
        if !referenced(p, seg) {
            continue;
        }
        let r = seg.r;
        // An f16 table's gradient is f16 (see `Weights::as_gradient`).
        let g: Vec<f32> = row_grad(p, seg, sorted_pos, grad_out, partials)
            .into_iter()
            .map(|x| weight.as_gradient(x))
            .collect();
        let mut squares = 0.0f32;
        for &gc in &g {
            squares += gc * gc;
        }
        let h = state[r] + squares / p.dim as f32;
        state[r] = h;
        let multiplier = lr / (h.sqrt() + eps);
        for (c, &gc) in g.iter().enumerate() {
            let w = weight.load(r * p.dim + c);
            weight.store(r * p.dim + c, w - multiplier * gc);
        }
    }
}

/// Fused Adam for referenced rows (`torch.optim.SparseAdam`'s step when `a`
/// is made with `sparse`): each element through
/// [`adam_update`](crate::cpu::adam_step::adam_update); rows the batch did
/// not reference keep their weights and moments.
#[allow(clippy::too_many_arguments)]
pub fn segment_adam(
    p: &SegmentParams,
    status: u32,
    sorted_keys: &[u32],
    sorted_pos: &[u32],
    grad_out: &[f32],
    partials: &[f32],
    weight: &mut [f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    a: &crate::cpu::adam_step::AdamArgs,
) {
    if status != STATUS_OK {
        return;
    }
    for seg in runs(sorted_keys) {
        if !referenced(p, seg) {
            continue;
        }
        let g = row_grad(p, seg, sorted_pos, grad_out, partials);
        for (c, &gc) in g.iter().enumerate() {
            let i = seg.r * p.dim + c;
            (weight[i], exp_avg[i], exp_avg_sq[i]) =
                crate::cpu::adam_step::adam_update(a, weight[i], gc, exp_avg[i], exp_avg_sq[i]);
        }
    }
}
