//! Sum-mode EmbeddingBag, fused (one `embedding_bag` dispatch) against
//! gather-then-reduce (an `embedding_gather` dispatch writing every row, then
//! a segment-sum dispatch reading them back), in one run.
//! 2^14 bags of 20 ids, dim 128, vocab 2^16, f32 table.
//!
//! The two-pass baseline's reduce is the bag kernel run over the gathered
//! rows with an identity index list, so both passes are real GPU dispatches
//! and its sums are bit-identical to the fused kernel's. Its intermediate
//! (2^14 · 20 rows, 168 MB) is larger than lavapipe's 128 MiB storage
//! binding, so it runs in two chunks of 2^13 bags, all four dispatches in
//! one submit.
//!
//! Times are wall time around submit-and-wait (criterion's clock); on a CPU
//! adapter (lavapipe) they are CPU figures, not GPU performance.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wgpu_embed::kernels::embedding_bag::{self, BagArgs};
use wgpu_embed::kernels::embedding_gather::{self, GatherArgs, STATUS_OK};
use wgpu_embed::{BagMode, DType, Embedding, Gpu, IndexTensor, RowBlock, Tensor};

const BAGS: usize = 1 << 14;
const BAG_LEN: usize = 20;
const DIM: usize = 128;
const VOCAB: usize = 1 << 16;
const CHUNKS: usize = 2;

fn bench(c: &mut Criterion) {
    let gpu = Gpu::new()
        .expect("no adapter: install lavapipe with `apt-get install -y mesa-vulkan-drivers`");
    eprintln!("adapter: {}", gpu.describe());
    let emb = Embedding::new(&gpu, VOCAB, DIM).unwrap();
    let table = emb
        .weight()
        .buffer()
        .expect("the benchmark table fits one binding");
    let n = BAGS * BAG_LEN;
    let idx: Vec<u32> = (0..n as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % VOCAB as u32)
        .collect();
    let idx_t = IndexTensor::from_slice(&gpu, &idx).unwrap();
    let offsets: Vec<u32> = (0..=BAGS).map(|b| (b * BAG_LEN) as u32).collect();
    let offsets_t = IndexTensor::from_slice(&gpu, &offsets).unwrap();
    let out = Tensor::zeros(&gpu, &[BAGS, DIM]).unwrap();
    let status = IndexTensor::from_slice(&gpu, &[STATUS_OK]).unwrap();

    // Two-pass state: per chunk, its slice of the indices, the gathered rows,
    // an identity index list and the chunk's offsets.
    let chunk_bags = BAGS / CHUNKS;
    let chunk_n = chunk_bags * BAG_LEN;
    let chunk_idx: Vec<IndexTensor> = (0..CHUNKS)
        .map(|k| IndexTensor::from_slice(&gpu, &idx[k * chunk_n..(k + 1) * chunk_n]).unwrap())
        .collect();
    let gathered = Tensor::zeros(&gpu, &[chunk_n, DIM]).unwrap();
    let identity: Vec<u32> = (0..chunk_n as u32).collect();
    let identity_t = IndexTensor::from_slice(&gpu, &identity).unwrap();
    let chunk_offsets_t = IndexTensor::from_slice(&gpu, &offsets[..=chunk_bags]).unwrap();
    let chunk_out: Vec<Tensor> = (0..CHUNKS)
        .map(|_| Tensor::zeros(&gpu, &[chunk_bags, DIM]).unwrap())
        .collect();

    let mut group = c.benchmark_group(format!(
        "bag sum 2^14 bags x 20 ids dim=128 V=2^16 on {}",
        gpu.adapter_info().name
    ));
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(6));
    // Logical bytes: every id's row read once, every bag's row written once.
    group.throughput(Throughput::Bytes(((n + BAGS) * DIM * 4) as u64));
    group.bench_function("fused embedding_bag", |b| {
        b.iter(|| {
            let mut enc = gpu.encoder("fused");
            let args = bag_args(table, VOCAB, &idx_t, &offsets_t, &status, &out);
            embedding_bag::encode(&gpu, &mut enc, &args).unwrap();
            gpu.submit_and_wait(enc).unwrap();
        })
    });
    group.bench_function("gather then reduce (two passes)", |b| {
        b.iter(|| {
            let mut enc = gpu.encoder("two-pass");
            for (k, chunk) in chunk_idx.iter().enumerate() {
                embedding_gather::encode(
                    &gpu,
                    &mut enc,
                    &GatherArgs {
                        table: &[RowBlock::new(table, 0..VOCAB)],
                        dtype: DType::F32,
                        num_embeddings: VOCAB,
                        dim: DIM,
                        indices: chunk.buffer(),
                        n: chunk_n,
                        status: status.buffer(),
                        out: gathered.buffer(),
                        threads_per_row: None,
                        workgroup_size: None,
                        const_dim: false,
                    },
                )
                .unwrap();
                let args = bag_args(
                    gathered.buffer(),
                    chunk_n,
                    &identity_t,
                    &chunk_offsets_t,
                    &status,
                    &chunk_out[k],
                );
                embedding_bag::encode(&gpu, &mut enc, &args).unwrap();
            }
            gpu.submit_and_wait(enc).unwrap();
        })
    });
    group.finish();

    // Both paths compute the same sums, bit for bit.
    let fused = out.to_vec().unwrap();
    let two_pass: Vec<f32> = chunk_out.iter().flat_map(|t| t.to_vec().unwrap()).collect();
    assert!(
        fused
            .iter()
            .zip(&two_pass)
            .all(|(a, b)| a.to_bits() == b.to_bits()),
        "fused and two-pass sums differ"
    );
}

/// Sum-mode arguments for `num_bags = offsets.len() - 1` bags of `indices` into `table`.
fn bag_args<'a>(
    table: &'a wgpu::Buffer,
    num_embeddings: usize,
    indices: &'a IndexTensor,
    offsets: &'a IndexTensor,
    status: &'a IndexTensor,
    out: &'a Tensor,
) -> BagArgs<'a> {
    BagArgs {
        mode: BagMode::Sum,
        table,
        dtype: DType::F32,
        num_embeddings,
        dim: DIM,
        n: indices.len(),
        indices: indices.buffer(),
        offsets: offsets.buffer(),
        num_bags: offsets.len() - 1,
        max_bag_len: BAG_LEN,
        per_sample_weights: None,
        padding_idx: None,
        status: status.buffer(),
        max_positions: None,
        out: out.buffer(),
        threads_per_bag: None,
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
