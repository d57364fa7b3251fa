//! [`Int8Tensor`]: rows of an int8 row-wise table (FBGEMM's fused 8-bit
//! row-wise format, `cpu::int8_rowwise`), each row whole u32 words of
//! codes followed by its f32 scale and bias.

use std::sync::Arc;

use crate::cpu::int8_rowwise::{self, words_per_row};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::memory::GpuBuffer;
use crate::readback;

/// `[rows, dim]` int8 row-wise values on one `Gpu` (see the module doc).
/// Cloning shares the buffer.
#[derive(Clone)]
pub struct Int8Tensor {
    gpu: Gpu,
    buffer: Arc<GpuBuffer>,
    shape: [usize; 2],
}

/// Allocation size of `rows` rows: a multiple of 8 bytes, because the vec4
/// bag kernel reads tables as `array<vec2<u32>>`.
/// Saturating, so that a caller's huge shape reaches the size check.
fn int8_bytes(rows: usize, dim: usize) -> u64 {
    (rows as u64)
        .saturating_mul(words_per_row(dim) as u64)
        .saturating_mul(4)
        .saturating_add(7)
        / 8
        * 8
}

impl Int8Tensor {
    /// `rows` rows of zeros, as FBGEMM's quantizer stores them (codes 0,
    /// scale +0, bias +0: every word 0): a zeroed buffer, nothing built on
    /// the host.
    pub(crate) fn zeros(gpu: &Gpu, [rows, dim]: [usize; 2]) -> Result<Int8Tensor> {
        let bytes = int8_bytes(rows, dim);
        gpu.check_size("int8 row-wise tensor", bytes, true)?;
        Ok(Int8Tensor {
            gpu: gpu.clone(),
            buffer: Arc::new(gpu.storage("int8 row-wise tensor", bytes)?),
            shape: [rows, dim],
        })
    }

    /// Uploads rows in FBGEMM's layout (`rows × (dim + 8)` bytes), scales
    /// and biases as they are (a NaN or infinite one makes its row's values
    /// NaN or infinite, as in FBGEMM).
    pub fn from_fused(gpu: &Gpu, fused: &[u8], [rows, dim]: [usize; 2]) -> Result<Int8Tensor> {
        let bytes = int8_bytes(rows, dim);
        gpu.check_size("int8 row-wise tensor", bytes, true)?;
        let want = rows.saturating_mul(int8_rowwise::fused_row_bytes(dim));
        if fused.len() != want {
            return Err(Error::LengthMismatch {
                what: "int8 row-wise data (rows × (dim + 8) bytes: codes, f32 scale, f32 bias)",
                expected: want,
                found: fused.len(),
            });
        }
        let mut words = int8_rowwise::to_words(fused, dim);
        words.resize((bytes / 4) as usize, 0);
        let buffer = gpu.storage_from("int8 row-wise tensor", &words)?;
        Ok(Int8Tensor {
            gpu: gpu.clone(),
            buffer: Arc::new(buffer),
            shape: [rows, dim],
        })
    }

    /// Quantizes `data` (`rows × dim` f32, FBGEMM's quantizer) and uploads
    /// it; a row with a NaN or an infinity, or whose max − min overflows f32,
    /// is refused (`InvalidArgument` naming the row).
    pub fn quantize(gpu: &Gpu, data: &[f32], shape: [usize; 2]) -> Result<Int8Tensor> {
        Int8Tensor::quantize_rows(gpu, data, shape, 0)
    }

    /// [`quantize`](Self::quantize) of table rows `first_row ..`: an error
    /// names the table's row.
    pub(crate) fn quantize_rows(
        gpu: &Gpu,
        data: &[f32],
        shape: [usize; 2],
        first_row: usize,
    ) -> Result<Int8Tensor> {
        gpu.check_size("int8 row-wise tensor", int8_bytes(shape[0], shape[1]), true)?;
        if data.len() != shape[0].saturating_mul(shape[1]) {
            return Err(Error::LengthMismatch {
                what: "data to quantize (rows × dim)",
                expected: shape[0].saturating_mul(shape[1]),
                found: data.len(),
            });
        }
        Int8Tensor::from_fused(gpu, &quantize(data, shape[1], first_row)?, shape)
    }

