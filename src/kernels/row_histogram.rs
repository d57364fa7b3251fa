//! `row_histogram`: `counts[r]` = how many positions hold index `r`.
//! Shader: `shaders/row_histogram.wgsl`; CPU twin: `cpu::row_histogram`.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::{to_u32, WORKGROUP_SIZE};
use crate::pipeline::{Access, KernelSpec};

const SPEC: KernelSpec = KernelSpec {
    name: "row_histogram",
    source: include_str!("../../shaders/row_histogram.wgsl"),
    entry: "row_histogram",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
        (3, Access::ReadWrite),
    ],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    num_embeddings: u32,
    _pad0: u32,
    _pad1: u32,
}

/// The buffers of one histogram. `status` is one u32 the caller set to
/// `STATUS_OK`; the kernel lowers it to the first out-of-range position.
pub struct HistogramArgs<'a> {
    pub indices: &'a wgpu::Buffer,
    pub n: usize,
    pub num_embeddings: usize,
    pub status: &'a wgpu::Buffer,
    /// `num_embeddings` u32s; cleared here before counting.
    pub counts: &'a wgpu::Buffer,
}

/// Records the clear of `counts` and the histogram into `encoder`.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &HistogramArgs) -> Result<()> {
    encoder.clear_buffer(args.counts, 0, None);
    if args.n == 0 {
        return Ok(());
    }
    let params = Params {
        n: to_u32("index count", args.n)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        _pad0: 0,
        _pad1: 0,
    };
    let kernel = gpu.kernel(&SPEC, &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let uniform = gpu.uniform("row_histogram params", &params)?;
    let bind = kernel.bind(
        gpu,
        &[
            (0, uniform.raw()),
            (1, args.indices),
            (2, args.status),
            (3, args.counts),
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
