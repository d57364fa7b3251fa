//! CPU twin of `shaders/embedding_bag_backward.wgsl` (`bag_padding`,
//! `bag_expand`, `psw_grad`), and the whole EmbeddingBag backward composed
//! from the twins in the order `nn::EmbeddingBag` records the kernels:
//! `bag_padding` → `bag_expand` → the embedding backward
//! (`cpu::embedding_backward_*`) of the expanded per-position gradient.

use super::embedding_backward::{self, BackwardOptions};
use super::embedding_bag::BagMode;
use half::f16;

/// The bag owning position `p`: the largest `b` with `offsets[b] <= p`
/// (the same binary search as the shader's `bag_of`).
fn bag_of(offsets: &[u32], p: u32) -> usize {
    assert!(
        offsets.len() >= 2,
        "a position needs a bag: CSR offsets of at least one bag (2 or more), got {}",
        offsets.len()
    );
    let (mut lo, mut hi) = (0usize, offsets.len() - 1);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offsets[mid] <= p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// `pads[b]` += 1 for each padding entry of bag `b`, one position at a time
/// (`pads` starts at 0); mean mode divides by the bag's length less this.
pub fn bag_padding(padding_idx: Option<usize>, indices: &[u32], offsets: &[u32], pads: &mut [u32]) {
    for (p, &row) in indices.iter().enumerate() {
        if Some(row as usize) == padding_idx {
            pads[bag_of(offsets, p as u32)] += 1;
        }
    }
}

/// `expanded[p, c]`: what position `p` contributes to row `indices[p]`,
/// column `c` (see the shader's header for each mode); 0 for padding.
#[allow(clippy::too_many_arguments)]
pub fn bag_expand(
    mode: BagMode,
    dim: usize,
    padding_idx: Option<usize>,
    indices: &[u32],
    offsets: &[u32],
    per_sample_weights: Option<&[f32]>,
    max_positions: &[u32],
    grad_out: &[f32],
    pads: &[u32],
    expanded: &mut [f32],
) {
    for (p, &row) in indices.iter().enumerate() {
        for c in 0..dim {
            let e = p * dim + c;
            if Some(row as usize) == padding_idx {
                expanded[e] = 0.0;
                continue;
            }
            let b = bag_of(offsets, p as u32);
            let g = grad_out[b * dim + c];
            expanded[e] = match (mode, per_sample_weights) {
                (BagMode::Mean, _) => g / (offsets[b + 1] - offsets[b] - pads[b]) as f32,
                (BagMode::Max, _) => {
                    if max_positions[b * dim + c] == p as u32 {
                        g
                    } else {
                        0.0
                    }
                }
                (BagMode::Sum, Some(w)) => w[p] * g,
                (BagMode::Sum, None) => g,
            };
        }
    }
}

/// `out[p]` = the gradient of per-sample weight `p`: `grad_out[bag(p), c] *
/// table[indices[p], c]` over `c` ascending, each product rounded on its own
/// and then added; 0 for padding. `load(e)` reads table element `e` as f32.
#[allow(clippy::too_many_arguments)]
fn psw_grad_with(
    num_embeddings: usize,
    dim: usize,
    padding_idx: Option<usize>,
    indices: &[u32],
    offsets: &[u32],
    grad_out: &[f32],
    load: impl Fn(usize) -> f32,
    out: &mut [f32],
) {
    for (p, &row) in indices.iter().enumerate() {
        if Some(row as usize) == padding_idx || row as usize >= num_embeddings {
            out[p] = 0.0;
            continue;
        }
        let b = bag_of(offsets, p as u32);
        let mut acc = 0.0f32;
        for c in 0..dim {
            let prod = grad_out[b * dim + c] * load(row as usize * dim + c);
            acc += prod;
        }
        out[p] = acc;
    }
}

/// The `psw_grad` entry point for an f32 table.
#[allow(clippy::too_many_arguments)]
pub fn psw_grad(
    num_embeddings: usize,
    dim: usize,
    padding_idx: Option<usize>,
    indices: &[u32],
    offsets: &[u32],
    grad_out: &[f32],
    table: &[f32],
    out: &mut [f32],
) {
    psw_grad_with(
        num_embeddings,
        dim,
        padding_idx,
        indices,
        offsets,
        grad_out,
        |e| table[e],
        out,
    );
}

/// The `psw_grad` entry point for an f16 table (each element widened exactly).
#[allow(clippy::too_many_arguments)]
pub fn psw_grad_f16(
    num_embeddings: usize,
    dim: usize,
    padding_idx: Option<usize>,
    indices: &[u32],
    offsets: &[u32],
    grad_out: &[f32],
    table: &[f16],
    out: &mut [f32],
) {
    psw_grad_with(
        num_embeddings,
        dim,
        padding_idx,
        indices,
        offsets,
        grad_out,
        |e| table[e].to_f32(),
        out,
    );
}

/// A bag batch as the backward sees it.
#[derive(Clone, Copy, Debug)]
pub struct BagBatch<'a> {
    /// How the forward reduced each bag.
    pub mode: BagMode,
    /// Rows of the table.
    pub num_embeddings: usize,
    /// Values per row.
    pub dim: usize,
    /// The table rows of every bag, one after another (`n` entries).
    pub indices: &'a [u32],
    /// CSR offsets: `num_bags + 1`, the last `indices.len()`.
    pub offsets: &'a [u32],
    /// Sum mode: one weight per entry of `indices`, the factor its row had
    /// in the forward; ignored in the other modes.
    pub per_sample_weights: Option<&'a [f32]>,
    /// Max mode: the forward's winning positions (`[num_bags, dim]`); else empty.
    pub max_positions: &'a [u32],
    /// `[num_bags, dim]`.
    pub grad_out: &'a [f32],
}

