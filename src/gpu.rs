//! The GPU context: adapter selection, the device and queue, limits and
//! features, the pipeline cache, memory accounting and fault tracking.

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gl::{GlLock, GlTurn};
use crate::memory::{MemoryCounters, Pool, Scope, DEFAULT_CACHE_BYTES};
use crate::pipeline::PipelineCache;

/// Features we turn on whenever the adapter has them; every kernel works without them.
const WANTED_FEATURES: wgpu::Features = wgpu::Features::SHADER_FLOAT32_ATOMIC
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::SHADER_F16);

/// How to pick an adapter. `Default` honours `WGPU_BACKEND` and `WGPU_ADAPTER_NAME`.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Backends to search; `None` reads `WGPU_BACKEND`, else all.
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name; `None` reads `WGPU_ADAPTER_NAME`.
    pub adapter_name: Option<String>,
    /// Caps every storage binding at this many bytes (rounded down to a
    /// multiple of 4), below the adapter's `max_storage_buffer_binding_size`:
    /// tables, outputs, index lists and gradients past it are split exactly
    /// as on an adapter with that limit. `None`: the adapter's own limit.
    /// Tests use a small cap to run the split paths on small data.
    pub max_binding_bytes: Option<u64>,
    /// Caps the workgroups the library dispatches along one dimension,
    /// below the adapter's `max_compute_workgroups_per_dimension`: grids
    /// past it are folded or cut exactly as on an adapter with that limit
    /// (at least 1). `None`: the adapter's own limit. Tests use a small cap
    /// to run the folded paths on small data.
    pub max_workgroups_per_dimension: Option<u32>,
    /// How long a call waits for its submission before giving up with
    /// `Error::Timeout` (a GPU that hangs without being lost would otherwise
    /// block it forever). `None`: [`DEFAULT_WAIT_TIMEOUT`]. It bounds the
    /// wait for submitted work, not a GL call's wait for its turn behind
    /// another thread's ([`Gpu::gl_turn`]), nor a submit that runs the work
    /// itself (llvmpipe's). `Some(Duration::MAX)` waits without limit.
    pub wait_timeout: Option<std::time::Duration>,
    /// Caps the bytes the caching allocator keeps for reuse (dropped
    /// tensors' and temporaries' buffers); past it, the oldest go back to
    /// the driver. `Some(0)` turns the cache off. `None`:
    /// [`DEFAULT_CACHE_BYTES`] (1 GiB).
    pub cache_bytes: Option<u64>,
    /// Whether `exact_arith`'s ×, ÷ and √ try their checked common case
    /// (the hardware's own result, proven by an exact integer residual)
    /// before the general integer functions. The bits are the same either
    /// way; only the speed differs. `None`: on for GPUs, off for CPU
    /// adapters, which run both sides of a branch that differs between
    /// lanes (`shaders/exact_arith/ops.wgsl`). Tests force each.
    pub exact_checked: Option<bool>,
}

/// The default [`GpuOptions::wait_timeout`]: far past any one call of this
/// library on a working device (the slowest, a cold pipeline compile on a
/// CPU adapter, takes about a minute).
pub const DEFAULT_WAIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

impl GpuOptions {
    pub(crate) fn backends(&self) -> wgpu::Backends {
        self.backends
            .or_else(wgpu::Backends::from_env)
            .unwrap_or(wgpu::Backends::all())
    }
    fn adapter_name(&self) -> Option<String> {
        self.adapter_name
            .clone()
            .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
            .filter(|s| !s.is_empty())
            .map(|s| s.to_lowercase())
    }
}

