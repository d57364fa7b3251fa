//! An embedding table's storage: f32 (a [`Tensor`]) or IEEE binary16
//! ([`HalfTensor`]), which halves the table's memory and the bytes each
//! lookup reads.
//!
//! f16 tables are decoded in the shaders with `unpack2x16float`, which is core
//! WGSL, so they work on every adapter, `SHADER_F16` or not (GL and most
//! WebGPU implementations lack it); the math after the load is f32 and outputs
//! are f32.
//!
//! f16 tables are for lookup only for now: gradients and updates on them
//! return a typed error. The plan is an f32 master copy that the optimizer
//! updates, rounded into the f16 table once per step, so rounding error
//! does not compound across steps.

use std::sync::Arc;

use half::f16;

use crate::binding::Span;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::embedding_gather::TableBlock;
use crate::memory::GpuBuffer;
use crate::readback;
use crate::tensor::{numel, Tensor};

/// Element type of an embedding table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DType {
    /// 4 bytes per element.
    #[default]
    F32,
    /// 2 bytes per element (IEEE binary16); lookups return f32.
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }
}

/// A row-major f16 tensor on one `Gpu`, packed two elements per u32 word
/// (element `2k` in the low half). Cloning shares the buffer.
#[derive(Clone)]
pub struct HalfTensor {
    gpu: Gpu,
    buffer: Arc<GpuBuffer>,
    shape: Vec<usize>,
}

/// Allocation size of `n` halves: a multiple of 8 bytes, because the vec4
/// kernels read f16 tables as `array<vec2<u32>>` and a runtime array's length
/// is the binding size divided by 8, rounded down.
fn half_bytes(n: usize) -> u64 {
    (n as u64 * 2).div_ceil(8) * 8
}

impl HalfTensor {
    /// Uploads `data` (already f16) as a tensor of `shape`.
    pub fn from_f16(gpu: &Gpu, data: &[f16], shape: &[usize]) -> Result<HalfTensor> {
        let n = numel("f16 tensor", shape)?;
        if data.len() != n {
            return Err(Error::LengthMismatch {
                what: "HalfTensor data for the given shape",
                expected: n,
                found: data.len(),
            });
        }
        let bytes = half_bytes(n);
        gpu.check_size("f16 tensor", bytes, true)?;
        let mut padded: Vec<u8> = Vec::with_capacity(bytes as usize);
        padded.extend_from_slice(bytemuck::cast_slice(data));
        padded.resize(bytes as usize, 0);
        let buffer = gpu.storage_from("f16 tensor", &padded)?;
        Ok(HalfTensor {
            gpu: gpu.clone(),
            buffer: Arc::new(buffer),
            shape: shape.to_vec(),
        })
    }

    /// Rounds `data` to f16 (to nearest, ties to even) and uploads it.
    pub fn from_f32(gpu: &Gpu, data: &[f32], shape: &[usize]) -> Result<HalfTensor> {
        let halves: Vec<f16> = data.iter().map(|&x| f16::from_f32(x)).collect();
        HalfTensor::from_f16(gpu, &halves, shape)
    }

    /// The shape, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// Bytes of data (the allocation is padded to a multiple of 8).
    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 2
    }
    /// The wgpu buffer (u32 words, two halves each).
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.raw()
    }
    /// The `Gpu` it lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Copies the tensor to the host as f16.
    pub fn to_f16_vec(&self) -> Result<Vec<f16>> {
        let n = self.numel();
        let padded = (n as u64 * 2).div_ceil(4) * 4;
        let bytes = readback::read_bytes(&self.gpu, self.buffer(), 0, padded, "f16 tensor")?;
        let mut out: Vec<f16> = bytemuck::pod_collect_to_vec(&bytes);
        out.truncate(n);
        Ok(out)
    }

    /// Copies the tensor to the host, widened to f32 (exact).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        Ok(self.to_f16_vec()?.iter().map(|h| h.to_f32()).collect())
    }

    /// Overwrites the contents with `data` rounded to f16, in queue order.
    pub fn write(&self, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(Error::LengthMismatch {
                what: "HalfTensor::write data",
                expected: self.numel(),
                found: data.len(),
            });
        }
        let mut halves: Vec<f16> = data.iter().map(|&x| f16::from_f32(x)).collect();
        // write_buffer needs a multiple of 4 bytes.
        if halves.len() % 2 == 1 {
            halves.push(f16::ZERO);
        }
        self.gpu.scoped("f16 tensor write", || {
            self.gpu
                .queue()
                .write_buffer(self.buffer(), 0, bytemuck::cast_slice(&halves));
            Ok(())
        })
    }
}

impl std::fmt::Debug for HalfTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HalfTensor({:?} on {})", self.shape, self.gpu.describe())
    }
}

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

/// One row-chunk of a table: rows `row_begin .. row_begin + rows` in `buffer`.
#[derive(Clone, Copy, Debug)]
pub struct WeightChunk<'a> {
    pub row_begin: usize,
    pub rows: usize,
    pub buffer: &'a wgpu::Buffer,
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

