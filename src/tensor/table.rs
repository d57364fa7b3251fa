//! [`Table`]: a `[rows, dim]` table of f32 or f16, stored as row-blocks.
//!
//! Every table is a list of row-blocks, each its own buffer holding whole
//! rows and fitting one storage binding; a table that fits one binding is
//! one block. Kernels see a block as a [`RowBlock`] (its rows and the span
//! that holds them), so one code path serves small and large tables, f32
//! and f16 alike. Separate buffers (not offsets into one) mean no block
//! needs `min_storage_buffer_offset_alignment`, and a table is capped by the
//! adapter's memory, not by `max_buffer_size`.
//!
//! f16 tables are decoded in the shaders with `unpack2x16float`, which is
//! core WGSL, so they work on every adapter, `SHADER_F16` or not (GL and
//! most WebGPU implementations lack it); the math after the load is f32 and
//! outputs are f32. f16 tables train too: their gradients are f16 tables
//! in the same row-blocks, and updates compute in f32 and round once
//! (`shaders/sgd_update/f16_round.wgsl`).

use std::borrow::Cow;
use std::ops::Range;

use half::f16;

use super::{DType, HalfTensor, Int8Tensor, Tensor};
use crate::binding::{RowBlock, Span};
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// One block's storage.
#[derive(Clone)]
enum Block {
    F32(Tensor),
    F16(HalfTensor),
    Int8(Int8Tensor),
}

impl Block {
    fn zeros(gpu: &Gpu, dtype: DType, shape: [usize; 2]) -> Result<Block> {
        Ok(match dtype {
            DType::F32 => Block::F32(Tensor::zeros(gpu, &shape)?),
            // Zeroed buffers: +0 halves, and FBGEMM's rows of zeros (codes 0,
            // scale and bias +0) are all-zero words too.
            DType::F16 => Block::F16(HalfTensor::zeros(gpu, &shape)?),
            DType::Int8 => Block::Int8(Int8Tensor::zeros(gpu, shape)?),
        })
    }
    fn buffer(&self) -> &wgpu::Buffer {
        match self {
            Block::F32(t) => t.buffer(),
            Block::F16(t) => t.buffer(),
            Block::Int8(t) => t.buffer(),
        }
    }
    fn bytes(&self) -> u64 {
        match self {
            Block::F32(t) => t.bytes(),
            Block::F16(t) => t.bytes(),
            Block::Int8(t) => t.bytes(),
        }
    }
    fn to_vec(&self) -> Result<Vec<f32>> {
        match self {
            Block::F32(t) => t.to_vec(),
            Block::F16(t) => t.to_vec(),
            Block::Int8(t) => t.to_vec(),
        }
    }
    async fn to_vec_async(&self) -> Result<Vec<f32>> {
        match self {
            Block::F32(t) => t.to_vec_async().await,
            Block::F16(t) => t.to_vec_async().await,
            Block::Int8(t) => t.to_vec_async().await,
        }
    }
    fn write(&self, data: &[f32]) -> Result<()> {
        match self {
            Block::F32(t) => t.write(data),
            Block::F16(t) => t.write(data),
            Block::Int8(t) => t.write(data),
        }
    }
    /// `data` (this block's rows) as the block stores it, in a host-visible
    /// staging buffer (as `write_buffer`'s own, not device memory), and its
    /// length in bytes: the first half of a write that must change every
    /// block or none (see [`Table::write_blocks`]). `first_row`, the
    /// block's first table row, numbers the row an int8 block refuses.
    fn stage(&self, gpu: &Gpu, data: &[f32], first_row: usize) -> Result<(wgpu::Buffer, u64)> {
        let bytes = match self {
            Block::F32(t) => t.stored(data)?,
            Block::F16(t) => t.stored(data)?,
            Block::Int8(t) => t.stored(data, first_row)?,
        };
        let staging = gpu.upload_staging("table write staging", &bytes)?;
        Ok((staging, bytes.len() as u64))
    }
    /// `count` rows of `dim` from block row `first`, reading only their
    /// words. By elements: a block made from a tensor of another shape
    /// (`Gradient::Dense(t.into())` of a 1-D `t`) has the table's rows.
    fn rows_to_vec(&self, first: usize, count: usize, dim: usize) -> Result<Vec<f32>> {
        match self {
            Block::F32(t) => t.elements_to_vec(first * dim, count * dim),
            Block::F16(t) => t.elements_to_vec(first * dim, count * dim),
            Block::Int8(t) => t.rows_to_vec(first, count),
        }
    }
}

