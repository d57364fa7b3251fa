//! The gather-vs-one-hot benchmark (`cargo run --release`, and the web
//! page): one sweep, one JSON schema, one chart, wherever it runs. The sweep
//! is async so a page can run it without blocking; the command-line program
//! drives it with [`run_blocking`].
//!
//! Feature `bench` (on with the default `cli`).

mod chart;
mod report;
mod roofline;
mod sweep;

pub use chart::svg;
pub use report::{summarize, write_file, Results, Roofline, Row, SCHEMA};
pub use roofline::{measure as measure_roofline, measure_async as measure_roofline_async};
#[cfg(not(target_arch = "wasm32"))]
pub use sweep::run_blocking;
pub use sweep::{run, Plan, Progress, BACKWARD_TOLERANCE, MAX_REPS};

use crate::error::{Error, Result};
use crate::timing::Clock;
use crate::Gpu;

/// Times a sample taken again when the driver's timestamps could not order
/// it, before the measurement is given up.
const CLOCK_RETRIES: usize = 3;

/// Seconds of one run of `work` on the adapter's own clock ([`Gpu::clock`]).
/// [`Gpu::time`] falls back to wall time for a timestamp pair the driver
/// wrote out of order; a benchmark takes that sample again instead, so a
/// median never mixes clocks and the results' `clock` stays true.
pub async fn sample_seconds(
    gpu: &Gpu,
    mut work: impl FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
) -> Result<f64> {
    let clock = gpu.clock();
    for _ in 0..=CLOCK_RETRIES {
        let timing = gpu.time_async(&mut work).await?;
        if timing.clock == clock {
            return Ok(timing.seconds);
        }
    }
    Err(unordered(clock))
}

/// The blocking form of [`sample_seconds`] (native only).
#[cfg(not(target_arch = "wasm32"))]
pub fn sample_seconds_blocking(
    gpu: &Gpu,
    work: impl FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
) -> Result<f64> {
    crate::readback::block("a benchmark sample", sample_seconds(gpu, work))
}

fn unordered(clock: Clock) -> Error {
    Error::Gpu {
        during: "timestamp query",
        message: format!(
            "the driver wrote {} timestamp pairs in a row that measure nothing \
             (end before start, or never written), so no sample on its {clock}",
            CLOCK_RETRIES + 1
        ),
    }
}
