//! `uniform_init`: counter-based Philox4x32-10 fills, uniform and normal.
//! Shader: `shaders/uniform_init.wgsl`; CPU twin: `cpu::uniform_init`.

use crate::binding;
use crate::cpu::uniform_init::{LOG2_SLACK_ABOVE, LOG2_SLACK_BELOW};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{to_u32, WORKGROUP_SIZE};
use crate::pipeline::{KernelSpec, RuntimeChecks};
use crate::recorder::{self, Recorder, Work};
use crate::tensor::Tensor;

const SOURCE: &str = concat!(
    include_str!("../../shaders/uniform_init.wgsl"),
    include_str!("../../shaders/uniform_init/box_muller.wgsl"),
    include_str!("../../shaders/uniform_init/fixed_point.wgsl"),
    include_str!("../../shaders/uniform_init/philox.wgsl"),
);

/// The variants of the one `fill` body (see the shader).
const fn spec(defs: &'static [&'static str]) -> KernelSpec {
    KernelSpec {
        name: "uniform_init",
        source: SOURCE,
        entry: "fill",
        defs,
    }
}
/// Each distribution's two variants: any positions (guarded stores), and
/// whole aligned runs of 16 (`RUNS`: unguarded vec4 stores).
const UNIFORM: [KernelSpec; 2] = [spec(&[]), spec(&["RUNS"])];
const NORMAL: [KernelSpec; 2] = [spec(&["NORMAL"]), spec(&["NORMAL", "RUNS"])];
const BITS: [KernelSpec; 2] = [spec(&["BITS"]), spec(&["BITS", "RUNS"])];

/// What to fill with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    /// `lo + (hi − lo) · U[0, 1)` (24 random bits per value).
    Uniform {
        /// Lower end of the range, included; finite and at most `hi`.
        lo: f32,
        /// Upper end of the range; finite, with `hi − lo` finite. Values lie
        /// below it, but for rounding, which can reach it when `hi − lo`
        /// is small next to `lo`.
        hi: f32,
    },
    /// `mean + std · N(0, 1)` by Box–Muller.
    Normal {
        /// Mean of the values; finite.
        mean: f32,
        /// Standard deviation; finite and at least 0.
        std: f32,
    },
    /// The raw 32-bit Philox words (for testing the stream; the buffer holds u32).
    Bits,
}

