//! Shared by every integration test: every adapter the machine has, opened
//! once. No adapter is a failure that says how to get one, never a skip.
#![allow(dead_code)]

use std::sync::OnceLock;

use wgpu_embed::{cpu, BagMode, Gpu, GpuOptions};

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
            "no GPU adapter: install lavapipe with `apt-get update && apt-get install -y mesa-vulkan-drivers`"
        );
        gpus.iter().for_each(panic_on_escaped_errors);
        gpus
    })
}

/// Replaces the library's handler for errors outside its error scopes with
/// one that panics, as wgpu's default does on a device a caller made and
/// shares with `Gpu::from_wgpu`: a GPU error that escapes a call then fails
/// the test that made it, instead of a line on stderr.
pub fn panic_on_escaped_errors(gpu: &Gpu) {
    gpu.device().on_uncaptured_error(std::sync::Arc::new(|e| {
        panic!("a GPU error escaped wgpu-embed's error scopes: {e}")
    }));
}

/// One test at a time on the GPUs of a test binary: the adapters are shared,
/// and tests that count a `Gpu`'s bytes and buffers must not see another
/// test's. On a 2-core machine it costs little. (Threads sharing a `Gpu`
/// are tested on purpose in `scale.rs`.)
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs `f` once per adapter, naming the adapter if it panics.
pub fn each_gpu(f: impl FnMut(&Gpu)) {
    run_on(gpus(), "", f);
}

/// Runs `f` on each of `gpus`, one test at a time, naming the adapter (and
/// `how` it was opened) if it panics.
fn run_on(gpus: &[Gpu], how: &str, mut f: impl FnMut(&Gpu)) {
    let _serial = serial();
    for gpu in gpus {
        let name = gpu.describe();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(gpu)));
        if let Err(e) = result {
            eprintln!("failed on adapter {name}{how}");
            std::panic::resume_unwind(e);
        }
    }
}

/// A deterministic table whose every value is distinct and exactly
/// representable: halves from -1000 for the first 2^24 elements, then
/// distinct floats at or below -2048 (bit patterns counting up), so an
/// element read from 2^24 places away never matches.
pub fn table(rows: usize, dim: usize) -> Vec<f32> {
    (0..rows * dim)
        .map(|i| match i.checked_sub(1 << 24) {
            None => i as f32 * 0.5 - 1000.0,
            Some(j) => f32::from_bits(0xC500_0000 + j as u32),
        })
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

/// The storage-binding cap of [`capped_gpus`]: 16 KiB, so a few thousand
/// floats already span several bindings, while one tile of the sorted
/// gradient (256 rows of up to 16 floats) still fits one.
pub const CAPPED_BINDING: u64 = 16 * 1024;

/// Every adapter opened a second time with each storage binding capped at
/// [`CAPPED_BINDING`] bytes (`GpuOptions::max_binding_bytes`): tables,
/// outputs, index lists and gradients are split exactly as they would be past
/// a real binding, on data small enough for the CPU twins.
pub fn capped_gpus() -> &'static [Gpu] {
    static GPUS: OnceLock<Vec<Gpu>> = OnceLock::new();
    GPUS.get_or_init(|| {
        gpus()
            .iter()
            .map(|shared| {
                let gpu = reopen_capped(shared, CAPPED_BINDING);
                assert_eq!(gpu.max_binding_bytes(), CAPPED_BINDING);
                gpu
            })
            .collect()
    })
}

/// `shared`'s adapter opened again with every storage binding capped at
/// `cap` bytes, errors escaping the library's scopes panicking.
fn reopen_capped(shared: &Gpu, cap: u64) -> Gpu {
    reopen(shared, |o| o.max_binding_bytes = Some(cap))
}

/// `shared`'s adapter opened again with options `tweak` sets, errors
/// escaping the library's scopes panicking.
pub fn reopen(shared: &Gpu, tweak: impl FnOnce(&mut GpuOptions)) -> Gpu {
    let info = shared.adapter_info();
    let mut options = GpuOptions {
        backends: Some(info.backend.into()),
        adapter_name: Some(info.name.clone()),
        ..Default::default()
    };
    tweak(&mut options);
    let gpu = Gpu::with_options(&options)
        .unwrap_or_else(|e| panic!("{} failed to open again: {e}", info.name));
    panic_on_escaped_errors(&gpu);
    gpu
}

/// lavapipe's real storage binding, 128 MiB: what the 300 MB tests cross.
pub const REAL_BINDING: u64 = 128 << 20;

