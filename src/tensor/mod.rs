//! GPU tensors: an f32 buffer with a shape, a u32 index list, an f16
//! tensor (`half.rs`) and a table in row-blocks (`table.rs`).

mod half;
mod int8;
mod table;

pub(crate) use half::half_bytes;
pub use half::HalfTensor;
pub use int8::Int8Tensor;
pub(crate) use int8::{dequantize, quantize};
pub(crate) use table::rows_per_block;
pub use table::Table;

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::memory::GpuBuffer;
use crate::readback;

/// An empty `Vec` with room for `n` items on the host, or `OutOfHostMemory`
/// naming `what` when the allocator refuses (instead of aborting the process).
pub(crate) fn host_vec<T>(what: &'static str, n: usize) -> Result<Vec<T>> {
    let bytes = (n as u64).saturating_mul(std::mem::size_of::<T>() as u64);
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::OutOfHostMemory { what, bytes })?;
    Ok(v)
}

/// `n` zeroed floats on the host; naming `what`, `TooLarge` past what one
/// allocation may hold, `OutOfHostMemory` when the allocator refuses
/// (instead of aborting the process).
pub(crate) fn host_zeros(what: &'static str, n: usize) -> Result<Vec<f32>> {
    let bytes = (n as u64).saturating_mul(4);
    if bytes > isize::MAX as u64 {
        return Err(Error::TooLarge {
            what,
            bytes,
            limit: isize::MAX as u64,
            limit_name: "isize::MAX, the most one host allocation may hold",
        });
    }
    let mut v = host_vec(what, n)?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Number of elements of `shape`, or `TooMany` when it overflows.
pub(crate) fn numel(what: &'static str, shape: &[usize]) -> Result<usize> {
    let count = shape
        .iter()
        .fold(1u128, |acc, &d| acc.saturating_mul(d as u128));
    usize::try_from(count).map_err(|_| Error::TooMany {
        what,
        count,
        limit: usize::MAX as u64,
        limit_name: "elements in a usize, the host's address space",
    })
}

/// `RowsOutOfRange` unless rows `first .. first + count` lie within `rows`.
pub(crate) fn check_rows(first: usize, count: usize, rows: usize) -> Result<()> {
    if first.saturating_add(count) > rows {
        return Err(Error::RowsOutOfRange { first, count, rows });
    }
    Ok(())
}

/// Element type of a table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DType {
    /// 4 bytes per element.
    #[default]
    F32,
    /// 2 bytes per element (IEEE binary16); lookups return f32.
    F16,
    /// Int8 row-wise (FBGEMM's fused 8-bit row-wise): per row, one u8 code
    /// per element and an f32 scale and bias, value = scale · q + bias; a
    /// lookup dequantizes on the fly and returns f32. For inference:
    /// gradients and updates are a typed error.
    Int8,
}

impl DType {
    /// Bytes per element (an int8 row also holds 8 bytes of scale and
    /// bias: see [`DType::row_bytes`]).
    pub fn size(self) -> u64 {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::Int8 => 1,
        }
    }
    /// Bytes one row of `dim` elements takes on the GPU (int8: the codes
    /// padded to a word, then the scale and bias).
    pub fn row_bytes(self, dim: usize) -> u64 {
        match self {
            DType::Int8 => (crate::cpu::int8_rowwise::words_per_row(dim) as u64).saturating_mul(4),
            d => (dim as u64).saturating_mul(d.size()),
        }
    }
}

/// A row-major f32 tensor on one `Gpu`. Cloning shares the buffer.
#[derive(Clone)]
pub struct Tensor {
    gpu: Gpu,
    buffer: Arc<GpuBuffer>,
    shape: Vec<usize>,
}

