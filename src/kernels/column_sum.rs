//! `column_sum`: `out[n] = Σ_m x[m, n]`, the bias gradient.
//! Shader: `shaders/column_sum.wgsl`; CPU twin: `cpu::column_sum`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::to_u32;
use crate::pipeline::{Access, KernelSpec};
use crate::tensor::Tensor;

const SPEC: KernelSpec = KernelSpec {
    name: "column_sum",
    source: include_str!("../../shaders/column_sum.wgsl"),
    entry: "column_sum",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
    ],
};

/// Small: a Linear layer has hundreds to thousands of columns, not millions.
const WORKGROUP_SIZE: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    _pad: [u32; 2],
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
    let params = Params {
        rows: rows as u32,
        cols: cols as u32,
        _pad: [0; 2],
    };
    let kernel = gpu.kernel(
        &SPEC,
        &[
            ("WORKGROUP_SIZE", WORKGROUP_SIZE as f64),
            ("ACCUMULATE", if accumulate { 1.0 } else { 0.0 }),
        ],
    )?;
    let uniform = gpu.uniform("column_sum params", &params)?;
    let bind = kernel.bind(gpu, &[(0, uniform.raw()), (1, x), (2, out)])?;
    kernel.dispatch(
        gpu,
        encoder,
        &bind,
        (cols as u64).div_ceil(WORKGROUP_SIZE as u64),
    );
    Ok(())
}

/// The column sums of a 2-D tensor as a new `[cols]` tensor; submits and waits.
pub fn column_sum(x: &Tensor) -> Result<Tensor> {
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