/// Every Vulkan adapter, with bindings of at most [`REAL_BINDING`]:
/// lavapipe as it is, and an adapter that binds more (SwiftShader binds
/// 1 GiB) opened again with that cap, so a 300 MB table is split on every
/// one of them. Fails when there is no Vulkan adapter.
pub fn each_vulkan_gpu_binding_128_mib(f: impl FnMut(&Gpu)) {
    static GPUS: OnceLock<Vec<Gpu>> = OnceLock::new();
    let gpus = GPUS.get_or_init(|| {
        let vulkan: Vec<Gpu> = gpus()
            .iter()
            .filter(|g| g.adapter_info().backend == wgpu::Backend::Vulkan)
            .map(|shared| {
                if shared.max_binding_bytes() <= REAL_BINDING {
                    return shared.clone();
                }
                reopen_capped(shared, REAL_BINDING)
            })
            .collect();
        assert!(
            !vulkan.is_empty(),
            "this test needs lavapipe (Vulkan): apt-get update && apt-get install -y mesa-vulkan-drivers"
        );
        vulkan
    });
    let how = format!(" (bindings of at most {REAL_BINDING} bytes)");
    run_on(gpus, &how, f);
}

/// [`each_gpu`] on [`capped_gpus`].
pub fn each_capped_gpu(f: impl FnMut(&Gpu)) {
    let how = format!(" (bindings capped at {CAPPED_BINDING} bytes)");
    run_on(capped_gpus(), &how, f);
}

/// SplitMix64: test data from a seed, identical everywhere.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// An f64 in [0, 1) with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// A float in [-2, 2) with a full mantissa, so sums round.
    pub fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
    }
    pub fn floats(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.float()).collect()
    }
    /// Multiples of 1/64 in [-8, 8): sums of a few stay exact.
    pub fn grad(&mut self) -> f32 {
        (self.below(1024) as f32 - 512.0) / 64.0
    }
    /// `n` row ids of a `rows`-row table: a third on `hot` (its segment
    /// crosses the sorted gradient's 256-entry tiles when `n` is large), the
    /// rest uniform.
    pub fn ids(&mut self, n: usize, rows: usize, hot: usize) -> Vec<u32> {
        (0..n)
            .map(|_| {
                if self.below(3) == 0 {
                    hot as u32
                } else {
                    self.below(rows) as u32
                }
            })
            .collect()
    }
    /// Zipf-ish ids: row 0 about a third of the time, then 1, 2, ... thinning out.
    pub fn zipf(&mut self, rows: usize) -> u32 {
        let mut r = 0;
        while r + 1 < rows && self.below(3) != 0 {
            r += 1 + self.below(2);
        }
        r.min(rows - 1) as u32
    }
}

/// Rows either side of every chunk boundary of `row_starts` (its last entry
/// is the row count), and the first and last row.
pub fn boundary_rows(row_starts: &[usize]) -> Vec<u32> {
    let rows = row_starts[row_starts.len() - 1];
    let mut out = vec![0, rows as u32 - 1];
    for &b in &row_starts[1..row_starts.len() - 1] {
        out.extend([b as u32 - 1, b as u32]);
    }
    out
}

/// `|got - want| <= tol · max(1, max |want|)` elementwise, naming the first miss.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
    if let Some(i) = (0..got.len()).find(|&i| (got[i] - want[i]).abs() > tol * scale) {
        panic!("{what}: element {i}: got {} want {}", got[i], want[i]);
    }
}

/// `cpu::embedding_bag` over `table` (`[rows, dim]`): the pooled
/// `[bags, dim]` output and the winning positions (`csr` has one more entry
/// than there are bags), checking that it saw no bad index.
#[allow(clippy::too_many_arguments)]
pub fn bag_twin(
    mode: BagMode,
    rows: usize,
    dim: usize,
    padding: Option<usize>,
    table: &[f32],
    idx: &[u32],
    csr: &[u32],
    psw: Option<&[f32]>,
) -> (Vec<f32>, Vec<u32>) {
    let (out, pos, status) = bag_twin_status(mode, rows, dim, padding, table, idx, csr, psw);
    assert_eq!(status, u32::MAX, "the twin saw a bad index");
    (out, pos)
}

/// [`bag_twin`] that returns the twin's status word (the first bad
/// position, or `STATUS_OK`) instead of checking it.
#[allow(clippy::too_many_arguments)]
pub fn bag_twin_status(
    mode: BagMode,
    rows: usize,
    dim: usize,
    padding: Option<usize>,
    table: &[f32],
    idx: &[u32],
    csr: &[u32],
    psw: Option<&[f32]>,
) -> (Vec<f32>, Vec<u32>, u32) {
    let bags = csr.len() - 1;
    let mut out = vec![0.0; bags * dim];
    let mut pos = vec![0; bags * dim];
    let mut status = u32::MAX;
    cpu::embedding_bag(
        mode,
        rows,
        dim,
        padding,
        idx,
        csr,
        psw,
        &mut status,
        &mut pos,
        table,
        &mut out,
    );
    (out, pos, status)
}
