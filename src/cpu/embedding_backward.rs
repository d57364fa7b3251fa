//! The whole deterministic embedding backward on the CPU, composed from the
//! kernel twins in the order `nn::Embedding` records the kernels:
//! `row_histogram` → `exclusive_scan` → `radix_sort` → `segment_sum`.
//! This is the oracle the GPU gradient is compared with, bit for bit.

use super::{exclusive_scan, radix_sort, row_histogram, segment_sum, ScanMode};
use crate::cpu::segment_sum::SegmentParams;
use crate::cpu::sgd_update::Weights;
use crate::kernels::segment_sum::{tile_len, CHUNK};

/// The gradient options that change the arithmetic.
#[derive(Clone, Copy, Debug)]
pub struct BackwardOptions {
    /// A row that gets no gradient (PyTorch's `padding_idx`): zero in the
    /// dense gradient, left out of the sparse one and of the fused updates.
    pub padding_idx: Option<usize>,
    /// Divide each row's summed gradient by how many entries of the batch
    /// name that row (PyTorch's `scale_grad_by_freq`).
    pub scale_grad_by_freq: bool,
    /// Tile length of the segment split (the GPU uses [`CHUNK`]); a batch
    /// of more than `MAX_TILES` of them gets longer tiles, as on the GPU
    /// ([`tile_len`]).
    pub chunk: usize,
}

impl Default for BackwardOptions {
    fn default() -> Self {
        BackwardOptions {
            padding_idx: None,
            scale_grad_by_freq: false,
            chunk: CHUNK,
        }
    }
}

/// The batch grouped by row: what the sort stage hands the segment stage.
pub struct SortedBatch {
    /// `u32::MAX` when every index is inside the table, else the smallest
    /// position of one that is not; the segment stage then writes nothing.
    pub status: u32,
    /// Entries per row (`num_embeddings` of them); out-of-range indices are
    /// not counted.
    pub counts: Vec<u32>,
    /// `num_embeddings + 1` entries.
    pub offsets: Vec<u32>,
    /// The indices sorted ascending (stable), `n` of them, when `status`
    /// is `u32::MAX` (an out-of-range key is sorted by its low bits only).
    pub sorted_keys: Vec<u32>,
    /// For each entry of `sorted_keys`, its position in the unsorted batch.
    pub sorted_pos: Vec<u32>,
    /// Pieces of the segments that cross tiles.
    pub partials: Vec<f32>,
    /// The segment stage's parameters, with the tile length already raised
    /// by [`tile_len`].
    pub params: SegmentParams,
}

/// Histogram, scan, sort and tile partials of one batch.
pub fn sort_batch(
    num_embeddings: usize,
    dim: usize,
    indices: &[u32],
    grad_out: &[f32],
    options: &BackwardOptions,
) -> SortedBatch {
    let n = indices.len();
    assert_eq!(grad_out.len(), n * dim, "grad_out is n × dim");
    let mut status = u32::MAX;
    let mut counts = vec![0u32; num_embeddings];
    row_histogram(num_embeddings, indices, &mut status, &mut counts);
    let mut offsets = vec![0u32; num_embeddings + 1];
    exclusive_scan(&counts, None, ScanMode::Sum, &mut offsets);
    let mut sorted_keys = vec![0u32; n];
    let mut sorted_pos = vec![0u32; n];
    radix_sort(indices, num_embeddings, &mut sorted_keys, &mut sorted_pos);
    let params = SegmentParams {
        n,
        dim,
        num_embeddings,
        chunk: tile_len(options.chunk, n),
        padding_idx: options.padding_idx,
        scale_by_freq: options.scale_grad_by_freq,
    };
    let mut partials = vec![0.0f32; n.div_ceil(params.chunk) * 2 * dim];
    segment_sum::segment_partials(
        &params,
        status,
        &sorted_keys,
        &sorted_pos,
        grad_out,
        &mut partials,
    );
    SortedBatch {
        status,
        counts,
        offsets,
        sorted_keys,
        sorted_pos,
        partials,
        params,
    }
}

