//! Matmul throughput beside the adapter's FMA peak, in one run, on the
//! default adapter (`WGPU_BACKEND` / `WGPU_ADAPTER_NAME` pick another).
//!
//! Timing is wall clock around submit-and-wait of one dispatch per
//! iteration (criterion's `iter_custom`); on lavapipe that is CPU time of
//! the rasterizer's threads, not GPU time. Throughput is 2·M·N·K FLOP per
//! product (criterion prints it as "elem/s": read it as FLOP/s), and the
//! FMA-peak group prints the same unit, so percent of peak is the ratio of
//! the two lines. A summary table with the ratio is printed at the end.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgpu_embed::kernels::fma_peak;
use wgpu_embed::kernels::matmul::{self, MatmulArgs, MatmulOptions};
use wgpu_embed::{Gpu, Tensor};

const SHAPES: &[(&str, usize, usize, usize)] = &[
    ("256^3", 256, 256, 256),
    ("512^3", 512, 512, 512),
    ("1024^3", 1024, 1024, 1024),
    ("linear M4096 K512 N512", 4096, 512, 512),
];

fn time_matmul(gpu: &Gpu, args: &MatmulArgs, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut encoder = gpu.encoder("bench matmul");
        matmul::encode(gpu, &mut encoder, args).expect("matmul encode");
        let start = Instant::now();
        gpu.submit_and_wait(encoder).expect("matmul submit");
        total += start.elapsed();
    }
    total
}

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new().expect("the benchmark needs an adapter");
    eprintln!("adapter: {} (timed around submit-and-wait)", gpu.describe());
    let tiles = matmul::tiles_for(&gpu);
    eprintln!("matmul tiles: {tiles:?}");
    let mut summary = Vec::new();

    let shape = fma_peak::default_shape(&gpu);
    let out = fma_peak::output(&gpu, shape).expect("fma_peak buffer");
    let mut group = c.benchmark_group("fma_peak");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(shape.flops()));
    let mut best_peak = 0.0f64;
    group.bench_function("register FMAs", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut encoder = gpu.encoder("bench fma_peak");
                fma_peak::encode(&gpu, &mut encoder, out.raw(), shape).expect("fma_peak encode");
                let start = Instant::now();
                gpu.submit_and_wait(encoder).expect("fma_peak submit");
                let t = start.elapsed();
                best_peak = best_peak.max(shape.flops() as f64 / t.as_secs_f64());
                total += t;
            }
            total
        })
    });
    group.finish();

    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    // 4096³ (137 GFLOP) only on GPUs: the shape to hold beside torch.matmul
    // (scripts/torch_matmul.py), seconds per product on a CPU rasterizer.
    let gpu_only = [("4096^3", 4096, 4096, 4096)];
    let is_cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
    let shapes = SHAPES.iter().chain(gpu_only.iter().filter(|_| !is_cpu));
    for &(name, m, n, k) in shapes {
        let a = Tensor::from_slice(&gpu, &vec![0.5; m * k], &[m, k]).expect("A");
        let b = Tensor::from_slice(&gpu, &vec![0.25; k * n], &[k, n]).expect("B");
        let cc = Tensor::zeros(&gpu, &[m, n]).expect("C");
        let args = MatmulArgs {
            m,
            n,
            k,
            a: a.buffer(),
            b: b.buffer(),
            bias: None,
            c: cc.buffer(),
            options: MatmulOptions::default(),
            tiles: None,
            fuse_extras: None,
        };
        let flops = 2 * (m * n * k) as u64;
        group.throughput(Throughput::Elements(flops));
        let mut best = Duration::MAX;
        group.bench_function(name, |bch| {
            bch.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = time_matmul(&gpu, &args, 1);
                    best = best.min(t);
                    total += t;
                }
                total
            })
        });
        summary.push((name, flops as f64 / best.as_secs_f64()));
    }
    group.finish();

    eprintln!(
        "\nbest of each on {} (GFLOP/s, % of the FMA peak measured above):",
        gpu.describe()
    );
    eprintln!("  {:<24} {:>9.1}  100%", "fma_peak", best_peak / 1e9);
    for (name, rate) in summary {
        eprintln!(
            "  {:<24} {:>9.1}  {:>3.0}%",
            name,
            rate / 1e9,
            100.0 * rate / best_peak
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
