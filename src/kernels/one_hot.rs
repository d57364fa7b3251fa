//! `one_hot`: the `n × num_classes` one-hot matrix of an index list.
//! Shader: `shaders/one_hot.wgsl`; CPU twin: `cpu::one_hot`.

use crate::binding;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::to_u32;
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};
use crate::tensor::Tensor;

const SPEC: KernelSpec = KernelSpec {
    name: "one_hot",
    source: include_str!("../../shaders/one_hot.wgsl"),
    entry: "one_hot",
    defs: &[],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    num_classes: u32,
    quads_per_row: u32,
    _pad: u32,
}

/// Records the one-hot fill of `out` (`n × num_classes` floats) into `encoder`.
pub fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    indices: &wgpu::Buffer,
    n: usize,
    num_classes: usize,
    out: &wgpu::Buffer,
) -> Result<()> {
    recorder::record(gpu, encoder, |rec| {
        record(rec, indices, n, num_classes, out)
    })
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(super) fn record(
    rec: &mut Recorder,
    indices: &wgpu::Buffer,
    n: usize,
    num_classes: usize,
    out: &wgpu::Buffer,
) -> Result<()> {
    binding::check_holds("one_hot indices (n u32)", indices.size(), n as u64)?;
    let out_words = (n as u64).saturating_mul(num_classes as u64);
    binding::check_holds("one_hot out (n × num_classes f32)", out.size(), out_words)?;
    if n == 0 || num_classes == 0 {
        return Ok(());
    }
    let quads = num_classes.div_ceil(4);
    let params = Params {
        n: to_u32("index count", n)?,
        num_classes: to_u32("num_classes", num_classes)?,
        quads_per_row: to_u32("num_classes", quads)?,
        _pad: 0,
    };
    to_u32("one-hot elements", n * num_classes)?;
    rec.launch(
        &SPEC,
        &[],
        &params,
        &[(1, indices.into()), (2, out.into())],
        Work::Invocations(n as u64 * quads as u64),
    )
}

/// The one-hot matrix `[indices.len(), num_classes]` of host indices, each
/// checked against `num_classes` first.
pub fn one_hot(gpu: &Gpu, indices: &[u32], num_classes: usize) -> Result<Tensor> {
    let _scope = gpu.scope();
    if num_classes == 0 {
        return Err(Error::InvalidArgument {
            name: "num_classes",
            reason: "must be at least 1".into(),
        });
    }
    crate::nn::check_indices(indices, num_classes)?;
    let bytes = (indices.len() as u64)
        .saturating_mul(num_classes as u64)
        .saturating_mul(4);
    gpu.check_size("one-hot matrix", bytes, true)?;
    let out = Tensor::zeros(gpu, &[indices.len(), num_classes])?;
    let idx = gpu.storage_from("one_hot indices", indices)?;
    let mut encoder = gpu.encoder("one_hot");
    encode(
        gpu,
        &mut encoder,
        idx.raw(),
        indices.len(),
        num_classes,
        out.buffer(),
    )?;
    gpu.submit_and_wait(encoder)?;
    Ok(out)
}
