//! Outputs, index lists and gradients past one storage binding, split into
//! windows bound at aligned offsets. Every adapter is opened a second time
//! with its bindings capped at 16 KiB (`common::capped_gpus`), so the split
//! paths run on data small enough for the CPU twins, bit for bit (mean-mode
//! bags within WGSL's division bound on non-CPU adapters).
//! tests/scale_big.rs crosses lavapipe's real 128 MiB binding.

mod common;

use common::{assert_bits_eq, assert_close, bag_twin, each_capped_gpu, Rng, CAPPED_BINDING};
use wgpu_embed::cpu::embedding_bag_backward::{psw_grad, BagBatch};
use wgpu_embed::cpu::{self, BackwardOptions};
use wgpu_embed::{
    BagMode, DType, Embedding, EmbeddingBag, EmbeddingBagOptions, EmbeddingOptions, Error, Gpu,
    Gradient, GradientMode, IndexTensor, Tensor,
};

fn past_a_binding(floats: usize) -> bool {
    floats as u64 * 4 > CAPPED_BINDING
}

#[test]
fn gathers_past_a_binding_run_in_windows() {
    each_capped_gpu(|gpu| {
        // (rows, dim, n): outputs past a binding (dim 12, 7; the 1000-row
        // tables are chunked by the cap too), and an index list past one (dim 1).
        for (rows, dim, n) in [
            (50, 12, 3000),
            (1000, 12, 3000),
            (50, 7, 3000),
            (2000, 7, 1500),
            (50, 1, 10_000),
        ] {
            assert!(past_a_binding(n * dim) || past_a_binding(n));
            let what = format!("{rows}x{dim}, {n} indices");
            let mut rng = Rng((rows * dim) as u64);
            let w = rng.floats(rows * dim);
            let emb = Embedding::from_pretrained(gpu, &w, rows, dim, false).unwrap();
            let idx: Vec<u32> = (0..n).map(|_| rng.below(rows) as u32).collect();
            let mut want = vec![0.0; n * dim];
            let mut status = u32::MAX;
            cpu::embedding_gather(rows, dim, &idx, &mut status, &w, &mut want);
            assert_bits_eq(&what, &emb.forward(&idx).unwrap().to_vec().unwrap(), &want);

            // Out-of-range ids in later windows: the first one's position, from the GPU.
            let mut bad = idx.clone();
            bad[n - 3] = rows as u32;
            bad[n - 40] = u32::MAX;
            let on_gpu = IndexTensor::from_slice(gpu, &bad).unwrap();
            match emb.forward_gpu(&on_gpu) {
                Err(Error::IndexOutOfRange {
                    position, index, ..
                }) => {
                    assert_eq!((position, index), (n - 40, u32::MAX as u64), "{what}");
                }
                other => panic!(
                    "{what}: expected IndexOutOfRange, got {:?}",
                    other.map(drop)
                ),
            }
        }
        // An f16 table (which must fit one binding) with an output past one.
        let (rows, dim, n) = (50, 12, 3000);
        let mut rng = Rng(16);
        let w: Vec<f32> = rng.floats(rows * dim);
        let options = EmbeddingOptions {
            dtype: DType::F16,
            ..EmbeddingOptions::default()
        };
        let emb = Embedding::from_pretrained_with_options(gpu, &w, rows, dim, options).unwrap();
        let idx: Vec<u32> = (0..n).map(|_| rng.below(rows) as u32).collect();
        let halves = emb.weight().to_vec().unwrap();
        let want: Vec<f32> = idx
            .iter()
            .flat_map(|&r| halves[r as usize * dim..(r as usize + 1) * dim].to_vec())
            .collect();
        assert_bits_eq("f16", &emb.forward(&idx).unwrap().to_vec().unwrap(), &want);
    });
}

