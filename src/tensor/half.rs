//! [`HalfTensor`]: an f16 tensor, packed two halves per u32 word.

use std::sync::Arc;

use half::f16;

use super::numel;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::memory::GpuBuffer;
use crate::readback;

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
pub(crate) fn half_bytes(n: usize) -> u64 {
    (n as u64).saturating_mul(2).div_ceil(8).saturating_mul(8)
}

impl HalfTensor {
    /// A tensor of `shape` of +0s: a zeroed buffer (nothing built on the host).
    pub(crate) fn zeros(gpu: &Gpu, shape: &[usize]) -> Result<HalfTensor> {
        let bytes = half_bytes(numel("f16 tensor", shape)?);
        gpu.check_size("f16 tensor", bytes, true)?;
        let buffer = gpu.storage("f16 tensor", bytes)?;
        Ok(HalfTensor::from_parts(gpu, buffer, shape.to_vec()))
    }

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

    /// A tensor of `shape` over a buffer a kernel filled (at least
    /// `half_bytes(numel)` long).
    pub(crate) fn from_parts(gpu: &Gpu, buffer: GpuBuffer, shape: Vec<usize>) -> HalfTensor {
        HalfTensor {
            gpu: gpu.clone(),
            buffer: Arc::new(buffer),
            shape,
        }
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
        // As `Tensor::numel`: a shape with a 0 may multiply past usize in
        // its other dimensions.
        if self.shape.contains(&0) {
            return 0;
        }
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

    /// Copies the tensor to the host as f16, blocking until it arrives.
    pub fn to_f16_vec(&self) -> Result<Vec<f16>> {
        readback::block("f16 tensor", self.to_f16_vec_async())
    }

    /// Copies the tensor to the host as f16 without blocking the caller's executor.
    pub async fn to_f16_vec_async(&self) -> Result<Vec<f16>> {
        let n = self.numel();
        let padded = (n as u64 * 2).div_ceil(4) * 4;
        let src = {
            let _scope = self.gpu.scope();
            self.buffer()
        };
        let mut out: Vec<f16> =
            readback::read_async(&self.gpu, src, 0, padded, "f16 tensor").await?;
        out.truncate(n);
        Ok(out)
    }

    /// Copies the tensor to the host, widened to f32 (exact).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        Ok(self.to_f16_vec()?.iter().map(|h| h.to_f32()).collect())
    }

    /// The async form of [`HalfTensor::to_vec`].
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        Ok(self
            .to_f16_vec_async()
            .await?
            .iter()
            .map(|h| h.to_f32())
            .collect())
    }

    /// Rows `first .. first + count` (along the first axis), widened to f32:
    /// only the words that hold them are read (a row may start mid-word).
    pub fn rows_to_vec(&self, first: usize, count: usize) -> Result<Vec<f32>> {
        let rows = self.shape.first().copied().unwrap_or(1);
        super::check_rows(first, count, rows)?;
        let per_row = self.numel() / rows.max(1);
        self.elements_to_vec(first * per_row, count * per_row)
    }

    /// Elements `begin .. begin + count` widened to f32 (in bounds: the
    /// caller checked), reading only the words that hold them.
    pub(crate) fn elements_to_vec(&self, begin: usize, count: usize) -> Result<Vec<f32>> {
        let (halves, skip) = self.words_holding(begin, begin + count)?;
        Ok(halves[skip..skip + count]
            .iter()
            .map(|h| h.to_f32())
            .collect())
    }

    /// Elements `begin .. end` and their neighbours in the same words
    /// (copies move whole words), and where `begin` falls among them.
    fn words_holding(&self, begin: usize, end: usize) -> Result<(Vec<f16>, usize)> {
        let (w0, w1) = (begin as u64 / 2, (end as u64).div_ceil(2));
        let _scope = self.gpu.scope();
        let halves = readback::read(&self.gpu, self.buffer(), w0 * 4, (w1 - w0) * 4, "f16 words")?;
        Ok((halves, begin - w0 as usize * 2))
    }

    /// Overwrites elements `begin .. begin + data.len()` with `data` rounded
    /// to f16, in queue order, leaving every other element as it is. A run
    /// that starts or ends mid-word first reads back the words that hold it
    /// (one readback, keeping its neighbours' halves); a word-aligned one is
    /// only written.
    pub(crate) fn write_elements(&self, begin: usize, data: &[f32]) -> Result<()> {
        let end = begin.saturating_add(data.len());
        if end > self.numel() {
            return Err(Error::RowsOutOfRange {
                first: begin,
                count: data.len(),
                rows: self.numel(),
            });
        }
        let (mut halves, skip) = if begin.is_multiple_of(2) && end.is_multiple_of(2) {
            (vec![f16::ZERO; data.len()], 0)
        } else {
            self.words_holding(begin, end)?
        };
        for (h, &x) in halves[skip..].iter_mut().zip(data) {
            *h = f16::from_f32(x);
        }
        let _scope = self.gpu.scope();
        self.gpu.write_buffer(
            "f16 elements write",
            self.buffer(),
            begin as u64 / 2 * 4,
            bytemuck::cast_slice(&halves),
        )
    }

    /// Overwrites the contents with `data` rounded to f16, in queue order.
    pub fn write(&self, data: &[f32]) -> Result<()> {
        let bytes = self.stored(data)?;
        let _scope = self.gpu.scope();
        self.gpu
            .write_buffer("f16 tensor write", self.buffer(), 0, &bytes)
    }

    /// The bytes [`write`](Self::write) puts in the buffer for `data`:
    /// halves, padded to whole words as the buffer holds them.
    pub(crate) fn stored(&self, data: &[f32]) -> Result<std::borrow::Cow<'static, [u8]>> {
        if data.len() != self.numel() {
            return Err(Error::LengthMismatch {
                what: "HalfTensor::write data",
                expected: self.numel(),
                found: data.len(),
            });
        }
        let mut halves: Vec<f16> = data.iter().map(|&x| f16::from_f32(x)).collect();
        if halves.len() % 2 == 1 {
            halves.push(f16::ZERO);
        }
        Ok(bytemuck::cast_slice(&halves).to_vec().into())
    }
}

impl std::fmt::Debug for HalfTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HalfTensor({:?} on {})", self.shape, self.gpu.describe())
    }
}
