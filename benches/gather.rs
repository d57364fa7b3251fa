//! Gather against a copy of the same bytes, in one run, so the ratio can be
//! read off directly. N = 2^18 indices, dim = 128, vocab = 2^16.
//!
//! Times are wall time around submit-and-wait (criterion's clock); on a CPU
//! adapter (lavapipe) they are CPU figures, not GPU performance.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgpu_embed::kernels::buffer_copy;
use wgpu_embed::kernels::embedding_gather::{self, GatherArgs, STATUS_OK};
use wgpu_embed::{DType, Embedding, Gpu, IndexTensor, Tensor};

const N: usize = 1 << 18;
const DIM: usize = 128;
const VOCAB: usize = 1 << 16;

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new()
        .expect("no adapter: install lavapipe with `apt-get install -y mesa-vulkan-drivers`");
    eprintln!("adapter: {}", gpu.describe());
    let emb = Embedding::new(&gpu, VOCAB, DIM).unwrap();
    let idx: Vec<u32> = (0..N as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % VOCAB as u32)
        .collect();
    let idx_t = IndexTensor::from_slice(&gpu, &idx).unwrap();
    let out = Tensor::zeros(&gpu, &[N, DIM]).unwrap();
    let src = Tensor::zeros(&gpu, &[N, DIM]).unwrap();
    let status = Tensor::from_slice(&gpu, &[f32::from_bits(STATUS_OK)], &[1]).unwrap();
    let row_bytes = (N * DIM * 4) as u64;

    let mut group = c.benchmark_group(format!(
        "gather N=2^18 dim=128 V=2^16 on {}",
        gpu.adapter_info().name
    ));
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(4));
    // Bytes moved: rows read + rows written (+ the indices for gather).
    group.throughput(Throughput::Bytes(2 * row_bytes));
    group.bench_function("copy_buffer_to_buffer", |b| {
        b.iter(|| {
            let mut enc = gpu.encoder("copy");
            enc.copy_buffer_to_buffer(src.buffer(), 0, out.buffer(), 0, row_bytes);
            gpu.submit_and_wait(enc).unwrap();
        })
    });
    // The best a plain compute shader moves bytes on this adapter: the ceiling
    // for any kernel, gather included (on lavapipe far below memcpy).
    for per in [1u32, 4] {
        group.bench_function(format!("buffer_copy shader ({per} vec4/invocation)"), |b| {
            b.iter(|| {
                let mut enc = gpu.encoder("shader copy");
                buffer_copy::encode_with(
                    &gpu,
                    &mut enc,
                    src.buffer(),
                    out.buffer(),
                    row_bytes,
                    per,
                )
                .unwrap();
                gpu.submit_and_wait(enc).unwrap();
            })
        });
    }
    group.throughput(Throughput::Bytes(2 * row_bytes + N as u64 * 4));
    let blocks = emb.weight().blocks();
    for (name, tpr) in [
        ("embedding_gather (auto layout)", None),
        ("embedding_gather (32 invocations/row)", Some(32)),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut enc = gpu.encoder("gather");
                embedding_gather::encode(
                    &gpu,
                    &mut enc,
                    &GatherArgs {
                        table: &blocks,
                        dtype: DType::F32,
                        num_embeddings: VOCAB,
                        dim: DIM,
                        indices: idx_t.buffer(),
                        n: N,
                        status: status.buffer(),
                        out: out.buffer(),
                        threads_per_row: tpr,
                        workgroup_size: None,
                        const_dim: false,
                    },
                )
                .unwrap();
                gpu.submit_and_wait(enc).unwrap();
            })
        });
    }
    // The same lookup through the public API: allocating the output each
    // call, and into an output the caller keeps (the gap is what a caching
    // allocator would close).
    group.bench_function("Embedding::forward_gpu (allocates its output)", |b| {
        b.iter(|| emb.forward_gpu(&idx_t).unwrap())
    });
    group.bench_function("Embedding::forward_into (output reused)", |b| {
        b.iter(|| emb.forward_into(&idx_t, &out).unwrap())
    });
    group.finish();
    by_dtype(c, &gpu, &idx_t, &out);
}

/// The same lookup from an f32, an f16 and an int8 row-wise table, in one
/// run: throughput is the bytes of table rows read (4, 2 and 1 + 8/dim
/// per value), so the three read the same rows at different widths.
fn by_dtype(c: &mut Criterion, gpu: &Gpu, idx: &IndexTensor, out: &Tensor) {
    let weights: Vec<f32> = (0..VOCAB * DIM)
        .map(|i| (i.wrapping_mul(2_654_435_761) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let mut group = c.benchmark_group(format!(
        "gather by dtype N=2^18 dim=128 V=2^16 on {}",
        gpu.adapter_info().name
    ));
    group.sample_size(20);
    group.measurement_time(std::time::Duration::from_secs(4));
    for dtype in [DType::F32, DType::F16, DType::Int8] {
        let options = wgpu_embed::EmbeddingOptions {
            dtype,
            ..Default::default()
        };
        let emb = Embedding::from_pretrained_with_options(gpu, &weights, VOCAB, DIM, options)
            .expect("table");
        group.throughput(Throughput::Bytes(N as u64 * dtype.row_bytes(DIM)));
        group.bench_function(format!("Embedding::forward_into, {dtype:?} table"), |b| {
            b.iter(|| emb.forward_into(idx, out).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
