//! The embedding gradient on every adapter: the deterministic path bit for
//! bit against the CPU twin, run to run and adapter to adapter; PyTorch's
//! options; the fused updates; the atomic path; bad input.

mod common;

use common::{assert_bits_eq, each_gpu, gpus, Rng};
use proptest::prelude::*;
use wgpu_embed::cpu::{self, BackwardOptions};
use wgpu_embed::{
    Embedding, EmbeddingOptions, Error, Gpu, Gradient, GradientMode, IndexTensor, Tensor,
};

/// SplitMix64: test data from a seed, identical everywhere.
#[derive(Clone, Copy, Debug)]
enum Dist {
    Uniform,
    Zipf,
    AllSame,
}

/// `n` indices below `vocab`: uniform, Zipf(1.1) by rank, or one row repeated.
fn index_list(rng: &mut Rng, n: usize, vocab: usize, dist: Dist) -> Vec<u32> {
    match dist {
        Dist::Uniform => (0..n).map(|_| rng.below(vocab) as u32).collect(),
        Dist::AllSame => {
            let r = rng.below(vocab) as u32;
            vec![r; n]
        }
        Dist::Zipf => {
            let mut cdf = Vec::with_capacity(vocab);
            let mut total = 0.0f64;
            for k in 1..=vocab {
                total += (k as f64).powf(-1.1);
                cdf.push(total);
            }
            (0..n)
                .map(|_| {
                    let u = rng.unit() * total;
                    cdf.partition_point(|&c| c < u).min(vocab - 1) as u32
                })
                .collect()
        }
    }
}

fn floats(rng: &mut Rng, len: usize) -> Vec<f32> {
    (0..len).map(|_| (rng.unit() * 2.0 - 1.0) as f32).collect()
}

fn table(
    gpu: &Gpu,
    weights: &[f32],
    vocab: usize,
    dim: usize,
    options: EmbeddingOptions,
) -> Embedding {
    Embedding::from_pretrained_with_options(gpu, weights, vocab, dim, options).expect("table")
}

fn twin_options(options: &EmbeddingOptions) -> BackwardOptions {
    BackwardOptions {
        padding_idx: options.padding_idx,
        scale_grad_by_freq: options.scale_grad_by_freq,
        ..BackwardOptions::default()
    }
}

/// Runs the dense backward twice on `gpu`, checks both runs against the twin
/// bit for bit, and returns the gradient.
fn dense_checked(
    gpu: &Gpu,
    indices: &[u32],
    grad_out: &[f32],
    vocab: usize,
    dim: usize,
    options: &EmbeddingOptions,
) -> Vec<f32> {
    let emb = table(gpu, &vec![0.0; vocab * dim], vocab, dim, options.clone());
    let g = Tensor::from_slice(gpu, grad_out, &[indices.len(), dim]).unwrap();
    let first = emb
        .backward(indices, &g)
        .unwrap()
        .to_dense_vec(vocab, dim)
        .unwrap();
    let second = emb
        .backward(indices, &g)
        .unwrap()
        .to_dense_vec(vocab, dim)
        .unwrap();
    let want = cpu::embedding_backward_dense(vocab, dim, indices, grad_out, &twin_options(options));
    assert_bits_eq("dense gradient vs CPU twin", &first, &want);
    assert_bits_eq("dense gradient, second run", &second, &first);
    first
}

#[test]
fn deterministic_gradient_is_bit_exact_everywhere() {
    // Segments longer than a tile (all-same, Zipf), dims that are not
    // multiples of 8 (scalar entry points) and multiples of 4 (vec4 ones,
    // with a short last 16-column block at 36).
    let cases = [
        (5000, 1000, 37, Dist::Zipf),
        (5000, 1000, 36, Dist::Zipf),
        (3000, 20, 128, Dist::AllSame),
        (5000, 7, 8, Dist::AllSame),
        (4099, 65_536, 5, Dist::Uniform),
        (1, 1, 1, Dist::AllSame),
        (0, 3, 4, Dist::Uniform),
    ];
    for (case, &(n, vocab, dim, dist)) in cases.iter().enumerate() {
        let mut rng = Rng(case as u64);
        let indices = index_list(&mut rng, n, vocab, dist);
        let grad_out = floats(&mut rng, n * dim);
        let mut per_adapter = Vec::new();
        each_gpu(|gpu| {
            per_adapter.push(dense_checked(
                gpu,
                &indices,
                &grad_out,
                vocab,
                dim,
                &EmbeddingOptions::default(),
            ))
        });
        for other in &per_adapter[1..] {
            assert_bits_eq("dense gradient across adapters", other, &per_adapter[0]);
        }
    }
}

#[test]
fn small_tiles_split_and_recombine_like_the_twin() {
    // The twin with tiny tiles must still equal plain ascending sums when no
    // piece sum is rounded differently: integers are exact in f32.
    let mut rng = Rng(7);
    let indices = index_list(&mut rng, 3000, 50, Dist::Zipf);
    let grad_out: Vec<f32> = (0..3000 * 3).map(|_| rng.below(100) as f32).collect();
    let tiny = BackwardOptions {
        chunk: 3,
        ..BackwardOptions::default()
    };
    let split = cpu::embedding_backward_dense(50, 3, &indices, &grad_out, &tiny);
    let whole =
        cpu::embedding_backward_dense(50, 3, &indices, &grad_out, &BackwardOptions::default());
    assert_bits_eq("tiny tiles vs default tiles on exact data", &split, &whole);
    let mut naive = vec![0.0f32; 50 * 3];
    for (p, &r) in indices.iter().enumerate() {
        for c in 0..3 {
            naive[r as usize * 3 + c] += grad_out[p * 3 + c];
        }
    }
    assert_bits_eq("twin vs naive scatter on exact data", &whole, &naive);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn gradient_matches_twin_on_every_adapter(
        n in 0usize..=5000,
        vocab in 1usize..=100_000,
        dim in 1usize..=300,
        dist in prop_oneof![Just(Dist::Uniform), Just(Dist::Zipf), Just(Dist::AllSame)],
        seed in any::<u64>(),
    ) {
        // Keep the dense table within lavapipe's 128 MiB binding.
        let vocab = vocab.min((1 << 25) / dim);
        let mut rng = Rng(seed);
        let indices = index_list(&mut rng, n, vocab, dist);
        let grad_out = floats(&mut rng, n * dim);
        let mut per_adapter = Vec::new();
        each_gpu(|gpu| per_adapter.push(dense_checked(gpu, &indices, &grad_out, vocab, dim, &EmbeddingOptions::default())));
        for other in &per_adapter[1..] {
            assert_bits_eq("dense gradient across adapters", other, &per_adapter[0]);
        }
    }
}

