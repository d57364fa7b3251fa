//! `Linear` on every adapter: forward and backward against the CPU twins and
//! finite differences, SGD, initialisation, shape errors, and the seed's
//! equivalence with `Embedding`.

mod common;

use common::{data, each_gpu, relative_error};

use wgpu_embed::kernels::one_hot::one_hot;
use wgpu_embed::{cpu, Embedding, Error, Gpu, Linear, LinearGrad, LinearOptions, Tensor};

/// The matmul bound (tests/matmul.rs): f32 sums of a few hundred products
/// stay within about √K · 2⁻²⁴ of the f64 twin.
const TOLERANCE: f64 = 1e-5;

/// The CPU twins' composition of the backward pass: (dx, dW, db).
fn twin_backward(
    batch: usize,
    inp: usize,
    out: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let mut dx = vec![0.0; batch * inp];
    cpu::matmul(batch, inp, out, false, false, false, dy, w, None, &mut dx);
    let mut dw = vec![0.0; out * inp];
    cpu::matmul(out, inp, batch, true, false, false, dy, x, None, &mut dw);
    let mut db = vec![0.0; out];
    cpu::column_sum(batch, out, false, dy, &mut db);
    (dx, dw, db)
}

#[test]
fn init_is_pytorch_default_uniform_and_seeded() {
    each_gpu(|gpu| {
        let lin = Linear::new(gpu, 100, 30, true).unwrap();
        let w = lin.weight().to_vec().unwrap();
        let b = lin.bias().unwrap().to_vec().unwrap();
        assert_eq!(lin.weight().shape(), &[30, 100]);
        let bound = 1.0 / 10.0;
        assert!(
            w.iter().chain(&b).all(|v| v.abs() <= bound),
            "values outside ±1/√in"
        );
        // Not degenerate: spread over the interval, weight and bias not sharing numbers.
        let mean: f64 = w.iter().map(|&v| v as f64).sum::<f64>() / w.len() as f64;
        let var: f64 = w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / w.len() as f64;
        assert!(
            mean.abs() < 0.01 && (var - 0.01 / 3.0).abs() < 0.0005,
            "mean {mean} var {var}"
        );
        assert_ne!(&w[..30], &b[..]);
        // A second default layer draws the next seed: different weights, as
        // two `nn.Linear`s differ. Its seed builds the first layer again, and
        // the twin gives the same numbers.
        let next = Linear::new(gpu, 100, 30, true).unwrap();
        assert_ne!(next.seed(), lin.seed());
        assert_ne!(next.weight().to_vec().unwrap(), w);
        let seed = Some(lin.seed());
        let again = Linear::with_options(gpu, 100, 30, LinearOptions { bias: true, seed }).unwrap();
        assert_eq!(again.weight().to_vec().unwrap(), w);
        assert_eq!(again.bias().unwrap().to_vec().unwrap(), b);
        let mut want = vec![0.0; 3000 + 30];
        cpu::uniform_fill(lin.seed(), 0, -bound, bound, &mut want);
        assert_eq!(&want[..3000], &w[..]);
        assert_eq!(&want[3000..], &b[..]);
        let other = Linear::with_options(
            gpu,
            100,
            30,
            LinearOptions {
                bias: false,
                seed: Some(9),
            },
        )
        .unwrap();
        assert!(other.bias().is_none());
        assert_ne!(other.weight().to_vec().unwrap(), w);
    });
}

