//! `adam_step`: `torch.optim.Adam`'s step on a dense gradient, in place,
//! weights and both moments. The update itself (`shaders/adam_step/update.wgsl`)
//! is shared with `segment_sum`'s fused `segment_adam`.
//! Shader: `shaders/adam_step.wgsl`; CPU twin: `cpu::adam_step`.

use crate::binding;
use crate::cpu::adam_step::AdamArgs;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::to_u32;
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};

const SPEC: KernelSpec = KernelSpec {
    name: "adam_step",
    source: concat!(
        include_str!("../../shaders/adam_step.wgsl"),
        include_str!("../../shaders/adam_step/update.wgsl"),
        include_str!("../../shaders/exact_arith/ops.wgsl"),
    ),
    entry: "adam_step",
    defs: &[],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    step_size: f32,
    bias2: f32,
    eps: f32,
    beta1c: f32,
    beta2c: f32,
    weight_decay: f32,
    _pad: u32,
}

/// The four buffers of one dense step, `len` f32 each.
pub struct AdamStepArgs<'a> {
    /// Number of elements to update (f32s, from the start of each buffer);
    /// every buffer must hold at least this many.
    pub len: usize,
    /// The dense gradient, read only.
    pub grad: &'a wgpu::Buffer,
    /// The weights, updated in place.
    pub weight: &'a wgpu::Buffer,
    /// First moment (`m`, PyTorch's `exp_avg`), updated in place.
    pub exp_avg: &'a wgpu::Buffer,
    /// Second moment (`v`, PyTorch's `exp_avg_sq`), updated in place.
    pub exp_avg_sq: &'a wgpu::Buffer,
    /// This step's constants, from [`AdamArgs::for_step`] with
    /// `sparse: false` for `torch.optim.Adam`'s bias correction.
    pub adam: AdamArgs,
}

/// Records one Adam step over the first `len` elements; submits nothing.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &AdamStepArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| record(rec, args))
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(rec: &mut Recorder, args: &AdamStepArgs) -> Result<()> {
    let len = args.len as u64;
    binding::check_holds("adam_step gradient (len f32)", args.grad.size(), len)?;
    binding::check_holds("adam_step weights (len f32)", args.weight.size(), len)?;
    binding::check_holds("adam_step exp_avg (len f32)", args.exp_avg.size(), len)?;
    binding::check_holds(
        "adam_step exp_avg_sq (len f32)",
        args.exp_avg_sq.size(),
        len,
    )?;
    let outputs = [args.weight, args.exp_avg, args.exp_avg_sq];
    binding::check_no_alias("adam_step", &[args.grad], &outputs)?;
    if args.len == 0 {
        return Ok(());
    }
    let a = &args.adam;
    let params = Params {
        len: to_u32("adam_step length", args.len)?,
        step_size: a.step_size,
        bias2: a.bias2,
        eps: a.eps,
        beta1c: a.beta1c,
        beta2c: a.beta2c,
        weight_decay: a.weight_decay,
        _pad: 0,
    };
    rec.launch(
        &SPEC,
        &[],
        &params,
        &[
            (1, args.grad.into()),
            (2, args.weight.into()),
            (3, args.exp_avg.into()),
            (4, args.exp_avg_sq.into()),
        ],
        Work::Invocations(len.div_ceil(4)),
    )
}
