//! What users call, beside the kernels under it, in one run (issue #16's
//! figures): a fresh-call lookup against the gather into a kept output, a
//! training step (forward + backward_sgd) against its kernels' GPU time,
//! `Linear::forward` against the same matmul into a kept output, and the
//! N(0, 1) fill against a copy of the same bytes.
//!
//! Wall times around submit-and-wait (criterion's clock), except the rows
//! marked "GPU time", which read timestamp queries where the adapter has
//! them. On a CPU adapter (lavapipe) every figure is a CPU figure: compare
//! rows of one run, never runs.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgpu_embed::kernels::matmul::{self, MatmulArgs, MatmulOptions};
use wgpu_embed::{
    DType, Embedding, EmbeddingOptions, F16Rounding, Gpu, IndexTensor, Linear, Status, Tensor,
};

const N: usize = 1 << 18;
const DIM: usize = 128;
const VOCAB: usize = 1 << 16;

fn gpu() -> Gpu {
    let gpu = Gpu::new()
        .expect("no adapter: install lavapipe with `apt-get install -y mesa-vulkan-drivers`");
    eprintln!("adapter: {}", gpu.describe());
    gpu
}

/// Sums GPU time over `iters` runs of `record` (timestamps where the
/// adapter writes them, else wall time around the submit; never a mix:
/// `bench::sample_seconds` takes again a sample its driver could not time).
fn gpu_time(
    gpu: &Gpu,
    iters: u64,
    mut record: impl FnMut(&mut wgpu::CommandEncoder) -> wgpu_embed::Result<()>,
) -> Duration {
    (0..iters)
        .map(|_| {
            let s = wgpu_embed::bench::sample_seconds_blocking(gpu, &mut record);
            Duration::from_secs_f64(s.expect("timed work"))
        })
        .sum()
}

fn lookup_and_step(c: &mut Criterion, gpu: &Gpu) {
    let mut emb = Embedding::new(gpu, VOCAB, DIM).unwrap();
    let ids: Vec<u32> = (0..N as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % VOCAB as u32)
        .collect();
    let idx = IndexTensor::from_slice(gpu, &ids).unwrap();
    let out = Tensor::zeros(gpu, &[N, DIM]).unwrap();
    let grad = Tensor::from_slice(gpu, &vec![1e-3; N * DIM], &[N, DIM]).unwrap();
    let status = Status::new(gpu).unwrap();

    let mut group = c.benchmark_group(format!(
        "api N=2^18 dim=128 V=2^16 on {}",
        gpu.adapter_info().name
    ));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Bytes(2 * (N * DIM * 4) as u64));
    group.bench_function("gather kernel into a kept output (GPU time)", |b| {
        b.iter_custom(|iters| {
            gpu_time(gpu, iters, |enc| {
                emb.encode_forward(enc, &idx, &out, &status)
            })
        })
    });
    group.bench_function("gather kernel into a kept output (wall)", |b| {
        b.iter(|| {
            let mut enc = gpu.encoder("gather");
            emb.encode_forward(&mut enc, &idx, &out, &status).unwrap();
            gpu.submit_and_wait(enc).unwrap();
        })
    });
    group.bench_function("Embedding::forward_gpu (fresh output each call)", |b| {
        b.iter(|| emb.forward_gpu(&idx).unwrap())
    });
    group.bench_function("Embedding::forward_into (kept output)", |b| {
        b.iter(|| emb.forward_into(&idx, &out).unwrap())
    });
    group.bench_function("Embedding::forward (host indices, fresh output)", |b| {
        b.iter(|| emb.forward(&ids).unwrap())
    });

    // A training step through the API, and the same kernels' GPU time.
    group.bench_function("step: forward + backward_sgd (host indices)", |b| {
        b.iter(|| {
            let y = emb.forward(&ids).unwrap();
            emb.backward_sgd(&ids, &grad, 1e-3).unwrap();
            y
        })
    });
    group.bench_function(
        "step kernels: gather + fused backward_sgd (GPU time)",
        |b| {
            b.iter_custom(|iters| {
                let gather = gpu_time(gpu, iters, |enc| {
                    emb.encode_forward(enc, &idx, &out, &status)
                });
                let update = gpu_time(gpu, iters, |enc| {
                    emb.encode_backward_sgd(enc, &idx, &grad, 1e-3, &status)
                });
                gather + update
            })
        },
    );
    group.finish();
}

