//! `exact_arith`: f32 `×`, `÷` and `√` rounded once to nearest even, as
//! IEEE 754 (and Rust) define them, on every adapter: the functions the
//! update, bag, frequency-scaling, `max_norm` and int8 kernels use wherever
//! a compiler could otherwise fuse a product into an add or round a quotient
//! or root its own way (`shaders/exact_arith/ops.wgsl` says why and how).
//! This entry point runs them element-wise on whole buffers.
//! Shader: `shaders/exact_arith.wgsl`; CPU twin: `cpu::exact_arith`.

use crate::binding;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::to_u32;
use crate::pipeline::{KernelSpec, EXACT_CHECKED};
use crate::recorder::{self, Work};

const SPEC: KernelSpec = KernelSpec {
    name: "exact_arith",
    source: concat!(
        include_str!("../../shaders/exact_arith.wgsl"),
        include_str!("../../shaders/exact_arith/ops.wgsl"),
    ),
    entry: "exact_arith",
    defs: &[],
};

/// Which operation: `Sqrt` reads only `a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExactOp {
    /// `a[i] × b[i]`, rounded once (never fused into a later add).
    Mul,
    /// `a[i] ÷ b[i]`, rounded once.
    Div,
    /// `√a[i]`, rounded once; `b` is bound (and must still hold `len`
    /// f32s) but not read: pass `a` again.
    Sqrt,
    /// `a[i]`'s bits read as a u32 count, as f32 rounded once to nearest
    /// even (Rust's `as f32`; WGSL's own conversion may take either
    /// neighbour past 2^24): how mean bags and frequency scaling divide.
    /// `b` as for `Sqrt`.
    Count,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    op: u32,
    vec4: u32,
    _pad: u32,
}

/// Records `out[i] = a[i] op b[i]` (or `√a[i]`) for the first `len` f32s;
/// submits nothing. `b` is read only for `Mul` and `Div`, but is bound for
/// all three (pass `a` again for `Sqrt`).
pub fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    op: ExactOp,
    len: usize,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Result<()> {
    encode_variant(gpu, encoder, op, len, a, b, out, &Variant::default())
}

/// How the tests run the functions through [`encode_variant`]; the
/// default is what [`encode`] does.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Variant {
    /// Moves the hardware's results and estimates inside `×`, `÷` and `√`
    /// by this many ulps: the results must not change (the integer checks
    /// and corrections, not the device's own rounding, decide them).
    pub nudge: i32,
    /// Four elements an invocation, through the vec4 forms.
    pub vec4: bool,
    /// `Some`: the checked common case on or off, whatever the adapter;
    /// `None`: the adapter's choice (`pipeline.rs`).
    pub checked: Option<bool>,
}

/// [`encode`] as `variant` says. A pipeline variant per nudge and choice:
/// for tests, not for use.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn encode_variant(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    op: ExactOp,
    len: usize,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    out: &wgpu::Buffer,
    variant: &Variant,
) -> Result<()> {
    recorder::record(gpu, encoder, |rec| {
        binding::check_holds("exact_arith a (len f32)", a.size(), len as u64)?;
        binding::check_holds("exact_arith b (len f32)", b.size(), len as u64)?;
        binding::check_holds("exact_arith out (len f32)", out.size(), len as u64)?;
        let params = Params {
            len: to_u32("exact_arith length", len)?,
            op: op as u32,
            vec4: variant.vec4 as u32,
            _pad: 0,
        };
        // The defaults (no nudge, the adapter's choice) are the pipeline every
        // kernel shares.
        let mut constants = Vec::new();
        if variant.nudge != 0 {
            constants.push(("EXACT_ESTIMATE_NUDGE", variant.nudge as f64));
        }
        if let Some(checked) = variant.checked {
            constants.push((EXACT_CHECKED, if checked { 1.0 } else { 0.0 }));
        }
        rec.launch(
            &SPEC,
            &constants,
            &params,
            &[(1, a.into()), (2, b.into()), (3, out.into())],
            Work::Invocations(if variant.vec4 { len.div_ceil(4) } else { len } as u64),
        )
    })
}