/// A `[rows, dim]` table of f32 or f16 in row-blocks (see the module doc).
/// Cloning shares the buffers.
#[derive(Clone)]
pub struct Table {
    gpu: Gpu,
    dtype: DType,
    shape: [usize; 2],
    blocks: Vec<Block>,
    /// `blocks.len() + 1` entries: block `k` holds rows `starts[k] .. starts[k + 1]`.
    starts: Vec<usize>,
}

/// The most whole rows of `dim` elements of `dtype` one block holds: the
/// adapter's binding size, or `limit` when smaller (a smaller limit
/// exercises blocking on small tables). Rows are addressed with u32 in the
/// kernels, so `rows` must fit one.
pub(crate) fn rows_per_block(
    gpu: &Gpu,
    dtype: DType,
    rows: usize,
    dim: usize,
    limit: Option<u64>,
) -> Result<usize> {
    crate::kernels::to_u32("num_embeddings", rows)?;
    let row_bytes = dtype.row_bytes(dim);
    let limit = limit
        .unwrap_or(u64::MAX)
        .min(gpu.max_binding_bytes())
        .min(gpu.max_buffer_bytes());
    // f16 blocks are padded to 8 bytes (see `HalfTensor`): keep the padded
    // size within the limit too.
    let limit = match dtype {
        DType::F32 => limit,
        DType::F16 | DType::Int8 => limit / 8 * 8,
    };
    if row_bytes > limit {
        return Err(Error::TooLarge {
            what: "one table row (a row-block holds whole rows)",
            bytes: row_bytes,
            limit,
            limit_name: "max_storage_buffer_binding_size (or chunk_bytes)",
        });
    }
    let per_block = (limit / row_bytes.max(1)) as usize;
    let blocks = rows.div_ceil(per_block.max(1));
    // A size limit like the others (a benchmark's "not run" row), naming
    // what would lift it.
    if blocks > MAX_BLOCKS {
        return Err(Error::TooMany {
            what: "row-blocks of one table",
            count: blocks as u128,
            limit: MAX_BLOCKS as u64,
            limit_name: "MAX_BLOCKS buffers per table; a larger chunk_bytes, or an adapter \
                         with a larger max_storage_buffer_binding_size, needs fewer",
        });
    }
    Ok(per_block)
}

/// The most row-blocks a table may have: far more than any real table needs
/// (2^16 blocks of a 128 MiB binding hold 8 TiB), and a bound on the buffer
/// handles a tiny `chunk_bytes` could ask for.
pub const MAX_BLOCKS: usize = 1 << 16;

/// Row ranges of `rows` rows cut into blocks of at most `per_block`.
fn block_ranges(rows: usize, per_block: usize) -> impl Iterator<Item = Range<usize>> {
    let per_block = per_block.max(1);
    (0..rows)
        .step_by(per_block)
        .map(move |b| b..(b + per_block).min(rows))
}

impl Table {
    /// A table of `dtype` whose block for rows `r` is `make(r)`, one block
    /// per range of `ranges` (in row order, from row 0).
    fn build(
        gpu: &Gpu,
        dtype: DType,
        dim: usize,
        ranges: impl Iterator<Item = Range<usize>>,
        make: impl Fn(Range<usize>) -> Result<Block>,
    ) -> Result<Table> {
        let mut starts = vec![0];
        let mut blocks = Vec::new();
        for r in ranges {
            starts.push(r.end);
            blocks.push(make(r)?);
        }
        Ok(Table {
            gpu: gpu.clone(),
            dtype,
            shape: [*starts.last().unwrap_or(&0), dim],
            blocks,
            starts,
        })
    }

    /// A zeroed table in blocks of at most `per_block` rows.
    pub(crate) fn zeros(
        gpu: &Gpu,
        dtype: DType,
        [rows, dim]: [usize; 2],
        per_block: usize,
    ) -> Result<Table> {
        let ranges = block_ranges(rows, per_block);
        Table::build(gpu, dtype, dim, ranges, |r| {
            Block::zeros(gpu, dtype, [r.len(), dim])
        })
    }

    /// `data` (row-major, `rows × dim`) stored as `dtype` (f16 rounds to
    /// nearest, ties to even) in blocks of at most `per_block` rows.
    pub(crate) fn from_f32(
        gpu: &Gpu,
        data: &[f32],
        [rows, dim]: [usize; 2],
        dtype: DType,
        per_block: usize,
    ) -> Result<Table> {
        check_len("table data", data.len(), rows, dim)?;
        Table::build(gpu, dtype, dim, block_ranges(rows, per_block), |r| {
            let (part, shape) = (&data[r.start * dim..r.end * dim], [r.len(), dim]);
            Ok(match dtype {
                DType::F32 => Block::F32(Tensor::from_slice(gpu, part, &shape)?),
                DType::F16 => Block::F16(HalfTensor::from_f32(gpu, part, &shape)?),
                DType::Int8 => Block::Int8(Int8Tensor::quantize_rows(gpu, part, shape, r.start)?),
            })
        })
    }

