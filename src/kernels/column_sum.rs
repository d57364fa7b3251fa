//! `column_sum`: `out[n] = Σ_m x[m, n]`, the bias gradient.
//! Shader: `shaders/column_sum.wgsl`; CPU twin: `cpu::column_sum`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{to_u32, LOOP_BUDGET};
use crate::memory::GpuBuffer;
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};
use crate::tensor::Tensor;

const SPEC: KernelSpec = KernelSpec {
    name: "column_sum",
    source: include_str!("../../shaders/column_sum.wgsl"),
    entry: "column_sum",
    defs: &[],
};

/// Small: a Linear layer has hundreds to thousands of columns, not millions.
const WORKGROUP_SIZE: u32 = 64;

/// Rows one invocation sums. Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`), so taller inputs are
/// summed in blocks of this many rows, then the block sums the same way, in
/// block order (on every adapter: the same bits everywhere; see the shader).
pub const BLOCK_ROWS: usize = LOOP_BUDGET;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    block_rows: u32,
    _pad: u32,
}

/// Records the column sums of `x` (`[rows, cols]`) into `out` (`cols`
/// floats), added to `out`'s contents when `accumulate`; submits nothing.
pub fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    rows: usize,
    cols: usize,
    accumulate: bool,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Result<()> {
    recorder::record(gpu, encoder, |rec| {
        record(rec, rows, cols, accumulate, x, out)
    })
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(
    rec: &mut Recorder,
    rows: usize,
    cols: usize,
    accumulate: bool,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Result<()> {
    let gpu = rec.gpu();
    if cols == 0 {
        return Ok(());
    }
    let elements = rows.saturating_mul(cols);
    to_u32("column_sum elements", elements)?;
    if x.size() < elements as u64 * 4 {
        return Err(Error::LengthMismatch {
            what: "column_sum input x (rows × cols)",
            expected: elements,
            found: (x.size() / 4) as usize,
        });
    }
    if out.size() < cols as u64 * 4 {
        return Err(Error::LengthMismatch {
            what: "column_sum output (cols)",
            expected: cols,
            found: (out.size() / 4) as usize,
        });
    }
    // Past BLOCK_ROWS rows: one pass per level of block sums, each into a
    // scratch [blocks, cols] that the next pass reads.
    let mut rows = rows;
    let mut levels: Vec<GpuBuffer> = Vec::new();
    while rows > BLOCK_ROWS {
        let blocks = rows.div_ceil(BLOCK_ROWS);
        let sums = gpu.storage("column_sum block sums", (blocks * cols) as u64 * 4)?;
        let src = levels.last().map_or(x, |l| l.raw());
        record_pass(rec, rows, cols, false, src, sums.raw())?;
        levels.push(sums);
        rows = blocks;
    }
    let src = levels.last().map_or(x, |l| l.raw());
    record_pass(rec, rows, cols, accumulate, src, out)
}

/// One dispatch: the sums of blocks of [`BLOCK_ROWS`] rows of `x` into
/// `out[block, col]`; one block (and `accumulate`) adds to `out`.
fn record_pass(
    rec: &mut Recorder,
    rows: usize,
    cols: usize,
    accumulate: bool,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Result<()> {
    let params = Params {
        rows: rows as u32,
        cols: cols as u32,
        block_rows: BLOCK_ROWS as u32,
        _pad: 0,
    };
    rec.launch(
        &SPEC,
        &[("ACCUMULATE", if accumulate { 1.0 } else { 0.0 })],
        &params,
        &[(1, x.into()), (2, out.into())],
        Work::InvocationsIn {
            count: rows.div_ceil(BLOCK_ROWS).max(1) as u64 * cols as u64,
            workgroup_size: WORKGROUP_SIZE,
        },
    )
}

/// The column sums of a 2-D tensor as a new `[cols]` tensor; submits and waits.
pub fn column_sum(x: &Tensor) -> Result<Tensor> {
    let _scope = crate::memory::Scope::enter();
    let [rows, cols] = *x.shape() else {
        return Err(Error::ShapeMismatch {
            what: "column_sum input must be 2-D",
            expected: vec![0, 0],
            found: x.shape().to_vec(),
        });
    };
    let gpu = x.gpu();
    let out = Tensor::zeros(gpu, &[cols])?;
    let mut encoder = gpu.encoder("column_sum");
    encode(
        gpu,
        &mut encoder,
        rows,
        cols,
        false,
        x.buffer(),
        out.buffer(),
    )?;
    gpu.submit_and_wait(encoder)?;
    Ok(out)
}
