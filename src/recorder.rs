//! One way to dispatch. A kernel's `record` states its parameters (the
//! uniform at binding 0), its other bindings and the work it needs; a
//! [`Recorder`] owns the rest: the pipeline lookup, the workgroup size, the
//! grid (folded into 2-D past `max_compute_workgroups_per_dimension`, which
//! the shaders undo with the prelude's `workgroup_index`) and the compute
//! pass.
//!
//! A recorder records all or nothing. It holds the commands of one call
//! (dispatches, clears, copies) until [`record`] has seen the whole call
//! succeed, and only then writes them into the caller's encoder; a call that
//! fails part way (a binding past a limit found at the third of five
//! dispatches, say) leaves the encoder as it was, so submitting it anyway
//! cannot half-update a table. Replayed, every run of dispatches goes into
//! one pass: wgpu orders the dispatches of a pass and makes each see the
//! writes of the ones before, so only copies and clears (encoder commands)
//! end it.

use crate::binding::Span;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::WORKGROUP_SIZE;
use crate::pipeline::{Kernel, KernelSpec, RuntimeChecks};

/// How much work one dispatch needs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Work {
    /// A 1-D kernel: this many invocations, [`WORKGROUP_SIZE`] per workgroup.
    Invocations(u64),
    /// A 1-D kernel with a workgroup size of its own choosing (set through
    /// the prelude's `WORKGROUP_SIZE` override).
    InvocationsIn { count: u64, workgroup_size: u32 },
    /// A kernel with a fixed workgroup shape of its own: this many
    /// workgroups (1-D ones fold into 2-D like `Invocations`).
    Workgroups(u64),
    /// A 2-D tiled kernel: an `x × y` grid of workgroups, each within the
    /// per-dimension limit (the caller checks).
    Grid(u32, u32),
}

impl Work {
    fn workgroup_size(self) -> Option<u32> {
        match self {
            Work::Invocations(_) => Some(WORKGROUP_SIZE),
            Work::InvocationsIn { workgroup_size, .. } => Some(workgroup_size),
            Work::Workgroups(_) | Work::Grid(..) => None,
        }
    }

    /// Workgroups of 1-D work, before the grid folds them into 2-D (`None`
    /// for an explicit grid).
    fn workgroups(self) -> Option<u64> {
        match self {
            Work::Invocations(n) | Work::InvocationsIn { count: n, .. } => {
                let size = self.workgroup_size().unwrap_or(1).max(1);
                Some(n.div_ceil(size as u64))
            }
            Work::Workgroups(n) => Some(n),
            Work::Grid(..) => None,
        }
    }

    /// `InvalidArgument` naming `kernel` when the work does not fit one
    /// dispatch: a folded grid launching past 2^32 invocations (a shader's
    /// invocation index is a u32: the extra invocations would wrap onto
    /// real ones and run their work twice) or a grid past the adapter's
    /// workgroups per dimension (a truncated height would leave work undone).
    fn check(self, kernel: &'static str, max_per_dim: u32) -> Result<()> {
        let max = max_per_dim.max(1) as u64;
        let fits = match self {
            Work::Grid(x, y) => x <= max_per_dim && y <= max_per_dim,
            Work::Invocations(_) | Work::InvocationsIn { .. } => {
                let groups = self.workgroups().unwrap_or(0);
                let size = self.workgroup_size().unwrap_or(1) as u64;
                let (x, y) = grid(groups, max_per_dim);
                groups.div_ceil(max) <= max && x as u64 * y as u64 * size <= 1 << 32
            }
            Work::Workgroups(_) => self.workgroups().unwrap_or(0).div_ceil(max) <= max,
        };
        if !fits {
            return Err(Error::InvalidArgument {
                name: kernel,
                reason: format!(
                    "{self:?} does not fit one dispatch: at most 2^32 invocations and \
                     {max_per_dim} × {max_per_dim} workgroups"
                ),
            });
        }
        Ok(())
    }

