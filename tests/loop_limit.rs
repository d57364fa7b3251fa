//! Mesa's loop limit: see kernels::LOOP_BUDGET.
//!
//! Each test gives one kernel an input whose natural per-invocation loop
//! count is past that limit — long loops over little data — and compares
//! with the CPU twin: bit for bit on the CPU adapters, and on others too
//! wherever the result only adds, copies or compares (see `assert_near` for
//! the rest). Where a size limit remains, the test checks for the typed
//! error on CPU adapters.

mod common;

use common::{assert_bits_eq, bag_twin, data, each_gpu};
use wgpu_embed::cpu::embedding_bag_backward::{psw_grad, BagBatch};
use wgpu_embed::cpu::BackwardOptions;
use wgpu_embed::kernels::embedding_gather::STATUS_OK;
use wgpu_embed::kernels::segment_sum::{self, SegmentArgs, SegmentOutput};
use wgpu_embed::kernels::{buffer_copy, column_sum, fma_peak};
use wgpu_embed::RowBlock;
use wgpu_embed::{
    cpu, BagMode, DType, Embedding, EmbeddingBag, EmbeddingBagOptions, EmbeddingOptions, Error,
    Gpu, Gradient, GradientMode, IndexTensor, Tensor,
};

fn is_cpu(gpu: &Gpu) -> bool {
    gpu.adapter_info().device_type == wgpu::DeviceType::Cpu
}

/// For results that multiply-add or divide: bit for bit on CPU adapters,
/// elsewhere within `tol` absolute, since GPU compilers may fuse `a * b + c`
/// into an FMA and round `/` and `sqrt` their own way (README, Known
/// limits). Callers set `tol` to about 1e-6 × the sum of the magnitudes
/// added: an ulp or two per term, far below what a term dropped by a cut
/// loop would change.
fn assert_near(gpu: &Gpu, what: &str, got: &[f32], want: &[f32], tol: f32) {
    if is_cpu(gpu) {
        return assert_bits_eq(what, got, want);
    }
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {i}: got {g} want {w}"
        );
    }
}

/// Deterministic ids below `rows`.
fn ids(n: usize, rows: usize, seed: u64) -> Vec<u32> {
    data(n, seed)
        .iter()
        .map(|&x| (((x + 1.0) * 0.5 * rows as f32) as usize).min(rows - 1) as u32)
        .collect()
}

#[test]
fn column_sum_over_more_rows_than_one_loop_may_run() {
    // Linear's bias gradient over a batch of 70 000 rows: one column is a
    // 70 000-step sum.
    let (rows, cols) = (70_000, 4);
    let x = data(rows * cols, 1);
    let mut want = vec![0.0; cols];
    cpu::column_sum(rows, cols, false, &x, &mut want);
    let start = data(cols, 2);
    let mut want_acc = start.clone();
    cpu::column_sum(rows, cols, true, &x, &mut want_acc);
    each_gpu(|gpu| {
        let t = Tensor::from_slice(gpu, &x, &[rows, cols]).unwrap();
        let got = column_sum::column_sum(&t).unwrap().to_vec().unwrap();
        assert_bits_eq("column_sum of 70 000 rows", &got, &want);
        let out = Tensor::from_slice(gpu, &start, &[cols]).unwrap();
        let mut encoder = gpu.encoder("column_sum accumulate");
        column_sum::encode(
            gpu,
            &mut encoder,
            rows,
            cols,
            true,
            t.buffer(),
            out.buffer(),
        )
        .unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        assert_bits_eq(
            "column_sum of 70 000 rows, accumulated",
            &out.to_vec().unwrap(),
            &want_acc,
        );
    });
}