fn linear(c: &mut Criterion, gpu: &Gpu) {
    let (m, k, n) = (1024, 1024, 1024);
    let lin = Linear::new(gpu, k, n, false).unwrap();
    let x = Tensor::from_slice(gpu, &vec![0.5; m * k], &[m, k]).unwrap();
    let a = Tensor::from_slice(gpu, &vec![0.5; m * k], &[m, k]).unwrap();
    let b = Tensor::from_slice(gpu, &vec![0.25; k * n], &[k, n]).unwrap();
    let y = Tensor::zeros(gpu, &[m, n]).unwrap();
    let mut group = c.benchmark_group(format!("api 1024^3 on {}", gpu.adapter_info().name));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(2 * (m * n * k) as u64));
    group.bench_function(
        "matmul kernel A·B into a kept C (the matmul bench's row)",
        |bch| {
            let args = MatmulArgs {
                m,
                n,
                k,
                a: a.buffer(),
                b: b.buffer(),
                bias: None,
                c: y.buffer(),
                options: MatmulOptions::default(),
                tiles: None,
                fuse_extras: None,
            };
            bch.iter(|| {
                let mut enc = gpu.encoder("matmul");
                matmul::encode(gpu, &mut enc, &args).unwrap();
                gpu.submit_and_wait(enc).unwrap();
            })
        },
    );
    group.bench_function("Linear::encode_forward into a kept y", |bch| {
        bch.iter(|| {
            let mut enc = gpu.encoder("linear");
            lin.encode_forward(&mut enc, &x, &y).unwrap();
            gpu.submit_and_wait(enc).unwrap();
        })
    });
    group.bench_function("Linear::forward (fresh y each call)", |bch| {
        bch.iter(|| lin.forward(&x).unwrap())
    });
    group.finish();
}

fn fill(c: &mut Criterion, gpu: &Gpu) {
    let rows = 1 << 16;
    let bytes = (rows * DIM * 4) as u64;
    let mut emb = Embedding::new(gpu, rows, DIM).unwrap();
    let src = Tensor::zeros(gpu, &[rows, DIM]).unwrap();
    let dst = Tensor::zeros(gpu, &[rows, DIM]).unwrap();
    let mut group = c.benchmark_group(format!(
        "api fill 2^16 x 128 on {}",
        gpu.adapter_info().name
    ));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("copy_buffer_to_buffer of the same bytes", |b| {
        b.iter(|| {
            let mut enc = gpu.encoder("copy");
            enc.copy_buffer_to_buffer(src.buffer(), 0, dst.buffer(), 0, bytes);
            gpu.submit_and_wait(enc).unwrap();
        })
    });
    group.bench_function("Embedding::normal_ (N(0, 1), integer Box-Muller)", |b| {
        b.iter(|| emb.normal_(0.0, 1.0, 42).unwrap())
    });
    group.bench_function("Embedding::uniform_", |b| {
        b.iter(|| emb.uniform_(-1.0, 1.0, 42).unwrap())
    });
    group.bench_function("Embedding::encode_init N(0, 1) (GPU time)", |b| {
        b.iter_custom(|iters| {
            gpu_time(gpu, iters, |enc| {
                emb.encode_init(
                    enc,
                    42,
                    wgpu_embed::Distribution::Normal {
                        mean: 0.0,
                        std: 1.0,
                    },
                )
            })
        })
    });
    group.bench_function("Embedding::uniform_ (0, 1)", |b| {
        b.iter(|| emb.uniform_(0.0, 1.0, 42).unwrap())
    });
    group.finish();
}