#[test]
fn padding_row_gets_no_gradient() {
    let (vocab, dim) = (10, 6);
    let indices = [0u32, 3, 3, 9, 3, 0, 5];
    let mut rng = Rng(11);
    let grad_out = floats(&mut rng, indices.len() * dim);
    let options = EmbeddingOptions {
        padding_idx: Some(3),
        ..EmbeddingOptions::default()
    };
    each_gpu(|gpu| {
        let grad = dense_checked(gpu, &indices, &grad_out, vocab, dim, &options);
        assert!(
            grad[3 * dim..4 * dim].iter().all(|&x| x == 0.0),
            "padding row has a gradient"
        );
        assert!(
            grad[0..dim].iter().any(|&x| x != 0.0),
            "row 0 lost its gradient"
        );
    });
}

#[test]
fn scale_grad_by_freq_divides_by_the_count() {
    let (vocab, dim) = (4, 2);
    let indices = [1u32, 1, 2, 1];
    let grad_out = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let options = EmbeddingOptions {
        scale_grad_by_freq: true,
        ..EmbeddingOptions::default()
    };
    each_gpu(|gpu| {
        let grad = dense_checked(gpu, &indices, &grad_out, vocab, dim, &options);
        // Row 1: (1 + 3 + 7) / 3, (2 + 4 + 8) / 3; row 2: 5, 6.
        assert_eq!(
            grad,
            vec![0.0, 0.0, 11.0 / 3.0, 14.0 / 3.0, 5.0, 6.0, 0.0, 0.0]
        );
    });
    // And on a Zipf batch with tile-crossing segments.
    let mut rng = Rng(12);
    let indices = index_list(&mut rng, 4000, 300, Dist::Zipf);
    let grad_out = floats(&mut rng, 4000 * 9);
    each_gpu(|gpu| {
        dense_checked(gpu, &indices, &grad_out, 300, 9, &options);
    });
}

#[test]
fn sparse_gradient_agrees_with_dense() {
    // Scalar (13 columns) and vec4 (20) entry points.
    for dim in [13, 20] {
        sparse_case(dim);
    }
}

fn sparse_case(dim: usize) {
    let vocab = 500;
    let mut rng = Rng(13);
    let indices = index_list(&mut rng, 3000, vocab, Dist::Zipf);
    let grad_out = floats(&mut rng, 3000 * dim);
    for padding_idx in [None, Some(0)] {
        let dense_opts = EmbeddingOptions {
            padding_idx,
            scale_grad_by_freq: true,
            ..EmbeddingOptions::default()
        };
        let sparse_opts = EmbeddingOptions {
            sparse: true,
            ..dense_opts.clone()
        };
        let twin = twin_options(&dense_opts);
        let (want_rows, want_values) =
            cpu::embedding_backward_sparse(vocab, dim, &indices, &grad_out, &twin);
        each_gpu(|gpu| {
            let dense = dense_checked(gpu, &indices, &grad_out, vocab, dim, &dense_opts);
            let emb = table(
                gpu,
                &vec![0.0; vocab * dim],
                vocab,
                dim,
                sparse_opts.clone(),
            );
            let g = Tensor::from_slice(gpu, &grad_out, &[3000, dim]).unwrap();
            let Gradient::Sparse { rows, values } = emb.backward(&indices, &g).unwrap() else {
                panic!("sparse = true must give a sparse gradient");
            };
            let rows = rows.to_vec().unwrap();
            let values = values.to_vec().unwrap();
            assert_eq!(rows, want_rows);
            assert!(
                rows.windows(2).all(|w| w[0] < w[1]),
                "rows ascending and unique"
            );
            assert_eq!(rows.contains(&0), padding_idx.is_none());
            assert_bits_eq("sparse values vs twin", &values, &want_values);
            for (i, &r) in rows.iter().enumerate() {
                let r = r as usize;
                assert_bits_eq(
                    "sparse row vs dense row",
                    &values[i * dim..(i + 1) * dim],
                    &dense[r * dim..(r + 1) * dim],
                );
            }
        });
    }
}

/// `len` values in (−3, 3) from `seed`: most rows of a few of them have
/// norms past a `max_norm` of 1.
fn past_max_norm(seed: u64, len: usize) -> Vec<f32> {
    floats(&mut Rng(seed), len)
        .iter()
        .map(|x| x * 3.0)
        .collect()
}

