//! Adam: the fused `backward_adam` (torch.optim.SparseAdam) and the dense
//! `adam_step` (torch.optim.Adam) against PyTorch's own optimizers over a
//! fixed batch sequence (tests/data/adam.json, made by
//! tests/data/make_adam_fixture.py), against their CPU twins bit for bit
//! on every adapter, and every bad input a typed error that changes nothing.

mod common;

use common::*;
use serde_json::Value;
use wgpu_embed::cpu::{self, AdamArgs, BackwardOptions};
use wgpu_embed::{
    AdamOptions, AdamState, Embedding, EmbeddingOptions, Error, Gpu, Gradient, IndexTensor, Tensor,
};

fn fixture() -> Value {
    serde_json::from_str(include_str!("data/adam.json")).expect("tests/data/adam.json is JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().expect("a number") as f32)
        .collect()
}

fn options(v: &Value) -> AdamOptions {
    let f = |k: &str| v[k].as_f64().unwrap();
    AdamOptions {
        lr: f("lr"),
        betas: (
            v["betas"][0].as_f64().unwrap(),
            v["betas"][1].as_f64().unwrap(),
        ),
        eps: f("eps"),
        weight_decay: f("weight_decay"),
    }
}

/// Within `rel` of PyTorch, relative to each value or, for values far
/// below the tensor's typical size (a weight crossing zero, a moment of a
/// row seldom seen), to that size (the mean magnitude): such a value is
/// the difference of two large ones and carries their rounding, in
/// PyTorch as in ours. Names the worst element.
fn assert_rel(what: &str, got: &[f32], want: &[f32], rel: f64) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let typical = want.iter().map(|w| w.abs() as f64).sum::<f64>() / want.len().max(1) as f64;
    let (mut worst, mut at) = (0.0f64, 0);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let e = (g as f64 - w as f64).abs() / (w.abs() as f64).max(typical).max(f64::MIN_POSITIVE);
        if e > worst {
            (worst, at) = (e, i);
        }
    }
    assert!(
        worst <= rel,
        "{what}: element {at} is {} where PyTorch has {} (relative {worst:.2e} > {rel:.0e})",
        got[at],
        want[at]
    );
}

fn moments(state: &AdamState) -> (Vec<f32>, Vec<f32>) {
    (
        state.exp_avg().to_vec().unwrap(),
        state.exp_avg_sq().to_vec().unwrap(),
    )
}

/// PyTorch's relative agreement: both sides round differently in places
/// (its `lerp`, `addcmul`, and a fused multiply-add or two).
const TORCH_REL: f64 = 1e-6;

