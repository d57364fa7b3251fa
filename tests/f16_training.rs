//! f16 tables train: their gradients are the f32 sums rounded once to f16,
//! and every update (SGD dense and sparse, fused SGD and row-wise Adagrad)
//! computes in f32 and rounds once, to nearest or stochastically, bit for
//! bit against the twins (`cpu::Round16`, `cpu::Half`) on every adapter, in
//! one row-block or several, for odd widths (two rows share a u32) and
//! vec4 ones. PyTorch's half-precision SGD is the tolerance reference
//! (tests/data/f16_sgd.json, made by tests/data/make_f16_fixture.py).

mod common;

use common::{each_gpu, Rng};
use half::f16;
use serde_json::Value;
use wgpu_embed::cpu::{self, BackwardOptions, Half, Round16};
use wgpu_embed::{
    DType, Embedding, EmbeddingBag, EmbeddingBagOptions, EmbeddingOptions, Error, F16Rounding, Gpu,
    Gradient, HalfTensor, Tensor,
};

const SEED: u64 = 0xF16;

fn options(rounding: F16Rounding) -> EmbeddingOptions {
    EmbeddingOptions {
        dtype: DType::F16,
        padding_idx: Some(2),
        scale_grad_by_freq: true,
        f16_rounding: rounding,
        ..Default::default()
    }
}

fn twin_options(o: &EmbeddingOptions) -> BackwardOptions {
    BackwardOptions {
        padding_idx: o.padding_idx,
        scale_grad_by_freq: o.scale_grad_by_freq,
        ..BackwardOptions::default()
    }
}

/// The twin's rounding of update `step` under `rounding`.
fn round16(rounding: F16Rounding, step: u64) -> Round16 {
    match rounding {
        F16Rounding::Nearest => Round16::Nearest,
        F16Rounding::Stochastic { seed } => Round16::Stochastic { seed, step },
    }
}

fn assert_halves_eq(what: &str, got: &[f16], want: &[f16]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    if let Some(i) = (0..got.len()).find(|&i| got[i].to_bits() != want[i].to_bits()) {
        panic!(
            "{what}: element {i} is {} where the twin has {}",
            got[i], want[i]
        );
    }
}

fn halves(x: &[f32]) -> Vec<f16> {
    x.iter().map(|&v| f16::from_f32(v)).collect()
}

fn widen(x: &[f16]) -> Vec<f32> {
    x.iter().map(|v| v.to_f32()).collect()
}

/// A batch: a hot row whose segment crosses the 256-entry tiles, repeats,
/// and upstream gradients large enough that the updates move f16 weights.
struct Case {
    vocab: usize,
    dim: usize,
    weights: Vec<f16>,
    indices: Vec<u32>,
    grad_out: Vec<f32>,
}

fn case(vocab: usize, dim: usize, n: usize, seed: u64) -> Case {
    let mut rng = Rng(seed);
    Case {
        vocab,
        dim,
        weights: halves(&rng.floats(vocab * dim)),
        indices: rng.ids(n, vocab, 7),
        grad_out: rng.floats(n * dim),
    }
}

impl Case {
    fn table(&self, gpu: &Gpu, o: &EmbeddingOptions) -> Embedding {
        Embedding::from_pretrained_with_options(
            gpu,
            &widen(&self.weights),
            self.vocab,
            self.dim,
            o.clone(),
        )
        .expect("an f16 table")
    }
    fn grad_out(&self, gpu: &Gpu) -> Tensor {
        Tensor::from_slice(gpu, &self.grad_out, &[self.indices.len(), self.dim]).unwrap()
    }
    /// The twin's dense gradient: f32 sums rounded once to nearest.
    fn dense16(&self, o: &EmbeddingOptions) -> Vec<f16> {
        let g = cpu::embedding_backward_dense(
            self.vocab,
            self.dim,
            &self.indices,
            &self.grad_out,
            &twin_options(o),
        );
        g.iter()
            .enumerate()
            .map(|(i, &x)| Round16::Nearest.round(x, i as u64))
            .collect()
    }
}

