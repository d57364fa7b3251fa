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

/// The turn of one GPU test body in this test binary (see [`each_gpu`]).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` once per adapter, naming the adapter if it panics. Bodies run one
/// at a time across the test binary's threads: wgpu's GL backend panics
/// ("Could not lock adapter context") when two threads hold its adapter long.
pub fn each_gpu(mut f: impl FnMut(&Gpu)) {
    let _turn = serial();
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