#[test]
fn max_norm_counts_an_index_list_past_a_binding() {
    each_capped_gpu(|gpu| {
        let (rows, dim, n) = (1000, 12, 5000);
        assert!(past_a_binding(n) && past_a_binding(rows * dim));
        let mut rng = Rng(0x4E4);
        let w: Vec<f32> = rng.floats(rows * dim).iter().map(|x| x * 2.0).collect();
        let options = EmbeddingOptions {
            max_norm: Some(1.5),
            ..EmbeddingOptions::default()
        };
        let emb = Embedding::from_pretrained_with_options(gpu, &w, rows, dim, options).unwrap();
        // Rows referenced only from the last window, and rows never referenced.
        let mut idx: Vec<u32> = (0..n).map(|_| rng.below(rows / 2) as u32).collect();
        idx[n - 1] = (rows - 1) as u32;
        let mut counts = vec![0u32; rows];
        let mut status = u32::MAX;
        cpu::row_histogram(rows, &idx, &mut status, &mut counts);
        let mut want = w.clone();
        cpu::embedding_renorm(rows, dim, 1.5, 2.0, status, &idx, &mut want);
        let out = emb.forward(&idx).unwrap().to_vec().unwrap();
        let after = emb.weight().to_vec().unwrap();
        assert_bits_eq("renormalised weights", &after, &want);
        assert_bits_eq(
            "the row only the last window references",
            &after[(rows - 1) * dim..],
            &want[(rows - 1) * dim..],
        );
        for (p, &r) in idx.iter().enumerate().step_by(97) {
            let r = r as usize;
            assert_bits_eq(
                "output",
                &out[p * dim..(p + 1) * dim],
                &after[r * dim..(r + 1) * dim],
            );
        }
    });
}

