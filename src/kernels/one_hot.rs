//! `one_hot`: the `n × num_classes` one-hot matrix of an index list.
//! Shader: `shaders/one_hot.wgsl`; CPU twin: `cpu::one_hot`.

use crate::binding;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::to_u32;
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Work};
use crate::status::Status;
use crate::tensor::{IndexTensor, Tensor};

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

/// What one one-hot fill reads and writes.
#[derive(Clone, Copy)]
pub struct OneHotArgs<'a> {
    /// `n` u32 class ids.
    pub indices: &'a wgpu::Buffer,
    /// Number of ids, and so of rows of `out`.
    pub n: usize,
    /// Columns of `out`, at least 1; an id at or past it is out of range.
    pub num_classes: usize,
    /// One u32 ([`crate::Status::buffer`]): lowered to the first position
    /// whose id is out of range (that row is left all zero).
    pub status: &'a wgpu::Buffer,
    /// `n × num_classes` f32, every element written.
    pub out: &'a wgpu::Buffer,
}

/// Records the one-hot fill of `out` into `encoder`; submits nothing.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &OneHotArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| {
        let (n, num_classes) = (args.n, args.num_classes);
        binding::check_holds("one_hot indices (n u32)", args.indices.size(), n as u64)?;
        binding::check_holds("one_hot status (one u32)", args.status.size(), 1)?;
        let out_words = (n as u64).saturating_mul(num_classes as u64);
        binding::check_holds(
            "one_hot out (n × num_classes f32)",
            args.out.size(),
            out_words,
        )?;
        binding::check_no_alias("one_hot", &[args.indices], &[args.status, args.out])?;
        // With no class every id is out of range (the twin would say so).
        check_classes(num_classes)?;
        if n == 0 {
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
            &[
                (1, args.indices.into()),
                (2, args.out.into()),
                (3, args.status.into()),
            ],
            Work::Invocations(n as u64 * quads as u64),
        )
    })
}

/// The one-hot matrix `[indices.len(), num_classes]` of host indices, each
/// checked against `num_classes` first.
pub fn one_hot(gpu: &Gpu, indices: &[u32], num_classes: usize) -> Result<Tensor> {
    let _scope = gpu.scope();
    check_classes(num_classes)?;
    crate::nn::check_indices(indices, num_classes)?;
    let idx = IndexTensor::from_slice(gpu, indices)?;
    let (out, status, encoder) = record_fill(gpu, &idx, num_classes)?;
    // Checked above: the status word cannot be lowered, so it is not read.
    drop(status);
    gpu.submit_and_wait(encoder)?;
    Ok(out)
}

/// The one-hot matrix of indices already on the GPU: an id at or past
/// `num_classes` is `IndexOutOfRange`, naming the first such position and
/// its id (found by the kernel, as `torch.nn.functional.one_hot` refuses it).
pub fn one_hot_gpu(indices: &IndexTensor, num_classes: usize) -> Result<Tensor> {
    crate::readback::block("one_hot_gpu", one_hot_gpu_async(indices, num_classes))
}

/// [`one_hot_gpu`] without blocking (a web page's way).
pub async fn one_hot_gpu_async(indices: &IndexTensor, num_classes: usize) -> Result<Tensor> {
    let gpu = indices.gpu();
    check_classes(num_classes)?;
    // Recorded and submitted in one scope; only the readback is awaited.
    let (out, status, staging, index) = {
        let _scope = gpu.scope();
        let (out, status, encoder) = record_fill(gpu, indices, num_classes)?;
        let (staging, index) = status.submit_with_copy(encoder)?;
        (out, status, staging, index)
    };
    status
        .check_async(staging, index, indices, num_classes)
        .await?;
    Ok(out)
}

fn check_classes(num_classes: usize) -> Result<()> {
    if num_classes == 0 {
        return Err(Error::InvalidArgument {
            name: "num_classes",
            reason: "must be at least 1".into(),
        });
    }
    Ok(())
}

/// A zeroed `[n, num_classes]` output, a status word and an encoder holding the fill.
fn record_fill(
    gpu: &Gpu,
    indices: &IndexTensor,
    num_classes: usize,
) -> Result<(Tensor, Status, wgpu::CommandEncoder)> {
    let n = indices.len();
    let bytes = (n as u64)
        .saturating_mul(num_classes as u64)
        .saturating_mul(4);
    gpu.check_size("one-hot matrix", bytes, true)?;
    let out = Tensor::zeros(gpu, &[n, num_classes])?;
    let status = Status::new(gpu)?;
    let mut encoder = gpu.encoder("one_hot");
    let args = OneHotArgs {
        indices: indices.buffer(),
        n,
        num_classes,
        status: status.buffer(),
        out: out.buffer(),
    };
    encode(gpu, &mut encoder, &args)?;
    Ok((out, status, encoder))
}
