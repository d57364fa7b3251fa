//! A training step against the vocabulary: the same batch (N = 1024 ids,
//! dim 16) through the fused updates, the sparse backward and a `max_norm`
//! lookup on tables of V = 2^10 … 2^22 rows, through the public API (host
//! indices, allocation included). What grows with V is what a call spends
//! on the table rather than the batch: before, a row histogram, a scan and
//! a pass over every row, and for `max_norm` a clear of one u32 per row on
//! every lookup; now only the sort's passes grow (one per 4 bits of the
//! table's row count: 3 at 2^10 rows, 6 at 2^22), and `max_norm`'s claims
//! are cleared once, when the table's first such lookup makes them. A
//! plain lookup of the same ids is the control: what it gains with V is the
//! memory hierarchy (random rows of a larger table), not work per row.
//!
//! Wall times around each call (criterion's clock); on lavapipe they are
//! CPU figures: compare the rows of one run, never runs.
//! `cargo bench --bench vocab`.

mod common;

use std::time::Duration;

use common::median_ms;

use criterion::{criterion_group, criterion_main, Criterion};
use wgpu_embed::{AdamOptions, Embedding, EmbeddingOptions, Gpu, Tensor};

const N: usize = 1024;
const DIM: usize = 16;
const VOCABS: [usize; 4] = [1 << 10, 1 << 14, 1 << 18, 1 << 22];

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new()
        .expect("no adapter: install lavapipe with `apt-get install -y mesa-vulkan-drivers`");
    println!("adapter: {}", gpu.describe());
    let grad = Tensor::from_slice(&gpu, &vec![1e-3; N * DIM], &[N, DIM]).unwrap();
    let options = AdamOptions::default();
    // (V, [sgd, adagrad, adam, sparse backward, max_norm forward, plain
    // forward]) medians, ms. The plain lookup is the control: its rows are
    // read at random from a larger table as V grows (on a CPU adapter, from
    // caches, then from memory), which max_norm's lookup does too.
    let mut summary: Vec<(usize, [f64; 6])> = Vec::new();
    for v in VOCABS {
        let ids = wgpu_embed::ids::uniform(N, v, 7);
        let mut emb = Embedding::new(&gpu, v, DIM).unwrap();
        let mut adagrad = emb.adagrad_state().unwrap();
        let mut adam = emb.adam_state().unwrap();
        let sparse = Embedding::with_options(
            &gpu,
            v,
            DIM,
            EmbeddingOptions {
                sparse: true,
                ..EmbeddingOptions::default()
            },
        )
        .unwrap();
        let renorm = Embedding::with_options(
            &gpu,
            v,
            DIM,
            EmbeddingOptions {
                max_norm: Some(1.0),
                ..EmbeddingOptions::default()
            },
        )
        .unwrap();
        let mut group = c.benchmark_group(format!("vocab N={N} dim={DIM} V=2^{}", v.ilog2()));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(2));
        group.bench_function("backward_sgd", |b| {
            b.iter(|| emb.backward_sgd(&ids, &grad, 1e-3).unwrap())
        });
        group.bench_function("backward_adagrad", |b| {
            b.iter(|| {
                emb.backward_adagrad(&ids, &grad, &mut adagrad, 1e-3, 1e-8)
                    .unwrap()
            })
        });
        group.bench_function("backward_adam", |b| {
            b.iter(|| emb.backward_adam(&ids, &grad, &mut adam, &options).unwrap())
        });
        group.bench_function("backward (sparse)", |b| {
            b.iter(|| sparse.backward(&ids, &grad).unwrap())
        });
        group.bench_function("forward (max_norm)", |b| {
            b.iter(|| renorm.forward(&ids).unwrap())
        });
        group.bench_function("forward", |b| b.iter(|| emb.forward(&ids).unwrap()));
        group.finish();
        summary.push((
            v,
            [
                median_ms(|| emb.backward_sgd(&ids, &grad, 1e-3).unwrap()),
                median_ms(|| {
                    emb.backward_adagrad(&ids, &grad, &mut adagrad, 1e-3, 1e-8)
                        .unwrap()
                }),
                median_ms(|| emb.backward_adam(&ids, &grad, &mut adam, &options).unwrap()),
                median_ms(|| {
                    sparse.backward(&ids, &grad).unwrap();
                }),
                median_ms(|| {
                    renorm.forward(&ids).unwrap();
                }),
                median_ms(|| {
                    emb.forward(&ids).unwrap();
                }),
            ],
        ));
    }
    println!(
        "\nsummary (median of 7, ms; × the smallest table) on {}:",
        gpu.describe()
    );
    let base = summary[0].1;
    for (v, ms) in &summary {
        let cells: Vec<String> = [
            "sgd",
            "adagrad",
            "adam",
            "sparse backward",
            "max_norm forward",
            "forward",
        ]
        .iter()
        .zip(ms.iter().zip(base))
        .map(|(name, (m, b))| format!("{name} {m:.2} ({:.1}x)", m / b))
        .collect();
        println!("  V=2^{:<2} {}", v.ilog2(), cells.join("  "));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