#[test]
fn max_norm_renormalises_each_referenced_row_once() {
    let (vocab, dim) = (8, 5);
    let weights = past_max_norm(14, vocab * dim);
    let indices = [3u32, 3, 5, 3, 1, 5];
    for norm_type in [2.0f32, 1.0, 3.0, f32::INFINITY] {
        let options = EmbeddingOptions {
            max_norm: Some(1.0),
            norm_type,
            ..EmbeddingOptions::default()
        };
        let mut counts = vec![0u32; vocab];
        let mut status = u32::MAX;
        cpu::row_histogram(vocab, &indices, &mut status, &mut counts);
        let mut want = weights.clone();
        cpu::embedding_renorm(vocab, dim, 1.0, norm_type, status, &indices, &mut want);
        each_gpu(|gpu| {
            let emb = table(gpu, &weights, vocab, dim, options.clone());
            let out = emb.forward(&indices).unwrap().to_vec().unwrap();
            let after = emb.weight().to_vec().unwrap();
            // Norm types 1 and 2 take only +, and exact_arith's ×, ÷ and √:
            // the twin's bits on every adapter. Others take pow, whose
            // precision differs by adapter: a few ulps of tolerance.
            // The infinity norm compares only.
            if norm_type == 1.0 || norm_type == 2.0 || norm_type == f32::INFINITY {
                assert_bits_eq(&format!("renormalised (p = {norm_type})"), &after, &want);
            }
            for (i, (&got, &w)) in after.iter().zip(&want).enumerate() {
                assert!(
                    (got - w).abs() <= 1e-6 * w.abs().max(1e-6),
                    "weight {i}: got {got} want {w} (p = {norm_type})"
                );
            }
            for r in 0..vocab {
                let row = &after[r * dim..(r + 1) * dim];
                if counts[r] == 0 {
                    assert_bits_eq(
                        "unreferenced row untouched",
                        row,
                        &weights[r * dim..(r + 1) * dim],
                    );
                } else {
                    let norm: f32 = if norm_type == f32::INFINITY {
                        row.iter().fold(0.0, |m, x| m.max(x.abs()))
                    } else {
                        row.iter()
                            .map(|x| x.abs().powf(norm_type))
                            .sum::<f32>()
                            .powf(1.0 / norm_type)
                    };
                    assert!(norm <= 1.0 + 1e-5, "row {r} norm {norm} above max_norm");
                }
            }
            for (p, &r) in indices.iter().enumerate() {
                let r = r as usize;
                assert_bits_eq(
                    "forward reads the renormalised row",
                    &out[p * dim..(p + 1) * dim],
                    &after[r * dim..(r + 1) * dim],
                );
            }
        });
    }
}

/// Every lookup renormalises the rows it references, however many lookups
/// came before: the table keeps its claims buffer and each lookup claims
/// with a new epoch, so rows grown back past `max_norm` (by `set_weight`,
/// as an update would) are scaled again. Also two lookups recorded into
/// two encoders and submitted in the other order, the weights written
/// back between them: the first-recorded lookup, run last, must still
/// scale its rows (the later-recorded one's epoch is not its own). The
/// twin's bits.
#[test]
fn max_norm_renormalises_again_on_every_lookup() {
    let (vocab, dim) = (8, 5);
    let weights = past_max_norm(15, vocab * dim);
    let options = EmbeddingOptions {
        max_norm: Some(1.0),
        ..EmbeddingOptions::default()
    };
    let renormed = |ids: &[&[u32]]| {
        let mut want = weights.clone();
        for ids in ids {
            cpu::embedding_renorm(vocab, dim, 1.0, 2.0, u32::MAX, ids, &mut want);
        }
        want
    };
    each_gpu(|gpu| {
        let mut emb = table(gpu, &weights, vocab, dim, options.clone());
        for ids in [&[3u32, 5, 3][..], &[3, 1, 5], &[5, 3], &[3]] {
            emb.set_weight(&weights).unwrap();
            emb.forward(ids).unwrap();
            let after = emb.weight().to_vec().unwrap();
            assert_bits_eq(&format!("lookup of {ids:?}"), &after, &renormed(&[ids]));
        }
        emb.set_weight(&weights).unwrap();
        let (first, second) = ([3u32, 5], [5u32, 1, 3]);
        let encode = |ids: &[u32]| {
            let idx = IndexTensor::from_slice(gpu, ids).unwrap();
            let out = Tensor::zeros(gpu, &[ids.len(), dim]).unwrap();
            let status = wgpu_embed::Status::new(gpu).unwrap();
            let mut encoder = gpu.encoder("max_norm lookup");
            emb.encode_forward(&mut encoder, &idx, &out, &status)
                .unwrap();
            (encoder, idx, out, status)
        };
        let (a, _ia, _oa, sa) = encode(&first);
        let (b, _ib, _ob, sb) = encode(&second);
        gpu.queue().submit([b.finish()]);
        // In queue order: after b's lookup, before a's.
        emb.weight().write(&weights).unwrap();
        gpu.queue().submit([a.finish()]);
        assert_eq!(sa.read().unwrap(), None);
        assert_eq!(sb.read().unwrap(), None);
        let after = emb.weight().to_vec().unwrap();
        assert_bits_eq(
            "two encoders submitted in reverse",
            &after,
            &renormed(&[&first]),
        );
    });
}

