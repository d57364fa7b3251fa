//! Row-chunked tables (`EmbeddingOptions::chunk_bytes` forces small tables
//! into chunks of a few rows): the dense gradient, the atomic gradient,
//! `max_norm` and bags, on every adapter against the CPU twins, with batches
//! that hit rows on both sides of every chunk boundary in one call. Bit for
//! bit where the arithmetic is (the deterministic gradient, gathers, bags on
//! these IEEE CPU adapters); the atomic path and max_norm within a stated bound.

mod common;

use common::{assert_bits_eq, assert_close, boundary_rows, each_gpu, Rng};
use wgpu_embed::cpu::embedding_bag_backward::{psw_grad, BagBatch};
use wgpu_embed::cpu::{self, BackwardOptions};
use wgpu_embed::{
    BagMode, Embedding, EmbeddingBag, EmbeddingBagOptions, EmbeddingOptions, Error, Gpu, Gradient,
    GradientMode, IndexTensor, Tensor,
};

/// (rows, dim, rows per chunk): dim 12 takes the vec4 paths, dim 7 the scalar ones.
const SHAPES: [(usize, usize, usize); 2] = [(40, 12, 7), (23, 7, 5)];

fn chunked(dim: usize, chunk_rows: usize) -> EmbeddingOptions {
    EmbeddingOptions {
        chunk_bytes: Some((chunk_rows * dim * 4) as u64),
        ..EmbeddingOptions::default()
    }
}

/// A batch of `n` ids that hits both sides of every boundary, with one hot
/// row (the first row of the second chunk) whose segment crosses tiles.
fn batch(rng: &mut Rng, emb: &Embedding, n: usize) -> Vec<u32> {
    let starts = emb.weight().row_starts();
    assert!(starts.len() > 2, "forced into blocks: {starts:?}");
    let mut idx = boundary_rows(starts);
    idx.extend(rng.ids(n - idx.len(), emb.num_embeddings(), starts[1]));
    idx
}

fn twin(options: &EmbeddingOptions) -> BackwardOptions {
    BackwardOptions {
        padding_idx: options.padding_idx,
        scale_grad_by_freq: options.scale_grad_by_freq,
        ..BackwardOptions::default()
    }
}

#[test]
fn the_dense_gradient_of_a_chunked_table_is_chunked_like_it() {
    each_gpu(|gpu| {
        for (rows, dim, chunk_rows) in SHAPES {
            for (padding_idx, scale_grad_by_freq) in [(None, false), (Some(chunk_rows), true)] {
                let options = EmbeddingOptions {
                    padding_idx,
                    scale_grad_by_freq,
                    ..chunked(dim, chunk_rows)
                };
                let what = format!("{rows}x{dim} padding={padding_idx:?}");
                let mut rng = Rng(rows as u64 * 31 + dim as u64);
                let w = rng.floats(rows * dim);
                let mut emb =
                    Embedding::from_pretrained_with_options(gpu, &w, rows, dim, options.clone())
                        .unwrap();
                let idx = batch(&mut rng, &emb, 700);
                let grad_out = rng.floats(idx.len() * dim);
                let g = Tensor::from_slice(gpu, &grad_out, &[idx.len(), dim]).unwrap();
                let want =
                    cpu::embedding_backward_dense(rows, dim, &idx, &grad_out, &twin(&options));

                let grad = emb.backward(&idx, &g).unwrap();
                let Gradient::Dense(blocks) = &grad else {
                    panic!("{what}: a dense backward gave {grad:?}")
                };
                assert_eq!(
                    blocks.row_starts(),
                    emb.weight().row_starts(),
                    "{what}: the gradient is chunked like the table"
                );
                assert_bits_eq(&what, &grad.to_dense_vec(rows, dim).unwrap(), &want);
                let (first, count) = (chunk_rows - 2, chunk_rows + 3);
                assert_bits_eq(
                    &format!("{what} rows_to_vec across a boundary"),
                    &grad.rows_to_vec(first, count).unwrap(),
                    &want[first * dim..(first + count) * dim],
                );

                // The encode forms: into a chunked gradient, and into one plain tensor.
                let status = wgpu_embed::Status::new(gpu).unwrap();
                let idx_gpu = IndexTensor::from_slice(gpu, &idx).unwrap();
                let into = emb.dense_gradient_zeros().unwrap();
                let plain = Tensor::zeros(gpu, &[rows, dim]).unwrap();
                let mut encoder = gpu.encoder("test");
                emb.encode_backward_into(&mut encoder, &idx_gpu, &g, &into, &status)
                    .unwrap();
                emb.encode_backward(&mut encoder, &idx_gpu, &g, &plain, &status)
                    .unwrap();
                gpu.submit_and_wait(encoder).unwrap();
                assert_bits_eq(&what, &into.to_dense_vec(rows, dim).unwrap(), &want);
                assert_bits_eq(&what, &plain.to_vec().unwrap(), &want);

                // sgd_step with either storage of the gradient.
                let mut want_w = w.clone();
                cpu::sgd_dense(0.5, &want, &mut want_w);
                emb.sgd_step(&grad, 0.5).unwrap();
                assert_bits_eq(&what, &emb.weight().to_vec().unwrap(), &want_w);
                emb.sgd_step(&Gradient::Dense(plain.into()), 0.5).unwrap();
                cpu::sgd_dense(0.5, &want, &mut want_w);
                assert_bits_eq(&what, &emb.weight().to_vec().unwrap(), &want_w);

                // A chunked gradient of another chunking is refused, weights untouched.
                let other = Embedding::with_options(gpu, rows, dim, chunked(dim, 3)).unwrap();
                let foreign = other.dense_gradient_zeros().unwrap();
                let r = emb.sgd_step(&foreign, 0.5);
                assert!(matches!(r, Err(Error::ShapeMismatch { .. })), "{r:?}");
                assert_bits_eq(&what, &emb.weight().to_vec().unwrap(), &want_w);
            }
        }
    });
}

