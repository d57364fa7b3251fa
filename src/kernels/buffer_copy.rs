//! `buffer_copy`: the compute-shader copy the roofline measures.
//! Shader: `shaders/buffer_copy.wgsl`; CPU twin: `cpu::buffer_copy`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{to_u32, WORKGROUP_SIZE};
use crate::pipeline::{Access, KernelSpec};

const SPEC: KernelSpec = KernelSpec {
    name: "buffer_copy",
    source: include_str!("../../shaders/buffer_copy.wgsl"),
    entry: "buffer_copy",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
    ],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len4: u32,
    _pad: [u32; 3],
}

/// Records a copy of `bytes` (a multiple of 16) from `src` to `dst`.
pub fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    bytes: u64,
) -> Result<()> {
    if !bytes.is_multiple_of(16) {
        return Err(Error::InvalidArgument {
            name: "bytes",
            reason: format!("buffer_copy copies whole vec4s; {bytes} is not a multiple of 16"),
        });
    }
    let len4 = to_u32("vec4 count", (bytes / 16) as usize)?;
    let kernel = gpu.kernel(&SPEC, &[("WORKGROUP_SIZE", WORKGROUP_SIZE as f64)])?;
    let uniform = gpu.uniform("buffer_copy params", &Params { len4, _pad: [0; 3] })?;
    let bind = kernel.bind(gpu, &[(0, uniform.raw()), (1, src), (2, dst)]);
    kernel.dispatch(
        gpu,
        encoder,
        &bind,
        (len4 as u64).div_ceil(WORKGROUP_SIZE as u64),
    );
    Ok(())
}
