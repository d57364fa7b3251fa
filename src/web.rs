//! What a web page needs, which cannot block: opening a `Gpu` as an async
//! call (it works natively too; the RNG's fingerprint is
//! `kernels::uniform_init::digest_async`). In a page,
//! calls record and submit without waiting (work runs in queue order),
//! GPU errors reach the console instead of error scopes, and results come
//! back through the `_async` readbacks; a blocking readback is an error.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuOptions};

impl Gpu {
    /// An adapter opened without blocking: in a web page, the browser's
    /// WebGPU adapter (the only way to open one there). Natively it is the
    /// one wgpu's `request_adapter` picks for high performance, from
    /// `WGPU_BACKEND`'s backends; [`Gpu::new`] ranks every adapter and
    /// honours `WGPU_ADAPTER_NAME` as well.
    pub async fn new_async() -> Result<Gpu> {
        let options = GpuOptions::default();
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        desc.backends = if cfg!(target_arch = "wasm32") {
            wgpu::Backends::BROWSER_WEBGPU
        } else {
            options.backends()
        };
        let backends = desc.backends;
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|_| Error::NoAdapter {
                backends: format!("{backends:?}"),
            })?;
        Gpu::open_async(&adapter, &options).await
    }
}