#[test]
fn backward_with_grad_out_past_a_binding_matches_the_twin() {
    each_capped_gpu(|gpu| {
        // 1000 rows: the table (and its dense gradient) span chunks, the
        // sparse values (up to 1000 rows) span windows; 3000 positions: the
        // sorted arrays fit one binding, grad_out spans several, and the hot
        // row's segment crosses many 256-entry tiles.
        for (dim, padding_idx, scale_grad_by_freq) in [(12, None, false), (7, Some(5), true)] {
            let (rows, n) = (1000, 3000);
            assert!(past_a_binding(n * dim) && !past_a_binding(n));
            let what = format!("dim {dim}");
            let options = EmbeddingOptions {
                padding_idx,
                scale_grad_by_freq,
                ..EmbeddingOptions::default()
            };
            let twin = BackwardOptions {
                padding_idx,
                scale_grad_by_freq,
                ..BackwardOptions::default()
            };
            let mut rng = Rng(0xB16 + dim as u64);
            let w = rng.floats(rows * dim);
            let idx = rng.ids(n, rows, 7);
            let grad_out = rng.floats(n * dim);
            let g = Tensor::from_slice(gpu, &grad_out, &[n, dim]).unwrap();
            let mut emb =
                Embedding::from_pretrained_with_options(gpu, &w, rows, dim, options.clone())
                    .unwrap();
            assert!(emb.weight().num_blocks() > 1, "{what}: chunked by the cap");
            let dense = cpu::embedding_backward_dense(rows, dim, &idx, &grad_out, &twin);

            let grad = emb.backward(&idx, &g).unwrap();
            assert_bits_eq(&what, &grad.to_dense_vec(rows, dim).unwrap(), &dense);
            // One tensor past a binding as the target of the encode form, then sgd_step with it.
            let plain = Tensor::zeros(gpu, &[rows, dim]).unwrap();
            let status = wgpu_embed::Status::new(gpu).unwrap();
            let idx_gpu = IndexTensor::from_slice(gpu, &idx).unwrap();
            let mut encoder = gpu.encoder("test");
            emb.encode_backward(&mut encoder, &idx_gpu, &g, &plain, &status)
                .unwrap();
            gpu.submit_and_wait(encoder).unwrap();
            assert_bits_eq(&what, &plain.to_vec().unwrap(), &dense);
            let mut want_w = w.clone();
            emb.sgd_step(&Gradient::Dense(plain.into()), 0.25).unwrap();
            cpu::sgd_dense(0.25, &dense, &mut want_w);
            assert_bits_eq(
                &format!("{what} sgd_step"),
                &emb.weight().to_vec().unwrap(),
                &want_w,
            );

            // Fused SGD and row-wise Adagrad.
            emb.set_weight(&w).unwrap();
            emb.backward_sgd(&idx, &g, 0.5).unwrap();
            let mut want_w = w.clone();
            cpu::embedding_backward_sgd(rows, dim, &idx, &grad_out, &twin, &mut want_w, 0.5);
            assert_bits_eq(
                &format!("{what} backward_sgd"),
                &emb.weight().to_vec().unwrap(),
                &want_w,
            );
            emb.set_weight(&w).unwrap();
            let mut state = emb.adagrad_state().unwrap();
            emb.backward_adagrad(&idx, &g, &mut state, 0.1, 1e-8)
                .unwrap();
            let (mut want_w, mut want_state) = (w.clone(), vec![0.0; rows]);
            cpu::embedding_backward_adagrad(
                rows,
                dim,
                &idx,
                &grad_out,
                &twin,
                &mut want_w,
                &mut want_state,
                0.1,
                1e-8,
            );
            assert_bits_eq(
                &format!("{what} adagrad"),
                &emb.weight().to_vec().unwrap(),
                &want_w,
            );
            assert_bits_eq(
                &format!("{what} adagrad state"),
                &state.to_vec().unwrap(),
                &want_state,
            );

            // Sparse: values past a binding, then sgd_step in windows.
            let mut sparse = Embedding::from_pretrained_with_options(
                gpu,
                &w,
                rows,
                dim,
                EmbeddingOptions {
                    sparse: true,
                    ..options.clone()
                },
            )
            .unwrap();
            let (want_rows, want_values) =
                cpu::embedding_backward_sparse(rows, dim, &idx, &grad_out, &twin);
            assert!(past_a_binding(want_values.len()));
            let grad = sparse.backward(&idx, &g).unwrap();
            let Gradient::Sparse {
                rows: got_rows,
                values,
            } = &grad
            else {
                panic!("{what}: expected a sparse gradient, got {grad:?}")
            };
            assert_eq!(got_rows.to_vec().unwrap(), want_rows, "{what}: sparse rows");
            assert_bits_eq(&what, &values.to_vec().unwrap(), &want_values);
            sparse.sgd_step(&grad, 0.5).unwrap();
            let mut want_w = w.clone();
            cpu::sgd_dense(0.5, &dense, &mut want_w);
            assert_bits_eq(
                &format!("{what} sparse sgd_step"),
                &sparse.weight().to_vec().unwrap(),
                &want_w,
            );

            // The atomic path, in windows of positions and of gradient rows.
            emb.set_gradient_mode(GradientMode::Atomic);
            match emb.backward(&idx, &g) {
                Ok(grad) => {
                    // Sums of up to ~1000 terms of |x| < 2 in another order.
                    assert_close(&what, &grad.to_dense_vec(rows, dim).unwrap(), &dense, 1e-5)
                }
                Err(Error::MissingFeature { .. }) => assert!(!gpu.has_float_atomics()),
                Err(e) => panic!("{what}: atomic backward: {e}"),
            }
        }
    });
}

/// Random bags (some empty) over `n` positions: CSR offsets.
fn random_csr(rng: &mut Rng, n: usize, bags: usize) -> Vec<u32> {
    let mut cuts: Vec<u32> = (0..bags - 1).map(|_| rng.below(n + 1) as u32).collect();
    cuts.sort_unstable();
    let mut csr = vec![0];
    csr.extend(cuts);
    csr.push(n as u32);
    csr
}