#[test]
fn f16_gradients_are_the_f32_sums_rounded_once() {
    // 19 and 3: scalar entry points, rows straddling u32 words; 36: vec4.
    for dim in [3, 19, 36] {
        let c = case(700, dim, 4000, dim as u64);
        let o = options(F16Rounding::Nearest);
        let want = c.dense16(&o);
        each_gpu(|gpu| {
            let g = c.grad_out(gpu);
            let Gradient::Dense(grad) = c.table(gpu, &o).backward(&c.indices, &g).unwrap() else {
                panic!("a dense gradient")
            };
            assert_eq!(grad.dtype(), DType::F16, "stored like its table");
            assert_halves_eq(
                &format!("dense dim={dim}"),
                &grad.to_f16_vec().unwrap(),
                &want,
            );

            let sparse = EmbeddingOptions {
                sparse: true,
                ..o.clone()
            };
            let Gradient::Sparse { rows, values } =
                c.table(gpu, &sparse).backward(&c.indices, &g).unwrap()
            else {
                panic!("a sparse gradient")
            };
            assert_eq!(values.dtype(), DType::F16);
            let rows = rows.to_vec().unwrap();
            let want_rows: Vec<u32> = (0..c.vocab as u32)
                .filter(|&r| r != 2 && c.indices.contains(&r))
                .collect();
            assert_eq!(rows, want_rows, "dim={dim}: sparse rows");
            let want_values: Vec<f16> = rows
                .iter()
                .flat_map(|&r| want[r as usize * dim..(r as usize + 1) * dim].to_vec())
                .collect();
            assert_halves_eq(
                &format!("sparse dim={dim}"),
                &values.to_f16_vec().unwrap(),
                &want_values,
            );
        });
    }
}