    /// The `x × y` grid, or `None` when there is nothing to do.
    fn grid(self, max_per_dim: u32) -> Option<(u32, u32)> {
        let (x, y) = match (self, self.workgroups()) {
            (Work::Grid(x, y), _) => (x, y),
            (_, groups) => grid(groups.unwrap_or(0), max_per_dim),
        };
        (x > 0 && y > 0).then_some((x, y))
    }
}

/// A 2-D grid covering `workgroups`: x as wide as allowed, y the rows needed.
fn grid(workgroups: u64, max_per_dim: u32) -> (u32, u32) {
    let max = max_per_dim.max(1) as u64;
    if workgroups <= max {
        (workgroups as u32, 1)
    } else {
        (max as u32, workgroups.div_ceil(max) as u32)
    }
}

/// One command of a call, held until the whole call has recorded.
enum Command {
    Dispatch {
        pipeline: wgpu::ComputePipeline,
        bind: wgpu::BindGroup,
        grid: (u32, u32),
    },
    ClearBuffer {
        buffer: wgpu::Buffer,
        offset: u64,
        size: Option<u64>,
    },
    CopyBufferToTexture {
        buffer: wgpu::Buffer,
        layout: wgpu::TexelCopyBufferLayout,
        texture: wgpu::Texture,
        size: wgpu::Extent3d,
    },
}

/// Records `body`'s commands and writes them into `encoder` only when it
/// returns `Ok`: on `Err` the encoder is left as it was. Submits nothing.
pub(crate) fn record<T>(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    body: impl FnOnce(&mut Recorder) -> Result<T>,
) -> Result<T> {
    let mut rec = Recorder::new(gpu);
    let value = body(&mut rec)?;
    rec.replay(encoder);
    Ok(value)
}

/// The commands of one call, not yet in any encoder ([`record`] writes them).
pub(crate) struct Recorder<'a> {
    gpu: &'a Gpu,
    commands: Vec<Command>,
}

impl<'a> Recorder<'a> {
    fn new(gpu: &'a Gpu) -> Recorder<'a> {
        Recorder {
            gpu,
            commands: Vec::new(),
        }
    }

    pub fn gpu(&self) -> &'a Gpu {
        self.gpu
    }

    /// Zeroes `size` bytes of `buffer` from `offset` (all the rest for
    /// `None`), as `wgpu::CommandEncoder::clear_buffer`; an encoder command,
    /// so it ends the pass it falls in.
    pub fn clear_buffer(&mut self, buffer: &wgpu::Buffer, offset: u64, size: Option<u64>) {
        self.commands.push(Command::ClearBuffer {
            buffer: buffer.clone(),
            offset,
            size,
        });
    }

    /// Copies `buffer` (laid out as `layout`) into the first `size` texels of
    /// `texture`'s mip 0.
    pub fn copy_buffer_to_texture(
        &mut self,
        buffer: &wgpu::Buffer,
        layout: wgpu::TexelCopyBufferLayout,
        texture: &wgpu::Texture,
        size: wgpu::Extent3d,
    ) {
        self.commands.push(Command::CopyBufferToTexture {
            buffer: buffer.clone(),
            layout,
            texture: texture.clone(),
            size,
        });
    }

    /// Records `spec` with `constants` (the workgroup size is added for 1-D
    /// work), `params` as the uniform at binding 0 and `bindings` at theirs.
    pub fn launch<P: bytemuck::Pod>(
        &mut self,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
        params: &P,
        bindings: &[(u32, Span)],
        work: Work,
    ) -> Result<()> {
        self.launch_checked(
            spec,
            constants,
            RuntimeChecks::Checked,
            params,
            bindings,
            work,
        )
    }