#[test]
fn the_atomic_gradient_runs_per_chunk_where_the_adapter_has_float_atomics() {
    each_gpu(|gpu| {
        for (rows, dim, chunk_rows) in SHAPES {
            let options = EmbeddingOptions {
                gradient_mode: GradientMode::Atomic,
                padding_idx: Some(1),
                scale_grad_by_freq: true,
                ..chunked(dim, chunk_rows)
            };
            let mut rng = Rng(0xA70 + rows as u64);
            let w = rng.floats(rows * dim);
            let mut emb =
                Embedding::from_pretrained_with_options(gpu, &w, rows, dim, options.clone())
                    .unwrap();
            let idx = batch(&mut rng, &emb, 900);
            let grad_out = rng.floats(idx.len() * dim);
            let g = Tensor::from_slice(gpu, &grad_out, &[idx.len(), dim]).unwrap();
            let result = emb.backward(&idx, &g);
            if !gpu.has_float_atomics() {
                assert!(
                    matches!(result, Err(Error::MissingFeature { .. })),
                    "{result:?}"
                );
                let r = emb.backward_sgd(&idx, &g, 0.5);
                assert!(matches!(r, Err(Error::MissingFeature { .. })), "{r:?}");
                assert_bits_eq("weights untouched", &emb.weight().to_vec().unwrap(), &w);
                continue;
            }
            let grad = result.unwrap();
            assert!(
                matches!(&grad, Gradient::Dense(t) if t.num_blocks() > 1),
                "{grad:?}"
            );
            let want = cpu::embedding_backward_dense(rows, dim, &idx, &grad_out, &twin(&options));
            // The atomic order differs from the twin's: a few ulps of sums of
            // up to ~300 terms of |x| < 2, well inside 1e-5 of the largest.
            let got = grad.to_dense_vec(rows, dim).unwrap();
            assert_close("atomic chunked gradient", &got, &want, 1e-5);
            assert!(got[dim..2 * dim].iter().all(|&x| x == 0.0), "padding row");
            emb.backward_sgd(&idx, &g, 0.5).unwrap();
            let mut want_w = w.clone();
            cpu::sgd_dense(0.5, &want, &mut want_w);
            assert_close(
                "atomic chunked sgd",
                &emb.weight().to_vec().unwrap(),
                &want_w,
                1e-5,
            );
        }
    });
}

#[test]
fn max_norm_renormalises_referenced_rows_in_every_chunk() {
    each_gpu(|gpu| {
        for (rows, dim, chunk_rows) in SHAPES {
            for norm_type in [2.0f32, 1.0, 3.0] {
                let options = EmbeddingOptions {
                    max_norm: Some(1.0),
                    norm_type,
                    ..chunked(dim, chunk_rows)
                };
                let mut rng = Rng(0x4E0 + dim as u64);
                let w: Vec<f32> = rng.floats(rows * dim).iter().map(|x| x * 2.0).collect();
                let emb =
                    Embedding::from_pretrained_with_options(gpu, &w, rows, dim, options).unwrap();
                // Boundary rows twice, others at random: some rows never.
                let mut idx = batch(&mut rng, &emb, 40);
                idx.extend(boundary_rows(emb.weight().row_starts()));
                let mut counts = vec![0u32; rows];
                let mut status = u32::MAX;
                cpu::row_histogram(rows, &idx, &mut status, &mut counts);
                let mut want = w.clone();
                cpu::embedding_renorm(rows, dim, 1.0, norm_type, status, &idx, &mut want);

                let out = emb.forward(&idx).unwrap().to_vec().unwrap();
                let after = emb.weight().to_vec().unwrap();
                // sqrt/pow precision differs by adapter: a few ulps (tests/gradient.rs).
                for (i, (&got, &wv)) in after.iter().zip(&want).enumerate() {
                    assert!(
                        (got - wv).abs() <= 1e-6 * wv.abs().max(1e-6),
                        "weight {i}: got {got} want {wv} (p = {norm_type})"
                    );
                }
                for r in (0..rows).filter(|&r| counts[r] == 0) {
                    assert_bits_eq(
                        "unreferenced row untouched",
                        &after[r * dim..(r + 1) * dim],
                        &w[r * dim..(r + 1) * dim],
                    );
                }
                for (p, &r) in idx.iter().enumerate() {
                    let r = r as usize;
                    assert_bits_eq(
                        "forward reads the renormalised row",
                        &out[p * dim..(p + 1) * dim],
                        &after[r * dim..(r + 1) * dim],
                    );
                }
            }
        }
    });
}