    /// `[rows, dim]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Bytes the rows take on the GPU: whole words of codes, scale and bias.
    pub fn bytes(&self) -> u64 {
        self.shape[0] as u64 * words_per_row(self.shape[1]) as u64 * 4
    }
    /// The wgpu buffer (u32 words, [`words_per_row`] per row).
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.raw()
    }
    /// The `Gpu` it lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The rows in FBGEMM's layout, blocking until they arrive.
    pub fn to_fused_vec(&self) -> Result<Vec<u8>> {
        readback::block("int8 tensor", self.to_fused_vec_async())
    }

    /// The rows in FBGEMM's layout, without blocking the caller's executor.
    pub async fn to_fused_vec_async(&self) -> Result<Vec<u8>> {
        let src = {
            let _scope = self.gpu.scope();
            self.buffer()
        };
        let words: Vec<u32> =
            readback::read_async(&self.gpu, src, 0, self.bytes(), "int8 tensor").await?;
        Ok(int8_rowwise::from_words(&words, self.shape[1]))
    }

    /// Rows `first .. first + count`, dequantized: only their words are read.
    pub fn rows_to_vec(&self, first: usize, count: usize) -> Result<Vec<f32>> {
        let [rows, dim] = self.shape;
        super::check_rows(first, count, rows)?;
        let row_bytes = words_per_row(dim) as u64 * 4;
        let _scope = self.gpu.scope();
        let words: Vec<u32> = readback::read(
            &self.gpu,
            self.buffer(),
            first as u64 * row_bytes,
            count as u64 * row_bytes,
            "int8 tensor rows",
        )?;
        dequantize(&int8_rowwise::from_words(&words, dim), dim)
    }

    /// Overwrites row `row` with `data` (`dim` values) quantized on its own,
    /// as [`write`](Self::write) quantizes each row: the other rows are not
    /// touched (each row is whole words, scale and bias its own). A refused
    /// row is named `table_row` (its row in the table the tensor is a block of).
    pub(crate) fn write_row(&self, row: usize, data: &[f32], table_row: usize) -> Result<()> {
        let [rows, dim] = self.shape;
        super::check_rows(row, 1, rows)?;
        if data.len() != dim {
            return Err(Error::LengthMismatch {
                what: "Int8Tensor row (dim values)",
                expected: dim,
                found: data.len(),
            });
        }
        let words = int8_rowwise::to_words(&quantize(data, dim, table_row)?, dim);
        let _scope = self.gpu.scope();
        self.gpu.write_buffer(
            "int8 row write",
            self.buffer(),
            (row * words_per_row(dim) * 4) as u64,
            bytemuck::cast_slice(&words),
        )
    }

    /// Overwrites the rows with `data` (`rows × dim` f32) quantized by
    /// FBGEMM's quantizer, in queue order; nothing is written if a row is
    /// refused (as [`quantize`](Self::quantize) refuses it).
    pub fn write(&self, data: &[f32]) -> Result<()> {
        let bytes = self.stored(data, 0)?;
        let _scope = self.gpu.scope();
        self.gpu
            .write_buffer("int8 tensor write", self.buffer(), 0, &bytes)
    }

    /// The bytes [`write`](Self::write) puts in the buffer for `data`: the
    /// quantized rows as the shaders read them; an error names the row
    /// counted from `first_row` (the block's first table row).
    pub(crate) fn stored(
        &self,
        data: &[f32],
        first_row: usize,
    ) -> Result<std::borrow::Cow<'static, [u8]>> {
        let [rows, dim] = self.shape;
        if data.len() != rows * dim {
            return Err(Error::LengthMismatch {
                what: "Int8Tensor::write data (rows × dim)",
                expected: rows * dim,
                found: data.len(),
            });
        }
        let words = int8_rowwise::to_words(&quantize(data, dim, first_row)?, dim);
        Ok(bytemuck::cast_slice(&words).to_vec().into())
    }

    /// The values, dequantized as the shaders do (`q · scale + bias`).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        dequantize(&self.to_fused_vec()?, self.shape[1])
    }

    /// The async form of [`Int8Tensor::to_vec`].
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        dequantize(&self.to_fused_vec_async().await?, self.shape[1])
    }
}

/// FBGEMM rows as f32, in a fallible host allocation: the values are four
/// times the codes' bytes, so a table the host could read back may still
/// not fit widened.
pub(crate) fn dequantize(fused: &[u8], dim: usize) -> Result<Vec<f32>> {
    let rows = fused.len() / int8_rowwise::fused_row_bytes(dim);
    let mut out = super::host_vec("int8 table dequantized", rows.saturating_mul(dim))?;
    out.extend(int8_rowwise::dequantized(fused, dim));
    Ok(out)
}

/// FBGEMM's quantizer (`cpu::int8_rowwise::quantize`) where every row of
/// `data` can be held: the library's one way to quantize. Otherwise
/// `InvalidArgument` naming the first row (`dim` values a row, numbered
/// from `first_row`) that int8 row-wise cannot hold: one with a NaN or an
/// infinity (FBGEMM's min and max skip a NaN, so its codes would be
/// garbage, and an infinite bias or scale makes every value of the row
/// NaN), or whose max − min overflows f32 (an infinite scale does too).
pub(crate) fn quantize(data: &[f32], dim: usize, first_row: usize) -> Result<Vec<u8>> {
    for (i, row) in data.chunks(dim.max(1)).enumerate() {
        let bad = |reason: String| Error::InvalidArgument {
            name: "int8 row-wise data",
            reason: format!("row {}: {reason}", first_row + i),
        };
        if let Some((c, x)) = row.iter().enumerate().find(|(_, x)| !x.is_finite()) {
            return Err(bad(format!(
                "element {c} is {x}; int8 row-wise holds finite values only"
            )));
        }
        let min = row.iter().copied().fold(f32::INFINITY, f32::min);
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if !(max - min).is_finite() {
            return Err(bad(format!(
                "its values span {min:e} to {max:e}: max − min overflows f32, \
                 so its scale (max − min) / 255 would be infinite"
            )));
        }
    }
    Ok(int8_rowwise::quantize(data, dim))
}
