//! `sgd_step`: `w -= lr · g` in place.
//! Shader: `shaders/sgd_step.wgsl`; CPU twin: `cpu::sgd_step`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{to_u32, WORKGROUP_SIZE};
use crate::pipeline::{Access, KernelSpec};

const SPEC: KernelSpec = KernelSpec {
    name: "sgd_step",
    source: include_str!("../../shaders/sgd_step.wgsl"),
    entry: "sgd_step",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
    ],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    neg_lr: f32,
    _pad: [u32; 2],
}

/// Records `w[i] -= lr · g[i]` for the first `len` elements; submits nothing.
pub fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    len: usize,
    lr: f32,
    g: &wgpu::Buffer,
    w: &wgpu::Buffer,
) -> Result<()> {
    if !lr.is_finite() {
        return Err(Error::InvalidArgument {
            name: "learning rate",
            reason: format!("must be finite, got {lr}"),
        });
    }
    if len == 0 {
        return Ok(());
    }
    let params = Params {
        len: to_u32("sgd_step length", len)?,
        neg_lr: -lr,
        _pad: [0; 2],
    };
    let kernel = gpu.kernel(&SPEC, &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let uniform = gpu.uniform("sgd_step params", &params)?;
    let bind = kernel.bind(gpu, &[(0, uniform.raw()), (1, g), (2, w)])?;
    kernel.dispatch(
        gpu,
        encoder,
        &bind,
        (len as u64).div_ceil(WORKGROUP_SIZE as u64),
    );
    Ok(())
}
