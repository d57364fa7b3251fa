//! `sgd_step`: `w -= lr · g` in place.
//! Shader: `shaders/sgd_step.wgsl`; CPU twin: `cpu::sgd_step`.

use crate::binding;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::to_u32;
use crate::pipeline::KernelSpec;
use crate::recorder::{Recorder, Work};

const SPEC: KernelSpec = KernelSpec {
    name: "sgd_step",
    source: concat!(
        include_str!("../../shaders/sgd_step.wgsl"),
        include_str!("../../shaders/exact_arith/ops.wgsl"),
    ),
    entry: "sgd_step",
    defs: &[],
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
    binding::check_holds("sgd_step gradient (len f32)", g.size(), len as u64)?;
    binding::check_holds("sgd_step weights (len f32)", w.size(), len as u64)?;
    if len == 0 {
        return Ok(());
    }
    let params = Params {
        len: to_u32("sgd_step length", len)?,
        neg_lr: -lr,
        _pad: [0; 2],
    };
    Recorder::new(gpu, encoder).launch(
        &SPEC,
        &[],
        &params,
        &[(1, g.into()), (2, w.into())],
        Work::Invocations(len as u64),
    )
}