/// `bag_padding` then `bag_expand`: the `[n, dim]` per-position gradient.
pub fn expand(batch: &BagBatch, padding_idx: Option<usize>) -> Vec<f32> {
    let num_bags = batch.offsets.len() - 1;
    let mut pads = vec![0u32; num_bags];
    if batch.mode == BagMode::Mean {
        bag_padding(padding_idx, batch.indices, batch.offsets, &mut pads);
    }
    let mut expanded = vec![0.0f32; batch.indices.len() * batch.dim];
    bag_expand(
        batch.mode,
        batch.dim,
        padding_idx,
        batch.indices,
        batch.offsets,
        batch.per_sample_weights,
        batch.max_positions,
        batch.grad_out,
        &pads,
        &mut expanded,
    );
    expanded
}

/// The dense `[num_embeddings, dim]` table gradient of a bag forward.
pub fn embedding_bag_backward_dense(batch: &BagBatch, options: &BackwardOptions) -> Vec<f32> {
    let expanded = expand(batch, options.padding_idx);
    embedding_backward::embedding_backward_dense(
        batch.num_embeddings,
        batch.dim,
        batch.indices,
        &expanded,
        options,
    )
}

/// The sparse table gradient: referenced rows ascending (padding excluded), one row each.
pub fn embedding_bag_backward_sparse(
    batch: &BagBatch,
    options: &BackwardOptions,
) -> (Vec<u32>, Vec<f32>) {
    let expanded = expand(batch, options.padding_idx);
    embedding_backward::embedding_backward_sparse(
        batch.num_embeddings,
        batch.dim,
        batch.indices,
        &expanded,
        options,
    )
}

/// Fused backward + SGD on `weight` (`[num_embeddings, dim]`).
pub fn embedding_bag_backward_sgd(
    batch: &BagBatch,
    options: &BackwardOptions,
    weight: &mut [f32],
    lr: f32,
) {
    let expanded = expand(batch, options.padding_idx);
    embedding_backward::embedding_backward_sgd(
        batch.num_embeddings,
        batch.dim,
        batch.indices,
        &expanded,
        options,
        weight,
        lr,
    );
}