#[test]
fn gather_of_rows_wider_than_one_loop_may_copy() {
    // One invocation per row on CPU adapters: a row of 70 001 floats (scalar
    // path) or 65 537 vec4s is one long copy loop.
    for (dim, dtype) in [
        (70_001, DType::F32),
        (70_001, DType::F16),
        (70_001, DType::Int8),
        (4 * 65_537, DType::F32),
    ] {
        let rows = 2;
        let table = data(rows * dim, 3);
        let idx = [1u32, 0, 1];
        let half: Vec<half::f16> = table.iter().map(|&v| half::f16::from_f32(v)).collect();
        let mut want = vec![0.0; idx.len() * dim];
        let mut status = u32::MAX;
        match dtype {
            DType::F32 => cpu::embedding_gather(rows, dim, &idx, &mut status, &table, &mut want),
            DType::F16 => cpu::embedding_gather(rows, dim, &idx, &mut status, &half, &mut want),
            DType::Int8 => {
                let fused = cpu::int8_rowwise::quantize(&table, dim);
                let rows8 = cpu::int8_rowwise::Int8Rows { fused: &fused };
                cpu::embedding_gather(rows, dim, &idx, &mut status, &rows8, &mut want)
            }
        }
        each_gpu(|gpu| {
            let opts = EmbeddingOptions {
                dtype,
                ..Default::default()
            };
            let emb =
                Embedding::from_pretrained_with_options(gpu, &table, rows, dim, opts).unwrap();
            let got = emb.forward(&idx).unwrap().to_vec().unwrap();
            assert_bits_eq(&format!("gather dim={dim} {dtype:?}"), &got, &want);
        });
    }
}

/// Every mode (and weighted sum) of one batch against the twin, bit for bit
/// (mean divides once, exactly on the IEEE CPU adapters; 3 ULP elsewhere).
fn check_bags(gpu: &Gpu, rows: usize, dim: usize, idx: &[u32], csr: &[u32], what: &str) {
    let table = data(rows * dim, 4);
    let psw = data(idx.len(), 5);
    for padding in [None, Some(7usize)] {
        for mode in [BagMode::Sum, BagMode::Mean, BagMode::Max] {
            let opts = EmbeddingOptions {
                padding_idx: padding,
                ..Default::default()
            };
            let emb =
                Embedding::from_pretrained_with_options(gpu, &table, rows, dim, opts).unwrap();
            let bag = EmbeddingBag::from_embedding(
                emb,
                EmbeddingBagOptions {
                    mode,
                    include_last_offset: true,
                },
            );
            let what = format!("{what} {mode:?} dim={dim} padding={padding:?}");
            let got = bag.forward_with_positions(idx, csr, None).unwrap();
            let (want, want_pos) = bag_twin(mode, rows, dim, padding, &table, idx, csr, None);
            let got_out = got.output.to_vec().unwrap();
            if mode == BagMode::Mean && !is_cpu(gpu) {
                // One division per output; WGSL allows 2.5 ulp.
                for (i, (g, w)) in got_out.iter().zip(&want).enumerate() {
                    let ulps = (g.to_bits() as i32).wrapping_sub(w.to_bits() as i32);
                    assert!(ulps.unsigned_abs() <= 3, "{what}: {i}: {g} vs {w}");
                }
            } else {
                assert_bits_eq(&what, &got_out, &want);
            }
            if mode == BagMode::Max {
                assert_eq!(got.max_positions_to_vec().unwrap(), want_pos, "{what}");
            }
            if mode == BagMode::Sum {
                let got = bag.forward(idx, csr, Some(&psw)).unwrap();
                let (want, _) = bag_twin(mode, rows, dim, padding, &table, idx, csr, Some(&psw));
                let tol = 1e-6 * idx.len() as f32;
                let got = got.to_vec().unwrap();
                assert_near(gpu, &format!("{what} weighted"), &got, &want, tol);
            }
        }
    }
}

#[test]
fn one_bag_of_70_000_ids() {
    // offsets = [0]: every id in one bag, one invocation's loop on CPU
    // adapters. dim 4 runs the vec4 entry point, 3 the scalar one.
    let n = 70_000;
    let idx = ids(n, 100, 6);
    each_gpu(|gpu| {
        for dim in [4, 3] {
            check_bags(gpu, 100, dim, &idx, &[0, n as u32], "one bag of 70 000");
        }
    });
}

#[test]
fn long_bags_at_wide_dims() {
    // A bag of 3 000 ids at dim 128: one invocation walks the bag once per
    // vec4 of the row, 32 × 3 000 iterations. Short bags around it, and an
    // empty one, must come out as before. Rows of 1 025 vec4s (or 1 027
    // floats) get two invocations per bag, each carrying its own columns.
    let idx = ids(3_500, 50, 7);
    let csr = [0u32, 10, 10, 3_010, 3_200, 3_500];
    let wide = [0u32, 3, 203, 210];
    each_gpu(|gpu| {
        check_bags(gpu, 50, 128, &idx, &csr, "bags up to 3 000 long");
        for dim in [4 * 1025, 1027] {
            check_bags(gpu, 50, dim, &idx[..210], &wide, "a bag of 200");
        }
    });
}

