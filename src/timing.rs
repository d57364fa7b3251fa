//! Timing GPU work: timestamp queries where the adapter writes them inside
//! command encoders, otherwise wall time around submit-and-wait. Every
//! measurement says which clock it came from.

use web_time::Instant;

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
    /// How long the work took, in seconds.
    pub seconds: f64,
    /// Which clock measured it.
    pub clock: Clock,
}

impl Gpu {
    /// The clock [`Gpu::time`] uses on this adapter: GPU timestamps where
    /// the adapter writes them (between passes natively, at pass boundaries
    /// in a browser), else wall time.
    pub fn clock(&self) -> Clock {
        if self.features().intersects(
            wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS | wgpu::Features::TIMESTAMP_QUERY,
        ) {
            Clock::GpuTimestamp
        } else {
            Clock::Wall
        }
    }

    /// Records `work` into a fresh encoder, submits it, waits, and returns how
    /// long the GPU took (timestamps where available, else wall time).
    /// Blocking: native only; a page uses [`Gpu::time_async`].
    pub fn time(
        &self,
        work: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<Timing> {
        readback::block("a timing", self.time_async(work))
    }

    /// The async form of [`Gpu::time`]: the caller's executor (a page's
    /// event loop) is not blocked while the GPU runs.
    pub async fn time_async(
        &self,
        work: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<Timing> {
        match self.clock() {
            Clock::Wall => {
                let (index, start) = {
                    // `work` records into an encoder submitted here: a scope of ours.
                    let _scope = self.scope();
                    let mut encoder = self.encoder("timed");
                    work(&mut encoder)?;
                    let start = Instant::now();
                    (self.submit(encoder)?, start)
                };
                self.wait_async(index).await?;
                Ok(Timing {
                    seconds: start.elapsed().as_secs_f64(),
                    clock: Clock::Wall,
                })
            }
            Clock::GpuTimestamp => {
                let (staging, index) = {
                    let _scope = self.scope();
                    self.record_timed(work)?
                };
                let bytes =
                    readback::map_after_async(self, &staging, 16, "timestamps", index).await?;
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

    /// `work` between two timestamps, resolved and copied into a staging
    /// buffer in the same submit.
    fn record_timed(
        &self,
        work: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<(crate::memory::GpuBuffer, wgpu::SubmissionIndex)> {
        let queries = {
            let _turn = self.gl_turn();
            self.device().create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("wgpu-embed timer"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            })
        };
        let out = self.record_between(&queries, work);
        // The last handle when `work` failed.
        self.inner.gl.drop_in_turn(queries);
        out
    }

    fn record_between(
        &self,
        queries: &wgpu::QuerySet,
        work: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<(crate::memory::GpuBuffer, wgpu::SubmissionIndex)> {
        let mut encoder = self.encoder("timed");
        let resolve = self.buffer(
            "timestamp resolve",
            16,
            wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            crate::memory::Init::Any,
        )?;
        let staging = readback::staging_buffer(self, 16)?;
        let between_passes = self
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS);
        // WebGPU writes timestamps only at pass boundaries: an empty pass
        // before and after `work` brackets it the same way.
        let mark = |encoder: &mut wgpu::CommandEncoder, i: u32| {
            if between_passes {
                encoder.write_timestamp(queries, i);
            } else {
                encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("wgpu-embed timestamp"),
                    timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                        query_set: queries,
                        beginning_of_pass_write_index: (i == 0).then_some(0),
                        end_of_pass_write_index: (i == 1).then_some(1),
                    }),
                });
            }
        };
        mark(&mut encoder, 0);
        work(&mut encoder)?;
        mark(&mut encoder, 1);
        encoder.resolve_query_set(queries, 0..2, resolve.raw(), 0);
        encoder.copy_buffer_to_buffer(resolve.raw(), 0, staging.raw(), 0, 16);
        let index = self.submit(encoder)?;
        Ok((staging, index))
    }
}