/// An embedding table's weight in its storage type.
#[derive(Clone, Debug)]
pub enum Weight {
    F32(Tensor),
    F16(HalfTensor),
    /// An f32 table past one storage binding, in row-chunks.
    F32Chunked(ChunkedTensor),
}

impl Weight {
    /// Element type.
    pub fn dtype(&self) -> DType {
        match self {
            Weight::F32(_) | Weight::F32Chunked(_) => DType::F32,
            Weight::F16(_) => DType::F16,
        }
    }
    /// `[num_embeddings, dim]`.
    pub fn shape(&self) -> &[usize] {
        match self {
            Weight::F32(t) => t.shape(),
            Weight::F16(t) => t.shape(),
            Weight::F32Chunked(t) => t.shape(),
        }
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape().iter().product()
    }
    /// Bytes of data: 4 per element for f32, 2 for f16.
    pub fn bytes(&self) -> u64 {
        match self {
            Weight::F32(t) => t.bytes(),
            Weight::F16(t) => t.bytes(),
            Weight::F32Chunked(t) => t.bytes(),
        }
    }
    /// The wgpu buffer (f32 elements, or f16 packed two per u32), for a
    /// table in one binding; a chunked table is `Error::ChunkedTable` (use
    /// [`chunks`](Self::chunks)).
    pub fn buffer(&self) -> Result<&wgpu::Buffer> {
        match self {
            Weight::F32(t) => Ok(t.buffer()),
            Weight::F16(t) => Ok(t.buffer()),
            Weight::F32Chunked(t) => Err(Error::ChunkedTable {
                chunks: t.tensors().len(),
                bytes: t.bytes(),
                limit: t.gpu.max_binding_bytes(),
            }),
        }
    }
    /// The table's row-chunks in row order: one for a table in one binding.
    pub fn chunks(&self) -> Vec<WeightChunk<'_>> {
        match self {
            Weight::F32(t) => vec![WeightChunk {
                row_begin: 0,
                rows: t.shape()[0],
                buffer: t.buffer(),
            }],
            Weight::F16(t) => vec![WeightChunk {
                row_begin: 0,
                rows: t.shape()[0],
                buffer: t.buffer(),
            }],
            Weight::F32Chunked(t) => t
                .tensors()
                .iter()
                .zip(t.row_starts())
                .map(|(c, &b)| WeightChunk {
                    row_begin: b,
                    rows: c.shape()[0],
                    buffer: c.buffer(),
                })
                .collect(),
        }
    }
    /// The row-chunks as the gather reads them: each chunk's rows and buffer.
    pub(crate) fn blocks(&self) -> Vec<TableBlock<'_>> {
        self.chunks()
            .iter()
            .map(|c| TableBlock {
                rows: c.row_begin..c.row_begin + c.rows,
                span: Span::whole(c.buffer),
            })
            .collect()
    }
    /// Rows `first .. first + count` as f32 (reads only those rows of an f32 table).
    pub fn rows_to_vec(&self, first: usize, count: usize) -> Result<Vec<f32>> {
        match self {
            Weight::F32(t) => t.rows_to_vec(first, count),
            Weight::F32Chunked(t) => t.rows_to_vec(first, count),
            Weight::F16(t) => {
                let dim = t.shape()[1];
                let rows = t.shape()[0];
                let end = first.saturating_add(count);
                if end > rows {
                    return Err(Error::IndexOutOfRange {
                        position: 0,
                        index: end.saturating_sub(1) as u64,
                        num_embeddings: rows,
                    });
                }
                Ok(t.to_vec()?[first * dim..end * dim].to_vec())
            }
        }
    }
    /// The `Gpu` it lives on.
    pub fn gpu(&self) -> &Gpu {
        match self {
            Weight::F32(t) => t.gpu(),
            Weight::F16(t) => t.gpu(),
            Weight::F32Chunked(t) => &t.gpu,
        }
    }
    /// The values as f32 (f16 widened exactly).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        match self {
            Weight::F32(t) => t.to_vec(),
            Weight::F16(t) => t.to_vec(),
            Weight::F32Chunked(t) => t.to_vec(),
        }
    }
    /// The f32 tensor, for an f32 table in one binding.
    pub fn as_f32(&self) -> Option<&Tensor> {
        match self {
            Weight::F32(t) => Some(t),
            _ => None,
        }
    }
    /// The f16 tensor, for an f16 table.
    pub fn as_f16(&self) -> Option<&HalfTensor> {
        match self {
            Weight::F16(t) => Some(t),
            _ => None,
        }
    }
    /// The chunks, for an f32 table past one binding.
    pub fn as_chunked(&self) -> Option<&ChunkedTensor> {
        match self {
            Weight::F32Chunked(t) => Some(t),
            _ => None,
        }
    }
    /// Overwrites the values (rounded to f16 for an f16 table).
    pub fn write(&self, data: &[f32]) -> Result<()> {
        match self {
            Weight::F32(t) => t.write(data),
            Weight::F16(t) => t.write(data),
            Weight::F32Chunked(t) => t.write(data),
        }
    }
}