/// A GPU device and queue with everything the kernels share. Cheap to clone
/// (an `Arc`); `Send + Sync`, so one `Gpu` serves many threads.
///
/// Across threads: the device, queue, pipeline cache (a mutex), memory
/// counters (atomics) and device-lost flag are shared, and every call that
/// takes `&self` (`Embedding::forward`, `backward`, `Tensor::to_vec`, …) may run
/// from several threads at once; each records its own encoder and waits on its
/// own submission. Calls that change a table take `&mut self`
/// (`Embedding::backward_sgd`, `sgd_step`, `uniform_`, `set_weight`): Rust's
/// borrow rules then keep a table from being read while it is updated; wrap
/// a shared layer in a `RwLock` to train it from several threads. Error scopes
/// are per thread in wgpu, so one thread's validation error is never reported
/// to another. One exception: `forward` with `max_norm` set renormalises rows
/// in place through `&self` (as PyTorch's forward does), so serialise it with
/// updates yourself. On GL, whose one context wgpu lets a thread wait for
/// only 6 s before it panics, the library's calls take turns at the device
/// ([`gl_turn`](Self::gl_turn)), so threads there wait instead.
///
/// Faults: every call checks the device-lost flag first and runs inside
/// validation and out-of-memory error scopes; what they catch is
/// `Error::Gpu` or `Error::OutOfDeviceMemory`, and once the device is lost (driver reset, or
/// `device().destroy()`) every call returns `Error::DeviceLost` instead of
/// waiting on a device that will never answer.
#[derive(Clone)]
pub struct Gpu {
    pub(crate) inner: Arc<GpuInner>,
}

pub(crate) struct GpuInner {
    /// Dropped by hand, in a turn (`Drop for GpuInner`).
    pub(crate) device: ManuallyDrop<wgpu::Device>,
    pub(crate) queue: ManuallyDrop<wgpu::Queue>,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    pub(crate) features: wgpu::Features,
    pub(crate) pipelines: PipelineCache,
    pub(crate) memory: Arc<MemoryCounters>,
    pub(crate) pool: Arc<Pool>,
    /// Whether calls take turns at wgpu (GL: `gl.rs`).
    pub(crate) gl: GlLock,
    /// The normal fill's constant table, made on first use (`Gpu::log2_table`).
    pub(crate) log2_table: std::sync::OnceLock<wgpu::Buffer>,
    /// Set by the device-lost callback; checked before every operation.
    lost: Arc<Mutex<Option<String>>>,
    // Unread in a page, which never blocks.
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    wait_timeout: std::time::Duration,
    /// [`GpuOptions::exact_checked`], resolved for this adapter.
    pub(crate) exact_checked: bool,
    pub(crate) id: u64,
    /// Layers initialised from a drawn seed so far (`Gpu::draw_seed`).
    seeds_drawn: AtomicU64,
}

impl Drop for GpuInner {
    /// What the `Gpu` owns goes back to wgpu in one turn (`gl.rs`); the
    /// pool, which its buffers share, does the same when its last user drops.
    fn drop(&mut self) {
        let _turn = self.gl.turn();
        self.pipelines = PipelineCache::default();
        self.log2_table.take();
        // SAFETY: each is dropped once, here, and `self` is not used after.
        unsafe {
            ManuallyDrop::drop(&mut self.queue);
            ManuallyDrop::drop(&mut self.device);
        }
    }
}

static NEXT_GPU_ID: AtomicU64 = AtomicU64::new(1);

fn rank(info: &wgpu::AdapterInfo) -> (u8, u8) {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    // At equal type, prefer the native compute APIs over GL.
    let backend = match info.backend {
        wgpu::Backend::Vulkan => 0,
        wgpu::Backend::Metal => 0,
        wgpu::Backend::Dx12 => 1,
        wgpu::Backend::Gl => 2,
        _ => 3,
    };
    (ty, backend)
}

fn describe(adapters: &[wgpu::Adapter]) -> String {
    if adapters.is_empty() {
        return "none".into();
    }
    adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?})", i.name, i.backend)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every adapter wgpu finds for `options`, best first, filtered by the name if one is set.