#[test]
fn bag_backward_of_one_long_bag() {
    // Mean mode counts each bag's non-padding entries: one loop over the bag.
    let (rows, dim, n) = (100, 4, 70_000);
    let idx = ids(n, rows, 8);
    let csr = [0u32, n as u32];
    let table = data(rows * dim, 9);
    let grad_out = data(dim, 10);
    let psw = data(n, 11);
    each_gpu(|gpu| {
        for (mode, weights) in [
            (BagMode::Mean, None),
            (BagMode::Sum, None),
            (BagMode::Sum, Some(&psw[..])),
        ] {
            for padding in [None, Some(7usize)] {
                let opts = EmbeddingOptions {
                    padding_idx: padding,
                    ..Default::default()
                };
                let emb =
                    Embedding::from_pretrained_with_options(gpu, &table, rows, dim, opts).unwrap();
                let bag = EmbeddingBag::from_embedding(
                    emb,
                    EmbeddingBagOptions {
                        mode,
                        include_last_offset: true,
                    },
                );
                let g = Tensor::from_slice(gpu, &grad_out, &[1, dim]).unwrap();
                let got = bag.backward(&idx, &csr, weights, &g).unwrap();
                // The twin of this batch, on these weights and this grad_out.
                let twin = |w: Option<&[f32]>, grad: &[f32]| {
                    let batch = BagBatch {
                        mode,
                        num_embeddings: rows,
                        dim,
                        indices: &idx,
                        offsets: &csr,
                        per_sample_weights: w,
                        max_positions: &[],
                        grad_out: grad,
                    };
                    let options = BackwardOptions {
                        padding_idx: padding,
                        ..Default::default()
                    };
                    cpu::embedding_bag_backward_dense(&batch, &options)
                };
                let want = twin(weights, &grad_out);
                let what = format!("bag backward {mode:?} weighted={}", weights.is_some());
                let got = got.to_dense_vec(rows, dim).unwrap();
                if mode == BagMode::Sum && weights.is_none() || is_cpu(gpu) {
                    assert_bits_eq(&what, &got, &want);
                } else {
                    // A division or product per position (exact_arith's, so
                    // the bits should match here too): bounded by an ulp a
                    // term of each element's own sum of magnitudes (the twin
                    // on |terms|; ~700 terms an element, 4e-5 of it), while
                    // one dropped term is ~1/700 of it and a wrong divisor more.
                    let abs_psw: Option<Vec<f32>> =
                        weights.map(|w| w.iter().map(|x| x.abs()).collect());
                    let abs_grad: Vec<f32> = grad_out.iter().map(|x| x.abs()).collect();
                    let magnitude = twin(abs_psw.as_deref(), &abs_grad);
                    for (i, ((g, w), m)) in got.iter().zip(&want).zip(&magnitude).enumerate() {
                        assert!(
                            (g - w).abs() <= 5e-5 * m,
                            "{what}: element {i}: got {g} want {w} (sum of magnitudes {m})"
                        );
                    }
                }
            }
        }
    });
}

#[test]
fn per_sample_weight_gradient_of_a_wide_row() {
    // One dot product of 70 000 columns per position.
    let (rows, dim) = (3, 70_000);
    let table = data(rows * dim, 12);
    let idx = [0u32, 2, 1, 2];
    let csr = [0u32, 1, 4];
    let grad_out = data(2 * dim, 13);
    let mut want = vec![0.0; idx.len()];
    psw_grad(rows, dim, None, &idx, &csr, &grad_out, &table, &mut want);
    each_gpu(|gpu| {
        let emb = Embedding::from_pretrained(gpu, &table, rows, dim, false).unwrap();
        let bag = EmbeddingBag::from_embedding(
            emb,
            EmbeddingBagOptions {
                mode: BagMode::Sum,
                include_last_offset: true,
            },
        );
        let g = Tensor::from_slice(gpu, &grad_out, &[2, dim]).unwrap();
        let got = bag.per_sample_weights_grad(&idx, &csr, &g).unwrap();
        let got = got.to_vec().unwrap();
        assert_near(
            gpu,
            "psw grad at dim 70 000",
            &got,
            &want,
            1e-6 * dim as f32,
        );
    });
}