/// A bag call's result, or `None` when one offset-alignment step of its
/// bags is past the tests' 16 KiB binding. That happens only on an adapter
/// that aligns storage offsets to 256 bytes (SwiftShader; lavapipe and
/// llvmpipe-GL need less), and is the `TooLarge` a real binding that small
/// would give; `ran` counts the calls that did run.
fn unless_step_too_large<T>(
    gpu: &Gpu,
    result: wgpu_embed::Result<T>,
    ran: &mut usize,
) -> Option<T> {
    match result {
        Ok(t) => {
            *ran += 1;
            Some(t)
        }
        Err(Error::TooLarge {
            what, bytes, limit, ..
        }) if what.contains("offset-alignment step") && gpu.storage_offset_alignment() >= 256 => {
            // The size it names is the one past the limit.
            assert!(
                bytes > limit,
                "{what}: {bytes} bytes within the limit of {limit}"
            );
            None
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn bags_past_a_binding_pool_in_windows() {
    each_capped_gpu(|gpu| {
        let (mut ran, mut calls) = (0, 0);
        // (rows, dim, n, bags): outputs past a binding, one table in one
        // binding and one chunked by the cap; an index list past one (dim 4).
        for (rows, dim, n, bags) in [
            (300, 12, 4000, 1000),
            (1000, 12, 4000, 1000),
            (1000, 4, 6000, 300),
            (900, 7, 3000, 800),
        ] {
            let mut rng = Rng((rows + dim + n) as u64);
            let table = rng.floats(rows * dim);
            let idx = rng.ids(n, rows, 3);
            let mut csr = random_csr(&mut rng, n, bags);
            if dim == 7 {
                // The last 400 bags empty: windows that hold bags but no positions.
                csr = random_csr(&mut rng, n, bags - 400);
                csr.resize(bags + 1, n as u32);
            }
            let psw = rng.floats(n);
            for mode in [BagMode::Sum, BagMode::Mean, BagMode::Max] {
                let what = format!("{rows}x{dim} {n} ids in {bags} bags, {mode:?}");
                let weights = (mode == BagMode::Sum).then_some(psw.as_slice());
                let (want, pos) = bag_twin(mode, rows, dim, Some(2), &table, &idx, &csr, weights);
                let emb = Embedding::from_pretrained_with_options(
                    gpu,
                    &table,
                    rows,
                    dim,
                    EmbeddingOptions {
                        padding_idx: Some(2),
                        ..EmbeddingOptions::default()
                    },
                )
                .unwrap();
                let bag = EmbeddingBag::from_embedding(
                    emb,
                    EmbeddingBagOptions {
                        mode,
                        include_last_offset: true,
                    },
                );
                calls += 1;
                let result = bag.forward_with_positions(&idx, &csr, weights);
                let Some(got) = unless_step_too_large(gpu, result, &mut ran) else {
                    continue;
                };
                assert_bits_eq(&what, &got.output.to_vec().unwrap(), &want);
                if mode == BagMode::Max {
                    assert_eq!(got.max_positions_to_vec().unwrap(), pos, "{what}: winners");
                }
            }
        }
        all_or_some_ran(gpu, ran, calls);
    });
}

/// Every call ran where storage offsets align to less than 256 bytes, and
/// at least one everywhere.
fn all_or_some_ran(gpu: &Gpu, ran: usize, calls: usize) {
    assert!(ran > 0, "no shape fit {}", gpu.describe());
    if gpu.storage_offset_alignment() < 256 {
        assert_eq!(ran, calls, "{}", gpu.describe());
    }
}

/// Over a row-chunked table a bag's rows are gathered into a scratch of at
/// most one binding: one bag larger than that is a typed error.
#[test]
fn one_bag_past_a_binding_on_a_chunked_table_is_too_large() {
    each_capped_gpu(|gpu| {
        let (rows, dim, n) = (1000, 12, 1000);
        assert!(past_a_binding(n * dim) && past_a_binding(rows * dim));
        let table = Rng(2).floats(rows * dim);
        let bag =
            EmbeddingBag::from_pretrained(gpu, &table, rows, dim, false, BagMode::Sum).unwrap();
        let idx: Vec<u32> = (0..n as u32).collect();
        let r = bag.forward(&idx, &[0], None);
        assert!(
            matches!(r, Err(Error::TooLarge { .. })),
            "{:?}",
            r.map(drop)
        );
    });
}

#[test]
fn bag_backward_with_a_per_position_gradient_past_a_binding() {
    each_capped_gpu(|gpu| {
        let (mut ran, mut calls) = (0, 0);
        // 300 bags: grad_out fits one binding (it must, see below); 4000
        // positions of dim 12: the per-position gradient spans several.
        for chunk_bytes in [None, Some(97 * 12 * 4)] {
            let (rows, dim, n, bags) = (300, 12, 4000, 300);
            let mut rng = Rng(0xE8 + chunk_bytes.is_some() as u64);
            let table = rng.floats(rows * dim);
            let idx = rng.ids(n, rows, 11);
            let csr = random_csr(&mut rng, n, bags);
            let psw = rng.floats(n);
            let grad_out = rng.floats(bags * dim);
            let g = Tensor::from_slice(gpu, &grad_out, &[bags, dim]).unwrap();
            for mode in [BagMode::Sum, BagMode::Mean, BagMode::Max] {
                let what = format!("{mode:?} chunk_bytes={chunk_bytes:?}");
                let weights = (mode == BagMode::Sum).then_some(psw.as_slice());
                let options = EmbeddingOptions {
                    chunk_bytes,
                    ..EmbeddingOptions::default()
                };
                let emb = Embedding::from_pretrained_with_options(gpu, &table, rows, dim, options)
                    .unwrap();
                let mut bag = EmbeddingBag::from_embedding(
                    emb,
                    EmbeddingBagOptions {
                        mode,
                        include_last_offset: true,
                    },
                );
                let mut out = vec![0.0; bags * dim];
                let mut pos = vec![0; bags * dim];
                let mut status = u32::MAX;
                cpu::embedding_bag(
                    mode,
                    rows,
                    dim,
                    None,
                    &idx,
                    &csr,
                    weights,
                    &mut status,
                    &mut pos,
                    &table,
                    &mut out,
                );
                let batch = BagBatch {
                    mode,
                    num_embeddings: rows,
                    dim,
                    indices: &idx,
                    offsets: &csr,
                    per_sample_weights: weights,
                    max_positions: &pos,
                    grad_out: &grad_out,
                };
                let o = BackwardOptions::default();
                let dense = cpu::embedding_bag_backward_dense(&batch, &o);
                calls += 1;
                let result = bag.backward(&idx, &csr, weights, &g);
                let Some(grad) = unless_step_too_large(gpu, result, &mut ran) else {
                    continue;
                };
                assert_bits_eq(&what, &grad.to_dense_vec(rows, dim).unwrap(), &dense);
                if mode == BagMode::Sum {
                    let mut want = vec![0.0; n];
                    psw_grad(rows, dim, None, &idx, &csr, &grad_out, &table, &mut want);
                    let got = bag.per_sample_weights_grad(&idx, &csr, &g).unwrap();
                    assert_bits_eq(&format!("{what} psw grad"), &got.to_vec().unwrap(), &want);
                }
                bag.backward_sgd(&idx, &csr, weights, &g, 0.5).unwrap();
                let mut want_w = table.clone();
                cpu::embedding_bag_backward_sgd(&batch, &o, &mut want_w, 0.5);
                assert_bits_eq(
                    &format!("{what} sgd"),
                    &bag.weight().to_vec().unwrap(),
                    &want_w,
                );
            }
        }
        all_or_some_ran(gpu, ran, calls);
        // A grad_out of [num_bags, dim] past one binding is the one bag
        // backward input that must fit one: a typed error, weights unchanged.
        let (rows, dim, bags) = (50, 12, 400);
        assert!(past_a_binding(bags * dim));
        let table = Rng(1).floats(rows * dim);
        let mut bag =
            EmbeddingBag::from_pretrained(gpu, &table, rows, dim, false, BagMode::Sum).unwrap();
        let idx: Vec<u32> = (0..bags as u32).map(|b| b % rows as u32).collect();
        let offsets: Vec<u32> = (0..bags as u32).collect();
        let g = Tensor::zeros(gpu, &[bags, dim]).unwrap();
        let r = bag.backward_sgd(&idx, &offsets, None, &g, 0.5);
        assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
        assert_bits_eq(
            "weights after TooLarge",
            &bag.weight().to_vec().unwrap(),
            &table,
        );
    });
}
