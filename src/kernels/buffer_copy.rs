//! `buffer_copy`: the compute-shader copy the roofline measures.
//! Shader: `shaders/buffer_copy.wgsl`; CPU twin: `cpu::buffer_copy`.

use crate::binding;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{loop_limited, to_u32, LOOP_BUDGET};
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};

const SPEC: KernelSpec = KernelSpec {
    name: "buffer_copy",
    source: include_str!("../../shaders/buffer_copy.wgsl"),
    entry: "buffer_copy",
    defs: &[],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len4: u32,
    _pad: [u32; 3],
}

/// vec4s per invocation: the same layout choice `embedding_gather` makes
/// (a row's worth, 32 vec4s, per invocation on a CPU adapter; one on a GPU).
pub fn vec4_per_invocation(gpu: &Gpu) -> u32 {
    if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
        32
    } else {
        1
    }
}

/// Records a copy of `bytes` (a multiple of 16) from `src` to `dst`.
pub fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    bytes: u64,
) -> Result<()> {
    encode_with(gpu, encoder, src, dst, bytes, vec4_per_invocation(gpu))
}

/// [`encode`] with an explicit number of vec4s per invocation.
pub fn encode_with(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    bytes: u64,
    per_invocation: u32,
) -> Result<()> {
    recorder::record(gpu, encoder, |rec| {
        record_with(rec, src, dst, bytes, per_invocation)
    })
}

/// [`encode_with`] into a recorder other kernels of the same call share.
pub(crate) fn record_with(
    rec: &mut Recorder,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    bytes: u64,
    per_invocation: u32,
) -> Result<()> {
    let gpu = rec.gpu();
    if !bytes.is_multiple_of(16) {
        return Err(Error::InvalidArgument {
            name: "bytes",
            reason: format!("buffer_copy copies whole vec4s; {bytes} is not a multiple of 16"),
        });
    }
    binding::check_holds("buffer_copy src (bytes / 4 words)", src.size(), bytes / 4)?;
    binding::check_holds("buffer_copy dst (bytes / 4 words)", dst.size(), bytes / 4)?;
    // Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`): the rest would silently not be copied.
    if per_invocation as usize > LOOP_BUDGET && loop_limited(gpu) {
        return Err(Error::InvalidArgument {
            name: "per_invocation",
            reason: format!(
                "{per_invocation} vec4s per invocation is past {LOOP_BUDGET}, the most a CPU \
                 adapter's loops run reliably (Mesa's gallivm ends them after 65 535 iterations)"
            ),
        });
    }
    let per_invocation = per_invocation.max(1);
    let len4 = to_u32("vec4 count", (bytes / 16) as usize)?;
    rec.launch(
        &SPEC,
        &[("VEC4_PER_INVOCATION", per_invocation as f64)],
        &Params { len4, _pad: [0; 3] },
        &[(1, src.into()), (2, dst.into())],
        Work::Invocations((len4 as u64).div_ceil(per_invocation as u64)),
    )
}
