//! Compute pipelines, built once per device and cached by (kernel variant,
//! entry point, runtime checks, override constants), with the bind-group
//! layout reflected from the shader (`shader.rs`). The layout is explicit
//! because a pipeline with `layout: None` would make wgpu derive one that
//! drops unused bindings, and bind groups could not be shared.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::binding::Span;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::shader::{composed, module_key, reflect, Bindings, ModuleKey};
pub(crate) use crate::shader::{Access, KernelSpec};

/// A built pipeline and the layout its bind groups must follow.
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    pub name: &'static str,
    bindings: Bindings,
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
    ModuleKey,
    &'static str,
    RuntimeChecks,
    Vec<(&'static str, u64)>,
);

#[derive(Default)]
pub(crate) struct PipelineCache {
    pipelines: Mutex<HashMap<Key, Arc<Kernel>>>,
    modules: Mutex<HashMap<(ModuleKey, RuntimeChecks), wgpu::ShaderModule>>,
}

impl PipelineCache {
    fn get(&self, key: &Key) -> Option<Arc<Kernel>> {
        let pipelines = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        pipelines.get(key).cloned()
    }
}

impl Gpu {
    /// The pipeline for `spec` with `constants` (WGSL `override`s) and a
    /// choice of wgpu's injected runtime checks, built on first use.
    pub(crate) fn kernel_with_checks(
        &self,
        spec: &KernelSpec,
        constants: &[(&'static str, f64)],
        checks: RuntimeChecks,
    ) -> Result<Arc<Kernel>> {
        let key: Key = (
            module_key(spec),
            spec.entry,
            checks,
            constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        );
        let cache = &self.inner.pipelines;
        if let Some(k) = cache.get(&key) {
            return Ok(k);
        }
        let bindings = reflect(spec)?;
        let source = composed(spec)?;
        let constants = &self.with_device_constants(&source, constants)[..];
        // The module in a scope of its own, kept only once it compiled: a
        // failed one cached would fail every later pipeline without its
        // WGSL diagnostics.
        let module_key = (module_key(spec), checks);
        let cached = cache
            .modules
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&module_key)
            .cloned();
        let module = match cached {
            Some(m) => m,
            None => {
                let module = self.scoped("shader module creation", || {
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(spec.name),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    };
                    Ok(match checks {
                        RuntimeChecks::Checked => self.device().create_shader_module(desc),
                        // SAFETY: `Unchecked` is only passed for shaders whose
                        // indexing is proven in range (see `RuntimeChecks`).
                        RuntimeChecks::Unchecked => unsafe {
                            self.device().create_shader_module_trusted(
                                desc,
                                wgpu::ShaderRuntimeChecks::unchecked(),
                            )
                        },
                    })
                })?;
                let mut modules = cache.modules.lock().unwrap_or_else(|p| p.into_inner());
                match modules.entry(module_key) {
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(module).clone(),
                    // Another thread compiled it meanwhile: keep one.
                    std::collections::hash_map::Entry::Occupied(e) => {
                        let kept = e.get().clone();
                        drop(modules);
                        self.inner.gl.drop_in_turn(module);
                        kept
                    }
                }
            }
        };
        let kernel = self.scoped("pipeline creation", || {
            // On GL a thread that missed the cache may have waited its turn
            // behind another building this same pipeline.
            if let Some(k) = cache.get(&key) {
                return Ok(k);
            }
            let device = self.device();
            let entries: Vec<wgpu::BindGroupLayoutEntry> = bindings
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
                bindings: bindings.clone(),
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

/// The override that chooses exact_arith's path (`shaders/exact_arith/ops.wgsl`).
pub(crate) const EXACT_CHECKED: &str = "EXACT_CHECKED";

impl Gpu {
    /// `constants` plus the overrides the device decides, for a module that
    /// declares them and a caller that did not set them: whether
    /// exact_arith tries its checked common case ([`crate::GpuOptions::exact_checked`];
    /// by default off on a CPU rasterizer, which runs both sides of a branch
    /// that differs between lanes, so there it only adds work: on lavapipe
    /// the fused Adam step took 1.16× as long with it always on, 3d3ae8b,
    /// `scripts/api-ab.sh train 6429e85 3d3ae8b`). The bits are the same
    /// either way. Part of no cache key: it is a function of the device
    /// and the module.
    fn with_device_constants(
        &self,
        source: &str,
        constants: &[(&'static str, f64)],
    ) -> Vec<(&'static str, f64)> {
        let mut all = constants.to_vec();
        let declared = source.contains(&format!("override {EXACT_CHECKED}:"));
        if declared && !constants.iter().any(|(k, _)| *k == EXACT_CHECKED) {
            let checked = self.inner.exact_checked;
            all.push((EXACT_CHECKED, if checked { 1.0 } else { 0.0 }));
        }
        all
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
        Access::Texture { view_dimension } => wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Float { filterable: false },
            view_dimension,
            multisampled: false,
        },
        Access::StorageTexture {
            format,
            access,
            view_dimension,
        } => wgpu::BindingType::StorageTexture {
            access,
            format,
            view_dimension,
        },
    }
}

impl Kernel {
    /// Whether this entry point uses `binding`. A kernel family's host code
    /// passes the bindings of the whole family; an entry point that does not
    /// use one has no slot for it in its (reflected) layout, so it is dropped.
    fn uses(&self, binding: u32) -> bool {
        self.bindings.iter().any(|&(b, _)| b == binding)
    }

    /// A bind group from any resources (buffers and texture views).
    pub(crate) fn bind_resources(
        &self,
        gpu: &Gpu,
        entries: &[wgpu::BindGroupEntry],
    ) -> Result<wgpu::BindGroup> {
        let entries: Vec<wgpu::BindGroupEntry> = entries
            .iter()
            .filter(|e| self.uses(e.binding))
            .cloned()
            .collect();
        self.create(gpu, &entries)
    }

    /// The bind group, inside an error scope: a resource wgpu rejects (a
    /// buffer of another device, one without STORAGE usage) is an
    /// `Error::Gpu`, never the device's uncaptured-error handler (which
    /// panics on a device the caller made).
    fn create(&self, gpu: &Gpu, entries: &[wgpu::BindGroupEntry]) -> Result<wgpu::BindGroup> {
        gpu.scoped("bind group creation", || {
            Ok(gpu.device().create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(self.name),
                layout: &self.layout,
                entries,
            }))
        })
    }

    /// A bind group from whole buffers.
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
        // wgpu refuses a buffer bound both read-only and read-write in one
        // dispatch, but only when the encoder is finished: the caller's
        // whole encoder would be lost. Refuse it here, naming the kernel.
        let access = |binding: u32| {
            self.bindings
                .iter()
                .find(|&&(b, _)| b == binding)
                .map(|&(_, a)| a)
        };
        for (i, &(bi, si)) in spans.iter().enumerate() {
            for &(bj, sj) in &spans[i + 1..] {
                let pair = (access(bi), access(bj));
                let conflict = matches!(
                    pair,
                    (Some(Access::Read), Some(Access::ReadWrite))
                        | (Some(Access::ReadWrite), Some(Access::Read))
                );
                if conflict && si.buffer == sj.buffer {
                    return Err(Error::InvalidArgument {
                        name: "buffers",
                        reason: format!(
                            "{}: one buffer is bound both as an input (binding {}) and as an \
                             output (binding {}) of one dispatch; pass distinct buffers",
                            self.name,
                            if pair.0 == Some(Access::Read) { bi } else { bj },
                            if pair.0 == Some(Access::Read) { bj } else { bi },
                        ),
                    });
                }
            }
        }
        for &(binding, span) in spans {
            let storage = self
                .bindings
                .iter()
                .any(|&(b, access)| b == binding && access != Access::Uniform);
            // A span a caller built by hand that wgpu would refuse: a typed
            // error naming the kernel, not wgpu's validation.
            if storage {
                crate::binding::check_span(gpu, self.name, &span)?;
            }
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
            .filter(|&&(binding, _)| self.uses(binding))
            .map(|&(binding, span)| wgpu::BindGroupEntry {
                binding,
                resource: span.binding(),
            })
            .collect();
        self.create(gpu, &entries)
    }
}