/// A row repeated 256 and 300 times and one 255 times, shuffled: at these
/// widths one invocation per row (CPU adapters) sums 256 blocks of columns,
/// each over up to a tile (256 entries) of the row's segment.
fn wide_rows_indices() -> Vec<u32> {
    let mut idx: Vec<u32> = [(0u32, 256), (1, 255), (2, 300), (3, 5)]
        .iter()
        .flat_map(|&(r, k)| std::iter::repeat_n(r, k))
        .collect();
    let keys = data(idx.len(), 14);
    let mut order: Vec<usize> = (0..idx.len()).collect();
    order.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    idx = order.iter().map(|&i| idx[i]).collect();
    idx
}

#[test]
fn gradients_and_fused_updates_of_wide_rows() {
    let idx = wide_rows_indices();
    let vocab = 5;
    for dim in [4096, 2047] {
        let n = idx.len();
        let grad_out = data(n * dim, 15);
        let weights = data(vocab * dim, 16);
        let options = BackwardOptions::default();
        let want = cpu::embedding_backward_dense(vocab, dim, &idx, &grad_out, &options);
        let mut want_sgd = weights.clone();
        cpu::embedding_backward_sgd(vocab, dim, &idx, &grad_out, &options, &mut want_sgd, 0.5);
        let mut want_ada = weights.clone();
        let start_state: Vec<f32> = (0..vocab).map(|r| r as f32 * 0.25).collect();
        let mut want_state = start_state.clone();
        cpu::embedding_backward_adagrad(
            vocab,
            dim,
            &idx,
            &grad_out,
            &options,
            &mut want_ada,
            &mut want_state,
            0.1,
            1e-8,
        );
        each_gpu(|gpu| {
            let what = format!("dim={dim}");
            let g = Tensor::from_slice(gpu, &grad_out, &[n, dim]).unwrap();
            for sparse in [false, true] {
                let opts = EmbeddingOptions {
                    sparse,
                    ..Default::default()
                };
                let emb = Embedding::from_pretrained_with_options(gpu, &weights, vocab, dim, opts)
                    .unwrap();
                let got = emb.backward(&idx, &g).unwrap();
                assert!(matches!(got, Gradient::Sparse { .. }) == sparse);
                let got = got.to_dense_vec(vocab, dim).unwrap();
                assert_bits_eq(&format!("{what} sparse={sparse}"), &got, &want);
            }
            let mut emb = Embedding::from_pretrained(gpu, &weights, vocab, dim, false).unwrap();
            emb.backward_sgd(&idx, &g, 0.5).unwrap();
            // One multiply-add per weight: an ulp or two of it.
            let got = emb.weight().to_vec().unwrap();
            assert_near(gpu, &format!("{what} fused SGD"), &got, &want_sgd, 1e-6);
            let mut emb = Embedding::from_pretrained(gpu, &weights, vocab, dim, false).unwrap();
            let mut state = Tensor::from_slice(gpu, &start_state, &[vocab]).unwrap();
            emb.backward_adagrad(&idx, &g, &mut state, 0.1, 1e-8)
                .unwrap();
            let got = emb.weight().to_vec().unwrap();
            assert_near(
                gpu,
                &format!("{what} Adagrad weights"),
                &got,
                &want_ada,
                1e-6,
            );
            // The sum of 4 096 squares of sums of up to 300 terms.
            let got = state.to_vec().unwrap();
            let tol = 1e-6 * want_state.iter().fold(1.0f32, |m, x| m.max(x.abs()));
            assert_near(
                gpu,
                &format!("{what} Adagrad state"),
                &got,
                &want_state,
                tol,
            );
        });
    }
}

