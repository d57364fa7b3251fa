//! Compute pipelines, built once per device and cached by (kernel, entry
//! point, override constants), with explicit bind-group layouts: a pipeline
//! with `layout: None` drops bindings the entry point does not use, and a bind
//! group naming them then fails validation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::binding::Span;
use crate::error::{Error, Result};
use crate::gpu::Gpu;

/// How a kernel sees one binding.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Access {
    Uniform,
    Read,
    ReadWrite,
    /// `texture_2d<f32>` read with `textureLoad` (no sampler, so not filterable).
    Texture,
    /// `texture_storage_2d<rgba32float, write>`.
    StorageTextureRgba32Float,
}

/// A kernel entry point: the WGSL file (by kernel name) and its bindings in order.
pub(crate) struct KernelSpec {
    /// The kernel's one name: `shaders/<name>.wgsl`, `src/kernels/<name>.rs`, `src/cpu/<name>.rs`.
    pub name: &'static str,
    pub source: &'static str,
    pub entry: &'static str,
    /// `(binding, access)` for group 0.
    pub bindings: &'static [(u32, Access)],
}

/// A built pipeline and the layout its bind groups must follow.
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    name: &'static str,
    bindings: &'static [(u32, Access)],
}

/// Whether wgpu injects its runtime checks (index clamping, loop bounding)
/// into a shader module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum RuntimeChecks {
    /// wgpu's defaults: every index clamped, every loop bounded. For every
    /// kernel whose indices come from data.
    Checked,
    /// No injected checks. Only for shaders whose every storage index is
    /// guarded by an explicit comparison against sizes the host validated, and
    /// whose every workgroup-array index is in range by construction; the
    /// kernel's host module says why.
    Unchecked,
}

type Key = (
    &'static str,
    &'static str,
    RuntimeChecks,
    Vec<(&'static str, u64)>,
);

#[derive(Default)]
pub(crate) struct PipelineCache {
    pipelines: Mutex<HashMap<Key, Arc<Kernel>>>,
    modules: Mutex<HashMap<(&'static str, RuntimeChecks), wgpu::ShaderModule>>,
}

impl Gpu {
    /// The pipeline for `spec` with `constants` (WGSL `override`s), built on first use.
    pub(crate) fn kernel(
        &self,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
    ) -> Result<Arc<Kernel>> {
        self.kernel_with_checks(spec, constants, RuntimeChecks::Checked)
    }

    /// [`Gpu::kernel`] with a choice of wgpu's injected runtime checks.
    pub(crate) fn kernel_with_checks(
        &self,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
        checks: RuntimeChecks,
    ) -> Result<Arc<Kernel>> {
        let key: Key = (
            spec.name,
            spec.entry,
            checks,
            constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        );
        let cache = &self.inner.pipelines;
        if let Some(k) = cache
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(k.clone());
        }
        let kernel = self.scoped("pipeline creation", || {
            let device = self.device();
            let module = {
                let mut modules = cache.modules.lock().unwrap_or_else(|p| p.into_inner());
                modules
                    .entry((spec.name, checks))
                    .or_insert_with(|| {
                        let desc = wgpu::ShaderModuleDescriptor {
                            label: Some(spec.name),
                            source: wgpu::ShaderSource::Wgsl(spec.source.into()),
                        };
                        match checks {
                            RuntimeChecks::Checked => device.create_shader_module(desc),
                            // SAFETY: `Unchecked` is only passed for shaders whose
                            // indexing is proven in range (see `RuntimeChecks`).
                            RuntimeChecks::Unchecked => unsafe {
                                device.create_shader_module_trusted(
                                    desc,
                                    wgpu::ShaderRuntimeChecks::unchecked(),
                                )
                            },
                        }
                    })
                    .clone()
            };
            let entries: Vec<wgpu::BindGroupLayoutEntry> = spec
                .bindings
                .iter()
                .map(|&(binding, access)| wgpu::BindGroupLayoutEntry {
                    binding,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: binding_type(access),
                    count: None,
                })
                .collect();
            let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(spec.name),
                entries: &entries,
            });
            let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(spec.name),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
            let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(spec.name),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(spec.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: true,
                },
                cache: None,
            });
            Ok(Arc::new(Kernel {
                pipeline,
                layout,
                name: spec.name,
                bindings: spec.bindings,
            }))
        })?;
        cache
            .pipelines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, kernel.clone());
        Ok(kernel)
    }
}

