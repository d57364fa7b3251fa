//! Timing GPU work: timestamp queries where the adapter writes them inside
//! command encoders, otherwise wall time around submit-and-wait. Every
//! measurement says which clock it came from.

use std::time::Instant;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::readback;

/// Which clock a [`Timing`] was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// GPU timestamps written before and after the work (`TIMESTAMP_QUERY_INSIDE_ENCODERS`).
    GpuTimestamp,
    /// Host wall time around submit and wait: includes submission overhead.
    Wall,
}

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Clock::GpuTimestamp => "gpu timestamps",
            Clock::Wall => "wall time",
        })
    }
}

/// One measurement of recorded work.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub seconds: f64,
    pub clock: Clock,
}

impl Gpu {
    /// The clock [`Gpu::time`] uses on this adapter.
    pub fn clock(&self) -> Clock {
        if self
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
        {
            Clock::GpuTimestamp
        } else {
            Clock::Wall
        }
    }

    /// Records `work` into a fresh encoder, submits it, waits, and returns how
    /// long the GPU took (timestamps where available, else wall time).
    pub fn time(
        &self,
        work: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<Timing> {
        // `work` records into an encoder submitted here: a scope of ours.
        let _scope = self.scope();
        let mut encoder = self.encoder("timed");
        match self.clock() {
            Clock::Wall => {
                work(&mut encoder)?;
                let start = Instant::now();
                self.submit_and_wait(encoder)?;
                Ok(Timing {
                    seconds: start.elapsed().as_secs_f64(),
                    clock: Clock::Wall,
                })
            }
            Clock::GpuTimestamp => {
                let queries = self.device().create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("wgpu-embed timer"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                });
                let resolve = self.buffer(
                    "timestamp resolve",
                    16,
                    wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                    crate::memory::Init::Any,
                )?;
                encoder.write_timestamp(&queries, 0);
                work(&mut encoder)?;
                encoder.write_timestamp(&queries, 1);
                encoder.resolve_query_set(&queries, 0..2, resolve.raw(), 0);
                self.submit_and_wait(encoder)?;
                let bytes = readback::read_bytes(self, resolve.raw(), 0, 16, "timestamps")?;
                let ticks: [u64; 2] = bytemuck::pod_read_unaligned(&bytes);
                let period = self.queue().get_timestamp_period() as f64;
                if ticks[1] < ticks[0] {
                    return Err(Error::Gpu {
                        during: "timestamp query",
                        message: format!("end timestamp {} precedes start {}", ticks[1], ticks[0]),
                    });
                }
                Ok(Timing {
                    seconds: (ticks[1] - ticks[0]) as f64 * period * 1e-9,
                    clock: Clock::GpuTimestamp,
                })
            }
        }
    }
}