    /// f16 `data` (row-major, `rows × dim`) as it is, in blocks of at most `per_block` rows.
    pub(crate) fn from_f16(
        gpu: &Gpu,
        data: &[f16],
        [rows, dim]: [usize; 2],
        per_block: usize,
    ) -> Result<Table> {
        check_len("f16 table data", data.len(), rows, dim)?;
        Table::build(gpu, DType::F16, dim, block_ranges(rows, per_block), |r| {
            let part = &data[r.start * dim..r.end * dim];
            Ok(Block::F16(HalfTensor::from_f16(
                gpu,
                part,
                &[r.len(), dim],
            )?))
        })
    }

    /// Rows in FBGEMM's fused 8-bit row-wise layout (`rows × (dim + 8)`
    /// bytes) as they are, in blocks of at most `per_block` rows.
    pub(crate) fn from_int8(
        gpu: &Gpu,
        fused: &[u8],
        [rows, dim]: [usize; 2],
        per_block: usize,
    ) -> Result<Table> {
        let stride = crate::cpu::int8_rowwise::fused_row_bytes(dim);
        if fused.len() != rows.saturating_mul(stride) {
            return Err(Error::LengthMismatch {
                what: "int8 row-wise table data (rows × (dim + 8) bytes)",
                expected: rows.saturating_mul(stride),
                found: fused.len(),
            });
        }
        Table::build(gpu, DType::Int8, dim, block_ranges(rows, per_block), |r| {
            let part = &fused[r.start * stride..r.end * stride];
            Ok(Block::Int8(Int8Tensor::from_fused(
                gpu,
                part,
                [r.len(), dim],
            )?))
        })
    }

    /// A zeroed table of the same storage type in the same row-blocks: the
    /// dense gradient of this one.
    pub(crate) fn zeros_like(&self) -> Result<Table> {
        let (gpu, dim, dtype) = (&self.gpu, self.shape[1], self.dtype);
        Table::build(gpu, dtype, dim, self.block_rows(), |r| {
            Block::zeros(gpu, dtype, [r.len(), dim])
        })
    }