#[test]
fn a_hot_row_asked_for_one_entry_tiles_gets_the_most_tiles() {
    // A row's tiles are added in order by its one invocation. One-entry
    // tiles over 70 000 entries would be 70 000 of them, past gallivm's cut;
    // the tile length grows instead (MAX_TILES, the twin too), so the loop
    // stays within the budget: 14 000 tiles of 5 here.
    let (vocab, dim, n) = (3, 1, 70_000);
    assert_eq!(segment_sum::tile_len(1, n), 5);
    assert!(n.div_ceil(segment_sum::tile_len(1, n)) <= segment_sum::MAX_TILES);
    let idx: Vec<u32> = (0..n)
        .map(|p| if p % 1000 == 999 { 2 } else { 0 })
        .collect();
    let grad_out = data(n * dim, 17);
    let tiny = BackwardOptions {
        chunk: 1,
        ..Default::default()
    };
    let want = cpu::embedding_backward_dense(vocab, dim, &idx, &grad_out, &tiny);
    let mut status = u32::MAX;
    let mut counts = vec![0u32; vocab];
    cpu::row_histogram(vocab, &idx, &mut status, &mut counts);
    let mut offsets = vec![0u32; vocab + 1];
    cpu::exclusive_scan(&counts, None, cpu::ScanMode::Sum, &mut offsets);
    let mut keys = vec![0u32; n];
    let mut positions = vec![0u32; n];
    cpu::radix_sort(&idx, vocab, &mut keys, &mut positions);
    each_gpu(|gpu| {
        let up = |v: &[u32]| IndexTensor::from_slice(gpu, v).unwrap();
        let (status, offsets, keys, positions) =
            (up(&[STATUS_OK]), up(&offsets), up(&keys), up(&positions));
        let g = Tensor::from_slice(gpu, &grad_out, &[n, dim]).unwrap();
        let out = Tensor::zeros(gpu, &[vocab, dim]).unwrap();
        let args = SegmentArgs {
            n,
            dim,
            num_embeddings: vocab,
            padding_idx: None,
            scale_by_freq: false,
            status: status.buffer(),
            offsets: Some(offsets.buffer()),
            sorted_keys: keys.buffer(),
            sorted_positions: positions.buffer(),
            grad_out: g.buffer(),
            chunk: Some(1),
            half: None,
        };
        let mut encoder = gpu.encoder("hot row");
        segment_sum::encode(
            gpu,
            &mut encoder,
            &args,
            &[SegmentOutput::Dense {
                grad: RowBlock::new(out.buffer(), 0..vocab),
            }],
        )
        .unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        assert_bits_eq(
            "hot row, one-entry tiles asked for",
            &out.to_vec().unwrap(),
            &want,
        );
    });
}

#[test]
fn atomic_gradient_of_a_wide_row() {
    // One invocation per position adds its whole row: 70 000 atomics.
    let (vocab, dim) = (2, 70_000);
    let idx = [1u32, 0, 1];
    let grad_out = data(idx.len() * dim, 18);
    // Two terms per element: a + b in either order is the same float.
    let want = cpu::embedding_backward_dense(vocab, dim, &idx, &grad_out, &Default::default());
    let mut ran = 0;
    each_gpu(|gpu| {
        let opts = EmbeddingOptions {
            gradient_mode: GradientMode::Atomic,
            ..Default::default()
        };
        let emb =
            Embedding::from_pretrained_with_options(gpu, &vec![0.0; vocab * dim], vocab, dim, opts)
                .unwrap();
        let g = Tensor::from_slice(gpu, &grad_out, &[idx.len(), dim]).unwrap();
        let r = emb.backward(&idx, &g);
        if !gpu.has_float_atomics() {
            assert!(matches!(r, Err(Error::MissingFeature { .. })), "{r:?}");
            return;
        }
        ran += 1;
        let got = r.unwrap().to_dense_vec(vocab, dim).unwrap();
        assert_bits_eq("atomic gradient at dim 70 000", &got, &want);
    });
    assert!(ran > 0, "no adapter has float atomics (lavapipe has them)");
}

#[test]
fn max_norm_of_a_row_too_wide_for_one_loop_is_an_error_on_cpu_adapters() {
    // The norm and the rescale are two loops over the row in one invocation;
    // past 16 384 columns a CPU adapter could cut them short, so it refuses
    // such a table with a max_norm.
    let (rows, dim) = (2, 40_000);
    let weights = data(rows * dim, 19);
    each_gpu(|gpu| {
        let opts = EmbeddingOptions {
            max_norm: Some(1.0),
            ..Default::default()
        };
        // Refused when the table is made (every lookup would fail).
        let made = Embedding::from_pretrained_with_options(gpu, &weights, rows, dim, opts.clone());
        if is_cpu(gpu) {
            assert!(
                matches!(
                    made,
                    Err(Error::TooMany {
                        count: 40_000,
                        limit: 16_384,
                        ..
                    })
                ),
                "{:?}",
                made.map(|e| e.weight().shape().to_vec())
            );
            let seeded = Embedding::with_options(gpu, rows, dim, opts.clone());
            assert!(matches!(seeded, Err(Error::TooMany { count: 40_000, .. })));
        } else {
            made.unwrap().forward(&[1]).unwrap();
        }
        // 16 384 columns still fit.
        let narrow = 16_384;
        let emb = Embedding::from_pretrained_with_options(
            gpu,
            &weights[..rows * narrow],
            rows,
            narrow,
            opts,
        )
        .unwrap();
        let out = emb.forward(&[1]).unwrap().to_vec().unwrap();
        let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!(norm <= 1.0 + 1e-4, "norm {norm}");
    });
}

