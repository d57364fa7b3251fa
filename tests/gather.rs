//! embedding_gather on every adapter against its CPU twin, bit for bit.

mod common;

use common::{assert_bits_eq, each_gpu, table};
use proptest::prelude::*;
use wgpu_embed::kernels::embedding_gather::{self, GatherArgs, STATUS_OK};
use wgpu_embed::{cpu, DType, Embedding, Error, Gpu, IndexTensor, RowBlock, Tensor};

fn cpu_gather(rows: usize, dim: usize, t: &[f32], idx: &[u32]) -> Vec<f32> {
    let mut out = vec![0.0; idx.len() * dim];
    let mut status = STATUS_OK;
    cpu::embedding_gather(rows, dim, idx, &mut status, t, &mut out);
    out
}

fn check(gpu: &Gpu, rows: usize, dim: usize, idx: &[u32]) {
    let t = table(rows, dim);
    let emb = Embedding::from_pretrained(gpu, &t, rows, dim, false).unwrap();
    let out = emb.forward(idx).unwrap();
    assert_eq!(out.shape(), [idx.len(), dim]);
    assert_bits_eq(
        &format!("gather rows={rows} dim={dim} n={}", idx.len()),
        &out.to_vec().unwrap(),
        &cpu_gather(rows, dim, &t, idx),
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn gather_matches_twin(
        rows in 1usize..=100_000,
        dim in 1usize..=300,
        n in 0usize..=5_000,
        seed in any::<u64>(),
    ) {
        let mut s = seed | 1;
        let idx: Vec<u32> = (0..n).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s % rows as u64) as u32 }).collect();
        each_gpu(|gpu| check(gpu, rows, dim, &idx));
    }
}

#[test]
fn fixed_cases() {
    each_gpu(|gpu| {
        for dim in [1, 3, 4, 5, 64, 127, 128, 300] {
            let rows = 37;
            check(gpu, rows, dim, &[0]);
            check(gpu, rows, dim, &[36]);
            check(gpu, rows, dim, &[0, 36, 0, 36, 5, 5, 5]);
            check(gpu, rows, dim, &[]);
        }
    });
}

#[test]
fn both_row_layouts_agree() {
    // One invocation per row (CPU adapters) and many per row (GPUs) must give the same bits.
    each_gpu(|gpu| {
        for dim in [4, 7, 128, 260] {
            let rows = 1000;
            let t = table(rows, dim);
            let idx: Vec<u32> = (0..3000u32).map(|i| (i * 7919) % rows as u32).collect();
            let want = cpu_gather(rows, dim, &t, &idx);
            let table_t = Tensor::from_slice(gpu, &t, &[rows, dim]).unwrap();
            let idx_t = IndexTensor::from_slice(gpu, &idx).unwrap();
            for tpr in [1, 3, 32, 64] {
                let out = Tensor::zeros(gpu, &[idx.len(), dim]).unwrap();
                let status = Tensor::from_slice(gpu, &[f32::from_bits(STATUS_OK)], &[1]).unwrap();
                let mut enc = gpu.encoder("test");
                embedding_gather::encode(
                    gpu,
                    &mut enc,
                    &GatherArgs {
                        table: &[RowBlock::new(table_t.buffer(), 0..rows)],
                        dtype: DType::F32,
                        num_embeddings: rows,
                        dim,
                        indices: idx_t.buffer(),
                        n: idx.len(),
                        status: status.buffer(),
                        out: out.buffer(),
                        threads_per_row: Some(tpr),
                        workgroup_size: None,
                        const_dim: false,
                    },
                )
                .unwrap();
                gpu.submit_and_wait(enc).unwrap();
                assert_bits_eq(
                    &format!("dim {dim} threads/row {tpr}"),
                    &out.to_vec().unwrap(),
                    &want,
                );
                assert_eq!(status.to_vec().unwrap()[0].to_bits(), STATUS_OK);
            }
        }
    });
}

#[test]
fn more_indices_than_one_dispatch_dimension() {
    // 65 535 × 64 + 1 indices: with 256 invocations per workgroup and one per
    // row the grid must fold into 2-D.
    let n = 65_535 * 64 + 1;
    let (rows, dim) = (1000, 4);
    let idx: Vec<u32> = (0..n as u32)
        .map(|i| i.wrapping_mul(2_654_435_761) % rows as u32)
        .collect();
    each_gpu(|gpu| check(gpu, rows, dim, &idx));
}