/// The dense `[num_embeddings, dim]` gradient of a lookup of `indices` (an
/// f16 table's: each element of this rounded once to nearest).
pub fn embedding_backward_dense(
    num_embeddings: usize,
    dim: usize,
    indices: &[u32],
    grad_out: &[f32],
    options: &BackwardOptions,
) -> Vec<f32> {
    let b = sort_batch(num_embeddings, dim, indices, grad_out, options);
    let mut out = vec![0.0f32; num_embeddings * dim];
    segment_sum::segment_dense(
        &b.params,
        b.status,
        &b.offsets,
        &b.sorted_pos,
        grad_out,
        &b.partials,
        &mut out,
    );
    out
}

/// The sparse gradient: the referenced rows ascending (padding excluded) and
/// one summed `dim`-row each.
pub fn embedding_backward_sparse(
    num_embeddings: usize,
    dim: usize,
    indices: &[u32],
    grad_out: &[f32],
    options: &BackwardOptions,
) -> (Vec<u32>, Vec<f32>) {
    let b = sort_batch(num_embeddings, dim, indices, grad_out, options);
    // Each sorted entry's slot: the runs (rows) before it, padding excluded.
    let mut ranks = vec![0u32; b.params.n + 1];
    let padding = options.padding_idx;
    exclusive_scan(&b.sorted_keys, padding, ScanMode::RunStarts, &mut ranks);
    let unique = ranks[b.params.n] as usize;
    let mut rows = vec![0u32; unique];
    let mut values = vec![0.0f32; unique * dim];
    segment_sum::segment_sparse(
        &b.params,
        b.status,
        &b.sorted_keys,
        &b.sorted_pos,
        grad_out,
        &b.partials,
        &mut values,
        &ranks,
        &mut rows,
    );
    (rows, values)
}

/// Fused backward + SGD on `weight` (`[num_embeddings, dim]`, f32 or f16).
pub fn embedding_backward_sgd<W: Weights + ?Sized>(
    num_embeddings: usize,
    dim: usize,
    indices: &[u32],
    grad_out: &[f32],
    options: &BackwardOptions,
    weight: &mut W,
    lr: f32,
) {
    let b = sort_batch(num_embeddings, dim, indices, grad_out, options);
    segment_sum::segment_sgd(
        &b.params,
        b.status,
        &b.sorted_keys,
        &b.sorted_pos,
        grad_out,
        &b.partials,
        weight,
        lr,
    );
}

/// Fused backward + row-wise Adagrad on `weight` (f32 or f16), with one
/// f32 of `state` per row.
#[allow(clippy::too_many_arguments)]
pub fn embedding_backward_adagrad<W: Weights + ?Sized>(
    num_embeddings: usize,
    dim: usize,
    indices: &[u32],
    grad_out: &[f32],
    options: &BackwardOptions,
    weight: &mut W,
    state: &mut [f32],
    lr: f32,
    eps: f32,
) {
    let b = sort_batch(num_embeddings, dim, indices, grad_out, options);
    segment_sum::segment_adagrad(
        &b.params,
        b.status,
        &b.sorted_keys,
        &b.sorted_pos,
        grad_out,
        &b.partials,
        weight,
        state,
        lr,
        eps,
    );
}

/// Fused backward + Adam (`torch.optim.SparseAdam`'s step when `adam` is
/// made with `sparse`) on `weight` and its moments, `[num_embeddings, dim]` each.
#[allow(clippy::too_many_arguments)]
pub fn embedding_backward_adam(
    num_embeddings: usize,
    dim: usize,
    indices: &[u32],
    grad_out: &[f32],
    options: &BackwardOptions,
    weight: &mut [f32],
    exp_avg: &mut [f32],
    exp_avg_sq: &mut [f32],
    adam: &crate::cpu::AdamArgs,
) {
    let b = sort_batch(num_embeddings, dim, indices, grad_out, options);
    segment_sum::segment_adam(
        &b.params,
        b.status,
        &b.sorted_keys,
        &b.sorted_pos,
        grad_out,
        &b.partials,
        weight,
        exp_avg,
        exp_avg_sq,
        adam,
    );
}