impl Tensor {
    /// Uploads `data` as a tensor of `shape`; `data.len()` must equal the product of `shape`.
    pub fn from_slice(gpu: &Gpu, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        let n = numel("tensor", shape)?;
        if data.len() != n {
            return Err(Error::LengthMismatch {
                what: "Tensor::from_slice data for the given shape",
                expected: n,
                found: data.len(),
            });
        }
        let buffer = gpu.storage_from("tensor", data)?;
        Ok(Tensor::from_parts(gpu, buffer, shape.to_vec()))
    }

    /// A tensor of zeros.
    pub fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let n = numel("tensor", shape)?;
        let bytes = (n as u64).checked_mul(4).ok_or(Error::TooLarge {
            what: "tensor",
            bytes: u64::MAX,
            limit: gpu.max_buffer_bytes(),
            limit_name: "max_buffer_size",
        })?;
        // New wgpu buffers are zero-initialised; cached ones are cleared.
        let buffer = gpu.storage("tensor", bytes)?;
        Ok(Tensor::from_parts(gpu, buffer, shape.to_vec()))
    }

    /// A tensor whose contents are unspecified: for an output the next
    /// kernel writes in full, so a cached buffer need not be cleared first.
    pub(crate) fn uninit(gpu: &Gpu, shape: &[usize]) -> Result<Tensor> {
        let n = numel("tensor", shape)?;
        let bytes = (n as u64).saturating_mul(4);
        let buffer = gpu.storage_uninit("tensor", bytes)?;
        Ok(Tensor::from_parts(gpu, buffer, shape.to_vec()))
    }

    pub(crate) fn from_parts(gpu: &Gpu, buffer: GpuBuffer, shape: Vec<usize>) -> Tensor {
        Tensor {
            gpu: gpu.clone(),
            buffer: Arc::new(buffer),
            shape,
        }
    }

    /// The shape, outermost first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        // A shape with a 0 may multiply past usize in its other dimensions
        // (creation checked the product, which is 0); any other fits.
        if self.shape.contains(&0) {
            return 0;
        }
        self.shape.iter().product()
    }
    /// Bytes of data (not of the allocation, which is padded to at least 4
    /// and may be larger: a sparse gradient's values sit in a buffer sized
    /// for every row the batch could have touched).
    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }
    /// The wgpu buffer, to bind in the caller's own passes.
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.raw()
    }
    /// The `Gpu` it lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Copies the tensor to the host, blocking until it arrives.
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let _scope = self.gpu.scope();
        readback::read(&self.gpu, self.buffer(), 0, self.bytes(), "tensor")
    }

    /// Copies the tensor to the host without blocking the caller's executor.
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        // A readback of ours: the buffer stays reusable (the scope must end
        // before the await; the copy is submitted before the first one).
        let src = {
            let _scope = self.gpu.scope();
            self.buffer()
        };
        readback::read_async(&self.gpu, src, 0, self.bytes(), "tensor").await
    }

    /// Copies rows `first .. first + count` of a 2-D (or higher) tensor to the host.
    pub fn rows_to_vec(&self, first: usize, count: usize) -> Result<Vec<f32>> {
        let rows = self.shape.first().copied().unwrap_or(1);
        check_rows(first, count, rows)?;
        let per_row = self.numel() / rows.max(1);
        self.elements_to_vec(first * per_row, count * per_row)
    }

    /// Elements `begin .. begin + count` (in bounds: the caller checked).
    pub(crate) fn elements_to_vec(&self, begin: usize, count: usize) -> Result<Vec<f32>> {
        let _scope = self.gpu.scope();
        readback::read(
            &self.gpu,
            self.buffer(),
            begin as u64 * 4,
            count as u64 * 4,
            "tensor rows",
        )
    }

    /// Overwrites the contents with `data` (same length), in queue order.
    pub fn write(&self, data: &[f32]) -> Result<()> {
        let bytes = self.stored(data)?;
        // Queue order puts the write after any work already submitted: no
        // encoder of the caller's is involved, so the buffer stays reusable.
        let _scope = self.gpu.scope();
        self.gpu
            .write_buffer("tensor write", self.buffer(), 0, &bytes)
    }

    /// The bytes [`write`](Self::write) puts in the buffer for `data`.
    pub(crate) fn stored<'a>(&self, data: &'a [f32]) -> Result<std::borrow::Cow<'a, [u8]>> {
        if data.len() != self.numel() {
            return Err(Error::LengthMismatch {
                what: "Tensor::write data",
                expected: self.numel(),
                found: data.len(),
            });
        }
        Ok(bytemuck::cast_slice(data).into())
    }

    pub(crate) fn check_gpu(&self, gpu: &Gpu, what: &'static str) -> Result<()> {
        if self.gpu.same(gpu) {
            Ok(())
        } else {
            Err(Error::DifferentGpu { what })
        }
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?} on {})", self.shape, self.gpu.describe())
    }
}

