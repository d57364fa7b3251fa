//! The embedding gradient at V = 2^16, dim = 128, N = 2^18, uniform and
//! Zipf(1.1) indices: the deterministic sorted backward, the float-atomic
//! backward, and the forward gather they are measured against, in one run.
//!
//! Times are wall-clock around submit-and-wait of one recorded encoder (the
//! same for every kernel, so the ratios are fair). On lavapipe they are CPU
//! figures, not GPU performance. `cargo bench --bench gradient`.

mod common;

use std::time::Duration;

use common::median_ms;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgpu_embed::{ids, Embedding, Gpu, GradientMode, IndexTensor, Tensor};

const V: usize = 1 << 16;
const DIM: usize = 128;
const N: usize = 1 << 18;

fn uniform(seed: u64) -> Vec<u32> {
    ids::uniform(N, V, seed)
}

/// Zipf(1.1) over ranks 1..=V, rank k -> row k - 1 (row 0 is the hottest, ~14 % of the batch).
fn zipf(seed: u64) -> Vec<u32> {
    ids::zipf(N, V, 1.1, seed)
}

struct Setup {
    gpu: Gpu,
    emb: Embedding,
    atomic: Option<Embedding>,
    grad_out: Tensor,
    grad: Tensor,
    out: Tensor,
    status: wgpu_embed::Status,
}

impl Setup {
    fn new() -> Setup {
        let gpu = Gpu::new().expect("an adapter (lavapipe: apt-get install mesa-vulkan-drivers)");
        let emb = Embedding::new(&gpu, V, DIM).expect("table");
        let atomic = gpu.has_float_atomics().then(|| {
            let mut e = Embedding::new(&gpu, V, DIM).expect("table");
            e.set_gradient_mode(GradientMode::Atomic);
            e
        });
        let mut rng = ids::SplitMix64(1);
        let values: Vec<f32> = (0..N * DIM)
            .map(|_| (rng.unit() * 2.0 - 1.0) as f32)
            .collect();
        let grad_out = Tensor::from_slice(&gpu, &values, &[N, DIM]).expect("grad_out");
        let grad = Tensor::zeros(&gpu, &[V, DIM]).expect("grad");
        let out = Tensor::zeros(&gpu, &[N, DIM]).expect("out");
        let status = wgpu_embed::Status::new(&gpu).expect("status");
        Setup {
            gpu,
            emb,
            atomic,
            grad_out,
            grad,
            out,
            status,
        }
    }

    fn forward(&self, idx: &IndexTensor) {
        let mut enc = self.gpu.encoder("bench forward");
        self.emb
            .encode_forward(&mut enc, idx, &self.out, &self.status)
            .unwrap();
        self.gpu.submit_and_wait(enc).unwrap();
    }

    fn backward(&self, emb: &Embedding, idx: &IndexTensor) {
        let mut enc = self.gpu.encoder("bench backward");
        emb.encode_backward(&mut enc, idx, &self.grad_out, &self.grad, &self.status)
            .unwrap();
        self.gpu.submit_and_wait(enc).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let s = Setup::new();
    println!(
        "adapter: {} (times are wall clock around submit-and-wait)",
        s.gpu.describe()
    );
    let lists = [("uniform", uniform(2)), ("zipf1.1", zipf(3))];
    let mut summary = Vec::new();
    for (name, list) in &lists {
        let idx = IndexTensor::from_slice(&s.gpu, list).unwrap();
        let mut group = c.benchmark_group(format!("gradient/{name}"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(3));
        // Forward: read N rows, write N rows. Backward: read grad_out, write the table.
        group.throughput(Throughput::Bytes((2 * N * DIM * 4) as u64));
        group.bench_function("forward_gather", |b| b.iter(|| s.forward(&idx)));
        group.throughput(Throughput::Bytes(((N + V) * DIM * 4) as u64));
        group.bench_function("backward_deterministic", |b| {
            b.iter(|| s.backward(&s.emb, &idx))
        });
        if let Some(atomic) = &s.atomic {
            group.bench_function("backward_atomic", |b| b.iter(|| s.backward(atomic, &idx)));
        }
        group.finish();
        let fwd = median_ms(|| s.forward(&idx));
        let det = median_ms(|| s.backward(&s.emb, &idx));
        let atom = s.atomic.as_ref().map(|a| median_ms(|| s.backward(a, &idx)));
        summary.push((name, fwd, det, atom));
    }
    println!("\nsummary (median of 7, ms) on {}:", s.gpu.describe());
    for (name, fwd, det, atom) in summary {
        let atom = atom.map_or("n/a (no SHADER_FLOAT32_ATOMIC)".to_string(), |a| {
            format!("{a:.1} ({:.2}x forward)", a / fwd)
        });
        println!(
            "  {name:8} forward {fwd:.1}  deterministic backward {det:.1} ({:.2}x forward)  atomic backward {atom}",
            det / fwd
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