#[test]
fn gpu_resident_bad_index_zero_fills_and_reports_first_position() {
    each_gpu(|gpu| {
        let (rows, dim) = (10, 8);
        let t = table(rows, dim);
        let idx = [1u32, 2, 10, 3, u32::MAX, 9];
        let table_t = Tensor::from_slice(gpu, &t, &[rows, dim]).unwrap();
        let idx_t = IndexTensor::from_slice(gpu, &idx).unwrap();
        // The convenience call turns the status word into the typed error.
        match embedding_gather::embedding_gather(&table_t, &idx_t) {
            Err(Error::IndexOutOfRange {
                position,
                index,
                num_embeddings,
            }) => {
                assert_eq!((position, index, num_embeddings), (2, 10, 10));
            }
            other => panic!("expected IndexOutOfRange, got {other:?}"),
        }
        // encode-level: bad rows are zero, good rows gathered, status holds position 2.
        let out = Tensor::zeros(gpu, &[idx.len(), dim]).unwrap();
        let status = Tensor::from_slice(gpu, &[f32::from_bits(STATUS_OK)], &[1]).unwrap();
        let mut enc = gpu.encoder("test");
        embedding_gather::encode(
            gpu,
            &mut enc,
            &GatherArgs {
                table: &[RowBlock::new(table_t.buffer(), 0..rows)],
                dtype: DType::F32,
                num_embeddings: rows,
                dim,
                indices: idx_t.buffer(),
                n: idx.len(),
                status: status.buffer(),
                out: out.buffer(),
                threads_per_row: None,
                workgroup_size: None,
                const_dim: false,
            },
        )
        .unwrap();
        gpu.submit_and_wait(enc).unwrap();
        let mut want = vec![0.0; idx.len() * dim];
        let mut want_status = STATUS_OK;
        cpu::embedding_gather(rows, dim, &idx, &mut want_status, &t, &mut want);
        assert_bits_eq("zero-filled rows", &out.to_vec().unwrap(), &want);
        assert_eq!(status.to_vec().unwrap()[0].to_bits(), want_status);
        assert_eq!(want_status, 2);
    });
}

#[test]
fn encode_checks_every_buffer_and_the_dispatch_size() {
    each_gpu(|gpu| {
        let (rows, dim) = (10, 4);
        let table_t = Tensor::zeros(gpu, &[rows, dim]).unwrap();
        let idx = IndexTensor::from_slice(gpu, &[1, 2, 3]).unwrap();
        let out = Tensor::zeros(gpu, &[3, dim]).unwrap();
        let status = Tensor::from_slice(gpu, &[f32::from_bits(STATUS_OK)], &[1]).unwrap();
        let table = [RowBlock::new(table_t.buffer(), 0..rows)];
        let args = |n: usize, tpr: Option<u32>| GatherArgs {
            table: &table,
            dtype: DType::F32,
            num_embeddings: rows,
            dim,
            indices: idx.buffer(),
            n,
            status: status.buffer(),
            out: out.buffer(),
            threads_per_row: tpr,
            workgroup_size: None,
            const_dim: false,
        };
        let mut enc = gpu.encoder("checks");
        // n past the index list and the output: an error, not a short read.
        let r = embedding_gather::encode(gpu, &mut enc, &args(4, None));
        assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
        for tpr in [0, 1 << 20] {
            let r = embedding_gather::encode(gpu, &mut enc, &args(3, Some(tpr)));
            assert!(
                matches!(r, Err(Error::InvalidArgument { .. })),
                "{tpr}: {r:?}"
            );
        }
        // 2^22 positions × 1024 invocations each is 2^32 + … invocations: a
        // wrapped u32 invocation index once; now refused before any dispatch.
        let n = (1 << 22) + 1;
        let many = IndexTensor::from_slice(gpu, &vec![0; n]).unwrap();
        let wide = Tensor::zeros(gpu, &[n, 1]).unwrap();
        let one_col = Tensor::zeros(gpu, &[rows, 1]).unwrap();
        let table = [RowBlock::new(one_col.buffer(), 0..rows)];
        let r = embedding_gather::encode(
            gpu,
            &mut enc,
            &GatherArgs {
                table: &table,
                dim: 1,
                indices: many.buffer(),
                out: wide.buffer(),
                n,
                threads_per_row: Some(1024),
                ..args(0, None)
            },
        );
        assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    });
}