/// Two steps of each update on one table, so stochastic rounding's step
/// count moves, against the twins.
fn updates_case(c: &Case, o: &EmbeddingOptions) {
    let (v, d, lr) = (c.vocab, c.dim, 0.125f32);
    let twin = twin_options(o);
    let dense = c.dense16(o);
    let rows: Vec<u32> = (0..v as u32)
        .filter(|&r| r != 2 && c.indices.contains(&r))
        .collect();
    let values: Vec<f32> = rows
        .iter()
        .flat_map(|&r| widen(&dense[r as usize * d..(r as usize + 1) * d]))
        .collect();
    let round = |step| round16(o.f16_rounding, step);
    // Fused SGD, twice; fused Adagrad, twice; backward + sgd_step, dense
    // then sparse: the twin's table after each, steps 0 and 1.
    let mut sgd = c.weights.clone();
    let mut ada = c.weights.clone();
    let mut state = vec![0.0f32; v];
    let mut step_dense = c.weights.clone();
    for step in 0..2 {
        let w = &mut Half {
            data: &mut sgd,
            round: round(step),
            first: 0,
        };
        cpu::embedding_backward_sgd(v, d, &c.indices, &c.grad_out, &twin, w, lr);
        let w = &mut Half {
            data: &mut ada,
            round: round(step),
            first: 0,
        };
        cpu::embedding_backward_adagrad(
            v,
            d,
            &c.indices,
            &c.grad_out,
            &twin,
            w,
            &mut state,
            lr,
            1e-8,
        );
    }
    cpu::sgd_dense(
        lr,
        &widen(&dense),
        &mut Half {
            data: &mut step_dense,
            round: round(0),
            first: 0,
        },
    );
    // The fused update steps by the f16 gradient `backward` returns: one
    // fused step is `backward` + `sgd_step`, bit for bit.
    let mut fused_once = c.weights.clone();
    let w = &mut Half {
        data: &mut fused_once,
        round: round(0),
        first: 0,
    };
    cpu::embedding_backward_sgd(v, d, &c.indices, &c.grad_out, &twin, w, lr);
    assert_halves_eq(
        "fused SGD vs backward + sgd_step (twins)",
        &fused_once,
        &step_dense,
    );
    let mut step_sparse = step_dense.clone();
    cpu::sgd_sparse(
        v,
        d,
        lr,
        &values,
        &mut Half {
            data: &mut step_sparse,
            round: round(1),
            first: 0,
        },
        &rows,
    );
    let what = |s: &str| {
        format!(
            "{s} dim={d} {:?} blocks={:?}",
            o.f16_rounding, o.chunk_bytes
        )
    };
    each_gpu(|gpu| {
        let g = c.grad_out(gpu);
        let mut emb = c.table(gpu, o);
        emb.backward_sgd(&c.indices, &g, lr).unwrap();
        emb.backward_sgd(&c.indices, &g, lr).unwrap();
        assert_eq!(emb.update_count(), 2);
        assert_halves_eq(
            &what("fused SGD"),
            &emb.weight().to_f16_vec().unwrap(),
            &sgd,
        );

        let mut emb = c.table(gpu, o);
        let mut s = emb.adagrad_state().unwrap();
        emb.backward_adagrad(&c.indices, &g, &mut s, lr, 1e-8)
            .unwrap();
        emb.backward_adagrad(&c.indices, &g, &mut s, lr, 1e-8)
            .unwrap();
        assert_halves_eq(
            &what("fused Adagrad"),
            &emb.weight().to_f16_vec().unwrap(),
            &ada,
        );
        common::assert_bits_eq(&what("Adagrad state"), &s.to_vec().unwrap(), &state);

        let mut emb = c.table(gpu, o);
        let grad = emb.backward(&c.indices, &g).unwrap();
        emb.sgd_step(&grad, lr).unwrap();
        assert_halves_eq(
            &what("dense sgd_step"),
            &emb.weight().to_f16_vec().unwrap(),
            &step_dense,
        );
        let sparse = EmbeddingOptions {
            sparse: true,
            ..o.clone()
        };
        let grad = c.table(gpu, &sparse).backward(&c.indices, &g).unwrap();
        emb.sgd_step(&grad, lr).unwrap();
        assert_halves_eq(
            &what("sparse sgd_step"),
            &emb.weight().to_f16_vec().unwrap(),
            &step_sparse,
        );
    });
}

#[test]
fn f16_updates_match_their_twins_to_nearest_and_stochastic() {
    for dim in [19, 36] {
        let c = case(700, dim, 4000, 100 + dim as u64);
        for rounding in [F16Rounding::Nearest, F16Rounding::Stochastic { seed: SEED }] {
            updates_case(&c, &options(rounding));
        }
    }
}

#[test]
fn f16_updates_in_several_row_blocks_match_the_twins() {
    // 61 rows of 5 halves (10 bytes) per block: odd rows per block, so a
    // block's last row ends mid-word; and 64-wide rows, 16 per block.
    for (dim, rows_per_block) in [(5usize, 61u64), (64, 16)] {
        let c = case(300, dim, 2000, 7 + dim as u64);
        for rounding in [F16Rounding::Nearest, F16Rounding::Stochastic { seed: SEED }] {
            // Blocks are cut at multiples of 8 bytes: 616 holds 61 rows of 10.
            let o = EmbeddingOptions {
                chunk_bytes: Some((rows_per_block * dim as u64 * 2).next_multiple_of(8)),
                ..options(rounding)
            };
            each_gpu(|gpu| {
                let t = c.table(gpu, &o);
                let starts = t.weight().row_starts().to_vec();
                assert_eq!(
                    starts[1], rows_per_block as usize,
                    "rows per block: {starts:?}"
                );
            });
            each_gpu(|gpu| assert!(c.table(gpu, &o).weight().num_blocks() > 1, "several blocks"));
            updates_case(&c, &o);
        }
    }
}

