//! `scatter_add_atomic`: the opt-in float-atomic gradient. Fast where the
//! adapter has `SHADER_FLOAT32_ATOMIC`, but the order of the additions — and
//! so the last bits of any row several positions share — varies from run to run.
//! Shader: `shaders/scatter_add_atomic.wgsl`; CPU twin: `cpu::scatter_add_atomic`
//! (one of the orders the GPU may take: ascending positions).

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{to_u32, WORKGROUP_SIZE};
use crate::pipeline::{Access, KernelSpec};

const SPEC: KernelSpec = KernelSpec {
    name: "scatter_add_atomic",
    source: include_str!("../../shaders/scatter_add_atomic.wgsl"),
    entry: "scatter_add_atomic",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
        (3, Access::Read),
        (4, Access::Read),
        (5, Access::ReadWrite),
    ],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    dim: u32,
    num_embeddings: u32,
    padding_idx: u32,
    scale_by_freq: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

/// The buffers of one atomic scatter-add.
pub struct AtomicArgs<'a> {
    pub indices: &'a wgpu::Buffer,
    pub n: usize,
    pub num_embeddings: usize,
    pub dim: usize,
    pub padding_idx: Option<usize>,
    /// Row counts (`row_histogram`), read only when `scale_by_freq`.
    pub counts: &'a wgpu::Buffer,
    pub scale_by_freq: bool,
    pub status: &'a wgpu::Buffer,
    pub grad_out: &'a wgpu::Buffer,
    /// `[num_embeddings, dim]`; cleared here first.
    pub grad: &'a wgpu::Buffer,
}

/// `MissingFeature` unless the adapter can add floats atomically.
pub fn check_supported(gpu: &Gpu) -> Result<()> {
    if gpu.has_float_atomics() {
        Ok(())
    } else {
        Err(Error::MissingFeature {
            feature:
                "SHADER_FLOAT32_ATOMIC (use GradientMode::Deterministic, which runs everywhere)",
            adapter: gpu.adapter_info().name.clone(),
        })
    }
}

/// Records the clear of `grad` and the scatter-add into `encoder`.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &AtomicArgs) -> Result<()> {
    check_supported(gpu)?;
    encoder.clear_buffer(args.grad, 0, None);
    if args.n == 0 {
        return Ok(());
    }
    to_u32("grad_out elements", args.n.saturating_mul(args.dim))?;
    to_u32(
        "table elements",
        args.num_embeddings.saturating_mul(args.dim),
    )?;
    let params = Params {
        n: to_u32("index count", args.n)?,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        padding_idx: match args.padding_idx {
            Some(p) => to_u32("padding_idx", p)?,
            None => u32::MAX,
        },
        scale_by_freq: args.scale_by_freq as u32,
        _pad0: 0,
        _pad1: 0,
        _pad2: 0,
    };
    let kernel = gpu.kernel(&SPEC, &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let uniform = gpu.uniform("scatter_add_atomic params", &params)?;
    let bind = kernel.bind(
        gpu,
        &[
            (0, uniform.raw()),
            (1, args.indices),
            (2, args.status),
            (3, args.counts),
            (4, args.grad_out),
            (5, args.grad),
        ],
    );
    kernel.dispatch(
        gpu,
        encoder,
        &bind,
        (args.n as u64).div_ceil(WORKGROUP_SIZE as u64),
    );
    Ok(())
}