fn binding_type(access: Access) -> wgpu::BindingType {
    let buffer = |ty| wgpu::BindingType::Buffer {
        ty,
        has_dynamic_offset: false,
        min_binding_size: None,
    };
    match access {
        Access::Uniform => buffer(wgpu::BufferBindingType::Uniform),
        Access::Read => buffer(wgpu::BufferBindingType::Storage { read_only: true }),
        Access::ReadWrite => buffer(wgpu::BufferBindingType::Storage { read_only: false }),
        Access::Texture => wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        Access::StorageTextureRgba32Float => wgpu::BindingType::StorageTexture {
            access: wgpu::StorageTextureAccess::WriteOnly,
            format: wgpu::TextureFormat::Rgba32Float,
            view_dimension: wgpu::TextureViewDimension::D2,
        },
    }
}

impl Kernel {
    /// A bind group from any resources (buffers and texture views).
    pub(crate) fn bind_resources(
        &self,
        gpu: &Gpu,
        entries: &[wgpu::BindGroupEntry],
    ) -> wgpu::BindGroup {
        gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &self.layout,
            entries,
        })
    }

    /// A bind group from whole buffers, in the order of the spec's bindings.
    pub(crate) fn bind(
        &self,
        gpu: &Gpu,
        buffers: &[(u32, &wgpu::Buffer)],
    ) -> Result<wgpu::BindGroup> {
        let spans: Vec<(u32, Span)> = buffers.iter().map(|&(b, buf)| (b, buf.into())).collect();
        self.bind_spans(gpu, &spans)
    }

    /// A bind group from byte ranges of buffers. A storage span past
    /// `max_storage_buffer_binding_size` is `TooLarge` naming the kernel: the
    /// callers that can split their work into windows (see `binding.rs`) do so
    /// before they get here.
    pub(crate) fn bind_spans(&self, gpu: &Gpu, spans: &[(u32, Span)]) -> Result<wgpu::BindGroup> {
        let limit = gpu.max_binding_bytes();
        for &(binding, span) in spans {
            let storage = self
                .bindings
                .iter()
                .any(|&(b, access)| b == binding && !matches!(access, Access::Uniform));
            if storage && span.size > limit {
                return Err(Error::TooLarge {
                    what: self.name,
                    bytes: span.size,
                    limit,
                    limit_name: "max_storage_buffer_binding_size (one binding)",
                });
            }
        }
        let entries: Vec<wgpu::BindGroupEntry> = spans
            .iter()
            .map(|&(binding, span)| wgpu::BindGroupEntry {
                binding,
                resource: span.binding(),
            })
            .collect();
        Ok(gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(self.name),
            layout: &self.layout,
            entries: &entries,
        }))
    }

    /// Records one dispatch of `workgroups` workgroups in a pass of its own.
    /// Past `max_compute_workgroups_per_dimension` the grid folds into 2-D;
    /// shaders recover the linear workgroup index with [`crate::kernels::linear_workgroup`]'s rule.
    pub(crate) fn dispatch(
        &self,
        gpu: &Gpu,
        encoder: &mut wgpu::CommandEncoder,
        bind: &wgpu::BindGroup,
        workgroups: u64,
    ) {
        if workgroups == 0 {
            return;
        }
        let (x, y) = grid(
            workgroups,
            gpu.limits().max_compute_workgroups_per_dimension,
        );
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, bind, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }

    /// Records one dispatch of an `x × y` grid of workgroups in a pass of its
    /// own (2-D tiled kernels); the caller checks both against
    /// `max_compute_workgroups_per_dimension`.
    pub(crate) fn dispatch_xy(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        bind: &wgpu::BindGroup,
        x: u32,
        y: u32,
    ) {
        if x == 0 || y == 0 {
            return;
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, bind, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }
}

/// A 2-D grid covering `workgroups`: x as wide as allowed, y the rows needed.
pub(crate) fn grid(workgroups: u64, max_per_dim: u32) -> (u32, u32) {
    let max = max_per_dim.max(1) as u64;
    if workgroups <= max {
        (workgroups as u32, 1)
    } else {
        (max as u32, workgroups.div_ceil(max) as u32)
    }
}
