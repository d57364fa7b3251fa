//! EmbeddingBag with any indices, offsets, per-sample weights and gradient
//! shape: a pooled output or a typed error, never a panic, and a failed
//! backward_sgd leaves the table's bits as they were. Valid batches are
//! checked against the CPU twin.
#![no_main]

#[path = "common.rs"]
mod common;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use wgpu_embed::{cpu, BagMode, Embedding, EmbeddingBag, EmbeddingBagOptions, Tensor};

#[derive(Arbitrary, Debug)]
struct Input {
    rows: u8,
    dim: u8,
    mode: u8,
    include_last_offset: bool,
    padding: Option<u8>,
    indices: Vec<u16>,
    offsets: Vec<u16>,
    weights: Option<Vec<f32>>,
    grad_rows: u8,
    lr: f32,
}

fuzz_target!(|input: Input| {
    let gpu = common::gpu();
    let (rows, dim) = (input.rows as usize % 17 + 1, input.dim as usize % 9 + 1);
    let mode = [BagMode::Sum, BagMode::Mean, BagMode::Max][input.mode as usize % 3];
    let table: Vec<f32> = (0..rows * dim).map(|i| (i % 7) as f32 - 3.0).collect();
    let options = wgpu_embed::EmbeddingOptions {
        padding_idx: input.padding.map(|p| p as usize),
        ..Default::default()
    };
    let Ok(emb) = Embedding::from_pretrained_with_options(gpu, &table, rows, dim, options) else {
        return; // a padding_idx past the table: refused, as it should be
    };
    let bag_options = EmbeddingBagOptions {
        mode,
        include_last_offset: input.include_last_offset,
    };
    let mut bag = EmbeddingBag::from_embedding(emb, bag_options);
    let indices: Vec<u32> = input
        .indices
        .iter()
        .map(|&i| i as u32 % (rows as u32 + 2))
        .collect();
    let offsets: Vec<u32> = input.offsets.iter().map(|&o| o as u32).collect();
    // Weights whose products with the table's small integers could be
    // subnormal are zeroed: whether an adapter flushes subnormals is its own
    // business (WGSL allows both), and this target compares bits.
    let weights: Option<Vec<f32>> = input.weights.as_ref().map(|w| {
        w.iter()
            .map(|&x| {
                if x.is_finite() && x.abs() < 1e-36 {
                    0.0
                } else {
                    x
                }
            })
            .collect()
    });
    let psw = weights.as_deref();
    if let Ok(out) = bag.forward(&indices, &offsets, psw) {
        // Accepted: the twin on the same CSR gives the same bits.
        let mut csr = offsets.clone();
        if !input.include_last_offset {
            csr.push(indices.len() as u32);
        }
        if csr.is_empty() {
            assert!(
                out.to_vec().unwrap().is_empty(),
                "{input:?}: no offsets, yet bags"
            );
            return;
        }
        let bags = csr.len() - 1;
        let mut want = vec![0.0; bags * dim];
        let mut positions = vec![0; bags * dim];
        let mut status = u32::MAX;
        let padding = bag.embedding().options().padding_idx;
        cpu::embedding_bag(
            mode,
            rows,
            dim,
            padding,
            &indices,
            &csr,
            psw,
            &mut status,
            &mut positions,
            &table,
            &mut want,
        );
        // Accepted means every id was in range: the twin saw none that was not.
        assert_eq!(status, u32::MAX, "{input:?}: accepted a bad id at {status}");
        let got = out.to_vec().unwrap();
        let same = got
            .iter()
            .zip(&want)
            .all(|(g, w)| g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()));
        assert!(
            same && got.len() == want.len(),
            "{input:?}: {got:?} != {want:?}"
        );
    }
    let before = common::bits(bag.embedding());
    // Not zeros: a zero gradient leaves the table's bits whatever the step does.
    let grad_rows = input.grad_rows as usize % 6;
    let g = Tensor::from_slice(gpu, &vec![0.75; grad_rows * dim], &[grad_rows, dim]).unwrap();
    if bag
        .backward_sgd(&indices, &offsets, psw, &g, input.lr)
        .is_err()
    {
        assert_eq!(
            common::bits(bag.embedding()),
            before,
            "a failed backward_sgd changed the table"
        );
    }
});
