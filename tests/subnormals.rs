//! Subnormal values through kernels that add, compare, multiply and divide
//! them. WGSL lets a device flush subnormals to zero in plain `+` and in
//! comparisons; the twins (Rust on the host) keep them. lavapipe and
//! llvmpipe GL keep them, so their results are the twins' bits; SwiftShader
//! flushes (README, Known limits). A device that keeps them must match the
//! twins; one that flushes is named, and at least one adapter must keep them.

mod common;

use common::{assert_bits_eq, bag_twin, each_gpu};
use wgpu_embed::cpu::{self, BagMode};
use wgpu_embed::{Embedding, EmbeddingBag, Gpu, Tensor};

/// Subnormals of both signs.
fn subnormal_table(rows: usize, dim: usize) -> Vec<f32> {
    (0..rows * dim)
        .map(|i| {
            let x = f32::from_bits(1 + (i as u32).wrapping_mul(2_654_435_761) % 0x007F_FFFF);
            if i % 3 == 0 {
                -x
            } else {
                x
            }
        })
        .collect()
}

/// Whether `0 + x` keeps a subnormal `x` on this adapter: a sum bag of one
/// row of the smallest subnormal.
fn keeps_subnormals(gpu: &Gpu) -> bool {
    let tiny = f32::from_bits(1);
    let bag = EmbeddingBag::from_pretrained(gpu, &[tiny], 1, 1, true, BagMode::Sum).unwrap();
    let out = bag.forward(&[0], &[0], None).unwrap().to_vec().unwrap();
    out[0].to_bits() == tiny.to_bits()
}

#[test]
fn subnormals_give_the_twins_bits_where_the_adapter_keeps_them() {
    let (rows, dim) = (16, 8);
    let table = subnormal_table(rows, dim);
    let idx: Vec<u32> = (0..64).map(|i| (i * 7 % rows) as u32).collect();
    let csr: Vec<u32> = (0..=8).map(|b| b * 8).collect();
    let psw: Vec<f32> = (0..64).map(|i| 0.25 + i as f32 * 0.5).collect();
    let ids: Vec<u32> = (0..40).map(|i| (i * 5 % rows) as u32).collect();
    let grad_out = subnormal_table(ids.len(), dim);
    let grad = cpu::embedding_backward_dense(rows, dim, &ids, &grad_out, &Default::default());
    assert!(
        grad.iter().any(|x| x.is_subnormal()),
        "the twin keeps subnormals"
    );
    let mut stepped = table.clone();
    cpu::sgd_dense(0.5, &grad, &mut stepped[..]);
    let mut keeping = 0;
    each_gpu(|gpu| {
        if !keeps_subnormals(gpu) {
            // Flushed, then, not garbage: a sum of subnormal rows is ±0.
            eprintln!("{} flushes subnormals to zero in `+`", gpu.describe());
            let bag =
                EmbeddingBag::from_pretrained(gpu, &table, rows, dim, true, BagMode::Sum).unwrap();
            let got = bag
                .forward(&idx, &csr[..8], None)
                .unwrap()
                .to_vec()
                .unwrap();
            assert!(got.iter().all(|&x| x == 0.0), "{}: {got:?}", gpu.describe());
            return;
        }
        keeping += 1;
        for (mode, w) in [
            (BagMode::Sum, None),
            (BagMode::Mean, None),
            (BagMode::Max, None),
            (BagMode::Sum, Some(&psw[..])),
        ] {
            let bag = EmbeddingBag::from_pretrained(gpu, &table, rows, dim, true, mode).unwrap();
            let got = bag.forward(&idx, &csr[..8], w).unwrap().to_vec().unwrap();
            let (want, _) = bag_twin(mode, rows, dim, None, &table, &idx, &csr, w);
            assert_bits_eq(&format!("{mode:?} weighted={}", w.is_some()), &got, &want);
        }
        let mut emb = Embedding::from_pretrained(gpu, &table, rows, dim, false).unwrap();
        let g = Tensor::from_slice(gpu, &grad_out, &[ids.len(), dim]).unwrap();
        let got = emb
            .backward(&ids, &g)
            .unwrap()
            .to_dense_vec(rows, dim)
            .unwrap();
        assert_bits_eq("dense gradient", &got, &grad);
        emb.backward_sgd(&ids, &g, 0.5).unwrap();
        assert_bits_eq("fused SGD", &emb.weight().to_vec().unwrap(), &stepped);
    });
    assert!(
        keeping > 0,
        "no adapter keeps subnormals; lavapipe does (apt-get update && apt-get install -y \
         mesa-vulkan-drivers)"
    );
}
