//! Shared by every integration test: every adapter the machine has, opened
//! once. No adapter is a failure that says how to get one, never a skip.
#![allow(dead_code)]

use std::sync::OnceLock;

use wgpu_embed::{Gpu, GpuOptions};

/// Every adapter of the machine (lavapipe and llvmpipe-GL here and in CI).
pub fn gpus() -> &'static [Gpu] {
    static GPUS: OnceLock<Vec<Gpu>> = OnceLock::new();
    GPUS.get_or_init(|| {
        let all = Gpu::all(&GpuOptions::default())
            .unwrap_or_else(|e| panic!("GPU tests need an adapter and found none: {e}"));
        let gpus: Vec<Gpu> = all
            .into_iter()
            .map(|g| g.unwrap_or_else(|e| panic!("an adapter failed to open: {e}")))
            .collect();
        assert!(
            !gpus.is_empty(),
            "no GPU adapter: install lavapipe with `apt-get install -y mesa-vulkan-drivers`"
        );
        gpus
    })
}

/// One test at a time on the GPUs of a test binary. wgpu's GL backend holds
/// one context lock per adapter and panics ("Could not lock adapter context")
/// when another thread holds it for long; serialising the tests avoids that,
/// and on a 2-core machine costs little.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` once per adapter, naming the adapter if it panics.
pub fn each_gpu(mut f: impl FnMut(&Gpu)) {
    let _serial = serial();
    for gpu in gpus() {
        let name = gpu.describe();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(gpu)));
        if let Err(e) = result {
            eprintln!("failed on adapter {name}");
            std::panic::resume_unwind(e);
        }
    }
}

/// A deterministic table whose every value is distinct and exactly representable.
pub fn table(rows: usize, dim: usize) -> Vec<f32> {
    (0..rows * dim)
        .map(|i| (i % 16_777_216) as f32 * 0.5 - 1000.0)
        .collect()
}

/// Bitwise equality of two float slices, reporting the first difference.
pub fn assert_bits_eq(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: element {i} differs: got {} want {}",
            got[i], want[i]
        );
    }
}

/// Deterministic values in [-1, 1) from a 64-bit LCG.
pub fn data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// ‖got − want‖_F / ‖want‖_F, in f64.
pub fn relative_error(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w as f64).powi(2))
        .sum();
    let norm: f64 = want.iter().map(|&w| (w as f64).powi(2)).sum();
    (diff / norm.max(f64::MIN_POSITIVE)).sqrt()
}