/// `max_norm` lookups recorded on one table from several threads at once:
/// each takes its own epoch under the table's lock (the first makes the
/// claims buffer, zeroed before any of them runs). The encoders are then
/// submitted one by one with the weights written back before each, so a
/// lookup that shared an epoch with one submitted before it would find its
/// rows taken and leave them unscaled. The threads' ids overlap. The
/// twin's bits after each submit.
#[test]
fn max_norm_lookups_recorded_on_several_threads_take_their_own_epochs() {
    let (vocab, dim, threads) = (16, 4, 4);
    let weights = past_max_norm(17, vocab * dim);
    let options = EmbeddingOptions {
        max_norm: Some(1.0),
        ..EmbeddingOptions::default()
    };
    // Overlapping: thread t looks up rows t .. t + 8, backwards, twice.
    let ids_of = |t: usize| -> Vec<u32> {
        let rows = (t as u32..t as u32 + 8).rev();
        rows.clone().chain(rows).collect()
    };
    each_gpu(|gpu| {
        let emb = table(gpu, &weights, vocab, dim, options.clone());
        let recorded: Vec<_> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let emb = &emb;
                    s.spawn(move || {
                        let ids = ids_of(t);
                        let idx = IndexTensor::from_slice(gpu, &ids).unwrap();
                        let out = Tensor::zeros(gpu, &[ids.len(), dim]).unwrap();
                        let status = wgpu_embed::Status::new(gpu).unwrap();
                        let mut encoder = gpu.encoder("max_norm lookup");
                        emb.encode_forward(&mut encoder, &idx, &out, &status)
                            .unwrap();
                        (t, encoder, idx, out, status)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (t, encoder, _idx, _out, status) in recorded {
            emb.weight().write(&weights).unwrap();
            gpu.queue().submit([encoder.finish()]);
            assert_eq!(status.read().unwrap(), None);
            let mut want = weights.clone();
            cpu::embedding_renorm(vocab, dim, 1.0, 2.0, u32::MAX, &ids_of(t), &mut want);
            assert_bits_eq(
                &format!("thread {t}'s lookup"),
                &emb.weight().to_vec().unwrap(),
                &want,
            );
        }
    });
}

/// The renorm kernel called directly: without kept claims each call makes
/// its own zeroed buffer (a recycled one too: the second call takes the
/// first's back from the cache), so both calls scale their rows; with kept
/// claims a new epoch scales again, and an epoch used before on the buffer
/// counts its rows as taken (the caller's contract, checked here so the
/// docs say what the kernel does). The twin's bits.
#[test]
fn the_renorm_kernel_claims_in_its_own_buffer_or_a_kept_one() {
    use wgpu_embed::kernels::embedding_renorm::{self, RenormArgs, RenormClaims};
    use wgpu_embed::{RowBlock, STATUS_OK};
    let (vocab, dim) = (8, 5);
    let weights = past_max_norm(16, vocab * dim);
    let ids = [3u32, 5, 3, 0];
    let mut renormed = weights.clone();
    cpu::embedding_renorm(vocab, dim, 1.0, 2.0, STATUS_OK, &ids, &mut renormed);
    each_gpu(|gpu| {
        let table = Tensor::from_slice(gpu, &weights, &[vocab, dim]).unwrap();
        let status = Tensor::from_slice(gpu, &[f32::from_bits(STATUS_OK)], &[1]).unwrap();
        let idx = IndexTensor::from_slice(gpu, &ids).unwrap();
        let kept = Tensor::zeros(gpu, &[vocab]).unwrap();
        let blocks = [RowBlock::new(table.buffer(), 0..vocab)];
        let run = |claims: Option<u32>| {
            table.write(&weights).unwrap();
            let mut encoder = gpu.encoder("renorm");
            let args = RenormArgs {
                num_embeddings: vocab,
                dim,
                max_norm: 1.0,
                norm_type: 2.0,
                status: status.buffer(),
                indices: idx.buffer(),
                n: ids.len(),
                blocks: &blocks,
                claims: claims.map(|epoch| RenormClaims {
                    buffer: kept.buffer(),
                    epoch,
                }),
            };
            embedding_renorm::encode(gpu, &mut encoder, &args).unwrap();
            gpu.submit_and_wait(encoder).unwrap();
            table.to_vec().unwrap()
        };
        assert_bits_eq("own claims", &run(None), &renormed);
        assert_bits_eq("own claims again", &run(None), &renormed);
        assert_bits_eq("kept claims, epoch 1", &run(Some(1)), &renormed);
        assert_bits_eq("kept claims, epoch 2", &run(Some(2)), &renormed);
        assert_bits_eq("kept claims, epoch 2 again", &run(Some(2)), &weights);
    });
}

/// `max_norm = 0`, which PyTorch allows: every referenced row with a norm
/// becomes zeros (keeping each element's sign), the rest stay as they were.
#[test]
fn a_max_norm_of_zero_zeroes_the_referenced_rows() {
    let (vocab, dim) = (4, 3);
    let weights = [
        1.0, -2.0, 0.5, 0.0, 0.0, -0.0, 3.0, 3.0, 3.0, -1.0, 0.25, 8.0,
    ];
    for norm_type in [2.0f32, 1.0, f32::INFINITY] {
        let options = EmbeddingOptions {
            max_norm: Some(0.0),
            norm_type,
            ..EmbeddingOptions::default()
        };
        each_gpu(|gpu| {
            let emb = table(gpu, &weights, vocab, dim, options.clone());
            let out = emb.forward(&[0, 1, 3]).unwrap().to_vec().unwrap();
            let want = [
                0.0, -0.0, 0.0, 0.0, 0.0, -0.0, 3.0, 3.0, 3.0, -0.0, 0.0, 0.0,
            ];
            let after = emb.weight().to_vec().unwrap();
            assert_bits_eq(&format!("max_norm 0, p = {norm_type}"), &after, &want);
            let rows: Vec<f32> = [0, 1, 3]
                .iter()
                .flat_map(|&r| want[r * dim..(r + 1) * dim].to_vec())
                .collect();
            assert_bits_eq("forward reads the zeroed rows", &out, &rows);
        });
    }
}

/// The infinity norm on the values a float comparison may mishandle: a NaN
/// row keeps its norm NaN and is left alone, an infinite one is scaled (by
/// 0), subnormal rows are compared exactly (on SwiftShader, which flushes
/// subnormals, too): the twin's result, NaN for NaN and every other
/// element bit for bit.
#[test]
fn the_infinity_norm_on_nan_inf_and_subnormal_rows_matches_the_twin() {
    let (vocab, dim) = (4, 3);
    #[rustfmt::skip]
    let weights = [
        f32::NAN, 5.0, -7.0,
        f32::INFINITY, 1.0, -1.0,
        1e-40, -3e-40, 0.0,
        0.5, -4.0, 2.0,
    ];
    for max_norm in [1.0f32, 0.0] {
        let options = EmbeddingOptions {
            max_norm: Some(max_norm),
            norm_type: f32::INFINITY,
            ..EmbeddingOptions::default()
        };
        let mut want = weights.to_vec();
        cpu::embedding_renorm(
            vocab,
            dim,
            max_norm,
            f32::INFINITY,
            u32::MAX,
            &[0, 1, 2, 3],
            &mut want,
        );
        // The twin itself: the NaN row is untouched, the subnormal one only
        // under max_norm 0, the infinite one becomes [NaN, 0, -0].
        assert_eq!(want[1].to_bits(), 5.0f32.to_bits());
        assert!(
            want[3].is_nan() && want[4].to_bits() == 0 && want[5].to_bits() == (-0.0f32).to_bits()
        );
        let subnormal_kept = want[6..9]
            .iter()
            .zip(&weights[6..9])
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert_eq!(subnormal_kept, max_norm == 1.0);
        each_gpu(|gpu| {
            let emb = table(gpu, &weights, vocab, dim, options.clone());
            emb.forward(&[0, 1, 2, 3]).unwrap();
            let after = emb.weight().to_vec().unwrap();
            for (i, (g, w)) in after.iter().zip(&want).enumerate() {
                assert!(
                    (g.is_nan() && w.is_nan()) || g.to_bits() == w.to_bits(),
                    "max_norm {max_norm}, element {i}: got {g:e} want {w:e}"
                );
            }
        });
    }
}

#[test]
fn fused_updates_match_the_twin() {
    // 19 columns run the scalar entry points, 36 (nine vec4s: two full
    // 16-column blocks and a short one) the vec4 ones.
    for dim in [19, 36] {
        fused_updates_case(dim);
    }
}

fn fused_updates_case(dim: usize) {
    let vocab = 700;
    let mut rng = Rng(15);
    let weights = floats(&mut rng, vocab * dim);
    let indices = index_list(&mut rng, 4000, vocab, Dist::Zipf);
    let grad_out = floats(&mut rng, 4000 * dim);
    let options = EmbeddingOptions {
        padding_idx: Some(2),
        scale_grad_by_freq: true,
        ..EmbeddingOptions::default()
    };
    let twin = twin_options(&options);
    let mut want_sgd = weights.clone();
    cpu::embedding_backward_sgd(vocab, dim, &indices, &grad_out, &twin, &mut want_sgd, 0.05);
    let mut want_ada = weights.clone();
    let mut want_state: Vec<f32> = (0..vocab).map(|r| (r % 3) as f32 * 0.25).collect();
    let start_state = want_state.clone();
    cpu::embedding_backward_adagrad(
        vocab,
        dim,
        &indices,
        &grad_out,
        &twin,
        &mut want_ada,
        &mut want_state,
        0.1,
        1e-8,
    );
    let dense = cpu::embedding_backward_dense(vocab, dim, &indices, &grad_out, &twin);
    let mut want_step = weights.clone();
    cpu::sgd_dense(0.05, &dense, &mut want_step);
    each_gpu(|gpu| {
        let g = Tensor::from_slice(gpu, &grad_out, &[4000, dim]).unwrap();
        let mut emb = table(gpu, &weights, vocab, dim, options.clone());
        emb.backward_sgd(&indices, &g, 0.05).unwrap();
        assert_bits_eq(
            "fused SGD vs twin",
            &emb.weight().to_vec().unwrap(),
            &want_sgd,
        );

        let mut emb = table(gpu, &weights, vocab, dim, options.clone());
        let mut state = Tensor::from_slice(gpu, &start_state, &[vocab]).unwrap();
        emb.backward_adagrad(&indices, &g, &mut state, 0.1, 1e-8)
            .unwrap();
        assert_bits_eq(
            "fused Adagrad weights vs twin",
            &emb.weight().to_vec().unwrap(),
            &want_ada,
        );
        assert_bits_eq(
            "fused Adagrad state vs twin",
            &state.to_vec().unwrap(),
            &want_state,
        );

        // Unfused: dense and sparse gradients, then sgd_step.
        for sparse in [false, true] {
            let mut emb = table(
                gpu,
                &weights,
                vocab,
                dim,
                EmbeddingOptions {
                    sparse,
                    ..options.clone()
                },
            );
            let grad = emb.backward(&indices, &g).unwrap();
            emb.sgd_step(&grad, 0.05).unwrap();
            assert_bits_eq(
                "backward + sgd_step vs twin",
                &emb.weight().to_vec().unwrap(),
                &want_step,
            );
            assert_bits_eq(
                "fused SGD equals backward + sgd_step",
                &want_sgd,
                &want_step,
            );
        }
    });
}

#[test]
fn atomic_path_where_supported_missing_feature_elsewhere() {
    let (vocab, dim) = (300, 24);
    let mut rng = Rng(16);
    let indices = index_list(&mut rng, 5000, vocab, Dist::Zipf);
    let grad_out = floats(&mut rng, 5000 * dim);
    let options = EmbeddingOptions {
        gradient_mode: GradientMode::Atomic,
        padding_idx: Some(1),
        scale_grad_by_freq: true,
        ..EmbeddingOptions::default()
    };
    let want =
        cpu::embedding_backward_dense(vocab, dim, &indices, &grad_out, &twin_options(&options));
    let mut atomic_adapters = 0;
    each_gpu(|gpu| {
        let g = Tensor::from_slice(gpu, &grad_out, &[5000, dim]).unwrap();
        let mut emb = table(gpu, &vec![0.0; vocab * dim], vocab, dim, options.clone());
        let result = emb.backward(&indices, &g);
        if !gpu.has_float_atomics() {
            assert!(
                matches!(result, Err(Error::MissingFeature { .. })),
                "got {result:?}"
            );
            assert!(matches!(
                emb.backward_sgd(&indices, &g, 0.1),
                Err(Error::MissingFeature { .. })
            ));
            assert!(
                emb.weight().to_vec().unwrap().iter().all(|&w| w == 0.0),
                "weights changed"
            );
            return;
        }
        atomic_adapters += 1;
        let got = result.unwrap().to_dense_vec(vocab, dim).unwrap();
        // The atomic order differs from the twin's, and each term is divided
        // by the count before it is added: the error is a few ulps of the
        // row's absolute sum, bounded here by 1e-5 of the largest magnitude
        // (sums of up to ~1000 terms of |x| <= 1, ulp 2^-24 each).
        let scale = want.iter().fold(1.0f32, |m, x| m.max(x.abs()));
        for (i, (&a, &b)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "element {i}: atomic {a} vs twin {b}"
            );
        }
        assert!(
            got[dim..2 * dim].iter().all(|&x| x == 0.0),
            "padding row has a gradient"
        );
        emb.backward_sgd(&indices, &g, 0.1).unwrap();
        let w = emb.weight().to_vec().unwrap();
        for (i, (&a, &b)) in w.iter().zip(&want).enumerate() {
            assert!(
                (a + 0.1 * b).abs() <= 1e-5 * scale,
                "weight {i}: {a} vs {}",
                -0.1 * b
            );
        }
    });
    let expected = gpus().iter().filter(|g| g.has_float_atomics()).count();
    assert_eq!(atomic_adapters, expected);
    // Else every adapter took the MissingFeature branch and the atomic
    // gradient itself went untested.
    assert!(
        atomic_adapters > 0,
        "no adapter has float atomics, so the atomic gradient went untested: lavapipe has \
         SHADER_FLOAT32_ATOMIC (apt-get update && apt-get install -y mesa-vulkan-drivers)"
    );
}

#[test]
fn bad_input_is_an_error_and_changes_nothing() {
    let (vocab, dim) = (10, 4);
    let weights: Vec<f32> = (0..vocab * dim).map(|i| i as f32).collect();
    each_gpu(|gpu| {
        let mut emb = table(gpu, &weights, vocab, dim, EmbeddingOptions::default());
        let g3 = Tensor::from_slice(gpu, &[1.0; 12], &[3, dim]).unwrap();
        let bad = [1u32, 10, 2];
        assert_eq!(
            emb.backward(&bad, &g3).unwrap_err(),
            Error::IndexOutOfRange {
                position: 1,
                index: 10,
                num_embeddings: vocab
            }
        );
        assert!(matches!(
            emb.backward_sgd(&bad, &g3, 0.1),
            Err(Error::IndexOutOfRange { position: 1, .. })
        ));
        // Indices only the GPU knows: the kernels find them and write nothing.
        let on_gpu = IndexTensor::from_slice(gpu, &[4, 5, 99]).unwrap();
        assert!(matches!(
            emb.backward_gpu(&on_gpu, &g3),
            Err(Error::IndexOutOfRange {
                position: 2,
                index: 99,
                ..
            })
        ));
        assert!(matches!(
            emb.backward_sgd_gpu(&on_gpu, &g3, 0.1),
            Err(Error::IndexOutOfRange { position: 2, .. })
        ));
        let mut state = emb.adagrad_state().unwrap();
        assert!(matches!(
            emb.backward_adagrad_gpu(&on_gpu, &g3, &mut state, 0.1, 1e-8),
            Err(Error::IndexOutOfRange { position: 2, .. })
        ));
        assert!(
            state.to_vec().unwrap().iter().all(|&s| s == 0.0),
            "state changed"
        );
        // Wrong shapes and lengths.
        let g2 = Tensor::from_slice(gpu, &[1.0; 8], &[2, dim]).unwrap();
        assert!(matches!(
            emb.backward(&[1, 2, 3], &g2),
            Err(Error::ShapeMismatch { .. })
        ));
        assert!(matches!(
            emb.backward_sgd(&[1, 2, 3], &g2, 0.1),
            Err(Error::ShapeMismatch { .. })
        ));
        let mut short = Tensor::zeros(gpu, &[vocab - 1]).unwrap();
        assert!(matches!(
            emb.backward_adagrad(&[1, 2, 3], &g3, &mut short, 0.1, 1e-8),
            Err(Error::LengthMismatch {
                expected: 10,
                found: 9,
                ..
            })
        ));
        assert!(matches!(
            emb.backward_sgd(&[1, 2, 3], &g3, f32::NAN),
            Err(Error::InvalidArgument { .. })
        ));
        // Negative rates, as PyTorch's SGD and Adagrad refuse them (a
        // negative eps could make Adagrad divide by 0).
        assert!(matches!(
            emb.backward_sgd(&[1, 2, 3], &g3, -0.1),
            Err(Error::InvalidArgument { name: "lr", .. })
        ));
        let mut state = emb.adagrad_state().unwrap();
        // And eps 0, which the row-wise step refuses: a zero gradient on a
        // zero state would be 0/0 (NaN).
        for (lr, eps, name) in [(-0.1, 1e-8, "lr"), (0.1, -1.0, "eps"), (0.1, 0.0, "eps")] {
            let r = emb.backward_adagrad(&[1, 2, 3], &g3, &mut state, lr, eps);
            assert!(
                matches!(r, Err(Error::InvalidArgument { name: n, .. }) if n == name),
                "{lr} {eps}: {r:?}"
            );
        }
        let dense = Gradient::Dense(Tensor::zeros(gpu, &[vocab, dim]).unwrap().into());
        assert!(matches!(
            emb.sgd_step(&dense, -1.0),
            Err(Error::InvalidArgument { name: "lr", .. })
        ));
        let wrong = Gradient::Dense(Tensor::zeros(gpu, &[vocab, dim + 1]).unwrap().into());
        assert!(matches!(
            emb.sgd_step(&wrong, 0.1),
            Err(Error::ShapeMismatch { .. })
        ));
        assert_bits_eq(
            "weights after bad input",
            &emb.weight().to_vec().unwrap(),
            &weights,
        );
        // Frozen tables refuse gradients and updates.
        let mut frozen = Embedding::from_pretrained(gpu, &weights, vocab, dim, true).unwrap();
        assert_eq!(frozen.backward(&[1, 2, 3], &g3).unwrap_err(), Error::Frozen);
        assert_eq!(
            frozen.backward_sgd(&[1, 2, 3], &g3, 0.1).unwrap_err(),
            Error::Frozen
        );
        let mut state = frozen.adagrad_state().unwrap();
        assert_eq!(
            frozen
                .backward_adagrad(&[1, 2, 3], &g3, &mut state, 0.1, 1e-8)
                .unwrap_err(),
            Error::Frozen
        );
        let zero = Gradient::Dense(Tensor::zeros(gpu, &[vocab, dim]).unwrap().into());
        assert_eq!(frozen.sgd_step(&zero, 0.1).unwrap_err(), Error::Frozen);
    });
}

#[test]
fn training_loop_loss_falls_and_final_weights_agree_everywhere() {
    // Fit each row to a target vector: loss = mean over the batch of
    // 0.5 * |row - target|², trained 150 steps with fused SGD, then 150 with
    // fused row-wise Adagrad. The host computes grad_out in the same order on
    // every adapter, so the whole run must repeat bit for bit, and match the
    // same loop run on the CPU twins.
    let (vocab, dim, batch, steps) = (64, 16, 256, 300);
    let mut rng = Rng(17);
    let init = floats(&mut rng, vocab * dim);
    let targets = floats(&mut rng, vocab * dim);
    let batches: Vec<Vec<u32>> = (0..steps)
        .map(|_| index_list(&mut rng, batch, vocab, Dist::Zipf))
        .collect();
    let grad_and_loss = |out: &[f32], idx: &[u32]| {
        let mut grad = vec![0.0f32; batch * dim];
        let mut loss = 0.0f64;
        for (p, &r) in idx.iter().enumerate() {
            for c in 0..dim {
                let d = out[p * dim + c] - targets[r as usize * dim + c];
                grad[p * dim + c] = d / batch as f32;
                loss += 0.5 * (d as f64) * (d as f64) / batch as f64;
            }
        }
        (grad, loss)
    };
    let (sgd_lr, ada_lr, eps) = (0.5f32, 0.05f32, 1e-8f32);

    // The loop on the CPU twins.
    let twin = BackwardOptions::default();
    let mut want = init.clone();
    let mut want_state = vec![0.0f32; vocab];
    for (step, idx) in batches.iter().enumerate() {
        let mut out = vec![0.0f32; batch * dim];
        let mut status = u32::MAX;
        cpu::embedding_gather(vocab, dim, idx, &mut status, &want, &mut out);
        let (grad, _) = grad_and_loss(&out, idx);
        if step < steps / 2 {
            cpu::embedding_backward_sgd(vocab, dim, idx, &grad, &twin, &mut want, sgd_lr);
        } else {
            cpu::embedding_backward_adagrad(
                vocab,
                dim,
                idx,
                &grad,
                &twin,
                &mut want,
                &mut want_state,
                ada_lr,
                eps,
            );
        }
    }

    each_gpu(|gpu| {
        let mut emb = table(gpu, &init, vocab, dim, EmbeddingOptions::default());
        let mut state = emb.adagrad_state().unwrap();
        let mut losses = Vec::new();
        for (step, idx) in batches.iter().enumerate() {
            let out = emb.forward(idx).unwrap().to_vec().unwrap();
            let (grad, loss) = grad_and_loss(&out, idx);
            losses.push(loss);
            let g = Tensor::from_slice(gpu, &grad, &[batch, dim]).unwrap();
            if step < steps / 2 {
                emb.backward_sgd(idx, &g, sgd_lr).unwrap();
            } else {
                emb.backward_adagrad(idx, &g, &mut state, ada_lr, eps)
                    .unwrap();
            }
        }
        let first: f64 = losses[..10].iter().sum();
        let last: f64 = losses[steps - 10..].iter().sum();
        assert!(
            last < 0.1 * first,
            "loss did not fall enough: {first} -> {last}"
        );
        assert_bits_eq(
            "trained weights vs the CPU twin's loop",
            &emb.weight().to_vec().unwrap(),
            &want,
        );
        assert_bits_eq(
            "Adagrad state vs the CPU twin's loop",
            &state.to_vec().unwrap(),
            &want_state,
        );
    });
}

#[test]
fn caller_built_sparse_gradients_are_checked_not_trusted() {
    each_gpu(|gpu| {
        let rows = IndexTensor::from_slice(gpu, &[1, 3]).unwrap();
        // Values that are not [rows.len(), dim]: a shape error, not a panic.
        for shape in [vec![8], vec![3, 4], vec![2, 2, 2]] {
            let values = Tensor::zeros(gpu, &shape).unwrap();
            let g = Gradient::Sparse {
                rows: rows.clone(),
                values: values.into(),
            };
            assert!(
                matches!(g.rows_to_vec(0, 2), Err(Error::ShapeMismatch { .. })),
                "{shape:?}"
            );
            assert!(
                matches!(g.to_dense_vec(4, 4), Err(Error::ShapeMismatch { .. })),
                "{shape:?}"
            );
        }
        // Sizes no host can hold: OutOfHostMemory, not an abort in the allocator.
        let values = Tensor::from_slice(gpu, &[1.0; 8], &[2, 4]).unwrap();
        let g = Gradient::Sparse {
            rows,
            values: values.into(),
        };
        assert!(matches!(
            g.rows_to_vec(0, 1 << 50),
            Err(Error::OutOfHostMemory { bytes, .. }) if bytes == 1 << 54
        ));
        assert!(matches!(
            g.to_dense_vec(1 << 50, 4),
            Err(Error::OutOfHostMemory { bytes, .. }) if bytes == 1 << 54
        ));
        let want = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0];
        assert_bits_eq("sparse rows", &g.rows_to_vec(0, 2).unwrap(), &want);
        // A row past the dense table is an error naming it, not dropped.
        assert_eq!(
            g.to_dense_vec(3, 4).unwrap_err(),
            Error::IndexOutOfRange {
                position: 1,
                index: 3,
                num_embeddings: 3
            }
        );
        // Repeated or descending rows have no one dense row each.
        for bad in [[2u32, 2], [3, 1]] {
            let g = Gradient::Sparse {
                rows: IndexTensor::from_slice(gpu, &bad).unwrap(),
                values: Tensor::from_slice(gpu, &[1.0; 8], &[2, 4]).unwrap().into(),
            };
            for r in [g.to_dense_vec(4, 4), g.rows_to_vec(0, 4)] {
                assert!(
                    matches!(
                        &r,
                        Err(Error::InvalidArgument {
                            name: "sparse gradient rows",
                            ..
                        })
                    ),
                    "{bad:?}: {r:?}"
                );
            }
        }
    });
}