/// Steps through the fixture's batches with `key`'s optimizer
/// ("sparse_adam": the fused `backward_adam`; "adam": `backward` then
/// `adam_step`), holding weights and moments to the twin bit for bit and to
/// PyTorch within [`TORCH_REL`] after every step.
fn follow_pytorch(key: &str) {
    let f = fixture();
    let (v, d) = (
        f["num_embeddings"].as_u64().unwrap() as usize,
        f["dim"].as_u64().unwrap() as usize,
    );
    let init = floats(&f["init"]);
    let opts = options(&f[key]["options"]);
    let sparse = key == "sparse_adam";
    each_gpu(|gpu| {
        let mut emb = Embedding::from_pretrained(gpu, &init, v, d, false).unwrap();
        let mut state = emb.adam_state().unwrap();
        let (mut w, mut m, mut s) = (init.clone(), vec![0.0; v * d], vec![0.0; v * d]);
        let steps = f["batches"].as_array().unwrap().iter();
        for (t, (batch, after)) in steps.zip(f[key]["after"].as_array().unwrap()).enumerate() {
            let idx: Vec<u32> = batch["indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            let go = floats(&batch["grad_out"]);
            let g = Tensor::from_slice(gpu, &go, &[idx.len(), d]).unwrap();
            let a = AdamArgs::for_step(
                t as u64 + 1,
                opts.lr,
                opts.betas,
                opts.eps,
                opts.weight_decay,
                sparse,
            );
            let twin = BackwardOptions::default();
            if sparse {
                emb.backward_adam(&idx, &g, &mut state, &opts).unwrap();
                cpu::embedding_backward_adam(v, d, &idx, &go, &twin, &mut w, &mut m, &mut s, &a);
            } else {
                let grad = emb.backward(&idx, &g).unwrap();
                emb.adam_step(&grad, &mut state, &opts).unwrap();
                let dense = cpu::embedding_backward_dense(v, d, &idx, &go, &twin);
                cpu::adam_step(&a, &dense, &mut w, &mut m, &mut s);
            }
            assert_eq!(state.step(), t as u64 + 1);
            let got = emb.weight().to_vec().unwrap();
            let (gm, gs) = moments(&state);
            for (name, got, twin, torch) in [
                ("weights", &got, &w, "weight"),
                ("exp_avg", &gm, &m, "exp_avg"),
                ("exp_avg_sq", &gs, &s, "exp_avg_sq"),
            ] {
                assert_bits_eq(&format!("{key} step {t}: {name} vs twin"), got, twin);
                let want = floats(&after[torch]);
                assert_rel(
                    &format!("{key} step {t}: {name} vs PyTorch"),
                    got,
                    &want,
                    TORCH_REL,
                );
            }
        }
    });
}

#[test]
fn backward_adam_is_sparse_adam() {
    follow_pytorch("sparse_adam");
}

#[test]
fn adam_step_is_torch_adam() {
    follow_pytorch("adam");
}

/// The fused step over shapes: both kernel variants (dim % 4), tables in
/// several row-blocks, a padding row, frequency scaling, hot rows whose
/// segments cross tiles, weight decay; every adapter equals the twin.
#[test]
fn backward_adam_matches_its_twin_over_shapes() {
    for (dim, chunk_rows, padding, freq) in [
        (1, None, None, false),
        (6, Some(64), Some(3), true),
        (8, None, Some(0), false),
        (17, Some(100), None, true),
        (40, Some(128), None, false),
    ] {
        let (vocab, n) = (300, 1500);
        let mut rng = Rng(dim as u64 * 31 + 7);
        let init = rng.floats(vocab * dim);
        let opts = AdamOptions {
            lr: 0.05,
            betas: (0.85, 0.98),
            eps: 1e-6,
            weight_decay: if freq { 0.01 } else { 0.0 },
        };
        let batches: Vec<(Vec<u32>, Vec<f32>)> = (0..3)
            .map(|_| {
                (
                    rng.ids(n, vocab, 5),
                    (0..n * dim).map(|_| rng.grad()).collect(),
                )
            })
            .collect();
        let options = EmbeddingOptions {
            padding_idx: padding,
            scale_grad_by_freq: freq,
            chunk_bytes: chunk_rows.map(|r| (r * dim * 4) as u64),
            ..EmbeddingOptions::default()
        };
        let twin = BackwardOptions {
            padding_idx: padding,
            scale_grad_by_freq: freq,
            ..BackwardOptions::default()
        };
        let (mut w, mut m, mut s) = (init.clone(), vec![0.0; vocab * dim], vec![0.0; vocab * dim]);
        for (t, (idx, go)) in batches.iter().enumerate() {
            let a = AdamArgs::for_step(
                t as u64 + 1,
                opts.lr,
                opts.betas,
                opts.eps,
                opts.weight_decay,
                true,
            );
            cpu::embedding_backward_adam(vocab, dim, idx, go, &twin, &mut w, &mut m, &mut s, &a);
        }
        each_gpu(|gpu| {
            let mut emb =
                Embedding::from_pretrained_with_options(gpu, &init, vocab, dim, options.clone())
                    .unwrap();
            let mut state = emb.adam_state().unwrap();
            for (idx, go) in &batches {
                let g = Tensor::from_slice(gpu, go, &[idx.len(), dim]).unwrap();
                emb.backward_adam(idx, &g, &mut state, &opts).unwrap();
            }
            let what = format!("dim {dim}, row-blocks of {chunk_rows:?}");
            assert_bits_eq(
                &format!("{what}: weights"),
                &emb.weight().to_vec().unwrap(),
                &w,
            );
            let (gm, gs) = moments(&state);
            assert_bits_eq(&format!("{what}: exp_avg"), &gm, &m);
            assert_bits_eq(&format!("{what}: exp_avg_sq"), &gs, &s);
            if let Some(p) = padding {
                assert_eq!(
                    &gm[p * dim..(p + 1) * dim],
                    &vec![0.0; dim][..],
                    "{what}: padding row moved"
                );
            }
        });
    }
}

/// The dense step on a table in row-blocks, against its twin.
#[test]
fn adam_step_matches_its_twin_in_row_blocks() {
    let (vocab, dim, n) = (200, 12, 700);
    let mut rng = Rng(99);
    let init = rng.floats(vocab * dim);
    let idx = rng.ids(n, vocab, 2);
    let go: Vec<f32> = (0..n * dim).map(|_| rng.grad()).collect();
    let opts = AdamOptions {
        weight_decay: 0.1,
        ..AdamOptions::default()
    };
    let dense = cpu::embedding_backward_dense(vocab, dim, &idx, &go, &BackwardOptions::default());
    let (mut w, mut m, mut s) = (init.clone(), vec![0.0; vocab * dim], vec![0.0; vocab * dim]);
    for t in 1..=2 {
        let a = AdamArgs::for_step(t, opts.lr, opts.betas, opts.eps, opts.weight_decay, false);
        cpu::adam_step(&a, &dense, &mut w, &mut m, &mut s);
    }
    each_gpu(|gpu| {
        let options = EmbeddingOptions {
            chunk_bytes: Some((48 * dim * 4) as u64),
            ..EmbeddingOptions::default()
        };
        let mut emb =
            Embedding::from_pretrained_with_options(gpu, &init, vocab, dim, options).unwrap();
        assert!(emb.weight().blocks().len() > 1, "the table is split");
        let mut state = emb.adam_state().unwrap();
        let g = Tensor::from_slice(gpu, &go, &[n, dim]).unwrap();
        let grad = emb.backward(&idx, &g).unwrap();
        emb.adam_step(&grad, &mut state, &opts).unwrap();
        emb.adam_step(&grad, &mut state, &opts).unwrap();
        assert_eq!(state.step(), 2);
        assert_bits_eq("weights", &emb.weight().to_vec().unwrap(), &w);
        let (gm, gs) = moments(&state);
        assert_bits_eq("exp_avg", &gm, &m);
        assert_bits_eq("exp_avg_sq", &gs, &s);
    });
}

/// What a call left: weights, both moments, the step.
fn snapshot(emb: &Embedding, state: &AdamState) -> (Vec<f32>, Vec<f32>, Vec<f32>, u64) {
    let (m, v) = moments(state);
    (emb.weight().to_vec().unwrap(), m, v, state.step())
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    each_gpu(|gpu: &Gpu| {
        let (vocab, dim) = (10, 4);
        let init = table(vocab, dim);
        let mut emb = Embedding::from_pretrained(gpu, &init, vocab, dim, false).unwrap();
        let mut state = emb.adam_state().unwrap();
        let g = Tensor::from_slice(gpu, &vec![0.5; 3 * dim], &[3, dim]).unwrap();
        // One good step first, so the moments are not all zero.
        emb.backward_adam(&[1, 2, 2], &g, &mut state, &AdamOptions::default())
            .unwrap();
        let before = snapshot(&emb, &state);

        let bad = [
            (
                "lr",
                AdamOptions {
                    lr: f64::NAN,
                    ..AdamOptions::default()
                },
            ),
            (
                "lr",
                AdamOptions {
                    lr: -1.0,
                    ..AdamOptions::default()
                },
            ),
            (
                "eps",
                AdamOptions {
                    eps: -1e-8,
                    ..AdamOptions::default()
                },
            ),
            (
                "weight_decay",
                AdamOptions {
                    weight_decay: f64::INFINITY,
                    ..AdamOptions::default()
                },
            ),
            (
                "betas.0",
                AdamOptions {
                    betas: (1.0, 0.999),
                    ..AdamOptions::default()
                },
            ),
            (
                "betas.1",
                AdamOptions {
                    betas: (0.9, f64::NAN),
                    ..AdamOptions::default()
                },
            ),
        ];
        for (name, opts) in bad {
            match emb.backward_adam(&[1, 2, 3], &g, &mut state, &opts) {
                Err(Error::InvalidArgument { name: n, .. }) if n == name => {}
                other => panic!("{name}: expected InvalidArgument, got {other:?}"),
            }
            let grad = emb.backward(&[1, 2, 3], &g).unwrap();
            assert!(matches!(
                emb.adam_step(&grad, &mut state, &opts),
                Err(Error::InvalidArgument { .. })
            ));
        }
        assert_eq!(
            snapshot(&emb, &state),
            before,
            "bad options changed something"
        );
        // SparseAdam's own refusals: lr and eps above 0 (eps as an f32 too:
        // with 0, a zero gradient on zero moments is 0/0 and the row NaN).
        for (name, opts) in [
            (
                "lr",
                AdamOptions {
                    lr: 0.0,
                    ..AdamOptions::default()
                },
            ),
            (
                "eps",
                AdamOptions {
                    eps: 0.0,
                    ..AdamOptions::default()
                },
            ),
            (
                "eps",
                AdamOptions {
                    eps: 1e-50,
                    ..AdamOptions::default()
                },
            ),
        ] {
            match emb.backward_adam(&[1, 2, 3], &g, &mut state, &opts) {
                Err(Error::InvalidArgument { name: n, .. }) if n == name => {}
                other => panic!("sparse {name}: expected InvalidArgument, got {other:?}"),
            }
        }
        assert_eq!(
            snapshot(&emb, &state),
            before,
            "SparseAdam's refusals changed something"
        );

        // Out of range: host indices, then GPU indices (found by the kernels).
        assert!(matches!(
            emb.backward_adam(&[1, 10, 3], &g, &mut state, &AdamOptions::default()),
            Err(Error::IndexOutOfRange {
                position: 1,
                index: 10,
                ..
            })
        ));
        let on_gpu = IndexTensor::from_slice(gpu, &[1, 2, 99]).unwrap();
        assert!(matches!(
            emb.backward_adam_gpu(&on_gpu, &g, &mut state, &AdamOptions::default()),
            Err(Error::IndexOutOfRange {
                position: 2,
                index: 99,
                ..
            })
        ));
        assert_eq!(
            snapshot(&emb, &state),
            before,
            "a bad index changed something"
        );
        // Recorded into the caller's encoder, the bad batch is found when it
        // runs: weights and moments stay, the count moved, set_step takes it back.
        let status = wgpu_embed::Status::new(gpu).unwrap();
        let mut encoder = gpu.encoder("bad adam batch");
        emb.encode_backward_adam(
            &mut encoder,
            &on_gpu,
            &g,
            &mut state,
            &AdamOptions::default(),
            &status,
        )
        .unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        assert_eq!(status.read().unwrap(), Some(2));
        assert_eq!(state.step(), before.3 + 1);
        state.set_step(before.3);
        assert_eq!(
            snapshot(&emb, &state),
            before,
            "a bad recorded batch changed something"
        );

        // Another table's state, a wrong grad_out, a sparse gradient to adam_step.
        let other = Embedding::from_pretrained(gpu, &table(5, dim), 5, dim, false).unwrap();
        let mut foreign = other.adam_state().unwrap();
        assert!(matches!(
            emb.backward_adam(&[1], &g, &mut foreign, &AdamOptions::default()),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            emb.backward_adam(&[1, 2], &g, &mut state, &AdamOptions::default()),
            Err(Error::ShapeMismatch { .. })
        ));
        let sparse = Embedding::from_pretrained_with_options(
            gpu,
            &init,
            vocab,
            dim,
            EmbeddingOptions {
                sparse: true,
                ..EmbeddingOptions::default()
            },
        )
        .unwrap();
        let sparse_grad = sparse.backward(&[1, 2, 3], &g).unwrap();
        assert!(matches!(sparse_grad, Gradient::Sparse { .. }));
        assert!(matches!(
            emb.adam_step(&sparse_grad, &mut state, &AdamOptions::default()),
            Err(Error::InvalidArgument { name: "grad", .. })
        ));
        assert_eq!(
            snapshot(&emb, &state),
            before,
            "a bad state or gradient changed something"
        );

        // A frozen table.
        let mut frozen = Embedding::from_pretrained(gpu, &init, vocab, dim, true).unwrap();
        let mut fs = frozen.adam_state().unwrap();
        assert!(matches!(
            frozen.backward_adam(
                &[1],
                &Tensor::from_slice(gpu, &[0.5; 4], &[1, 4]).unwrap(),
                &mut fs,
                &AdamOptions::default()
            ),
            Err(Error::Frozen)
        ));
    });
}