/// What stochastic rounding is for: an update smaller than half an f16 ulp
/// is lost to rounding to nearest every step, but stochastic rounding keeps
/// it on average.
#[test]
fn stochastic_rounding_keeps_updates_below_half_an_ulp() {
    let (vocab, dim, steps) = (64, 32, 40);
    // Weights 1.0 (ulp 2^-10); each step subtracts 2^-13 = an eighth of an ulp.
    let ones = vec![1.0f32; vocab * dim];
    let indices: Vec<u32> = (0..vocab as u32).collect();
    let grad = vec![1.0f32; vocab * dim];
    let lr = 1.0 / 8192.0;
    let expected = 1.0 - steps as f64 * lr as f64;
    each_gpu(|gpu| {
        let g = Tensor::from_slice(gpu, &grad, &[vocab, dim]).unwrap();
        let mean = |rounding| {
            let o = EmbeddingOptions {
                dtype: DType::F16,
                f16_rounding: rounding,
                ..Default::default()
            };
            let mut emb =
                Embedding::from_pretrained_with_options(gpu, &ones, vocab, dim, o).unwrap();
            for _ in 0..steps {
                emb.backward_sgd(&indices, &g, lr).unwrap();
            }
            let w = emb.weight().to_vec().unwrap();
            w.iter().map(|&x| x as f64).sum::<f64>() / w.len() as f64
        };
        assert_eq!(
            mean(F16Rounding::Nearest),
            1.0,
            "to nearest, every step rounds back to 1"
        );
        let m = mean(F16Rounding::Stochastic { seed: SEED });
        // 2048 weights, each a sum of 40 independent roundings (sd of
        // one: under 2^-11): the mean's sd is about 2^-11 · √40 / √2048.
        assert!(
            (m - expected).abs() < 5e-4,
            "stochastic mean {m}, expected {expected}"
        );
    });
}

#[test]
fn f16_bags_train_through_the_fused_update() {
    let c = case(200, 12, 600, 3);
    let o = EmbeddingOptions {
        scale_grad_by_freq: false,
        ..options(F16Rounding::Stochastic { seed: SEED })
    };
    let offsets: Vec<u32> = (0..c.indices.len() as u32).step_by(3).collect();
    let bags = offsets.len();
    let bag_grad: Vec<f32> = Rng(9).floats(bags * c.dim);
    // Sum mode: each index's upstream gradient is its bag's.
    let expanded: Vec<f32> = (0..c.indices.len())
        .flat_map(|p| bag_grad[(p / 3) * c.dim..(p / 3 + 1) * c.dim].to_vec())
        .collect();
    let mut want = c.weights.clone();
    let w = &mut Half {
        data: &mut want,
        round: round16(o.f16_rounding, 0),
        first: 0,
    };
    cpu::embedding_backward_sgd(
        c.vocab,
        c.dim,
        &c.indices,
        &expanded,
        &twin_options(&o),
        w,
        0.25,
    );
    each_gpu(|gpu| {
        let bag_options = EmbeddingBagOptions {
            mode: wgpu_embed::BagMode::Sum,
            include_last_offset: false,
        };
        let mut bag = EmbeddingBag::from_embedding(c.table(gpu, &o), bag_options);
        let g = Tensor::from_slice(gpu, &bag_grad, &[bags, c.dim]).unwrap();
        bag.backward_sgd(&c.indices, &offsets, None, &g, 0.25)
            .unwrap();
        assert_halves_eq(
            "f16 bag SGD",
            &bag.embedding().weight().to_f16_vec().unwrap(),
            &want,
        );
    });
}

fn fixture() -> Value {
    serde_json::from_str(include_str!("data/f16_sgd.json"))
        .expect("tests/data/f16_sgd.json is JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array")
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// Ordered integers of f16 values: adjacent f16s differ by 1, across zero too.
fn ordinal(h: f16) -> i32 {
    let b = h.to_bits() as i32;
    if b & 0x8000 != 0 {
        -(b & 0x7FFF)
    } else {
        b
    }
}

/// The largest distance in f16 ulps between `got` and `want` (f16 values).
fn ulps(got: &[f16], want: &[f32]) -> u32 {
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (ordinal(g) - ordinal(f16::from_f32(w))).unsigned_abs())
        .max()
        .unwrap_or(0)
}

