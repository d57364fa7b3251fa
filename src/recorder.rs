//! One way to dispatch. A kernel's `encode` states its parameters (the
//! uniform at binding 0), its other bindings and the work it needs; a
//! [`Recorder`] owns the rest: the pipeline lookup, the workgroup size, the
//! grid (folded into 2-D past `max_compute_workgroups_per_dimension`, which
//! the shaders undo with the prelude's `workgroup_index`) and the compute
//! pass. Every dispatch of one call goes into one pass: wgpu orders the
//! dispatches of a pass and makes each see the writes of the ones before,
//! so only copies and clears (encoder commands) end it.

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
    /// dispatch: past 2^32 invocations (a shader's invocation index is a
    /// u32, and would wrap) or a grid past the adapter's workgroups per
    /// dimension (a truncated height would leave work undone).
    fn check(self, kernel: &'static str, max_per_dim: u32) -> Result<()> {
        let max = max_per_dim.max(1) as u64;
        let fits = match self {
            Work::Invocations(n) | Work::InvocationsIn { count: n, .. } if n > 1 << 32 => false,
            Work::Grid(x, y) => x <= max_per_dim && y <= max_per_dim,
            _ => self.workgroups().unwrap_or(0).div_ceil(max) <= max,
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

/// Records the dispatches of one call into the caller's encoder, in one
/// compute pass; submits nothing. The pass ends when the recorder is dropped
/// or when [`Recorder::encoder`] is asked for.
pub(crate) struct Recorder<'a> {
    gpu: &'a Gpu,
    encoder: &'a mut wgpu::CommandEncoder,
    pass: Option<wgpu::ComputePass<'static>>,
}

impl<'a> Recorder<'a> {
    pub fn new(gpu: &'a Gpu, encoder: &'a mut wgpu::CommandEncoder) -> Recorder<'a> {
        Recorder {
            gpu,
            encoder,
            pass: None,
        }
    }

    pub fn gpu(&self) -> &'a Gpu {
        self.gpu
    }

    /// The encoder, for a copy or a clear between dispatches: ends the open
    /// pass (the next dispatch opens another).
    pub fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        self.pass = None;
        self.encoder
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
        self.dispatch(&kernel, &bind, work);
        Ok(())
    }

    /// The pipeline for `spec`, with the workgroup size of `work` added to `constants`.
    pub fn kernel(
        &self,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
        checks: RuntimeChecks,
        work: Work,
    ) -> Result<std::sync::Arc<Kernel>> {
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
    /// caller's (texture bindings); nothing when `work` is empty.
    pub fn dispatch(&mut self, kernel: &Kernel, bind: &wgpu::BindGroup, work: Work) {
        let max = self.gpu.limits().max_compute_workgroups_per_dimension;
        let Some((x, y)) = work.grid(max) else {
            return;
        };
        let pass = self.pass.get_or_insert_with(|| {
            self.encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes: None,
                })
                .forget_lifetime()
        });
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, bind, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }
}
