//! exact_arith's two paths give the same bits inside every kernel that uses
//! them. The checked common case (the hardware's own ×, ÷ or √, proven by an
//! exact integer residual) is off by default on CPU adapters, the ones CI
//! has, so the other test binaries run only the general functions there,
//! and hold those to the twins. This one opens every adapter twice more,
//! with the check forced on and off (`GpuOptions::exact_checked`), makes
//! each public call whose kernel takes exact_arith's operations, and
//! compares the results bit for bit: the checked path, in each kernel,
//! against the general one (tests/exact_arith.rs holds both to Rust's
//! operators one operation at a time).

mod common;

use common::{assert_bits_eq, Rng};
use wgpu_embed::cpu::int8_rowwise;
use wgpu_embed::{
    AdamOptions, BagMode, DType, Embedding, EmbeddingBag, EmbeddingOptions, Gpu, Linear, Tensor,
};

/// Values for tables and gradients: mostly ordinary, with zeros, tiny and
/// subnormal values, and large ones, so that both paths' edges are met.
fn values(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 23 {
            0 => 0.0,
            1 => 1.0e-39 * (rng.float() - 0.5), // subnormal
            2 => 1.0e-30 * (rng.float() - 0.5),
            3 => 1.0e6 * (rng.float() - 0.5),
            _ => rng.float() * 2.0 - 1.0,
        })
        .collect()
}