fn adapters(options: &GpuOptions) -> Result<Vec<wgpu::Adapter>> {
    let backends = options.backends();
    if backends.is_empty() {
        // wgpu reads an unknown WGPU_BACKEND value as "no backends"; say so.
        return Err(Error::InvalidArgument {
            name: "WGPU_BACKEND",
            reason: format!(
                "{:?} names no backend; use a comma-separated list of vulkan, metal, dx12, gl",
                std::env::var("WGPU_BACKEND").unwrap_or_default()
            ),
        });
    }
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    let instance = wgpu::Instance::new(desc);
    let mut found = pollster::block_on(instance.enumerate_adapters(backends));
    if found.is_empty() {
        return Err(Error::NoAdapter {
            backends: format!("{backends:?}"),
        });
    }
    found.sort_by_key(|a| rank(&a.get_info()));
    if let Some(wanted) = options.adapter_name() {
        let available = describe(&found);
        found.retain(|a| a.get_info().name.to_lowercase().contains(&wanted));
        if found.is_empty() {
            return Err(Error::AdapterNotFound { wanted, available });
        }
    }
    Ok(found)
}

impl Gpu {
    /// Opens the best adapter: discrete > integrated > virtual > CPU, honouring
    /// `WGPU_BACKEND` (e.g. `vulkan`, `gl`) and `WGPU_ADAPTER_NAME`.
    pub fn new() -> Result<Gpu> {
        Gpu::with_options(&GpuOptions::default())
    }

    /// Opens the best adapter that `options` allows.
    pub fn with_options(options: &GpuOptions) -> Result<Gpu> {
        let best = adapters(options)?
            .into_iter()
            .next()
            .expect("adapters() never returns an empty list");
        Gpu::open(&best, options)
    }

    /// Opens every adapter the machine has (tests and `wgpu-embed adapters` use this).
    /// An adapter that fails to open is returned as its error, not skipped.
    pub fn all(options: &GpuOptions) -> Result<Vec<Result<Gpu>>> {
        Ok(adapters(options)?
            .iter()
            .map(|a| Gpu::open(a, options))
            .collect())
    }

    /// Infos of every adapter, without opening devices.
    pub fn list_adapters(
        options: &GpuOptions,
    ) -> Result<Vec<(wgpu::AdapterInfo, wgpu::Limits, wgpu::Features)>> {
        Ok(adapters(options)?
            .iter()
            .map(|a| (a.get_info(), a.limits(), a.features()))
            .collect())
    }

    /// Opens a device on `adapter` with the adapter's own limits (not wgpu's
    /// conservative defaults: a 128 MiB binding would cap the table size) and
    /// the optional features we use where present.
    pub fn from_adapter(adapter: &wgpu::Adapter) -> Result<Gpu> {
        Gpu::open(adapter, &GpuOptions::default())
    }

    fn open(adapter: &wgpu::Adapter, options: &GpuOptions) -> Result<Gpu> {
        pollster::block_on(Gpu::open_async(adapter, options))
    }

