//! The gradient of an [`Embedding`](crate::Embedding) lookup as a value
//! ([`Gradient`]: a dense table, or sparse rows) and the choice
//! of how it is summed ([`GradientMode`]). The methods that compute it are
//! in `nn/embedding/backward.rs`.

use crate::error::{Error, Result};
use crate::tensor::{host_zeros, IndexTensor, Table};

/// How `backward` and `backward_sgd` add up positions that share a row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GradientMode {
    /// Sort positions by row and sum each row in ascending position order:
    /// bit-identical run to run, across adapters, and to the CPU twin. Every adapter.
    #[default]
    Deterministic,
    /// One float `atomicAdd` per element. Needs `SHADER_FLOAT32_ATOMIC`
    /// (else `Error::MissingFeature`). The sum order varies from run to run, so
    /// rows several positions share differ in their last bits between runs.
    /// Sparse gradients and row-wise Adagrad always use the sorted path (they need it).
    Atomic,
}

/// The gradient of a lookup with respect to the table: what PyTorch leaves in
/// `weight.grad`. A dense gradient is stored like the table it belongs to.
#[derive(Clone)]
pub enum Gradient {
    /// `[num_embeddings, dim]`, f32 or f16 like its table; rows the batch did not reference are
    /// zero. Stored in the table's row-blocks when made by `backward` (a
    /// gradient is as large as its table); one made by hand from a
    /// [`Tensor`](crate::Tensor) (`Gradient::Dense(t.into())`) is one block.
    Dense(Table),
    /// The referenced rows, ascending and unique (the padding row left out),
    /// and `[rows.len(), dim]` summed gradients, one row each, stored like
    /// the table (f32, or f16 for an f16 table) in one block. One made by
    /// hand from a [`Tensor`](crate::Tensor) of values: `values: t.into()`.
    Sparse {
        /// The referenced rows, ascending and unique.
        rows: IndexTensor,
        /// `[rows.len(), dim]`: row `k` is the gradient of table row `rows[k]`.
        values: Table,
    },
}

impl std::fmt::Debug for Gradient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gradient::Dense(t) => write!(f, "Gradient::Dense({t:?})"),
            Gradient::Sparse { rows, values } => {
                write!(f, "Gradient::Sparse({} rows, {values:?})", rows.len())
            }
        }
    }
}

impl Gradient {
    /// The width of a sparse gradient's rows, after checking that `values`
    /// is `[rows.len(), dim]` (a caller may build one by hand).
    fn sparse_dim(rows: &IndexTensor, values: &Table) -> Result<usize> {
        match *values.shape() {
            [n, dim] if n == rows.len() => Ok(dim),
            _ => Err(Error::ShapeMismatch {
                what: "sparse gradient values ([rows.len(), dim])",
                expected: vec![rows.len(), values.shape().last().copied().unwrap_or(0)],
                found: values.shape().to_vec(),
            }),
        }
    }

    /// The dense gradient as a host vector (`num_embeddings × dim`), either
    /// variant, blocking until it arrives. Sparse rows must be ascending,
    /// unique and below `num_embeddings`, as `backward` makes them (a row
    /// past the table is `IndexOutOfRange`, not dropped).
    pub fn to_dense_vec(&self, num_embeddings: usize, dim: usize) -> Result<Vec<f32>> {
        crate::readback::block("gradient", self.to_dense_vec_async(num_embeddings, dim))
    }

    /// The async form of [`Gradient::to_dense_vec`], for a page.
    pub async fn to_dense_vec_async(&self, num_embeddings: usize, dim: usize) -> Result<Vec<f32>> {
        match self {
            Gradient::Dense(t) => {
                if t.shape() != [num_embeddings, dim] {
                    return Err(Error::ShapeMismatch {
                        what: "Gradient::to_dense_vec dense gradient",
                        expected: vec![num_embeddings, dim],
                        found: t.shape().to_vec(),
                    });
                }
                t.to_vec_async().await
            }
            Gradient::Sparse { rows, values } => {
                let held = Gradient::sparse_dim(rows, values)?;
                if held != dim {
                    return Err(Error::ShapeMismatch {
                        what: "Gradient::to_dense_vec sparse values ([rows, dim])",
                        expected: vec![rows.len(), dim],
                        found: values.shape().to_vec(),
                    });
                }
                let total =
                    crate::tensor::numel("dense gradient on the host", &[num_embeddings, dim])?;
                let mut out = host_zeros("dense gradient on the host", total)?;
                let rows = rows.to_vec_async().await?;
                // A row past the table, or twice, has no place in the dense one.
                check_sparse_rows(&rows, num_embeddings)?;
                let values = values.to_vec_async().await?;
                for (i, &r) in rows.iter().enumerate() {
                    let r = r as usize;
                    out[r * dim..(r + 1) * dim].copy_from_slice(&values[i * dim..(i + 1) * dim]);
                }
                Ok(out)
            }
        }
    }

    /// Rows `first .. first + count` of the dense gradient (`count × dim`
    /// floats), reading only those rows of a dense one: for sampling a
    /// gradient too large to read back whole. Past a dense gradient's end:
    /// `RowsOutOfRange`. A sparse gradient gives zeros for the rows it does
    /// not hold; its rows must ascend without repeats, as `backward` makes them.
    pub fn rows_to_vec(&self, first: usize, count: usize) -> Result<Vec<f32>> {
        match self {
            Gradient::Dense(t) => t.rows_to_vec(first, count),
            Gradient::Sparse { rows, values } => {
                let dim = Gradient::sparse_dim(rows, values)?;
                let total = crate::tensor::numel("gradient rows on the host", &[count, dim])?;
                let mut out = host_zeros("gradient rows on the host", total)?;
                let rows = rows.to_vec()?;
                check_sparse_rows(&rows, usize::MAX)?;
                // The rows ascend: those wanted are one run of them, and
                // their values one read.
                let below = |end: usize| rows.partition_point(|&r| (r as usize) < end);
                let (lo, hi) = (below(first), below(first.saturating_add(count)));
                if lo == hi {
                    return Ok(out);
                }
                let values = values.rows_to_vec(lo, hi - lo)?;
                for (k, &r) in rows[lo..hi].iter().enumerate() {
                    let r = r as usize - first;
                    out[r * dim..(r + 1) * dim].copy_from_slice(&values[k * dim..(k + 1) * dim]);
                }
                Ok(out)
            }
        }
    }
}

/// The rows of a sparse gradient as `backward` makes them: ascending,
/// unique and in the table. A gradient built by hand (or by another table's
/// backward) is read back and held to that, one small readback per step:
/// the update kernel gives each row one invocation, so a repeated row would
/// race and an out-of-range one would be skipped without a word.
pub(crate) fn check_sparse_rows(rows: &[u32], num_embeddings: usize) -> Result<()> {
    if let Some(position) = rows.iter().position(|&r| r as usize >= num_embeddings) {
        return Err(Error::IndexOutOfRange {
            position,
            index: rows[position] as u64,
            num_embeddings,
        });
    }
    if let Some(k) = rows.windows(2).position(|w| w[0] >= w[1]) {
        return Err(Error::InvalidArgument {
            name: "sparse gradient rows",
            reason: format!(
                "must be ascending and unique, as backward makes them; rows[{k}] = {} then rows[{}] = {}",
                rows[k],
                k + 1,
                rows[k + 1]
            ),
        });
    }
    Ok(())
}