    /// A zeroed f32 table in the same row-blocks (Adam's moments).
    pub(crate) fn zeros_like_f32(&self) -> Result<Table> {
        let (gpu, dim) = (&self.gpu, self.shape[1]);
        Table::build(gpu, DType::F32, dim, self.block_rows(), |r| {
            Block::zeros(gpu, DType::F32, [r.len(), dim])
        })
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// `[rows, dim]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape[0] * self.shape[1]
    }
    /// Bytes of data: 4 per element for f32, 2 for f16.
    pub fn bytes(&self) -> u64 {
        self.blocks.iter().map(Block::bytes).sum()
    }
    /// The `Gpu` it lives on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }
    /// Number of row-blocks: 1 for a table that fits one binding.
    pub fn num_blocks(&self) -> usize {
        self.blocks.len()
    }
    /// Block `k` holds rows `row_starts()[k] .. row_starts()[k + 1]`.
    pub fn row_starts(&self) -> &[usize] {
        &self.starts
    }
    /// The table rows each block holds, in row order.
    pub fn block_rows(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        self.starts.windows(2).map(|w| w[0]..w[1])
    }
    /// The row-blocks as kernels bind them, in row order.
    pub fn blocks(&self) -> Vec<RowBlock<'_>> {
        self.block_rows()
            .zip(&self.blocks)
            .map(|(rows, b)| RowBlock {
                rows,
                span: Span::whole(b.buffer()),
            })
            .collect()
    }
    /// The one buffer of a table in one block (f32 elements, or f16 packed
    /// two per u32); a table in several blocks is `Error::ChunkedTable`
    /// (use [`blocks`](Self::blocks)).
    pub fn buffer(&self) -> Result<&wgpu::Buffer> {
        match self.blocks.as_slice() {
            [one] => Ok(one.buffer()),
            _ => Err(Error::ChunkedTable {
                chunks: self.blocks.len(),
                bytes: self.bytes(),
                limit: self.gpu.max_binding_bytes(),
            }),
        }
    }
    /// The f32 tensor of an f32 table in one block.
    pub fn as_tensor(&self) -> Option<&Tensor> {
        match self.blocks.as_slice() {
            [Block::F32(t)] => Some(t),
            _ => None,
        }
    }

    /// The whole table on the host as f32 (f16 widened exactly).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let mut out = super::host_vec("host copy of a table", self.numel())?;
        for b in &self.blocks {
            out.extend(b.to_vec()?);
        }
        Ok(out)
    }
    /// The async form of [`Table::to_vec`], for a page.
    pub async fn to_vec_async(&self) -> Result<Vec<f32>> {
        let mut out = super::host_vec("host copy of a table", self.numel())?;
        for b in &self.blocks {
            out.extend(b.to_vec_async().await?);
        }
        Ok(out)
    }
    /// The whole table on the host as f16 (f32 rounded to nearest, ties to even).
    pub fn to_f16_vec(&self) -> Result<Vec<f16>> {
        let mut out = super::host_vec("host copy of a table", self.numel())?;
        for b in &self.blocks {
            match b {
                Block::F16(t) => out.extend(t.to_f16_vec()?),
                Block::F32(t) => out.extend(t.to_vec()?.into_iter().map(f16::from_f32)),
                Block::Int8(t) => out.extend(t.to_vec()?.into_iter().map(f16::from_f32)),
            }
        }
        Ok(out)
    }
    /// An int8 table's rows in FBGEMM's fused layout (`rows × (dim + 8)`
    /// bytes); `None` for an f32 or f16 table.
    pub fn to_int8_rowwise(&self) -> Result<Option<Vec<u8>>> {
        if self.dtype != DType::Int8 {
            return Ok(None);
        }
        let mut out = Vec::new();
        for b in &self.blocks {
            if let Block::Int8(t) = b {
                out.extend(t.to_fused_vec()?);
            }
        }
        Ok(Some(out))
    }
    /// Rows `first .. first + count` as f32, read from whichever blocks hold them.
    pub fn rows_to_vec(&self, first: usize, count: usize) -> Result<Vec<f32>> {
        super::check_rows(first, count, self.shape[0])?;
        let end = first + count;
        let mut out = super::host_vec("table rows on the host", count * self.shape[1])?;
        for (rows, b) in self.block_rows().zip(&self.blocks) {
            let (lo, hi) = (first.max(rows.start), end.min(rows.end));
            if lo < hi {
                out.extend(b.rows_to_vec(lo - rows.start, hi - lo, self.shape[1])?);
            }
        }
        Ok(out)
    }
    /// Overwrites the table with `data` (row-major, every row; rounded to
    /// f16 for an f16 table), in queue order.
    /// Every block changes or none (several are staged, then copied in one
    /// submission).
    pub fn write(&self, data: &[f32]) -> Result<()> {
        check_len("table write data", data.len(), self.shape[0], self.shape[1])?;
        let dim = self.shape[1];
        self.write_blocks(|_, rows| Ok(data[rows.start * dim..rows.end * dim].into()))
    }
    /// Overwrites every block with `rows_of(k, rows)` (block `k`'s rows,
    /// row-major), all or nothing: one block's write is one `write_buffer`;
    /// several are staged first (host-visible staging, as `write_buffer`'s,
    /// the host holding one block's values at a time), then copied in one
    /// submission, so an error staging a later block (out of memory) leaves
    /// the table as it was, not half written.
    pub(crate) fn write_blocks<'a>(
        &self,
        mut rows_of: impl FnMut(usize, Range<usize>) -> Result<Cow<'a, [f32]>>,
    ) -> Result<()> {
        if let [only] = &self.blocks[..] {
            return only.write(&rows_of(0, 0..self.shape[0])?);
        }
        let _scope = self.gpu.scope();
        let mut staged = Vec::with_capacity(self.blocks.len());
        for (k, (rows, b)) in self.block_rows().zip(&self.blocks).enumerate() {
            let first = rows.start;
            staged.push(b.stage(&self.gpu, &rows_of(k, rows)?, first)?);
        }
        let mut encoder = self.gpu.encoder("table write");
        for (b, (buffer, bytes)) in self.blocks.iter().zip(&staged) {
            encoder.copy_buffer_to_buffer(buffer, 0, b.buffer(), 0, *bytes);
        }
        let submitted = self.gpu.submit(encoder).map(drop);
        // wgpu keeps them until the copies have run; dropped in a turn (GL).
        let _turn = self.gpu.gl_turn();
        drop(staged);
        submitted
    }
    /// Overwrites row `row` with `data` (`dim` values).
    pub(crate) fn write_row(&self, row: usize, data: &[f32]) -> Result<()> {
        let dim = self.shape[1];
        check_len("table row", data.len(), 1, dim)?;
        let Some(k) = self.block_rows().position(|r| r.contains(&row)) else {
            return Err(Error::RowsOutOfRange {
                first: row,
                count: 1,
                rows: self.shape[0],
            });
        };
        let local = row - self.starts[k];
        let _scope = self.gpu.scope();
        match &self.blocks[k] {
            Block::F32(t) => self.gpu.write_buffer(
                "table row write",
                t.buffer(),
                (local * dim * 4) as u64,
                bytemuck::cast_slice(data),
            ),
            // An f16 row may start or end mid-word: then the words that hold
            // it are read back first (a word-aligned row is only written).
            Block::F16(t) => t.write_elements(local * dim, data),
            Block::Int8(t) => t.write_row(local, data, row),
        }
    }

    /// `DifferentGpu` unless it lives on `gpu`.
    pub(crate) fn check_gpu(&self, gpu: &Gpu, what: &'static str) -> Result<()> {
        if self.gpu.same(gpu) {
            Ok(())
        } else {
            Err(Error::DifferentGpu { what })
        }
    }
}