/// Every result, named, of the calls that use exact_arith.
fn results(gpu: &Gpu) -> Vec<(&'static str, Vec<f32>)> {
    // dim 37: rows that are not whole vec4s, so the kernels' tails run too.
    let (vocab, dim, n) = (97usize, 37usize, 1024usize);
    let mut rng = Rng(0x0065_7861_6374);
    let w = values(&mut rng, vocab * dim);
    let ids: Vec<u32> = (0..n).map(|_| rng.below(vocab) as u32).collect();
    let g = values(&mut rng, n * dim);
    let grad = Tensor::from_slice(gpu, &g, &[n, dim]).unwrap();
    let mut out = Vec::new();
    let pretrained = |options: EmbeddingOptions| {
        Embedding::from_pretrained_with_options(gpu, &w, vocab, dim, options).unwrap()
    };
    let plain = EmbeddingOptions::default;

    // The fused steps, twice each.
    let mut emb = pretrained(plain());
    for _ in 0..2 {
        emb.backward_sgd(&ids, &grad, 0.3).unwrap();
    }
    out.push(("fused SGD", emb.weight().to_vec().unwrap()));
    let mut emb = pretrained(plain());
    let mut state = emb.adagrad_state().unwrap();
    for _ in 0..2 {
        emb.backward_adagrad(&ids, &grad, &mut state, 0.3, 1e-8)
            .unwrap();
    }
    out.push(("fused Adagrad", emb.weight().to_vec().unwrap()));
    out.push(("fused Adagrad state", state.to_vec().unwrap()));
    for (what, weight_decay) in [("fused Adam", 0.0), ("fused Adam, weight decay", 0.01)] {
        let mut emb = pretrained(plain());
        let mut adam = emb.adam_state().unwrap();
        let opts = AdamOptions {
            weight_decay,
            ..AdamOptions::default()
        };
        for _ in 0..2 {
            emb.backward_adam(&ids, &grad, &mut adam, &opts).unwrap();
        }
        out.push((what, emb.weight().to_vec().unwrap()));
    }
    // Dense Adam on backward's gradient (bias2 ≠ 1: its extra quotient).
    let mut emb = pretrained(plain());
    let mut adam = emb.adam_state().unwrap();
    for _ in 0..2 {
        let dense = emb.backward(&ids, &grad).unwrap();
        emb.adam_step(&dense, &mut adam, &AdamOptions::default())
            .unwrap();
    }
    out.push(("dense Adam", emb.weight().to_vec().unwrap()));
    out.push(("dense Adam exp_avg_sq", adam.exp_avg_sq().to_vec().unwrap()));

    // scale_grad_by_freq, then the unfused SGD step with it.
    let mut emb = pretrained(EmbeddingOptions {
        scale_grad_by_freq: true,
        ..plain()
    });
    let scaled = emb.backward(&ids, &grad).unwrap();
    out.push((
        "scale_grad_by_freq",
        scaled.to_dense_vec(vocab, dim).unwrap(),
    ));
    emb.sgd_step(&scaled, 0.3).unwrap();
    out.push(("backward + sgd_step", emb.weight().to_vec().unwrap()));

    // max_norm, norm types 2 and 1: the lookup renormalises the rows it reads.
    for (what, norm_type) in [("max_norm p = 2", 2.0), ("max_norm p = 1", 1.0)] {
        let emb = pretrained(EmbeddingOptions {
            max_norm: Some(0.75),
            norm_type,
            ..plain()
        });
        out.push((what, emb.forward(&ids).unwrap().to_vec().unwrap()));
    }

    // Bags: mean, sum with per-sample weights, their backward passes.
    let offsets: Vec<u32> = (0..n as u32 / 8).map(|b| b * 8).collect();
    let psw = values(&mut rng, n);
    let bag_grad = Tensor::from_slice(gpu, &values(&mut rng, n / 8 * dim), &[n / 8, dim]).unwrap();
    for (what, mode, weights) in [
        ("mean bag", BagMode::Mean, None),
        ("weighted bag", BagMode::Sum, Some(&psw[..])),
    ] {
        let bag = EmbeddingBag::from_pretrained(gpu, &w, vocab, dim, false, mode).unwrap();
        out.push((
            what,
            bag.forward(&ids, &offsets, weights)
                .unwrap()
                .to_vec()
                .unwrap(),
        ));
        let back = bag.backward(&ids, &offsets, weights, &bag_grad).unwrap();
        out.push((what, back.to_dense_vec(vocab, dim).unwrap()));
    }
    let bag = EmbeddingBag::from_pretrained(gpu, &w, vocab, dim, false, BagMode::Sum).unwrap();
    let psw_grad = bag
        .per_sample_weights_grad(&ids, &offsets, &bag_grad)
        .unwrap();
    out.push(("per-sample-weight gradient", psw_grad.to_vec().unwrap()));

    // The int8 load: scale · q + bias.
    let packed = int8_rowwise::quantize(&w, dim);
    let int8 = Embedding::from_int8_with_options(
        gpu,
        &packed,
        vocab,
        dim,
        EmbeddingOptions {
            dtype: DType::Int8,
            ..plain()
        },
    )
    .unwrap();
    out.push(("int8 lookup", int8.forward(&ids).unwrap().to_vec().unwrap()));

    // An f16 table's fused SGD (the update in f32, rounded once to f16).
    let mut half = pretrained(EmbeddingOptions {
        dtype: DType::F16,
        ..plain()
    });
    half.backward_sgd(&ids, &grad, 0.3).unwrap();
    out.push(("f16 fused SGD", half.weight().to_vec().unwrap()));

    // Linear's SGD step (sgd_update, the parameters as tables).
    let mut lin = Linear::new(gpu, dim, 5, true).unwrap();
    let x = Tensor::from_slice(gpu, &values(&mut rng, 16 * dim), &[16, dim]).unwrap();
    let dy = Tensor::from_slice(gpu, &values(&mut rng, 16 * 5), &[16, 5]).unwrap();
    let lg = lin.backward(&x, &dy).unwrap();
    lin.sgd_step(&lg, 0.3).unwrap();
    out.push(("Linear sgd_step", lin.weight().to_vec().unwrap()));
    out
}

#[test]
fn checked_and_general_paths_give_the_same_bits_in_every_kernel() {
    let _serial = common::serial();
    for shared in common::gpus() {
        let on = results(&common::reopen(shared, |o| o.exact_checked = Some(true)));
        let off = results(&common::reopen(shared, |o| o.exact_checked = Some(false)));
        assert_eq!(on.len(), off.len());
        for ((what, a), (_, b)) in on.iter().zip(&off) {
            assert!(!a.is_empty(), "{what}: no results");
            assert_bits_eq(&format!("{what} on {}", shared.describe()), a, b);
        }
    }
}
