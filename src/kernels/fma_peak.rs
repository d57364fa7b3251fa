//! `fma_peak`: register-only fused multiply-adds, the adapter's FLOP/s roof.
//! Shader: `shaders/fma_peak.wgsl`. No CPU twin: it computes nothing anyone
//! reads; its output exists so the compiler keeps the work.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{loop_limited, LOOP_BUDGET};
use crate::memory::GpuBuffer;
use crate::pipeline::{KernelSpec, RuntimeChecks};
use crate::recorder::{self, Work};

const SPEC: KernelSpec = KernelSpec {
    name: "fma_peak",
    source: include_str!("../../shaders/fma_peak.wgsl"),
    entry: "fma_peak",
    defs: &[],
};

const WORKGROUP_SIZE: u32 = 64;
/// Independent vec4 chains per invocation (the shader's `c0 .. c7`).
const CHAINS: u64 = 8;

/// One FMA-peak launch: `workgroups · 64` invocations of `iterations` rounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FmaPeakShape {
    /// Workgroups dispatched, 64 invocations each; the output holds one f32
    /// per invocation.
    pub workgroups: u32,
    /// FMA rounds per invocation, each one FMA on each of 8 vec4 chains.
    /// Past `kernels::LOOP_BUDGET` (32 768) is refused on CPU adapters.
    pub iterations: u32,
}

impl FmaPeakShape {
    /// FLOPs one launch performs (an FMA counts two).
    pub fn flops(&self) -> u64 {
        // Saturating: a caller's shape may be anything (debug builds check overflow).
        (self.workgroups as u64 * WORKGROUP_SIZE as u64)
            .saturating_mul(self.iterations as u64)
            .saturating_mul(CHAINS * 4 * 2)
    }
}

/// Enough work to fill every lane of a big GPU (16 384 workgroups) and to
/// last long enough on a CPU rasterizer (64) for the launch overhead to vanish.
pub fn default_shape(gpu: &Gpu) -> FmaPeakShape {
    if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
        FmaPeakShape {
            workgroups: 64,
            iterations: 4096,
        }
    } else {
        FmaPeakShape {
            workgroups: 16_384,
            iterations: 4096,
        }
    }
}

/// The output buffer one launch of `shape` writes (one float per invocation).
pub fn output(gpu: &Gpu, shape: FmaPeakShape) -> Result<GpuBuffer> {
    gpu.storage(
        "fma_peak out",
        shape.workgroups as u64 * WORKGROUP_SIZE as u64 * 4,
    )
}

/// Records one launch into `encoder`; submits nothing.
pub fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    out: &wgpu::Buffer,
    shape: FmaPeakShape,
) -> Result<()> {
    recorder::record(gpu, encoder, |rec| {
        if out.size() < shape.workgroups as u64 * WORKGROUP_SIZE as u64 * 4 {
            return Err(Error::LengthMismatch {
                what: "fma_peak output",
                expected: shape.workgroups as usize * WORKGROUP_SIZE as usize,
                found: (out.size() / 4) as usize,
            });
        }
        // Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`): more would be measured as done.
        if shape.iterations as usize > LOOP_BUDGET && loop_limited(gpu) {
            return Err(Error::InvalidArgument {
                name: "FmaPeakShape::iterations",
                reason: format!(
                    "{} rounds per invocation is past {LOOP_BUDGET}, the most a CPU adapter runs \
                 reliably (Mesa's gallivm ends an invocation's loops after 65 535 iterations); \
                 raise `workgroups` instead",
                    shape.iterations
                ),
            });
        }
        // No uniform: the one binding is the output.
        let work = Work::InvocationsIn {
            count: shape.workgroups as u64 * WORKGROUP_SIZE as u64,
            workgroup_size: WORKGROUP_SIZE,
        };
        let kernel = rec.kernel(
            &SPEC,
            &[("ITERATIONS", shape.iterations as f64)],
            RuntimeChecks::Checked,
            work,
        )?;
        let bind = kernel.bind(gpu, &[(0, out)])?;
        rec.dispatch(&kernel, &bind, work)
    })
}

/// Measures the FMA rate in FLOP/s: the best of `runs` timed launches of
/// [`default_shape`] after one warm-up (GPU timestamps where the adapter has
/// them, else wall time around submit-and-wait). Blocking: native only.
pub fn measure(gpu: &Gpu, runs: usize) -> Result<f64> {
    crate::readback::block("the FMA peak", measure_async(gpu, runs))
}

/// The async form of [`measure`], for a page.
pub async fn measure_async(gpu: &Gpu, runs: usize) -> Result<f64> {
    let shape = default_shape(gpu);
    let out = {
        let _scope = gpu.scope();
        output(gpu, shape)?
    };
    let mut best = f64::INFINITY;
    for run in 0..runs.max(1).saturating_add(1) {
        let t = gpu
            .time_async(|encoder| encode(gpu, encoder, out.raw(), shape))
            .await?;
        // A run below the clock's resolution (0 s) gives no rate, and one
        // its driver could not time with timestamps is on another clock.
        if run > 0 && t.seconds > 0.0 && t.clock == gpu.clock() {
            best = best.min(t.seconds);
        }
    }
    if best == f64::INFINITY {
        return Err(Error::Gpu {
            during: "fma_peak timing",
            message: "every run measured 0 s: below this clock's resolution".into(),
        });
    }
    Ok(shape.flops() as f64 / best)
}