#[test]
fn forward_and_backward_match_the_twins() {
    each_gpu(|gpu| {
        for &(batch, inp, out, bias) in &[
            (1usize, 1usize, 1usize, true),
            (37, 61, 29, true),
            (130, 257, 70, false),
        ] {
            let mut lin = Linear::with_options(
                gpu,
                inp,
                out,
                LinearOptions {
                    bias,
                    seed: Some(3),
                },
            )
            .unwrap();
            let w = data(out * inp, 1);
            let b = data(out, 2);
            lin.set_weight(&w).unwrap();
            if bias {
                lin.set_bias(&b).unwrap();
            }
            let x = data(batch * inp, 3);
            let dy = data(batch * out, 4);
            let tx = Tensor::from_slice(gpu, &x, &[batch, inp]).unwrap();
            let tdy = Tensor::from_slice(gpu, &dy, &[batch, out]).unwrap();

            let y = lin.forward(&tx).unwrap();
            assert_eq!(y.shape(), &[batch, out]);
            let mut want = vec![0.0; batch * out];
            cpu::matmul(
                batch,
                out,
                inp,
                false,
                true,
                false,
                &x,
                &w,
                bias.then_some(&b[..]),
                &mut want,
            );
            let err = relative_error(&y.to_vec().unwrap(), &want);
            assert!(err <= TOLERANCE, "forward {batch}x{inp}->{out}: {err:e}");

            let g = lin.backward(&tx, &tdy).unwrap();
            let (dx, dw, db) = twin_backward(batch, inp, out, &x, &w, &dy);
            for (what, got, want) in [
                ("dx", g.input.to_vec().unwrap(), dx),
                ("dW", g.weight.to_vec().unwrap(), dw),
            ] {
                let err = relative_error(&got, &want);
                assert!(err <= TOLERANCE, "{what} {batch}x{inp}->{out}: {err:e}");
            }
            assert_eq!(g.bias.is_some(), bias);
            if let Some(gb) = &g.bias {
                common::assert_bits_eq("db", &gb.to_vec().unwrap(), &db);
            }

            // Accumulating a second backward doubles the parameter gradients.
            let mut encoder = gpu.encoder("accumulate");
            lin.encode_backward(&mut encoder, &tx, &tdy, &g, true)
                .unwrap();
            gpu.submit_and_wait(encoder).unwrap();
            let (_, dw, mut db) = twin_backward(batch, inp, out, &x, &w, &dy);
            let doubled: Vec<f32> = dw.iter().map(|v| v * 2.0).collect();
            let err = relative_error(&g.weight.to_vec().unwrap(), &doubled);
            assert!(err <= TOLERANCE, "accumulated dW: {err:e}");
            if let Some(gb) = &g.bias {
                // The bias gradient accumulates too, as column_sum's twin adds.
                cpu::column_sum(batch, out, true, &dy, &mut db);
                common::assert_bits_eq("accumulated db", &gb.to_vec().unwrap(), &db);
            }

            // SGD: W ← W − lr · dW (twice the gradient now).
            // The product is exact_arith's mul_rn, rounded before the
            // subtraction on every adapter, as the twin rounds it: the same bits.
            let b0 = lin.bias().map(|b| b.to_vec().unwrap());
            lin.sgd_step(&g, 0.5).unwrap();
            let mut want = w.clone();
            cpu::sgd_dense(0.5, &g.weight.to_vec().unwrap(), &mut want[..]);
            common::assert_bits_eq("W after sgd_step", &lin.weight().to_vec().unwrap(), &want);
            if let (Some(mut want), Some(gb)) = (b0, &g.bias) {
                cpu::sgd_dense(0.5, &gb.to_vec().unwrap(), &mut want[..]);
                let got = lin.bias().unwrap().to_vec().unwrap();
                common::assert_bits_eq("b after sgd_step", &got, &want);
            }
        }
    });
}

/// Sum of y · r for a fixed r: a scalar loss whose gradient dL/dy is r.
fn loss(lin: &Linear, gpu: &Gpu, x: &[f32], shape: &[usize], r: &[f32]) -> f64 {
    let y = lin
        .forward(&Tensor::from_slice(gpu, x, shape).unwrap())
        .unwrap()
        .to_vec()
        .unwrap();
    y.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

#[test]
fn backward_matches_central_finite_differences() {
    each_gpu(|gpu| {
        let (batch, inp, out) = (3, 5, 4);
        let mut lin = Linear::new(gpu, inp, out, true).unwrap();
        let w = lin.weight().to_vec().unwrap();
        let b = lin.bias().unwrap().to_vec().unwrap();
        let x = data(batch * inp, 11);
        let r = data(batch * out, 12);
        let shape = [batch, inp];
        let g = lin
            .backward(
                &Tensor::from_slice(gpu, &x, &shape).unwrap(),
                &Tensor::from_slice(gpu, &r, &[batch, out]).unwrap(),
            )
            .unwrap();
        let (gx, gw, gb) = (
            g.input.to_vec().unwrap(),
            g.weight.to_vec().unwrap(),
            g.bias.unwrap().to_vec().unwrap(),
        );
        // f32 forward passes: the loss is linear in each parameter, so the
        // central difference is exact up to the forward's rounding, about
        // 1e-7 · |loss| / h; h = 1e-2 keeps that near 1e-4.
        let h = 1e-2f32;
        let tol = 2e-3;
        for i in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[i] += h;
            xm[i] -= h;
            let fd = (loss(&lin, gpu, &xp, &shape, &r) - loss(&lin, gpu, &xm, &shape, &r))
                / (2.0 * h as f64);
            assert!(
                (fd - gx[i] as f64).abs() <= tol,
                "dx[{i}]: fd {fd} vs {}",
                gx[i]
            );
        }
        for i in 0..w.len() {
            let mut wp = w.clone();
            wp[i] += h;
            lin.set_weight(&wp).unwrap();
            let lp = loss(&lin, gpu, &x, &shape, &r);
            wp[i] = w[i] - h;
            lin.set_weight(&wp).unwrap();
            let lm = loss(&lin, gpu, &x, &shape, &r);
            let fd = (lp - lm) / (2.0 * h as f64);
            assert!(
                (fd - gw[i] as f64).abs() <= tol,
                "dW[{i}]: fd {fd} vs {}",
                gw[i]
            );
        }
        lin.set_weight(&w).unwrap();
        for i in 0..b.len() {
            let mut bp = b.clone();
            bp[i] += h;
            lin.set_bias(&bp).unwrap();
            let lp = loss(&lin, gpu, &x, &shape, &r);
            bp[i] = b[i] - h;
            lin.set_bias(&bp).unwrap();
            let lm = loss(&lin, gpu, &x, &shape, &r);
            let fd = (lp - lm) / (2.0 * h as f64);
            assert!(
                (fd - gb[i] as f64).abs() <= tol,
                "db[{i}]: fd {fd} vs {}",
                gb[i]
            );
        }
    });
}