    /// [`Recorder::launch`] with a choice of wgpu's injected runtime checks.
    pub fn launch_checked<P: bytemuck::Pod>(
        &mut self,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
        checks: RuntimeChecks,
        params: &P,
        bindings: &[(u32, Span)],
        work: Work,
    ) -> Result<()> {
        let max = self.gpu.limits().max_compute_workgroups_per_dimension;
        work.check(spec.name, max)?;
        if work.grid(max).is_none() {
            return Ok(());
        }
        let kernel = self.kernel(spec, constants, checks, work)?;
        let uniform = self.gpu.uniform(spec.name, params)?;
        let mut all = Vec::with_capacity(bindings.len() + 1);
        all.push((0, uniform.raw().into()));
        all.extend_from_slice(bindings);
        let bind = kernel.bind_spans(self.gpu, &all)?;
        self.dispatch(&kernel, &bind, work)
    }

    /// The pipeline for `spec`, with the workgroup size of `work` added to
    /// `constants`. `work` is checked against the grid's limits here too, so
    /// a kernel that dispatches through [`dispatch`](Self::dispatch) (its own
    /// bind group) is refused what [`launch`](Self::launch) refuses.
    pub fn kernel(
        &self,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
        checks: RuntimeChecks,
        work: Work,
    ) -> Result<std::sync::Arc<Kernel>> {
        let max = self.gpu.limits().max_compute_workgroups_per_dimension;
        work.check(spec.name, max)?;
        match work.workgroup_size() {
            Some(size) => {
                let mut all = Vec::with_capacity(constants.len() + 1);
                all.push(("WORKGROUP_SIZE", size as f64));
                all.extend_from_slice(constants);
                self.gpu.kernel_with_checks(spec, &all, checks)
            }
            None => self.gpu.kernel_with_checks(spec, constants, checks),
        }
    }

    /// Records one dispatch of a built kernel with a bind group of the
    /// caller's (texture bindings); nothing when `work` is empty. A grid
    /// past the per-dimension limit is refused here, whatever built the
    /// kernel, so no dispatch the call records can exceed it.
    pub fn dispatch(&mut self, kernel: &Kernel, bind: &wgpu::BindGroup, work: Work) -> Result<()> {
        let max = self.gpu.limits().max_compute_workgroups_per_dimension;
        work.check(kernel.name, max)?;
        let Some(grid) = work.grid(max) else {
            return Ok(());
        };
        self.commands.push(Command::Dispatch {
            pipeline: kernel.pipeline.clone(),
            bind: bind.clone(),
            grid,
        });
        Ok(())
    }

    /// Writes the commands into `encoder`, each run of dispatches in one pass.
    fn replay(mut self, encoder: &mut wgpu::CommandEncoder) {
        // Passes forget the encoder's borrow (wgpu checks at run time that
        // one ends before the next encoder command) so clears can interleave.
        let mut pass: Option<wgpu::ComputePass<'static>> = None;
        for command in std::mem::take(&mut self.commands) {
            match command {
                Command::Dispatch {
                    pipeline,
                    bind,
                    grid: (x, y),
                } => {
                    let pass = pass.get_or_insert_with(|| {
                        encoder
                            .begin_compute_pass(&wgpu::ComputePassDescriptor {
                                label: None,
                                timestamp_writes: None,
                            })
                            .forget_lifetime()
                    });
                    pass.set_pipeline(&pipeline);
                    pass.set_bind_group(0, &bind, &[]);
                    pass.dispatch_workgroups(x, y, 1);
                }
                Command::ClearBuffer {
                    buffer,
                    offset,
                    size,
                } => {
                    pass = None;
                    encoder.clear_buffer(&buffer, offset, size);
                }
                Command::CopyBufferToTexture {
                    buffer,
                    layout,
                    texture,
                    size,
                } => {
                    pass = None;
                    encoder.copy_buffer_to_texture(
                        wgpu::TexelCopyBufferInfo {
                            buffer: &buffer,
                            layout,
                        },
                        texture.as_image_copy(),
                        size,
                    );
                }
            }
        }
    }
}

