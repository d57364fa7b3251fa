//! [`ChunkedTensor`]: an f32 table stored as row-chunks of their own buffers.

use super::Tensor;
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// An f32 table larger than one storage binding, stored as row-chunks: chunk
/// `k` is its own buffer holding rows `row_starts[k] .. row_starts[k + 1]`,
/// each within `max_storage_buffer_binding_size`. Separate buffers (not
/// offsets into one) mean no chunk needs `min_storage_buffer_offset_alignment`
/// and the table is not capped by `max_buffer_size` either: only by the
/// adapter's memory. Kernels run per chunk, or bind up to four at once (see
/// `Embedding::encode_forward`). The dense gradient of such a table is a
/// `ChunkedTensor` in the same chunks ([`crate::Gradient::DenseChunked`]).
#[derive(Clone)]
pub struct ChunkedTensor {
    gpu: Gpu,
    chunks: Vec<Tensor>,
    /// `chunks.len() + 1` entries; the last is the row count.
    row_starts: Vec<usize>,
    shape: Vec<usize>,
}

impl ChunkedTensor {
    /// A zeroed `[rows, dim]` table in chunks of at most `rows_per_chunk` rows.
    pub(crate) fn zeros(
        gpu: &Gpu,
        rows: usize,
        dim: usize,
        rows_per_chunk: usize,
    ) -> Result<ChunkedTensor> {
        let rows_per_chunk = rows_per_chunk.max(1);
        let mut chunks = Vec::with_capacity(rows.div_ceil(rows_per_chunk));
        let mut row_starts = vec![0];
        let mut begin = 0;
        while begin < rows {
            let n = rows_per_chunk.min(rows - begin);
            chunks.push(Tensor::zeros(gpu, &[n, dim])?);
            begin += n;
            row_starts.push(begin);
        }
        Ok(ChunkedTensor {
            gpu: gpu.clone(),
            chunks,
            row_starts,
            shape: vec![rows, dim],
        })
    }
    /// A zeroed tensor of the same shape in the same row-chunks (the dense
    /// gradient of a chunked table).
    pub(crate) fn zeros_like(&self) -> Result<ChunkedTensor> {
        let dim = self.dim();
        let chunks = self
            .chunks
            .iter()
            .map(|c| Tensor::zeros(&self.gpu, &[c.shape()[0], dim]))
            .collect::<Result<Vec<_>>>()?;
        Ok(ChunkedTensor {
            gpu: self.gpu.clone(),
            chunks,
            row_starts: self.row_starts.clone(),
            shape: self.shape.clone(),
        })
    }
    /// `[num_embeddings, dim]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// The `Gpu` it lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    fn dim(&self) -> usize {
        self.shape[1]
    }
    /// The chunks in row order, each a `[rows, dim]` tensor.
    pub fn tensors(&self) -> &[Tensor] {
        &self.chunks
    }
    /// Chunk `k` holds rows `row_starts()[k] .. row_starts()[k + 1]`.
    pub fn row_starts(&self) -> &[usize] {
        &self.row_starts
    }
    /// Bytes of data.
    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|t| t.bytes()).sum()
    }
    /// The whole table on the host.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.shape[0] * self.dim());
        for t in &self.chunks {
            out.extend(t.to_vec()?);
        }
        Ok(out)
    }
    /// Rows `first .. first + count`, read from whichever chunks hold them.
    pub fn rows_to_vec(&self, first: usize, count: usize) -> Result<Vec<f32>> {
        let end = first.saturating_add(count);
        if end > self.shape[0] {
            return Err(Error::IndexOutOfRange {
                position: 0,
                index: end.saturating_sub(1) as u64,
                num_embeddings: self.shape[0],
            });
        }
        let mut out = Vec::with_capacity(count * self.dim());
        for (k, t) in self.chunks.iter().enumerate() {
            let (b, e) = (self.row_starts[k], self.row_starts[k + 1]);
            let (lo, hi) = (first.max(b), end.min(e));
            if lo < hi {
                out.extend(t.rows_to_vec(lo - b, hi - lo)?);
            }
        }
        Ok(out)
    }
    /// Overwrites the table with `data` (row-major, every row), in queue order.
    pub fn write(&self, data: &[f32]) -> Result<()> {
        let dim = self.dim();
        if data.len() != self.shape[0] * dim {
            return Err(Error::LengthMismatch {
                what: "chunked table write data",
                expected: self.shape[0] * dim,
                found: data.len(),
            });
        }
        for (k, t) in self.chunks.iter().enumerate() {
            t.write(&data[self.row_starts[k] * dim..self.row_starts[k + 1] * dim])?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for ChunkedTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ChunkedTensor({:?} in {} chunks on {})",
            self.shape,
            self.chunks.len(),
            self.gpu.describe()
        )
    }
}