/// A list of u32 indices on the GPU. Its values are not checked on upload:
/// kernels that read it check each index and report the first bad position.
#[derive(Clone)]
pub struct IndexTensor {
    gpu: Gpu,
    buffer: Arc<GpuBuffer>,
    len: usize,
    /// Set only by the library, for lists it made: the values ascend, are
    /// unique, and are below this bound (the rows of a sparse gradient that
    /// `backward` returned), so an update need not read them back to check.
    sorted_below: Option<usize>,
}

impl IndexTensor {
    /// Uploads `indices`.
    pub fn from_slice(gpu: &Gpu, indices: &[u32]) -> Result<IndexTensor> {
        let buffer = gpu.storage_from("indices", indices)?;
        Ok(IndexTensor {
            gpu: gpu.clone(),
            buffer: Arc::new(buffer),
            len: indices.len(),
            sorted_below: None,
        })
    }
    /// The first `len` u32 words of `buffer` (which may hold more), as the
    /// library's own lists are made on the GPU.
    pub(crate) fn from_parts(gpu: &Gpu, buffer: GpuBuffer, len: usize) -> IndexTensor {
        IndexTensor {
            gpu: gpu.clone(),
            buffer: Arc::new(buffer),
            len,
            sorted_below: None,
        }
    }
    /// Marks the values as ascending, unique and below `bound` (the library's
    /// own sparse gradient rows).
    pub(crate) fn known_sorted_below(mut self, bound: usize) -> IndexTensor {
        self.sorted_below = Some(bound);
        self
    }
    /// The bound of [`known_sorted_below`](Self::known_sorted_below), if set.
    pub(crate) fn sorted_below(&self) -> Option<usize> {
        self.sorted_below
    }
    /// Number of indices.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are no indices.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The wgpu buffer (u32 elements; the first [`len`](Self::len) are the
    /// indices, and the buffer may be longer).
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.raw()
    }
    /// The `Gpu` it lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    /// Copies the indices to the host, blocking until they arrive.
    pub fn to_vec(&self) -> Result<Vec<u32>> {
        let _scope = self.gpu.scope();
        readback::read(&self.gpu, self.buffer(), 0, self.len as u64 * 4, "indices")
    }
    /// Copies the indices to the host without blocking the caller's executor.
    pub async fn to_vec_async(&self) -> Result<Vec<u32>> {
        self.to_vec_range_async(0, self.len).await
    }
    /// Copies indices `first .. first + count` to the host without blocking.
    pub(crate) async fn to_vec_range_async(&self, first: usize, count: usize) -> Result<Vec<u32>> {
        let src = {
            let _scope = self.gpu.scope();
            self.buffer()
        };
        readback::read_async(
            &self.gpu,
            src,
            first as u64 * 4,
            count as u64 * 4,
            "indices",
        )
        .await
    }
    pub(crate) fn check_gpu(&self, gpu: &Gpu, what: &'static str) -> Result<()> {
        if self.gpu.same(gpu) {
            Ok(())
        } else {
            Err(Error::DifferentGpu { what })
        }
    }
}
