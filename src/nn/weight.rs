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

use crate::binding::Span;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::embedding_gather::TableBlock;
use crate::tensor::Tensor;
pub use crate::tensor::{ChunkedTensor, HalfTensor};

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

/// One row-chunk of a table: rows `row_begin .. row_begin + rows` in `buffer`.
#[derive(Clone, Copy, Debug)]
pub struct WeightChunk<'a> {
    pub row_begin: usize,
    pub rows: usize,
    pub buffer: &'a wgpu::Buffer,
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
                limit: t.gpu().max_binding_bytes(),
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
            Weight::F32Chunked(t) => t.gpu(),
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