impl Drop for Recorder<'_> {
    /// A failed call's commands drop here, some holding the last handle to a
    /// temporary (a bind group, a packed texture): on GL that drop is a wgpu
    /// call, so it takes a turn (`gl.rs`).
    fn drop(&mut self) {
        if !self.commands.is_empty() {
            let _turn = self.gpu.gl_turn();
            self.commands.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{record, Work};
    use crate::error::Error;
    use crate::gpu::test_gpus as gpus;
    use crate::kernels::buffer_copy;
    use crate::{Gpu, Tensor};

    /// Copies `src` into `a`, clears `src`, copies it into `b`: two dispatches
    /// a clear apart, so the replay must split the pass and keep the order.
    fn copy_clear_copy(gpu: &Gpu, fail: bool) -> (Result<(), Error>, [Vec<f32>; 3]) {
        let ones: Vec<f32> = (1..=64).map(|i| i as f32).collect();
        let src = Tensor::from_slice(gpu, &ones, &[64]).unwrap();
        let a = Tensor::from_slice(gpu, &[-1.0; 64], &[64]).unwrap();
        let b = Tensor::from_slice(gpu, &[-2.0; 64], &[64]).unwrap();
        let mut encoder = gpu.encoder("recorder test");
        let result = record(gpu, &mut encoder, |rec| {
            buffer_copy::record_with(rec, src.buffer(), a.buffer(), 256, 1)?;
            rec.clear_buffer(src.buffer(), 0, None);
            buffer_copy::record_with(rec, src.buffer(), b.buffer(), 256, 1)?;
            match fail {
                true => Err(Error::InvalidArgument {
                    name: "test",
                    reason: "fails after three commands".into(),
                }),
                false => Ok(()),
            }
        });
        // Submitted either way: a caller may submit an encoder after an error.
        gpu.submit_and_wait(encoder).unwrap();
        let read = [
            src.to_vec().unwrap(),
            a.to_vec().unwrap(),
            b.to_vec().unwrap(),
        ];
        (result, read)
    }

    #[test]
    fn a_failed_call_leaves_the_encoder_as_it_was() {
        for gpu in gpus() {
            let (result, [src, a, b]) = copy_clear_copy(&gpu, true);
            assert!(matches!(
                result,
                Err(Error::InvalidArgument { name: "test", .. })
            ));
            let ones: Vec<f32> = (1..=64).map(|i| i as f32).collect();
            assert_eq!(src, ones, "{}: the clear ran", gpu.describe());
            assert_eq!(a, vec![-1.0; 64], "{}: the first copy ran", gpu.describe());
            assert_eq!(b, vec![-2.0; 64], "{}: the second copy ran", gpu.describe());
        }
    }

    #[test]
    fn a_call_that_succeeds_replays_its_commands_in_order() {
        for gpu in gpus() {
            let (result, [src, a, b]) = copy_clear_copy(&gpu, false);
            result.unwrap();
            let ones: Vec<f32> = (1..=64).map(|i| i as f32).collect();
            assert_eq!(src, vec![0.0; 64], "{}", gpu.describe());
            assert_eq!(a, ones, "{}: the copy before the clear", gpu.describe());
            assert_eq!(
                b,
                vec![0.0; 64],
                "{}: the copy after the clear",
                gpu.describe()
            );
        }
    }

    /// A folded grid whose padding would carry invocation indices past
    /// 2^32 is refused: they would wrap onto real ones and run them twice.
    #[test]
    fn work_whose_folded_grid_wraps_the_invocation_index_is_refused() {
        let max = 65535;
        // 2^24 workgroups of 256 fold into 65535 × 257: 4 311 678 720 launched.
        assert!(Work::Invocations(1 << 32).check("t", max).is_err());
        // 65535 × 256 workgroups fold exactly: 4 294 901 760 launched.
        assert!(Work::Invocations(65535 * 256 * 256).check("t", max).is_ok());
        assert!(Work::Invocations(65535 * 256 * 256 + 1)
            .check("t", max)
            .is_err());
        let wide = Work::InvocationsIn {
            count: 1 << 31,
            workgroup_size: 1024,
        };
        assert!(
            wide.check("t", max).is_ok(),
            "2^21 groups: 65535 × 33 × 1024 < 2^32"
        );
        assert!(Work::Grid(max, max).check("t", max).is_ok());
        assert!(Work::Grid(max + 1, 1).check("t", max).is_err());
    }
}
