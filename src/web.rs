//! What a web page needs, which cannot block: opening a `Gpu` and the
//! RNG's fingerprint, as async calls (they work natively too). In a page,
//! calls record and submit without waiting (work runs in queue order),
//! GPU errors reach the console instead of error scopes, and results come
//! back through the `_async` readbacks; a blocking readback is an error.

use crate::cpu::uniform_init::{fnv1a_f32, DIGEST_SHAPE};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, GpuOptions};
use crate::kernels::uniform_init::{fill, Distribution};
use crate::tensor::Tensor;

impl Gpu {
    /// The best adapter, opened without blocking: in a web page, the
    /// browser's WebGPU adapter (the only way to open one there).
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

/// [`crate::kernels::uniform_init::digest`] without blocking: what a page
/// prints and compares with the native build's.
pub async fn rng_digest(gpu: &Gpu) -> Result<u64> {
    let [rows, cols] = DIGEST_SHAPE;
    let t = Tensor::zeros(gpu, &[rows, cols])?;
    fill(&t, 42, Distribution::Uniform { lo: -1.0, hi: 1.0 })?;
    Ok(fnv1a_f32(&t.to_vec_async().await?))
}