/// One bag batch over a chunked table and its twins.
struct BagCase {
    rows: usize,
    dim: usize,
    table: Vec<f32>,
    idx: Vec<u32>,
    csr: Vec<u32>,
    psw: Vec<f32>,
    grad_out: Vec<f32>,
}

impl BagCase {
    fn new(gpu: &Gpu, rows: usize, dim: usize, chunk_rows: usize, seed: u64) -> BagCase {
        let mut rng = Rng(seed);
        let table = rng.floats(rows * dim);
        let probe = Embedding::with_options(gpu, rows, dim, chunked(dim, chunk_rows)).unwrap();
        let idx = batch(&mut rng, &probe, 400);
        // 60 bags, some empty, cut at random.
        let mut cuts: Vec<u32> = (0..59).map(|_| rng.below(idx.len() + 1) as u32).collect();
        cuts.sort_unstable();
        let mut csr = vec![0];
        csr.extend(cuts);
        csr.push(idx.len() as u32);
        let psw = rng.floats(idx.len());
        let grad_out = rng.floats((csr.len() - 1) * dim);
        BagCase {
            rows,
            dim,
            table,
            idx,
            csr,
            psw,
            grad_out,
        }
    }

    fn bag(
        &self,
        gpu: &Gpu,
        chunk_rows: usize,
        mode: BagMode,
        padding: Option<usize>,
        sparse: bool,
    ) -> EmbeddingBag {
        let options = EmbeddingOptions {
            padding_idx: padding,
            sparse,
            ..chunked(self.dim, chunk_rows)
        };
        let emb =
            Embedding::from_pretrained_with_options(gpu, &self.table, self.rows, self.dim, options)
                .unwrap();
        assert!(emb.weight().num_blocks() > 2, "the table is in row-blocks");
        EmbeddingBag::from_embedding(
            emb,
            EmbeddingBagOptions {
                mode,
                include_last_offset: true,
            },
        )
    }

    /// The forward twin: output and max mode's winners.
    fn forward(
        &self,
        mode: BagMode,
        padding: Option<usize>,
        psw: Option<&[f32]>,
    ) -> (Vec<f32>, Vec<u32>) {
        let bags = self.csr.len() - 1;
        let mut out = vec![0.0; bags * self.dim];
        let mut pos = vec![0; bags * self.dim];
        let mut status = u32::MAX;
        cpu::embedding_bag(
            mode,
            self.rows,
            self.dim,
            padding,
            &self.idx,
            &self.csr,
            psw,
            &mut status,
            &mut pos,
            &self.table,
            &mut out,
        );
        (out, pos)
    }
}