#[test]
fn benchmark_kernels_refuse_loops_past_the_limit_on_cpu_adapters() {
    each_gpu(|gpu| {
        if !is_cpu(gpu) {
            return;
        }
        let shape = fma_peak::FmaPeakShape {
            workgroups: 1,
            iterations: 100_000,
        };
        let out = fma_peak::output(gpu, shape).unwrap();
        let mut encoder = gpu.encoder("fma_peak");
        let r = fma_peak::encode(gpu, &mut encoder, out.raw(), shape);
        assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
        let src = Tensor::zeros(gpu, &[4 * 70_000]).unwrap();
        let dst = Tensor::zeros(gpu, &[4 * 70_000]).unwrap();
        let r = buffer_copy::encode_with(
            gpu,
            &mut encoder,
            src.buffer(),
            dst.buffer(),
            src.bytes(),
            70_000,
        );
        assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    });
}

/// A matmul's K is cut into dispatches that keep each invocation's loops
/// under the limit whatever tile shape a caller passes: one invocation per
/// workgroup copies whole K slabs alone (the longest copy loops), and a deep
/// `bk` on the texture path, where it only sets the K step. Compared with
/// the f64 twin within f32 drift: a term dropped by a cut loop is far past it.
#[test]
fn matmul_long_k_with_the_loopiest_tiles() {
    use wgpu_embed::kernels::matmul::{self, MatmulArgs, MatmulOptions, RegisterTile, Tiles};
    // B stored [N, K] (the texture path packs it K / 4 texels long, within
    // every adapter's 8192-texel side; untransposed it would take K texels).
    let (m, n, k) = (16, 16, 32_000);
    let a = data(m * k, 3);
    let b = data(n * k, 4);
    let mut want = vec![0.0; m * n];
    cpu::matmul(m, n, k, false, true, false, &a, &b, None, &mut want);
    each_gpu(|gpu| {
        let ta = Tensor::from_slice(gpu, &a, &[m, k]).unwrap();
        let tb = Tensor::from_slice(gpu, &b, &[n, k]).unwrap();
        let tile = |wg: u32, bk: u32, register| Tiles {
            wg_x: wg,
            wg_y: wg,
            bk,
            register,
        };
        let mut shapes = vec![
            tile(1, 32, RegisterTile::R8x8),
            tile(1, 10_000, RegisterTile::Texture32x32),
        ];
        // Mesa's GLSL compiler takes minutes over the 16 × 16 entry point.
        if gpu.adapter_info().backend != wgpu::Backend::Gl {
            shapes.push(tile(1, 32, RegisterTile::R16x16));
        }
        for tiles in shapes {
            let c = Tensor::zeros(gpu, &[m, n]).unwrap();
            let mut encoder = gpu.encoder("long K");
            let args = MatmulArgs {
                m,
                n,
                k,
                a: ta.buffer(),
                b: tb.buffer(),
                bias: None,
                c: c.buffer(),
                options: MatmulOptions {
                    trans_b: true,
                    ..MatmulOptions::default()
                },
                tiles: Some(tiles),
                fuse_extras: None,
            };
            matmul::encode(gpu, &mut encoder, &args).unwrap();
            gpu.submit_and_wait(encoder).unwrap();
            let err = common::relative_error(&c.to_vec().unwrap(), &want);
            // √K · 2⁻²⁴ ≈ 1e-5 of drift; one of 32 000 terms lost is ~1e-3.
            assert!(
                err <= 5e-5,
                "{} {tiles:?}: relative error {err:e}",
                gpu.describe()
            );
        }
    });
}