#[test]
fn a_hand_built_sparse_step_with_bad_rows_is_refused_and_changes_nothing() {
    each_gpu(|gpu| {
        let (vocab, dim) = (6, 3);
        let mut emb = Embedding::new(gpu, vocab, dim).unwrap();
        let before = emb.weight().to_vec().unwrap();
        let values = Tensor::from_slice(gpu, &[1.0; 6], &[2, dim]).unwrap();
        for (rows, what) in [
            ([1u32, 9], "out of range"),
            ([2, 2], "repeated"),
            ([4, 1], "descending"),
        ] {
            let g = Gradient::Sparse {
                rows: IndexTensor::from_slice(gpu, &rows).unwrap(),
                values: values.clone().into(),
            };
            let r = emb.sgd_step(&g, 0.5);
            assert!(
                matches!(
                    r,
                    Err(Error::IndexOutOfRange { .. } | Error::InvalidArgument { .. })
                ),
                "{what}: {r:?}"
            );
            assert_bits_eq(what, &emb.weight().to_vec().unwrap(), &before);
        }
        // Rows as backward makes them still step, as the twin steps them.
        let g = Gradient::Sparse {
            rows: IndexTensor::from_slice(gpu, &[0, 5]).unwrap(),
            values: values.into(),
        };
        emb.sgd_step(&g, 0.5).unwrap();
        let mut want = before.clone();
        cpu::sgd_sparse(vocab, dim, 0.5, &[1.0; 6], &mut want[..], &[0, 5]);
        assert_ne!(want, before, "the step moves rows 0 and 5");
        assert_bits_eq("after a good step", &emb.weight().to_vec().unwrap(), &want);
    });
}