/// `got`'s largest distance from `exact`, in ulps of the f16 nearest each
/// exact value (a spacing of 0 for exact zeros counts as the smallest ulp).
fn ulps_from_exact(got: &[f32], exact: &[f64]) -> f64 {
    got.iter()
        .zip(exact)
        .map(|(&g, &x)| {
            let n = f16::from_f64(x.abs());
            let up = f16::from_bits(n.to_bits() + 1).to_f64() - n.to_f64();
            (g as f64 - x).abs() / up.max(f16::from_bits(1).to_f64())
        })
        .fold(0.0, f64::max)
}

/// PyTorch's half SGD, step by step (tests/data/f16_sgd.json), taken in
/// its two halves:
/// - the gradient: ours is the f32 sum rounded once, within half an ulp
///   (and a hair of f32 rounding) of the exact sum on every element, and
///   no farther from it than PyTorch's half-accumulated one;
/// - the update: `sgd_step` fed PyTorch's own f16 gradient, from PyTorch's
///   weights, lands within one f16 ulp of PyTorch's weights after the step.
#[test]
fn f16_sgd_follows_pytorch_half_precision_each_step() {
    let f = fixture();
    let field = |k: &str| f[k].as_u64().unwrap() as usize;
    let (v, d) = (field("num_embeddings"), field("dim"));
    let lr = f["lr"].as_f64().unwrap() as f32;
    let steps = f["steps"].as_array().unwrap();
    each_gpu(|gpu| {
        let (mut worst_update, mut worst_ours, mut worst_torch) = (0, 0.0f64, 0.0f64);
        for (s, step) in steps.iter().enumerate() {
            let before = floats(&f["dense"]["before"][s]);
            let after = floats(&f["dense"]["after"][s]);
            let torch_grad = floats(&f["dense"]["grad"][s]);
            let indices: Vec<u32> = step["indices"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect();
            let grad_out = floats(&step["grad_out"]);
            let mut exact = vec![0.0f64; v * d];
            for (p, &r) in indices.iter().enumerate() {
                for c in 0..d {
                    exact[r as usize * d + c] += grad_out[p * d + c] as f64;
                }
            }
            let o = EmbeddingOptions {
                dtype: DType::F16,
                ..Default::default()
            };
            let mut emb = Embedding::from_pretrained_with_options(gpu, &before, v, d, o).unwrap();
            let g = Tensor::from_slice(gpu, &grad_out, &[indices.len(), d]).unwrap();
            let ours = emb
                .backward(&indices, &g)
                .unwrap()
                .to_dense_vec(v, d)
                .unwrap();
            let (e_ours, e_torch) = (
                ulps_from_exact(&ours, &exact),
                ulps_from_exact(&torch_grad, &exact),
            );
            assert!(
                e_ours <= 0.5 + 1e-3,
                "step {s}: our gradient is {e_ours} ulps from the exact sum"
            );
            assert!(
                e_ours <= e_torch.max(0.5),
                "step {s}: ours {e_ours} ulps, PyTorch's {e_torch}"
            );
            (worst_ours, worst_torch) = (worst_ours.max(e_ours), worst_torch.max(e_torch));

            let theirs = HalfTensor::from_f32(gpu, &torch_grad, &[v, d]).unwrap();
            emb.sgd_step(&Gradient::Dense(theirs.into()), lr).unwrap();
            let u = ulps(&emb.weight().to_f16_vec().unwrap(), &after);
            assert!(
                u <= 1,
                "step {s}: the update is {u} f16 ulps from PyTorch's"
            );
            worst_update = worst_update.max(u);
        }
        eprintln!(
            "{}: gradient {worst_ours:.3} ulps from the exact sum (PyTorch's: {worst_torch:.3}); \
             update {worst_update} ulps from PyTorch {}",
            gpu.describe(),
            f["torch"]
        );
    });
}

#[test]
fn bad_f16_training_input_is_an_error_and_changes_nothing() {
    let c = case(50, 6, 40, 11);
    let o = options(F16Rounding::Nearest);
    each_gpu(|gpu| {
        let g = c.grad_out(gpu);
        let mut emb = c.table(gpu, &o);
        let before = emb.weight().to_f16_vec().unwrap();
        // An f32 gradient for an f16 table (and the reverse) is refused.
        let f32_grad = Gradient::Dense(Tensor::zeros(gpu, &[c.vocab, c.dim]).unwrap().into());
        assert!(matches!(
            emb.sgd_step(&f32_grad, 0.1),
            Err(Error::InvalidArgument { name: "grad", .. })
        ));
        let mut f32_emb = Embedding::with_options(gpu, c.vocab, c.dim, Default::default()).unwrap();
        let f16_grad = emb.backward(&c.indices, &g).unwrap();
        assert!(matches!(
            f32_emb.sgd_step(&f16_grad, 0.1),
            Err(Error::InvalidArgument { name: "grad", .. })
        ));
        // Adam trains f32 tables only.
        assert!(matches!(
            emb.adam_state(),
            Err(Error::InvalidArgument { name: "dtype", .. })
        ));
        // A bad index and a NaN rate.
        let mut bad = c.indices.clone();
        bad[3] = c.vocab as u32;
        assert!(matches!(
            emb.backward_sgd(&bad, &g, 0.1),
            Err(Error::IndexOutOfRange { position: 3, .. })
        ));
        assert!(emb.backward_sgd(&c.indices, &g, f32::NAN).is_err());
        assert_eq!(emb.weight().to_f16_vec().unwrap(), before);
        assert_eq!(emb.update_count(), 0, "failed updates do not count");
    });
}

#[test]
fn past_the_largest_f16_stochastic_rounding_saturates_and_nearest_overflows() {
    // Rows at ±65504 (the largest f16) stepped outward: rounding to nearest
    // gives ±inf (as `.half()`), stochastic rounding ±65504 (as FBGEMM's,
    // which converts toward zero), in the fused update and in sgd_step.
    let mut init = vec![65504.0f32; 4];
    init.extend([-65504.0; 4]);
    init.extend([0.0; 4]);
    each_gpu(|gpu| {
        for rounding in [F16Rounding::Nearest, F16Rounding::Stochastic { seed: SEED }] {
            let want: Vec<f32> = match rounding {
                F16Rounding::Nearest => [f32::INFINITY, f32::NEG_INFINITY],
                F16Rounding::Stochastic { .. } => [65504.0, -65504.0],
            }
            .iter()
            .flat_map(|&v| [v; 4])
            .chain([0.0; 4])
            .collect();
            let mut g = vec![-100.0f32; 4];
            g.extend([100.0; 4]);
            let g = Tensor::from_slice(gpu, &g, &[2, 4]).unwrap();
            let mut fused =
                Embedding::from_pretrained_with_options(gpu, &init, 3, 4, options(rounding))
                    .unwrap();
            fused.backward_sgd(&[0, 1], &g, 1.0).unwrap();
            assert_eq!(fused.weight().to_vec().unwrap(), want, "fused {rounding:?}");
            let mut stepped =
                Embedding::from_pretrained_with_options(gpu, &init, 3, 4, options(rounding))
                    .unwrap();
            let grad = stepped.backward(&[0, 1], &g).unwrap();
            stepped.sgd_step(&grad, 1.0).unwrap();
            assert_eq!(
                stepped.weight().to_vec().unwrap(),
                want,
                "sgd_step {rounding:?}"
            );
        }
    });
}