    /// [`open`](Self::open) without blocking (a web page cannot block).
    pub(crate) async fn open_async(adapter: &wgpu::Adapter, options: &GpuOptions) -> Result<Gpu> {
        if let Some(bytes) = options.max_binding_bytes.filter(|&b| b < 4) {
            return Err(Error::InvalidArgument {
                name: "max_binding_bytes",
                reason: format!("a storage binding needs at least 4 bytes, got {bytes}"),
            });
        }
        if options.max_workgroups_per_dimension == Some(0) {
            return Err(Error::InvalidArgument {
                name: "max_workgroups_per_dimension",
                reason: "a dispatch needs at least 1 workgroup per dimension, got 0".into(),
            });
        }
        let info = adapter.get_info();
        let features = adapter.features() & WANTED_FEATURES;
        let desc = wgpu::DeviceDescriptor {
            label: Some("wgpu-embed"),
            required_features: features,
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            adapter
                .request_device(&desc)
                .await
                .map_err(|e| Error::RequestDevice {
                    adapter: info.name.clone(),
                    reason: e.to_string(),
                })?;
        // wgpu's default handler panics; ours records, and error scopes around
        // each of our calls turn the errors into values.
        device.on_uncaptured_error(Arc::new(|e| {
            eprintln!("wgpu-embed: uncaptured GPU error: {e}");
        }));
        Ok(Gpu::wrap(device, queue, info, options))
    }

    /// Wraps a device and queue the caller already owns (a renderer's, a
    /// trainer's). The library records into that device; it does not replace
    /// the caller's uncaptured-error handler. It does set the device's
    /// lost-device callback, of which wgpu keeps one per device: wrap a
    /// device once and clone the `Gpu` (a second `from_wgpu` of the same
    /// device, or a later `set_device_lost_callback`, leaves the first
    /// `Gpu` unaware of a loss).
    pub fn from_wgpu(device: wgpu::Device, queue: wgpu::Queue) -> Gpu {
        let info = device.adapter_info();
        Gpu::wrap(device, queue, info, &GpuOptions::default())
    }

    /// The `Gpu` of a device, with `options`' caps, timeout, cache and
    /// exact-arithmetic path (its adapter choice was made before).
    fn wrap(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        options: &GpuOptions,
    ) -> Gpu {
        let wait_timeout = options.wait_timeout.unwrap_or(DEFAULT_WAIT_TIMEOUT);
        let cache_bytes = options.cache_bytes.unwrap_or(DEFAULT_CACHE_BYTES);
        let lost = Arc::new(Mutex::new(None));
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = flag.lock().unwrap_or_else(|p| p.into_inner());
            *slot = Some(format!("{reason:?}: {message}"));
        });
        let mut limits = device.limits();
        if let Some(cap) = options.max_binding_bytes {
            limits.max_storage_buffer_binding_size =
                limits.max_storage_buffer_binding_size.min(cap / 4 * 4);
        }
        if let Some(cap) = options.max_workgroups_per_dimension {
            limits.max_compute_workgroups_per_dimension =
                limits.max_compute_workgroups_per_dimension.min(cap.max(1));
        }
        let features = device.features();
        let exact_checked = options
            .exact_checked
            .unwrap_or(info.device_type != wgpu::DeviceType::Cpu);
        let gl = GlLock::new(info.backend);
        Gpu {
            inner: Arc::new(GpuInner {
                device: ManuallyDrop::new(device),
                queue: ManuallyDrop::new(queue),
                info,
                limits,
                features,
                pipelines: PipelineCache::default(),
                memory: Arc::new(MemoryCounters::default()),
                pool: Arc::new(Pool::new(cache_bytes, gl)),
                gl,
                log2_table: std::sync::OnceLock::new(),
                lost,
                wait_timeout,
                exact_checked,
                id: NEXT_GPU_ID.fetch_add(1, Ordering::Relaxed),
                seeds_drawn: AtomicU64::new(0),
            }),
        }
    }

    /// The seed of a layer built without one: the k-th draw on this `Gpu`
    /// (its clones share the count) is
    /// [`DEFAULT_SEED`](crate::nn::DEFAULT_SEED) + k · 0x9E37_79B9_7F4A_7C15
    /// (wrapping). Like PyTorch's global generator, two layers differ and a
    /// program that builds its layers in the same order gets the same
    /// weights, on every adapter.
    pub(crate) fn draw_seed(&self) -> u64 {
        let k = self.inner.seeds_drawn.fetch_add(1, Ordering::Relaxed);
        crate::nn::DEFAULT_SEED.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// The wgpu device, to share with the caller's own work.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }
    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }
    /// Name, backend, device type, driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }
    /// The limits the device was opened with (`max_storage_buffer_binding_size`
    /// lowered to [`GpuOptions::max_binding_bytes`] and
    /// `max_compute_workgroups_per_dimension` to
    /// [`GpuOptions::max_workgroups_per_dimension`] when those are set).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.inner.limits
    }
    /// The features the device was opened with.
    pub fn features(&self) -> wgpu::Features {
        self.inner.features
    }
    /// Whether `atomicAdd` on `f32` storage is available (the opt-in gradient fast path).
    pub fn has_float_atomics(&self) -> bool {
        self.inner
            .features
            .contains(wgpu::Features::SHADER_FLOAT32_ATOMIC)
    }
    /// Whether GPU timestamps can be written around passes.
    pub fn has_timestamps(&self) -> bool {
        self.inner
            .features
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }
    /// The adapter's name (`llvmpipe (LLVM 15.0.6, 256 bits)`); a browser,
    /// which hides it, gets ``BrowserWebGpu adapter (unnamed)``.
    pub fn name(&self) -> String {
        match self.inner.info.name.as_str() {
            "" => format!("{:?} adapter (unnamed)", self.inner.info.backend),
            name => name.to_string(),
        }
    }
    /// One line naming the adapter: `llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan, Cpu]`.
    pub fn describe(&self) -> String {
        let i = &self.inner.info;
        format!("{} [{:?}, {:?}]", self.name(), i.backend, i.device_type)
    }
    /// Bytes the library's buffers hold now.
    pub fn memory_live(&self) -> u64 {
        self.inner.memory.live()
    }
    /// The most bytes the library's buffers held at once since creation or the last reset.
    pub fn memory_peak(&self) -> u64 {
        self.inner.memory.peak()
    }
    /// Restarts peak tracking from the bytes live now.
    pub fn reset_memory_peak(&self) {
        self.inner.memory.reset_peak()
    }
    /// Bytes the caching allocator holds for reuse: buffers of dropped
    /// tensors and temporaries, not counted in [`memory_live`](Self::memory_live).
    /// The driver's footprint is about `memory_live + memory_cached`.
    pub fn memory_cached(&self) -> u64 {
        self.inner.pool.cached()
    }
    /// Buffers the library has asked the driver for since this `Gpu` was
    /// opened; one taken from the cache is not counted. A loop whose shapes
    /// repeat stops adding to it after its first step.
    pub fn buffers_allocated(&self) -> u64 {
        self.inner.memory.created()
    }
    /// Returns every cached buffer to the driver (`memory_cached` drops to
    /// 0), as `torch.cuda.empty_cache` does. Live tensors are untouched.
    pub fn empty_cache(&self) {
        self.inner.pool.clear()
    }
    /// Marks work this thread records into an encoder the library submits
    /// itself (`memory/cache.rs`): buffers dropped meanwhile are reused
    /// only after the scope, and buffers touched meanwhile stay reusable.
    pub(crate) fn scope(&self) -> Scope {
        Scope::enter()
    }

    pub(crate) fn same(&self, other: &Gpu) -> bool {
        self.inner.id == other.inner.id
    }

    /// Fails with `DeviceLost` once the device is gone, so no call hangs on a
    /// dead device. Polls the device once (without blocking) so that a loss
    /// wgpu has not reported yet (`device.destroy()` reports on the next
    /// poll) is seen now.
    pub fn check_alive(&self) -> Result<()> {
        self.lost_flag()?;
        {
            let _turn = self.gl_turn();
            let _ = self.inner.device.poll(wgpu::PollType::Poll);
        }
        self.lost_flag()
    }

    /// Waits for this thread's turn at wgpu on GL, and holds it until the
    /// returned guard drops; at once, holding nothing, on the other
    /// backends. wgpu's GL backend panics when a thread waits more than 6 s
    /// for an adapter's GL context, which Mesa's llvmpipe holds through a
    /// whole dispatch or pipeline compile; the library's wgpu calls on GL
    /// (dropping what it owns included) take a turn first, so its threads
    /// wait instead, without limit ([`GpuOptions::wait_timeout`] starts once
    /// the work is submitted). One turn serves every GL `Gpu` in the process.
    ///
    /// A program that makes wgpu calls of its own on a GL device it shares
    /// with the library ([`from_wgpu`](Self::from_wgpu)), from several
    /// threads, takes a turn around them too, and around the last drop of a
    /// wgpu handle it holds. Library calls may run inside a turn; awaiting
    /// an `_async` call, or waiting on another thread that uses the
    /// library, inside one may deadlock.
    pub fn gl_turn(&self) -> GlTurn<'_> {
        self.inner.gl.turn()
    }

    /// Whether this thread holds a GL turn (see `gl.rs`).
    pub(crate) fn gl_held_here(&self) -> bool {
        self.inner.gl.held_here()
    }

    /// The device-lost flag alone: what every call checks first.
    pub(crate) fn lost_flag(&self) -> Result<()> {
        let slot = self.inner.lost.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some(reason) => Err(Error::DeviceLost {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Runs `f` inside out-of-memory, validation and internal error scopes
    /// and turns what they catch into `Error::OutOfDeviceMemory` or
    /// `Error::Gpu`.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn scoped<T>(
        &self,
        during: &'static str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        // The turn first: `f` (an encoder it owns) drops inside it even when
        // the device is lost (moved into a local declared after the turn,
        // so it drops first; a parameter would drop after it).
        let _turn = self.gl_turn();
        let f = f;
        self.lost_flag()?;
        let scopes = self.push_scopes();
        let out = f();
        self.caught(during, Self::pop_scopes(scopes).map(pollster::block_on))?;
        out
    }

    /// Out-of-memory, validation and internal error scopes, pushed in that
    /// order. Internal: a backend's own failure (a pipeline its compiler
    /// rejects: GLSL that does not link, MSL or HLSL it cannot generate);
    /// uncaught, it would panic in wgpu's default handler.
    fn push_scopes(&self) -> [wgpu::ErrorScopeGuard; 3] {
        let device = &self.inner.device;
        [
            wgpu::ErrorFilter::OutOfMemory,
            wgpu::ErrorFilter::Validation,
            wgpu::ErrorFilter::Internal,
        ]
        .map(|filter| device.push_error_scope(filter))
    }

    /// Pops [`push_scopes`](Self::push_scopes)' scopes, the last pushed
    /// first; what each caught, in push order.
    fn pop_scopes(
        [o, v, i]: [wgpu::ErrorScopeGuard; 3],
    ) -> [impl std::future::Future<Output = Option<wgpu::Error>>; 3] {
        let i = i.pop();
        let v = v.pop();
        [o.pop(), v, i]
    }

    /// What a call's error scopes caught (out of memory, validation,
    /// internal) as its error. Out of memory first: a failed allocation can
    /// bring validation errors about the invalid buffer after it, in the
    /// same scope.
    fn caught(&self, during: &'static str, [o, v, i]: [Option<wgpu::Error>; 3]) -> Result<()> {
        if let Some(e) = o {
            self.check_alive()?;
            return Err(Error::OutOfDeviceMemory {
                during,
                message: e.to_string(),
            });
        }
        if let Some(e) = v.or(i) {
            self.check_alive()?;
            return Err(Error::Gpu {
                during,
                message: e.to_string(),
            });
        }
        Ok(())
    }

    /// In a page, `f` inside error scopes whose pops are awaited (a page
    /// cannot block on them, but an async call can): how a readback learns
    /// that its copy was refused instead of mapping a stale staging buffer.
    #[cfg(target_arch = "wasm32")]
    pub(crate) async fn scoped_async<T>(
        &self,
        during: &'static str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.lost_flag()?;
        let scopes = self.push_scopes();
        let out = f();
        let [o, v, i] = Self::pop_scopes(scopes);
        let caught = [o.await, v.await, i.await];
        self.caught(during, caught)?;
        out
    }

    /// In a page, which cannot block on a scope's pop, `f` runs without
    /// scopes: its GPU errors reach the device's uncaptured-error handler
    /// (the browser's console).
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn scoped<T>(
        &self,
        _during: &'static str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let _turn = self.gl_turn();
        let f = f;
        self.lost_flag()?;
        f()
    }

    /// Submits `encoder` and blocks until the GPU has finished it.
    pub fn submit_and_wait(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        let index = self.submit(encoder)?;
        self.wait(index)
    }

    /// Submits `encoder`, behind the clears of cached buffers this thread's
    /// scope allocated as zeros (one submit for both).
    pub(crate) fn submit(&self, encoder: wgpu::CommandEncoder) -> Result<wgpu::SubmissionIndex> {
        self.scoped("submit", || {
            let clears = crate::memory::take_clears(self.inner.id);
            if clears.is_empty() {
                return Ok(self.inner.queue.submit([encoder.finish()]));
            }
            let mut first = self.encoder("cache clears");
            for buffer in &clears {
                first.clear_buffer(buffer, 0, None);
            }
            Ok(self.inner.queue.submit([first.finish(), encoder.finish()]))
        })
    }

    /// Blocks until submission `index` has finished.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn wait(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        let limit = self.inner.wait_timeout;
        crate::gl::poll_until(limit, |left| {
            // A turn per poll, not for the whole wait: on GL each poll
            // returns within about 2 s, and other threads' calls get their
            // turns in between.
            let _turn = self.gl_turn();
            self.inner.device.poll(wgpu::PollType::Wait {
                submission_index: Some(index.clone()),
                timeout: Some(left),
            })
        })
        .map_err(|e| match e {
            wgpu::PollError::Timeout => Error::Timeout {
                during: "wait for the GPU",
                seconds: limit.as_secs_f64(),
            },
            e => self.check_alive().err().unwrap_or(Error::Gpu {
                during: "wait for the GPU",
                message: e.to_string(),
            }),
        })?;
        self.lost_flag()
    }

    /// In a page nothing blocks: work runs in queue order, and what reads
    /// it back (the `_async` readbacks) waits for it.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn wait(&self, _index: wgpu::SubmissionIndex) -> Result<()> {
        self.lost_flag()
    }

    /// Resolves when submission `index` has finished, without blocking the
    /// caller: natively a helper thread waits (so a timeout or a lost device
    /// still ends it with an error); in a page the browser's event loop tells.
    pub(crate) async fn wait_async(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        // Blocking here: a caller inside `readback::block`, or one holding
        // a GL turn, which the helper thread below would wait for forever.
        if crate::readback::blocking() || self.gl_held_here() {
            return self.wait(index);
        }
        let (tx, rx) = futures_intrusive::channel::shared::oneshot_channel();
        #[cfg(not(target_arch = "wasm32"))]
        {
            let gpu = self.clone();
            std::thread::spawn(move || {
                let _ = tx.send(gpu.wait(index));
                // Its clone of the `Gpu` may be the last.
                gpu.inner.gl.drop_in_turn(gpu);
            });
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = index;
            self.inner.queue.on_submitted_work_done(move || {
                let _ = tx.send(Ok(()));
            });
        }
        match rx.receive().await {
            Some(done) => done.and_then(|()| self.lost_flag()),
            None => Err(self.check_alive().err().unwrap_or(Error::Gpu {
                during: "wait for the GPU",
                message: "the completion callback never ran".into(),
            })),
        }
    }

    /// Resolves when work in submission `index` is settled for the caller:
    /// natively when it has finished (so its errors surface in the call
    /// that made it); in a page at once, as later work and readbacks run
    /// after it in queue order.
    pub(crate) async fn settle(&self, index: wgpu::SubmissionIndex) -> Result<()> {
        if cfg!(target_arch = "wasm32") {
            return self.lost_flag();
        }
        self.wait_async(index).await
    }

    /// A command encoder on this device.
    pub fn encoder(&self, label: &str) -> wgpu::CommandEncoder {
        self.inner
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) })
    }

    /// Largest single storage binding, in bytes.
    pub fn max_binding_bytes(&self) -> u64 {
        self.inner.limits.max_storage_buffer_binding_size
    }
    /// Storage bindings at an offset must start at a multiple of this.
    pub fn storage_offset_alignment(&self) -> u64 {
        self.inner.limits.min_storage_buffer_offset_alignment.max(4) as u64
    }
    /// Largest single buffer, in bytes.
    pub fn max_buffer_bytes(&self) -> u64 {
        self.inner.limits.max_buffer_size
    }
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({})", self.describe())
    }
}

/// Every adapter, opened, for the crate's unit tests; none is a failure
/// that says how to get one (a skipped GPU test checks nothing).
#[cfg(test)]
pub(crate) fn test_gpus() -> Vec<Gpu> {
    let gpus: Vec<Gpu> = Gpu::all(&GpuOptions::default())
        .unwrap_or_else(|e| panic!("GPU tests need an adapter and found none: {e}"))
        .into_iter()
        .map(|g| g.unwrap_or_else(|e| panic!("an adapter failed to open: {e}")))
        .collect();
    assert!(
        !gpus.is_empty(),
        "no GPU adapter: install lavapipe with `apt-get update && apt-get install -y mesa-vulkan-drivers`"
    );
    gpus
}