#[test]
fn a_training_step_allocates_for_the_batch_not_the_vocabulary() {
    // 2^20 rows and a batch of 64: the fused updates and a sparse gradient
    // find each row's segment in the sorted keys, so their scratch is a few
    // u32s per id. A per-row count and scan (what a dense gradient needs,
    // and these took before) would be 8 MiB. Each result is checked against
    // the twin on the rows the batch names, so the small scratch is the
    // right work too.
    let (vocab, dim, n) = (1usize << 20, 4, 64);
    let mut rng = Rng(0x5ca1e);
    let indices: Vec<u32> = (0..n).map(|_| rng.below(vocab) as u32).collect();
    let grad_out = floats(&mut rng, n * dim);
    let twin = twin_options(&EmbeddingOptions::default());
    let (want_rows, want_values) =
        cpu::embedding_backward_sparse(vocab, dim, &indices, &grad_out, &twin);
    // The batch's own buffers, with room for the sort's and the scans'.
    let bound = (n * dim * 4 * 4 + n * 4 * 16 + (64 << 10)) as u64;
    each_gpu(|gpu| {
        let g = Tensor::from_slice(gpu, &grad_out, &[n, dim]).unwrap();
        let options = EmbeddingOptions {
            seed: Some(3),
            ..EmbeddingOptions::default()
        };
        let mut emb = Embedding::with_options(gpu, vocab, dim, options.clone()).unwrap();
        let start = emb.weight().to_vec().unwrap();
        let mut state = emb.adagrad_state().unwrap();
        let mut adam = emb.adam_state().unwrap();
        let sparse = Embedding::from_pretrained_with_options(
            gpu,
            &vec![0.0; vocab * dim],
            vocab,
            dim,
            EmbeddingOptions {
                sparse: true,
                ..options
            },
        )
        .unwrap();
        let adam_options = wgpu_embed::AdamOptions::default();
        let scratch = |what: &str, step: &mut dyn FnMut()| {
            let live = gpu.memory_live();
            gpu.reset_memory_peak();
            step();
            let used = gpu.memory_peak() - live;
            assert!(
                used <= bound,
                "{what}: {used} bytes of scratch for {n} ids, more than {bound}"
            );
        };
        let mut sparse_grad = None;
        scratch("sparse backward", &mut || {
            sparse_grad = Some(sparse.backward(&indices, &g).unwrap())
        });
        let Some(Gradient::Sparse { rows, values }) = sparse_grad else {
            panic!("sparse = true must give a sparse gradient");
        };
        assert_eq!(rows.to_vec().unwrap(), want_rows);
        assert_bits_eq(
            "sparse values vs twin",
            &values.to_vec().unwrap(),
            &want_values,
        );
        scratch("backward_sgd", &mut || {
            emb.backward_sgd(&indices, &g, 0.5).unwrap()
        });
        scratch("backward_adagrad", &mut || {
            emb.backward_adagrad(&indices, &g, &mut state, 0.1, 1e-8)
                .unwrap()
        });
        scratch("backward_adam", &mut || {
            emb.backward_adam(&indices, &g, &mut adam, &adam_options)
                .unwrap()
        });
        // The same three steps on the twin, compared row by row.
        let mut want = start.clone();
        cpu::embedding_backward_sgd(vocab, dim, &indices, &grad_out, &twin, &mut want, 0.5);
        let mut want_state = vec![0.0f32; vocab];
        cpu::embedding_backward_adagrad(
            vocab,
            dim,
            &indices,
            &grad_out,
            &twin,
            &mut want,
            &mut want_state,
            0.1,
            1e-8,
        );
        let (mut m, mut v) = (vec![0.0f32; vocab * dim], vec![0.0f32; vocab * dim]);
        let o = &adam_options;
        let args = cpu::AdamArgs::for_step(1, o.lr, o.betas, o.eps, o.weight_decay, true);
        cpu::embedding_backward_adam(
            vocab, dim, &indices, &grad_out, &twin, &mut want, &mut m, &mut v, &args,
        );
        assert_bits_eq(
            "three fused steps vs twin",
            &emb.weight().to_vec().unwrap(),
            &want,
        );
        assert_bits_eq(
            "adagrad state vs twin",
            &state.to_vec().unwrap(),
            &want_state,
        );
    });
}