/// A small batch: what a call costs around its kernels (submit, waits,
/// checks, allocation), since its kernels take almost nothing.
fn small_batch(c: &mut Criterion, gpu: &Gpu) {
    let (v, dim, n) = (1 << 12, 64, 256);
    let mut emb = Embedding::new(gpu, v, dim).unwrap();
    let ids = wgpu_embed::ids::uniform(n, v, 5);
    let grad = Tensor::from_slice(gpu, &vec![1e-3; n * dim], &[n, dim]).unwrap();
    let mut group = c.benchmark_group(format!(
        "api small batch N=256 dim=64 on {}",
        gpu.adapter_info().name
    ));
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("Embedding::forward", |b| {
        b.iter(|| emb.forward(&ids).unwrap())
    });
    group.bench_function("step: forward + backward_sgd", |b| {
        b.iter(|| {
            let y = emb.forward(&ids).unwrap();
            emb.backward_sgd(&ids, &grad, 1e-3).unwrap();
            y
        })
    });
    group.finish();
}

/// The fused optimizers on one batch, GPU time of their kernels (sort,
/// segment sums, update), and Adam through the API.
fn optimizers(c: &mut Criterion, gpu: &Gpu) {
    let mut emb = Embedding::new(gpu, VOCAB, DIM).unwrap();
    let ids: Vec<u32> = (0..N as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % VOCAB as u32)
        .collect();
    let idx = IndexTensor::from_slice(gpu, &ids).unwrap();
    let grad = Tensor::from_slice(gpu, &vec![1e-3; N * DIM], &[N, DIM]).unwrap();
    let status = Status::new(gpu).unwrap();
    let adagrad = emb.adagrad_state().unwrap();
    let mut adam = emb.adam_state().unwrap();
    let options = wgpu_embed::AdamOptions::default();
    let mut group = c.benchmark_group(format!(
        "optimizers N=2^18 dim=128 V=2^16 on {}",
        gpu.adapter_info().name
    ));
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("fused backward_sgd (GPU time)", |b| {
        b.iter_custom(|iters| {
            gpu_time(gpu, iters, |enc| {
                emb.encode_backward_sgd(enc, &idx, &grad, 1e-3, &status)
            })
        })
    });
    group.bench_function("fused backward_adagrad (GPU time)", |b| {
        b.iter_custom(|iters| {
            gpu_time(gpu, iters, |enc| {
                emb.encode_backward_adagrad(enc, &idx, &grad, &adagrad, 1e-3, 1e-8, &status)
            })
        })
    });
    group.bench_function("fused backward_adam (GPU time)", |b| {
        b.iter_custom(|iters| {
            gpu_time(gpu, iters, |enc| {
                emb.encode_backward_adam(enc, &idx, &grad, &mut adam, &options, &status)
            })
        })
    });
    group.bench_function("Embedding::backward_adam (host indices)", |b| {
        b.iter(|| emb.backward_adam(&ids, &grad, &mut adam, &options).unwrap())
    });
    // The same fused SGD on f16 tables: half the table traffic, plus the
    // integer rounding (and, stochastic, a Philox block per 4 elements).
    for (name, rounding) in [
        (
            "f16 fused backward_sgd, to nearest (GPU time)",
            F16Rounding::Nearest,
        ),
        (
            "f16 fused backward_sgd, stochastic (GPU time)",
            F16Rounding::Stochastic { seed: 1 },
        ),
    ] {
        let options = EmbeddingOptions {
            dtype: DType::F16,
            f16_rounding: rounding,
            ..EmbeddingOptions::default()
        };
        let half = Embedding::with_options(gpu, VOCAB, DIM, options).unwrap();
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                gpu_time(gpu, iters, |enc| {
                    half.encode_backward_sgd(enc, &idx, &grad, 1e-3, &status)
                })
            })
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    let gpu = gpu();
    optimizers(c, &gpu);
    small_batch(c, &gpu);
    lookup_and_step(c, &gpu);
    linear(c, &gpu);
    fill(c, &gpu);
}

criterion_group!(benches, bench);
criterion_main!(benches);
