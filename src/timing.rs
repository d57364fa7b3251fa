//! Timing GPU work: timestamp queries where the adapter writes them inside
//! command encoders, otherwise wall time around submit-and-wait. Every
//! measurement says which clock it came from (a timestamp pair a driver
//! cannot order falls back to the wall time around the same submit).

use web_time::Instant;

use crate::error::Result;
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
                let (staging, index, start) = {
                    let _scope = self.scope();
                    self.record_timed(work)?
                };
                let bytes =
                    readback::map_after_async(self, &staging, 16, "timestamps", index).await?;
                let ticks: [u64; 2] = bytemuck::pod_read_unaligned(&bytes);
                let period = self.queue().get_timestamp_period() as f64;
                Ok(match ticks_elapsed(ticks) {
                    Some(ticks) => Timing {
                        seconds: ticks as f64 * period * 1e-9,
                        clock: Clock::GpuTimestamp,
                    },
                    // A driver may write a pair it cannot order (a counter
                    // reset between passes, or nothing at all): the work
                    // ran, so its wall time (submit to readback of the
                    // timestamps) stands in, said to be one.
                    None => Timing {
                        seconds: start.elapsed().as_secs_f64(),
                        clock: Clock::Wall,
                    },
                })
            }
        }
    }

    /// `work` between two timestamps, resolved and copied into a staging
    /// buffer in the same submit.
    fn record_timed(
        &self,
        work: impl FnOnce(&mut wgpu::CommandEncoder) -> Result<()>,
    ) -> Result<(crate::memory::GpuBuffer, wgpu::SubmissionIndex, Instant)> {
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
    ) -> Result<(crate::memory::GpuBuffer, wgpu::SubmissionIndex, Instant)> {
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
        let start = Instant::now();
        let index = self.submit(encoder)?;
        Ok((staging, index, start))
    }
}

/// Ticks from a start and end timestamp, or `None` for a pair that measures
/// nothing: the end before the start, or both zero (never written).
fn ticks_elapsed([start, end]: [u64; 2]) -> Option<u64> {
    match (start, end) {
        (0, 0) => None,
        _ => end.checked_sub(start),
    }
}

#[cfg(test)]
mod tests {
    use super::ticks_elapsed;

    #[test]
    fn only_ordered_written_pairs_are_timestamps() {
        assert_eq!(ticks_elapsed([10, 35]), Some(25));
        assert_eq!(ticks_elapsed([7, 7]), Some(0));
        assert_eq!(ticks_elapsed([35, 10]), None);
        assert_eq!(ticks_elapsed([0, 0]), None);
        assert_eq!(ticks_elapsed([0, 5]), Some(5));
    }
}