#[test]
fn bags_on_a_chunked_table_match_the_twin_forward_and_backward() {
    each_gpu(|gpu| {
        for (rows, dim, chunk_rows) in SHAPES {
            let case = BagCase::new(gpu, rows, dim, chunk_rows, 0xBA6 + dim as u64);
            for mode in [BagMode::Sum, BagMode::Mean, BagMode::Max] {
                for padding in [None, Some(chunk_rows)] {
                    let psw = (mode == BagMode::Sum).then_some(case.psw.as_slice());
                    let what = format!("{rows}x{dim} {mode:?} padding={padding:?}");
                    let (want, want_pos) = case.forward(mode, padding, psw);
                    let mut bag = case.bag(gpu, chunk_rows, mode, padding, false);
                    let saved = bag
                        .forward_with_positions(&case.idx, &case.csr, psw)
                        .unwrap();
                    assert_bits_eq(&what, &saved.output.to_vec().unwrap(), &want);
                    if mode == BagMode::Max {
                        assert_eq!(saved.max_positions_to_vec().unwrap(), want_pos, "{what}");
                    }

                    let batch = BagBatch {
                        mode,
                        num_embeddings: rows,
                        dim,
                        indices: &case.idx,
                        offsets: &case.csr,
                        per_sample_weights: psw,
                        max_positions: &want_pos,
                        grad_out: &case.grad_out,
                    };
                    let options = BackwardOptions {
                        padding_idx: padding,
                        ..BackwardOptions::default()
                    };
                    let g = Tensor::from_slice(gpu, &case.grad_out, &[case.csr.len() - 1, dim])
                        .unwrap();
                    let dense = cpu::embedding_bag_backward_dense(&batch, &options);
                    let grad = bag.backward(&case.idx, &case.csr, psw, &g).unwrap();
                    assert!(
                        matches!(&grad, Gradient::Dense(t) if t.num_blocks() > 1),
                        "{what}: {grad:?}"
                    );
                    assert_bits_eq(&what, &grad.to_dense_vec(rows, dim).unwrap(), &dense);
                    let reused = bag.backward_with_positions(&case.idx, &case.csr, &saved, &g);
                    match (mode, psw) {
                        // Weights the saved output cannot carry: refused.
                        (BagMode::Sum, Some(_)) => assert!(
                            matches!(reused, Err(Error::InvalidArgument { name: "saved", .. })),
                            "{what}: {:?}",
                            reused.err()
                        ),
                        _ => assert_bits_eq(
                            &what,
                            &reused.unwrap().to_dense_vec(rows, dim).unwrap(),
                            &dense,
                        ),
                    }
                    let (want_rows, want_values) =
                        cpu::embedding_bag_backward_sparse(&batch, &options);
                    let sparse = case.bag(gpu, chunk_rows, mode, padding, true);
                    let Gradient::Sparse {
                        rows: got_rows,
                        values,
                    } = sparse.backward(&case.idx, &case.csr, psw, &g).unwrap()
                    else {
                        panic!("{what}: a sparse table gave a dense gradient")
                    };
                    assert_eq!(got_rows.to_vec().unwrap(), want_rows, "{what}: sparse rows");
                    assert_bits_eq(&what, &values.to_vec().unwrap(), &want_values);

                    if mode == BagMode::Sum {
                        let mut want_psw = vec![0.0; case.idx.len()];
                        psw_grad(
                            rows,
                            dim,
                            padding,
                            &case.idx,
                            &case.csr,
                            &case.grad_out,
                            &case.table,
                            &mut want_psw,
                        );
                        let got = bag
                            .per_sample_weights_grad(&case.idx, &case.csr, &g)
                            .unwrap();
                        assert_bits_eq(
                            &format!("{what} psw grad"),
                            &got.to_vec().unwrap(),
                            &want_psw,
                        );
                    }

                    bag.backward_sgd(&case.idx, &case.csr, psw, &g, 0.5)
                        .unwrap();
                    let mut want_w = case.table.clone();
                    cpu::embedding_bag_backward_sgd(&batch, &options, &mut want_w, 0.5);
                    assert_bits_eq(
                        &format!("{what} sgd"),
                        &bag.weight().to_vec().unwrap(),
                        &want_w,
                    );
                }
            }
        }
    });
}

#[test]
fn an_empty_batch_on_a_chunked_table_gives_empty_bags() {
    // No ids at all: the gathered-rows scratch of a chunked table was a
    // 4-byte buffer, too short for the shader's vec4 or vec2 binding.
    each_gpu(|gpu| {
        for (rows, dim, chunk_rows) in SHAPES {
            let case = BagCase::new(gpu, rows, dim, chunk_rows, 0xE0 + dim as u64);
            for mode in [BagMode::Sum, BagMode::Mean, BagMode::Max] {
                let what = format!("{rows}x{dim} {mode:?}");
                let bag = case.bag(gpu, chunk_rows, mode, None, false);
                // include_last_offset: two empty bags.
                let saved = bag.forward_with_positions(&[], &[0, 0, 0], None).unwrap();
                assert_eq!(saved.output.shape(), &[2, dim], "{what}");
                assert_bits_eq(&what, &saved.output.to_vec().unwrap(), &vec![0.0; 2 * dim]);
                let two_d = bag.forward_2d(&[], [2, 0], None).unwrap();
                assert_bits_eq(&what, &two_d.to_vec().unwrap(), &vec![0.0; 2 * dim]);
                let g = Tensor::from_slice(gpu, &vec![1.0; 2 * dim], &[2, dim]).unwrap();
                let grad = bag.backward(&[], &[0, 0, 0], None, &g).unwrap();
                assert_bits_eq(
                    &what,
                    &grad.to_dense_vec(rows, dim).unwrap(),
                    &vec![0.0; rows * dim],
                );
            }
        }
    });
}