impl Distribution {
    /// The fill of `out` by the CPU twin, bit-identical to the kernel's:
    /// elements `counter_base ..` of the stream of `seed`.
    pub(crate) fn fill_cpu(&self, seed: u64, counter_base: u64, out: &mut [f32]) -> Result<()> {
        self.check()?;
        match *self {
            Distribution::Uniform { lo, hi } => {
                crate::cpu::uniform_fill(seed, counter_base, lo, hi, out)
            }
            Distribution::Normal { mean, std } => {
                crate::cpu::normal_fill(seed, counter_base, mean, std, out)
            }
            Distribution::Bits => {
                return Err(Error::InvalidArgument {
                    name: "distribution",
                    reason: "Bits fills a u32 buffer; it cannot fill a table of floats".into(),
                })
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        match *self {
            Distribution::Uniform { lo, hi } => {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi && (hi - lo).is_finite()) {
                    return Err(Error::InvalidArgument {
                        name: "uniform bounds",
                        reason: format!("need finite lo <= hi, got lo = {lo}, hi = {hi}"),
                    });
                }
            }
            Distribution::Normal { mean, std } => {
                if !(mean.is_finite() && std.is_finite() && std >= 0.0) {
                    return Err(Error::InvalidArgument {
                        name: "normal parameters",
                        reason: format!(
                            "need finite mean and std >= 0, got mean = {mean}, std = {std}"
                        ),
                    });
                }
            }
            Distribution::Bits => {}
        }
        Ok(())
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    key: [u32; 2],
    first_block: [u32; 2],
    skip: u32,
    begin: u32,
    end: u32,
    blocks: u32,
    a: f32,
    b: f32,
    invocations: u32,
    first_t: u32,
    head: u32,
    jump: u32,
    first_q: u32,
    _pad: u32,
}

/// Philox blocks per invocation (`ROUNDS` in the shader): invocation `t`
/// writes the run of 16 positions `begin - skip + 16 t ..`.
const ROUNDS: u64 = 4;
const RUN: u64 = 4 * ROUNDS;

/// One fill: positions `begin .. end` of `out`, where position `p` takes the
/// random element `counter_base + p` of stream `seed`.
pub struct FillArgs<'a> {
    /// The buffer filled: f32 elements (u32 for [`Distribution::Bits`]),
    /// at least `end` of them; positions outside `begin .. end` are left
    /// alone.
    pub out: &'a wgpu::Buffer,
    /// First position written (an element index, not bytes).
    pub begin: usize,
    /// One past the last position written; nothing is written when it is
    /// at most `begin`.
    pub end: usize,
    /// The stream element of position 0; `counter_base + end` must fit
    /// the 64-bit element counter.
    pub counter_base: u64,
    /// The Philox key: which stream the values come from.
    pub seed: u64,
    /// What the random elements are turned into.
    pub distribution: Distribution,
    /// Invocations per workgroup; `None` is 256. Values never depend on it.
    pub workgroup_size: Option<u32>,
}

/// Records the fill into `encoder`; submits nothing.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &FillArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| record(rec, args))
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(rec: &mut Recorder, args: &FillArgs) -> Result<()> {
    let gpu = rec.gpu();
    args.distribution.check()?;
    binding::check_holds(
        "uniform_init out (end words)",
        args.out.size(),
        args.end as u64,
    )?;
    if args.end <= args.begin {
        return Ok(());
    }
    let first = args
        .counter_base
        .checked_add(args.end as u64)
        .map(|_| args.counter_base + args.begin as u64)
        .ok_or_else(|| Error::InvalidArgument {
            name: "counter_base",
            reason: format!(
                "{} + {} elements runs past the 64-bit element counter",
                args.counter_base, args.end
            ),
        })?;
    let skip = (first % 4) as u32;
    let first_block = first / 4;
    let count = (args.end - args.begin) as u64;
    let blocks = (skip as u64 + count).div_ceil(4);
    let (specs, a, b) = match args.distribution {
        Distribution::Uniform { lo, hi } => (&UNIFORM, lo, hi - lo),
        Distribution::Normal { mean, std } => (&NORMAL, mean, std),
        Distribution::Bits => (&BITS, 0.0, 0.0),
    };
    let wg = args.workgroup_size.unwrap_or(WORKGROUP_SIZE);
    super::check_workgroup_size(gpu, wg)?;
    // 0 + 1 · x is x: the default N(0, 1) and U(0, 1) compile without the
    // software FMA (bits, not values, so a = -0 keeps it: -0 + 1 · +0 = -0).
    let affine = !matches!(args.distribution, Distribution::Bits)
        && (a.to_bits() != 0 || b.to_bits() != 1f32.to_bits());
    // Runs 0 .. runs, run t at positions begin - skip + 16 t ..; those in
    // `interior` are whole (the first is not when the fill starts inside a
    // block). They go to the RUNS variant when their positions are 16-byte
    // aligned in the buffer, the rest (or all) to the guarded one. As
    // skip = (counter_base + begin) % 4, begin - skip is a multiple of 4
    // exactly when counter_base is.
    let runs = blocks.div_ceil(ROUNDS);
    let aligned = args.counter_base.is_multiple_of(4);
    let head = (skip > 0) as u64;
    let interior = match aligned {
        true => head..((skip as u64 + count) / RUN).max(head),
        false => 0..0,
    };
    let edges = runs - (interior.end - interior.start);
    let base = Params {
        key: [args.seed as u32, (args.seed >> 32) as u32],
        first_block: [first_block as u32, (first_block >> 32) as u32],
        skip,
        begin: to_u32("fill begin", args.begin)?,
        end: to_u32("fill end", args.end)?,
        blocks: to_u32("fill blocks", blocks as usize)?,
        a,
        b,
        invocations: 0,
        first_t: 0,
        head: u32::MAX,
        jump: 0,
        first_q: 0,
        _pad: 0,
    };
    // Bound by the NORMAL variants only (the others' layouts drop it).
    let log2_table = gpu.log2_table()?;
    // Unchecked: every storage write is inside begin .. end (checked against
    // the buffer above): the edge dispatch guards each by `position`, the
    // interior one writes whole runs only. The one loop, log2's squaring
    // where the shortcut declines, runs at most 21 times; wgpu's injected
    // loop counter would only add work to every SIMD group that enters it.
    let mut launch = |whole_runs: bool, params: Params| {
        rec.launch_checked(
            &specs[whole_runs as usize],
            &[
                ("AFFINE", affine as u32 as f64),
                ("LOG2_SLACK_BELOW", LOG2_SLACK_BELOW as f64),
                ("LOG2_SLACK_ABOVE", LOG2_SLACK_ABOVE as f64),
            ],
            RuntimeChecks::Unchecked,
            &params,
            &[(1, args.out.into()), (2, log2_table.into())],
            Work::InvocationsIn {
                count: params.invocations as u64,
                workgroup_size: wg,
            },
        )
    };
    if !interior.is_empty() {
        launch(
            true,
            Params {
                invocations: to_u32("fill runs", (interior.end - interior.start) as usize)?,
                first_t: interior.start as u32,
                // The vec4 the first run starts at (the positions are 16-byte aligned).
                first_q: to_u32(
                    "fill begin",
                    ((args.begin as u64 + RUN * interior.start - skip as u64) / 4) as usize,
                )?,
                ..base
            },
        )?;
    }
    if edges > 0 {
        // Runs 0 .. interior.start, then interior.end .. runs.
        launch(
            false,
            Params {
                invocations: to_u32("fill runs", edges as usize)?,
                head: interior.start as u32,
                jump: (interior.end - interior.start) as u32,
                ..base
            },
        )?;
    }
    Ok(())
}

/// The RNG's fingerprint on `gpu`: the twin's [`crate::cpu::uniform_init::digest`]
/// (FNV-1a of a 4096 × 64 table after `uniform_(-1.0, 1.0, 42)`), computed
/// from the GPU's table. Equal on every adapter. Blocks; [`digest_async`]
/// is the page's form.
pub fn digest(gpu: &Gpu) -> Result<u64> {
    crate::readback::block("the RNG digest", digest_async(gpu))
}

/// [`digest`] without blocking (a web page's way).
pub async fn digest_async(gpu: &Gpu) -> Result<u64> {
    let [rows, cols] = crate::cpu::uniform_init::DIGEST_SHAPE;
    let t = Tensor::zeros(gpu, &[rows, cols])?;
    fill(&t, 42, Distribution::Uniform { lo: -1.0, hi: 1.0 })?;
    Ok(crate::cpu::uniform_init::fnv1a_f32(
        &t.to_vec_async().await?,
    ))
}

/// Fills all of `tensor` from stream `seed` (element `i` ← random element `i`), submits and waits.
pub fn fill(tensor: &Tensor, seed: u64, distribution: Distribution) -> Result<()> {
    fill_range(tensor, 0, tensor.numel(), seed, distribution)
}

/// Fills elements `begin .. end` of `tensor` with the same values a whole-tensor fill gives them.
pub fn fill_range(
    tensor: &Tensor,
    begin: usize,
    end: usize,
    seed: u64,
    distribution: Distribution,
) -> Result<()> {
    let _scope = crate::memory::Scope::enter();
    if begin > end || end > tensor.numel() {
        return Err(Error::InvalidArgument {
            name: "fill range",
            reason: format!("{begin}..{end} is not inside 0..{}", tensor.numel()),
        });
    }
    let gpu = tensor.gpu();
    let mut encoder = gpu.encoder("uniform_init");
    encode(
        gpu,
        &mut encoder,
        &FillArgs {
            out: tensor.buffer(),
            begin,
            end,
            counter_base: 0,
            seed,
            distribution,
            workgroup_size: None,
        },
    )?;
    gpu.submit_and_wait(encoder)
}

/// The raw Philox words of elements `counter_base .. counter_base + len` of stream `seed`.
pub fn bits(gpu: &Gpu, seed: u64, counter_base: u64, len: usize) -> Result<Vec<u32>> {
    let _scope = crate::memory::Scope::enter();
    let out = gpu.storage("uniform_init bits", (len as u64).saturating_mul(4))?;
    let mut encoder = gpu.encoder("uniform_init bits");
    encode(
        gpu,
        &mut encoder,
        &FillArgs {
            out: out.raw(),
            begin: 0,
            end: len,
            counter_base,
            seed,
            distribution: Distribution::Bits,
            workgroup_size: None,
        },
    )?;
    gpu.submit_and_wait(encoder)?;
    crate::readback::read(gpu, out.raw(), 0, len as u64 * 4, "random bits")
}