#[test]
fn leading_dimensions_are_batch_dimensions() {
    each_gpu(|gpu| {
        let lin = Linear::new(gpu, 6, 3, true).unwrap();
        let x = data(2 * 4 * 6, 5);
        let y3 = lin
            .forward(&Tensor::from_slice(gpu, &x, &[2, 4, 6]).unwrap())
            .unwrap();
        assert_eq!(y3.shape(), &[2, 4, 3]);
        let y2 = lin
            .forward(&Tensor::from_slice(gpu, &x, &[8, 6]).unwrap())
            .unwrap();
        common::assert_bits_eq(
            "3-D vs 2-D input",
            &y3.to_vec().unwrap(),
            &y2.to_vec().unwrap(),
        );
        let y1 = lin
            .forward(&Tensor::from_slice(gpu, &x[..6], &[6]).unwrap())
            .unwrap();
        assert_eq!(y1.shape(), &[3]);
        common::assert_bits_eq(
            "1-D input",
            &y1.to_vec().unwrap(),
            &y2.to_vec().unwrap()[..3],
        );
    });
}

#[test]
fn shape_mismatches_are_typed_errors_naming_both_shapes() {
    each_gpu(|gpu| {
        let mut lin = Linear::new(gpu, 6, 3, true).unwrap();
        let x = Tensor::zeros(gpu, &[4, 5]).unwrap();
        match lin.forward(&x) {
            Err(Error::ShapeMismatch {
                expected, found, ..
            }) => {
                assert_eq!(expected, vec![4, 6]);
                assert_eq!(found, vec![4, 5]);
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
        let x = Tensor::zeros(gpu, &[4, 6]).unwrap();
        let dy = Tensor::zeros(gpu, &[4, 2]).unwrap();
        match lin.backward(&x, &dy) {
            Err(Error::ShapeMismatch {
                expected, found, ..
            }) => {
                assert_eq!(expected, vec![4, 3]);
                assert_eq!(found, vec![4, 2]);
            }
            other => panic!("expected ShapeMismatch, got {:?}", other.err()),
        }
        let y = Tensor::zeros(gpu, &[5, 3]).unwrap();
        let mut encoder = gpu.encoder("bad output");
        assert!(matches!(
            lin.encode_forward(&mut encoder, &x, &y),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            lin.set_weight(&[0.0; 17]),
            Err(Error::LengthMismatch {
                expected: 18,
                found: 17,
                ..
            })
        ));
        assert!(matches!(
            lin.set_bias(&[0.0; 4]),
            Err(Error::LengthMismatch {
                expected: 3,
                found: 4,
                ..
            })
        ));
        let mut nobias = Linear::new(gpu, 6, 3, false).unwrap();
        assert!(matches!(
            nobias.set_bias(&[0.0; 3]),
            Err(Error::InvalidArgument { .. })
        ));
        // A gradient of the wrong layer is refused by the SGD step.
        let g = Linear::new(gpu, 6, 4, true)
            .unwrap()
            .backward(&x, &Tensor::zeros(gpu, &[4, 4]).unwrap())
            .unwrap();
        assert!(matches!(
            lin.sgd_step(&g, 0.1),
            Err(Error::ShapeMismatch { .. })
        ));
        // A step whose weight gradient is right but bias gradient wrong, or
        // whose rate is not finite, records nothing: the weights keep their bits.
        let before = (
            lin.weight().to_vec().unwrap(),
            lin.bias().unwrap().to_vec().unwrap(),
        );
        let mut g = Linear::new(gpu, 6, 3, true)
            .unwrap()
            .backward(&x, &Tensor::from_slice(gpu, &[1.0; 12], &[4, 3]).unwrap())
            .unwrap();
        for lr in [f32::NAN, f32::INFINITY] {
            assert!(matches!(
                lin.sgd_step(&g, lr),
                Err(Error::InvalidArgument { name: "lr", .. })
            ));
        }
        g.bias = Some(Tensor::zeros(gpu, &[4]).unwrap());
        let mut encoder = gpu.encoder("half a step?");
        assert!(matches!(
            lin.encode_sgd_step(&mut encoder, &g, 0.5),
            Err(Error::ShapeMismatch { .. })
        ));
        gpu.submit_and_wait(encoder).unwrap();
        let after = (
            lin.weight().to_vec().unwrap(),
            lin.bias().unwrap().to_vec().unwrap(),
        );
        assert_eq!(after, before, "a refused step changes no weight");

        // Buffers shared between inputs and outputs: refused before anything
        // is recorded, so the caller's encoder stays usable. A square layer,
        // where x, dy and dx share a shape.
        let sq = Linear::new(gpu, 4, 4, true).unwrap();
        let x = Tensor::from_slice(gpu, &[1.0; 8], &[2, 4]).unwrap();
        let dy = Tensor::from_slice(gpu, &[1.0; 8], &[2, 4]).unwrap();
        let g = sq.backward(&x, &dy).unwrap();
        let mut encoder = gpu.encoder("aliased outputs");
        let aliased = |input: Tensor| LinearGrad {
            input,
            weight: g.weight.clone(),
            bias: g.bias.clone(),
        };
        // dx into x: dW would read the new dx as x.
        for (what, grad) in [
            ("dx into x", aliased(x.clone())),
            ("dx into dy", aliased(dy.clone())),
        ] {
            let r = sq.encode_backward(&mut encoder, &x, &dy, &grad, false);
            assert!(
                matches!(
                    &r,
                    Err(Error::InvalidArgument {
                        name: "buffers",
                        ..
                    })
                ),
                "{what}: {r:?}"
            );
        }
        // The forward's output in its input: the matmul refuses it.
        let r = sq.encode_forward(&mut encoder, &x, &x);
        assert!(
            matches!(
                &r,
                Err(Error::InvalidArgument {
                    name: "buffers",
                    ..
                })
            ),
            "forward into its input: {r:?}"
        );
        gpu.submit_and_wait(encoder).unwrap();
        assert_eq!(x.to_vec().unwrap(), [1.0; 8], "x unchanged");
    });
}

/// The seed's claim: an embedding is a Linear layer applied to a one-hot
/// vector. Forward: a one-hot row times W picks one weight exactly (every
/// other product is 0 · w and the matmul adds those zeros exactly), so the
/// two agree bit for bit. Backward: the one-hot path's dW, transposed, is the
/// embedding's dense gradient (a scatter-add of dy rows at the indices).
#[test]
fn linear_on_one_hot_equals_embedding() {
    each_gpu(|gpu| {
        let (v, d) = (300usize, 37usize);
        let idx: Vec<u32> = (0..150u32)
            .map(|i| (i * 7919 + 13) % v as u32)
            .chain([0, 299, 299, 5])
            .collect();
        let n = idx.len();
        let lin = Linear::with_options(
            gpu,
            v,
            d,
            LinearOptions {
                bias: false,
                seed: Some(21),
            },
        )
        .unwrap();
        let w = lin.weight().to_vec().unwrap(); // [D, V]
        let mut table = vec![0.0f32; v * d]; // Wᵀ: [V, D]
        for r in 0..d {
            for c in 0..v {
                table[c * d + r] = w[r * v + c];
            }
        }
        let emb = Embedding::from_pretrained(gpu, &table, v, d, false).unwrap();
        let hot = one_hot(gpu, &idx, v).unwrap();
        let via_linear = lin.forward(&hot).unwrap().to_vec().unwrap();
        let via_embedding = emb.forward(&idx).unwrap().to_vec().unwrap();
        common::assert_bits_eq("one-hot · Wᵀ vs gather", &via_linear, &via_embedding);

        let dy = data(n * d, 8);
        let g = lin
            .backward(&hot, &Tensor::from_slice(gpu, &dy, &[n, d]).unwrap())
            .unwrap();
        let dw = g.weight.to_vec().unwrap(); // [D, V]
        let mut dense = vec![0.0f64; v * d]; // the embedding's gradient, [V, D]
        for (p, &i) in idx.iter().enumerate() {
            for c in 0..d {
                dense[i as usize * d + c] += dy[p * d + c] as f64;
            }
        }
        let dense: Vec<f32> = dense.iter().map(|&x| x as f32).collect();
        let mut transposed = vec![0.0f32; v * d];
        for r in 0..d {
            for c in 0..v {
                transposed[c * d + r] = dw[r * v + c];
            }
        }
        let err = relative_error(&transposed, &dense);
        assert!(err <= TOLERANCE, "one-hot dW vs scatter-add: {err:e}");
        // Rows never indexed get exactly zero gradient.
        let used: std::collections::HashSet<u32> = idx.iter().copied().collect();
        for row in (0..v as u32).filter(|r| !used.contains(r)) {
            assert!(
                transposed[row as usize * d..][..d]
                    .iter()
                    .all(|&x| x == 0.0),
                "row {row}"
            );
        }
    });
}

#[test]
fn layers_of_no_features_are_pytorchs() {
    // nn.Linear(0, 3): no weights, the bias U(-0, 0) = zeros (PyTorch's
    // bound is 0 without inputs), so y is the bias; nn.Linear(4, 0): y has
    // no columns. Backward and a step run and change nothing they lack.
    each_gpu(|gpu| {
        let batch = 2;
        let none_in = Linear::new(gpu, 0, 3, true).unwrap();
        assert_eq!(none_in.weight().shape(), &[3, 0]);
        let b = none_in.bias().unwrap().to_vec().unwrap();
        assert!(b.iter().all(|v| v.to_bits() == 0), "bias {b:?}");
        let x = Tensor::zeros(gpu, &[batch, 0]).unwrap();
        let y = none_in.forward(&x).unwrap();
        assert_eq!(y.shape(), &[batch, 3]);
        assert_eq!(y.to_vec().unwrap(), vec![0.0; batch * 3]);
        let mut with_bias = Linear::new(gpu, 0, 3, true).unwrap();
        with_bias.set_bias(&[1.0, -2.0, 0.5]).unwrap();
        let y = with_bias.forward(&x).unwrap().to_vec().unwrap();
        assert_eq!(y, [1.0, -2.0, 0.5, 1.0, -2.0, 0.5]);
        let dy = Tensor::from_slice(gpu, &data(batch * 3, 5), &[batch, 3]).unwrap();
        let g = with_bias.backward(&x, &dy).unwrap();
        assert_eq!(g.input.shape(), &[batch, 0]);
        assert_eq!(g.weight.shape(), &[3, 0]);
        let dyv = dy.to_vec().unwrap();
        let db: Vec<f32> = (0..3).map(|c| dyv[c] + dyv[3 + c]).collect();
        assert_eq!(g.bias.as_ref().unwrap().to_vec().unwrap(), db);
        with_bias.sgd_step(&g, 0.5).unwrap();
        let stepped: Vec<f32> = [1.0f32, -2.0, 0.5]
            .iter()
            .zip(&db)
            .map(|(b, d)| b - 0.5 * d)
            .collect();
        assert_eq!(with_bias.bias().unwrap().to_vec().unwrap(), stepped);

        let mut none_out = Linear::new(gpu, 4, 0, true).unwrap();
        let x = Tensor::from_slice(gpu, &data(batch * 4, 6), &[batch, 4]).unwrap();
        let y = none_out.forward(&x).unwrap();
        assert_eq!(y.shape(), &[batch, 0]);
        assert!(y.to_vec().unwrap().is_empty());
        let dy = Tensor::zeros(gpu, &[batch, 0]).unwrap();
        let g = none_out.backward(&x, &dy).unwrap();
        assert_eq!(g.input.to_vec().unwrap(), vec![0.0; batch * 4]);
        none_out.sgd_step(&g, 0.5).unwrap();
    });
}