fn check_len(what: &'static str, found: usize, rows: usize, dim: usize) -> Result<()> {
    let expected = rows.saturating_mul(dim);
    if found != expected {
        return Err(Error::LengthMismatch {
            what,
            expected,
            found,
        });
    }
    Ok(())
}

/// A 2-D tensor as a table of one block (e.g. a dense gradient made by
/// hand); a 1-D one is one row.
impl From<Tensor> for Table {
    fn from(t: Tensor) -> Table {
        let (gpu, shape) = (t.gpu().clone(), t.shape().to_vec());
        Table::one_block(&gpu, DType::F32, &shape, Block::F32(t))
    }
}

/// A 2-D f16 tensor as a table of one block.
impl From<HalfTensor> for Table {
    fn from(t: HalfTensor) -> Table {
        let (gpu, shape) = (t.gpu().clone(), t.shape().to_vec());
        Table::one_block(&gpu, DType::F16, &shape, Block::F16(t))
    }
}

impl Table {
    fn one_block(gpu: &Gpu, dtype: DType, shape: &[usize], block: Block) -> Table {
        let [rows, dim] = match *shape {
            [rows, dim] => [rows, dim],
            [n] => [1, n],
            _ => [1, shape.iter().product()],
        };
        Table {
            gpu: gpu.clone(),
            dtype,
            shape: [rows, dim],
            blocks: vec![block],
            starts: vec![0, rows],
        }
    }
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Table({:?} {:?} in {} block(s) on {})",
            self.shape,
            self.dtype,
            self.blocks.len(),
            self.gpu.describe()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Table;
    use crate::error::Error;
    use crate::tensor::DType;
    use crate::{Gpu, GpuOptions};

    /// A write of several blocks that fails at a later block (here the
    /// values of block 2 cannot be made) changes no block; one that
    /// succeeds writes every block as its dtype stores it.
    #[test]
    fn a_multi_block_write_changes_every_block_or_none() {
        let gpus = Gpu::all(&GpuOptions::default())
            .unwrap_or_else(|e| panic!("GPU tests need an adapter and found none: {e}"));
        assert!(
            !gpus.is_empty(),
            "no GPU adapter: install lavapipe with `apt-get update && apt-get install -y mesa-vulkan-drivers`"
        );
        for gpu in gpus {
            let gpu = gpu.unwrap_or_else(|e| panic!("an adapter failed to open: {e}"));
            for dtype in [DType::F32, DType::F16, DType::Int8] {
                let (rows, dim) = (10, 3);
                let old: Vec<f32> = (0..rows * dim).map(|i| i as f32 * 0.5).collect();
                let table = Table::from_f32(&gpu, &old, [rows, dim], dtype, 4).unwrap();
                assert_eq!(table.num_blocks(), 3);
                let before = table.to_vec().unwrap();
                let r = table.write_blocks(|k, rows| match k {
                    2 => Err(Error::InvalidArgument {
                        name: "test",
                        reason: "block 2 fails".into(),
                    }),
                    _ => Ok(vec![-1.0; rows.len() * dim].into()),
                });
                assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
                assert_eq!(table.to_vec().unwrap(), before, "{dtype:?}: unchanged");
                let new: Vec<f32> = (0..rows * dim).map(|i| 8.0 - i as f32 * 0.25).collect();
                table.write(&new).unwrap();
                let want = Table::from_f32(&gpu, &new, [rows, dim], dtype, 4).unwrap();
                assert_eq!(
                    table.to_vec().unwrap(),
                    want.to_vec().unwrap(),
                    "{dtype:?}: written as stored"
                );
            }
        }
    }
}
