//! CPU twin of `shaders/embedding_bag.wgsl`.

use super::Rows;

/// How a bag's rows reduce to one, as `torch.nn.EmbeddingBag`'s `mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BagMode {
    /// The sum of the rows (optionally each scaled by its per-sample weight).
    Sum,
    /// The sum divided by the number of non-padding entries (PyTorch's default).
    #[default]
    Mean,
    /// The largest value of each column; ties go to the lowest position.
    Max,
}

impl BagMode {
    /// The shader's `MODE` override.
    pub(crate) fn code(self) -> u32 {
        match self {
            BagMode::Sum => 0,
            BagMode::Mean => 1,
            BagMode::Max => 2,
        }
    }
}

/// `max_positions` of an empty bag (or one of only padding): no winner.
pub const NO_POSITION: u32 = u32::MAX;

/// `out[b, :]` = the `mode` reduction of `table[indices[p], :]` over
/// `p in offsets[b] .. offsets[b + 1]` (`offsets` has `num_bags + 1` entries),
/// visiting positions in ascending order with one accumulator per column.
///
/// Entries equal to `padding_idx` are skipped; an index past the table is
/// skipped and the smallest such position written to `status` (which starts
/// at `u32::MAX`), as the shader's `atomicMin` leaves it. In max mode
/// `max_positions[b, c]` is the position that won column `c` (ties: the
/// lowest), [`NO_POSITION`] for an empty bag; other modes leave it alone.
///
/// The weighted sum adds `w * v` rounded on its own (`acc + (w * v)`), never
/// fused into one FMA: the shader forms the product with exact_arith's
/// `mul_rn`, which no compiler can contract into the add.
#[allow(clippy::too_many_arguments)]
pub fn embedding_bag<T: Rows + ?Sized>(
    mode: BagMode,
    num_embeddings: usize,
    dim: usize,
    padding_idx: Option<usize>,
    indices: &[u32],
    offsets: &[u32],
    per_sample_weights: Option<&[f32]>,
    status: &mut u32,
    max_positions: &mut [u32],
    table: &T,
    out: &mut [f32],
) {
    assert!(!offsets.is_empty(), "offsets has num_bags + 1 entries");
    let num_bags = offsets.len() - 1;
    assert!(
        dim == 0 || table.rows(dim) == num_embeddings,
        "the table holds num_embeddings rows of dim"
    );
    assert_eq!(out.len(), num_bags * dim, "out length is bags × dim");
    if mode == BagMode::Max {
        assert_eq!(
            max_positions.len(),
            num_bags * dim,
            "one position per output"
        );
    }
    let n = indices.len();
    for b in 0..num_bags {
        let start = (offsets[b] as usize).min(n);
        let end = (offsets[b + 1] as usize).clamp(start, n);
        for c in 0..dim {
            let mut acc = 0.0f32;
            let mut arg = NO_POSITION;
            let mut count = 0u32;
            for p in start..end {
                let row = indices[p];
                if row as usize >= num_embeddings {
                    *status = (*status).min(p as u32);
                    continue;
                }
                if Some(row as usize) == padding_idx {
                    continue;
                }
                let v = table.value(row as usize, c, dim);
                match (mode, per_sample_weights) {
                    (BagMode::Max, _) => {
                        if count == 0 || v > acc {
                            acc = v;
                            arg = p as u32;
                        }
                    }
                    (_, Some(w)) => {
                        let wv = w[p] * v;
                        acc += wv;
                    }
                    (_, None) => acc += v,
                }
                count += 1;
            }
            if mode == BagMode::Mean && count > 0 {
                acc /= count as f32;
            }
            out[b * dim + c] = acc;
            if mode == BagMode::Max {
                max_positions[b * dim + c] = arg;
            }
        }
    }
}
