//! The adapter's ceilings, measured in the same run as the kernels they judge.

use crate::kernels::{buffer_copy, fma_peak, uniform_init};
use crate::{Distribution, Error, Gpu, Result, Tensor};

use super::report::{summarize, Roofline};

/// Bytes each bandwidth probe moves: big enough to leave the caches, within one binding.
fn probe_bytes(gpu: &Gpu) -> u64 {
    let want: u64 = if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
        64 << 20
    } else {
        512 << 20
    };
    want.min(gpu.max_binding_bytes() / 16 * 16)
}

async fn median_seconds(
    gpu: &Gpu,
    reps: usize,
    mut work: impl FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
) -> Result<f64> {
    if reps > super::MAX_REPS {
        return Err(Error::InvalidArgument {
            name: "reps",
            reason: format!("{reps} is past the most samples taken, {}", super::MAX_REPS),
        });
    }
    // Warm-up: pipeline creation, first touch of the pages.
    super::sample_seconds(gpu, &mut work).await?;
    let mut s = Vec::with_capacity(reps);
    for _ in 0..reps {
        s.push(super::sample_seconds(gpu, &mut work).await?);
    }
    let (median, ..) = summarize(&mut s).ok_or_else(|| Error::InvalidArgument {
        name: "reps",
        reason: "no samples: reps must be at least 1".into(),
    })?;
    Ok(median * 1e-3)
}

/// Measures copy, shader-copy, FMA and RNG-fill ceilings with `reps` samples
/// each, blocking (native only; a page uses [`measure_async`]).
pub fn measure(gpu: &Gpu, reps: usize) -> Result<Roofline> {
    crate::readback::block("the roofline", measure_async(gpu, reps))
}

/// Measures copy, shader-copy, FMA and RNG-fill ceilings with `reps` samples
/// each (at least one and at most [`MAX_REPS`](super::MAX_REPS), else
/// `InvalidArgument`).
pub async fn measure_async(gpu: &Gpu, reps: usize) -> Result<Roofline> {
    let bytes = probe_bytes(gpu);
    let floats = (bytes / 4) as usize;
    let src = Tensor::zeros(gpu, &[floats])?;
    let dst = Tensor::zeros(gpu, &[floats])?;
    let copy = median_seconds(gpu, reps, |enc| {
        enc.copy_buffer_to_buffer(src.buffer(), 0, dst.buffer(), 0, bytes);
        Ok(())
    })
    .await?;
    let shader_copy = median_seconds(gpu, reps, |enc| {
        buffer_copy::encode(gpu, enc, src.buffer(), dst.buffer(), bytes)
    })
    .await?;
    let rng = median_seconds(gpu, reps, |enc| {
        uniform_init::encode(
            gpu,
            enc,
            &uniform_init::FillArgs {
                out: dst.buffer(),
                begin: 0,
                end: floats,
                counter_base: 0,
                seed: 1,
                distribution: Distribution::Normal {
                    mean: 0.0,
                    std: 1.0,
                },
                workgroup_size: None,
            },
        )
    })
    .await?;
    drop((src, dst));
    let fma = fma_peak::measure_async(gpu, reps).await?;
    Ok(Roofline {
        copy_bytes_per_s: 2.0 * bytes as f64 / copy,
        shader_copy_bytes_per_s: 2.0 * bytes as f64 / shader_copy,
        fma_flops_per_s: fma,
        rng_fill_bytes_per_s: bytes as f64 / rng,
    })
}
