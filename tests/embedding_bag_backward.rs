//! EmbeddingBag backward on every adapter against its CPU twin
//! (`cpu::embedding_bag_backward`), bit for bit in every mode: the summation
//! order is fixed (ascending positions per row, fixed tiles), and mean's one
//! division per contribution is correctly rounded on the IEEE adapters here
//! (on others WGSL allows `/` 2.5 ULP; see `assert_grad_matches`). Also:
//! offsets edge cases, padding, per-sample weights and their gradient, hot
//! rows, sparse = dense, a finite-difference check, the fused SGD step, and
//! bad inputs as typed errors with the weights unchanged. A property test
//! runs forward and backward over random shapes against the twins.

mod common;

use common::{assert_bits_eq, bag_twin, each_gpu, Rng};
use half::f16;
use proptest::prelude::*;
use wgpu_embed::cpu::embedding_bag_backward::{psw_grad, psw_grad_f16, BagBatch};
use wgpu_embed::cpu::BackwardOptions;
use wgpu_embed::{
    cpu, BagMode, DType, Embedding, EmbeddingBag, EmbeddingBagOptions, EmbeddingOptions, Error,
    Gpu, Gradient, Tensor,
};

const MODES: [BagMode; 3] = [BagMode::Sum, BagMode::Mean, BagMode::Max];

/// Random bags (some empty) over `n` indices: CSR offsets.
fn random_csr(rng: &mut Rng, n: usize, bags: usize) -> Vec<u32> {
    let mut cuts: Vec<u32> = (0..bags.saturating_sub(1))
        .map(|_| rng.below(n + 1) as u32)
        .collect();
    cuts.sort();
    let mut csr = vec![0];
    csr.extend(cuts);
    csr.push(n as u32);
    csr
}

/// One batch and the table options it runs under.
struct Case<'a> {
    mode: BagMode,
    rows: usize,
    dim: usize,
    padding: Option<usize>,
    table: &'a [f32],
    idx: &'a [u32],
    /// CSR offsets (`num_bags + 1`).
    csr: &'a [u32],
    psw: Option<&'a [f32]>,
    grad_out: &'a [f32],
}

impl Case<'_> {
    fn bag(&self, gpu: &Gpu, sparse: bool, include_last_offset: bool) -> EmbeddingBag {
        let opts = EmbeddingOptions {
            padding_idx: self.padding,
            sparse,
            ..Default::default()
        };
        let emb =
            Embedding::from_pretrained_with_options(gpu, self.table, self.rows, self.dim, opts)
                .unwrap();
        EmbeddingBag::from_embedding(
            emb,
            EmbeddingBagOptions {
                mode: self.mode,
                include_last_offset,
            },
        )
    }

    fn offsets(&self, include_last_offset: bool) -> &[u32] {
        if include_last_offset {
            self.csr
        } else {
            &self.csr[..self.csr.len() - 1]
        }
    }

    fn num_bags(&self) -> usize {
        self.csr.len() - 1
    }

    /// The forward twin's output and max's winning positions.
    fn forward_twin(&self) -> (Vec<f32>, Vec<u32>) {
        bag_twin(
            self.mode,
            self.rows,
            self.dim,
            self.padding,
            self.table,
            self.idx,
            self.csr,
            self.psw,
        )
    }

    fn max_positions(&self) -> Vec<u32> {
        self.forward_twin().1
    }

    fn options(&self) -> BackwardOptions {
        BackwardOptions {
            padding_idx: self.padding,
            ..Default::default()
        }
    }

    /// The twin's dense and sparse gradients.
    fn twin(&self) -> (Vec<f32>, (Vec<u32>, Vec<f32>)) {
        let pos = if self.mode == BagMode::Max {
            self.max_positions()
        } else {
            Vec::new()
        };
        let batch = BagBatch {
            mode: self.mode,
            num_embeddings: self.rows,
            dim: self.dim,
            indices: self.idx,
            offsets: self.csr,
            per_sample_weights: self.psw,
            max_positions: &pos,
            grad_out: self.grad_out,
        };
        let o = self.options();
        (
            cpu::embedding_bag_backward_dense(&batch, &o),
            cpu::embedding_bag_backward_sparse(&batch, &o),
        )
    }

    fn grad_tensor(&self, gpu: &Gpu) -> Tensor {
        Tensor::from_slice(gpu, self.grad_out, &[self.num_bags(), self.dim]).unwrap()
    }

    /// GPU dense and sparse gradients against the twin, bit for bit, for
    /// both offset conventions; sparse rows are the referenced ones ascending.
    fn check(&self, gpu: &Gpu, what: &str) {
        let (want_dense, (want_rows, want_values)) = self.twin();
        let g = self.grad_tensor(gpu);
        for include_last in [false, true] {
            let what = format!("{what} {:?} include_last_offset={include_last}", self.mode);
            let offsets = self.offsets(include_last);
            let dense = self.bag(gpu, false, include_last);
            let got = dense.backward(self.idx, offsets, self.psw, &g).unwrap();
            let Gradient::Dense(t) = &got else {
                panic!("{what}: a dense table gave {got:?}")
            };
            assert_bits_eq(&what, &t.to_vec().unwrap(), &want_dense);
            let sparse = self.bag(gpu, true, include_last);
            let got = sparse.backward(self.idx, offsets, self.psw, &g).unwrap();
            let Gradient::Sparse { rows, values } = &got else {
                panic!("{what}: a sparse table gave {got:?}")
            };
            assert_eq!(rows.to_vec().unwrap(), want_rows, "{what}: sparse rows");
            assert_bits_eq(&what, &values.to_vec().unwrap(), &want_values);
            // Sparse and dense agree once scattered.
            assert_bits_eq(
                &format!("{what} sparse vs dense"),
                &got.to_dense_vec(self.rows, self.dim).unwrap(),
                &t.to_vec().unwrap(),
            );
        }
    }
}

#[test]
fn every_mode_matches_the_twin() {
    each_gpu(|gpu| {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for dim in [1, 4, 7, 64] {
            let rows = 50;
            let table = rng.floats(rows * dim);
            let n = 300;
            let idx: Vec<u32> = (0..n).map(|_| rng.below(rows) as u32).collect();
            let csr = random_csr(&mut rng, n, 40);
            let psw = rng.floats(n);
            let grad_out = rng.floats((csr.len() - 1) * dim);
            for padding in [None, Some(3usize)] {
                for mode in MODES {
                    let case = Case {
                        mode,
                        rows,
                        dim,
                        padding,
                        table: &table,
                        idx: &idx,
                        csr: &csr,
                        psw: None,
                        grad_out: &grad_out,
                    };
                    let what = format!("dim={dim} padding={padding:?}");
                    case.check(gpu, &what);
                    if mode == BagMode::Sum {
                        let weighted = Case {
                            psw: Some(&psw),
                            ..case
                        };
                        weighted.check(gpu, &format!("{what} weighted"));
                    }
                }
            }
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    /// Forward (output and max's winners) and backward (dense and sparse,
    /// both offset conventions) against the twins, bit for bit, over random
    /// shapes: one bag up to hundreds (some empty), uniform or hot ids,
    /// padding, per-sample weights. `long` makes bags longer than one
    /// dispatch's piece on CPU adapters (one invocation per bag: 108 to 503
    /// positions at dim 257 to 299): 1 to 4 bags of 1 000 to 3 000 ids.
    #[test]
    fn forward_and_backward_match_the_twins_over_shapes(
        rows in 1usize..=3_000,
        dim in 1usize..=300,
        n in 0usize..=3_000,
        bags in 1usize..=300,
        long in any::<bool>(),
        mode in 0usize..3,
        padded in any::<bool>(),
        weighted in any::<bool>(),
        hot in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let (dim, n, bags) = if long {
            (257 + dim % 43, 1_000 + n % 2_001, 1 + bags % 4)
        } else {
            (dim, n, bags)
        };
        let mut rng = Rng(seed | 1);
        let mode = MODES[mode];
        let table = rng.floats(rows * dim);
        let idx: Vec<u32> = (0..n)
            .map(|_| if hot { rng.zipf(rows) } else { rng.below(rows) as u32 })
            .collect();
        let csr = random_csr(&mut rng, n, bags);
        let psw = rng.floats(n);
        let grad_out = rng.floats(bags * dim);
        let padding = padded.then(|| rng.below(rows));
        let case = Case {
            mode,
            rows,
            dim,
            padding,
            table: &table,
            idx: &idx,
            csr: &csr,
            psw: (weighted && mode == BagMode::Sum).then_some(&psw[..]),
            grad_out: &grad_out,
        };
        let what = format!(
            "rows={rows} dim={dim} n={n} bags={bags} {mode:?} padding={padding:?} \
             weighted={} hot={hot} long={long}",
            case.psw.is_some()
        );
        each_gpu(|gpu| {
            let (want, want_pos) = case.forward_twin();
            for include_last in [false, true] {
                let what = format!("{what} forward include_last_offset={include_last}");
                let got = case
                    .bag(gpu, false, include_last)
                    .forward_with_positions(&idx, case.offsets(include_last), case.psw)
                    .unwrap();
                assert_bits_eq(&what, &got.output.to_vec().unwrap(), &want);
                if mode == BagMode::Max {
                    assert_eq!(got.max_positions_to_vec().unwrap(), want_pos, "{what}");
                }
            }
            case.check(gpu, &what);
        });
    }
}

#[test]
fn offsets_edge_cases() {
    each_gpu(|gpu| {
        let mut rng = Rng(7);
        let (rows, dim) = (10, 5);
        let table = rng.floats(rows * dim);
        let idx: Vec<u32> = vec![1, 2, 2, 0, 9, 2, 1, 1];
        let n = idx.len() as u32;
        // First bag empty, last bag empty, empty bags between, a bag of only
        // padding (row 0 at position 3 with padding 0), one bag of everything.
        let layouts: [&[u32]; 5] = [
            &[0, 0, 3, n],
            &[0, 3, n, n],
            &[0, 0, 0, 2, 2, 5, n, n],
            &[0, 3, 4, n],
            &[0, n],
        ];
        for csr in layouts {
            let grad_out = rng.floats((csr.len() - 1) * dim);
            let psw = rng.floats(idx.len());
            for padding in [None, Some(0usize)] {
                for mode in MODES {
                    let case = Case {
                        mode,
                        rows,
                        dim,
                        padding,
                        table: &table,
                        idx: &idx,
                        csr,
                        psw: (mode == BagMode::Sum).then_some(&psw[..]),
                        grad_out: &grad_out,
                    };
                    case.check(gpu, &format!("csr={csr:?} padding={padding:?}"));
                }
            }
        }
        // No indices at all: three empty bags give a zero gradient.
        for mode in MODES {
            let grad_out = rng.floats(3 * dim);
            let case = Case {
                mode,
                rows,
                dim,
                padding: None,
                table: &table,
                idx: &[],
                csr: &[0, 0, 0, 0],
                psw: None,
                grad_out: &grad_out,
            };
            let (want, _) = case.twin();
            assert!(want.iter().all(|&v| v == 0.0));
            case.check(gpu, "no indices");
        }
    });
}

#[test]
fn hot_rows_repeated_across_bags() {
    each_gpu(|gpu| {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        // 3000 positions, a third on row 0: its segment spans many 256-entry
        // tiles, so the tiled path (partials, then tile order) is exercised.
        let (rows, dim, n) = (64, 16, 3000);
        let table = rng.floats(rows * dim);
        let idx: Vec<u32> = (0..n).map(|_| rng.zipf(rows)).collect();
        assert!(
            idx.iter().filter(|&&i| i == 0).count() > 600,
            "row 0 is hot"
        );
        let csr: Vec<u32> = (0..=n / 20).map(|b| (b * 20) as u32).collect();
        let grad_out = rng.floats((csr.len() - 1) * dim);
        let psw = rng.floats(n);
        for mode in MODES {
            for padding in [None, Some(1usize)] {
                let case = Case {
                    mode,
                    rows,
                    dim,
                    padding,
                    table: &table,
                    idx: &idx,
                    csr: &csr,
                    psw: (mode == BagMode::Sum).then_some(&psw[..]),
                    grad_out: &grad_out,
                };
                case.check(gpu, &format!("zipf padding={padding:?}"));
            }
        }
        // Fixed-length bags (2-D input) give the same gradient as their offsets.
        for mode in MODES {
            let case = Case {
                mode,
                rows,
                dim,
                padding: None,
                table: &table,
                idx: &idx,
                csr: &csr,
                psw: None,
                grad_out: &grad_out,
            };
            let bag = case.bag(gpu, false, false);
            let g = case.grad_tensor(gpu);
            let got = bag
                .backward_2d(&idx, [n / 20, 20], None, &g)
                .unwrap()
                .to_dense_vec(rows, dim)
                .unwrap();
            assert_bits_eq(&format!("{mode:?} 2-D"), &got, &case.twin().0);
        }
    });
}

#[test]
fn max_mode_routes_to_the_winner_lowest_position_on_ties() {
    each_gpu(|gpu| {
        // Rows 0 and 1 are equal in column 0: the tie goes to the lower
        // position. Column 1: row 1 wins outright.
        let table = [5.0, 1.0, 5.0, 2.0, -1.0, -1.0];
        let idx = [1u32, 0, 2, 0];
        let csr = [0u32, 3, 4];
        let grad_out = [10.0, 20.0, 30.0, 40.0];
        let case = Case {
            mode: BagMode::Max,
            rows: 3,
            dim: 2,
            padding: None,
            table: &table,
            idx: &idx,
            csr: &csr,
            psw: None,
            grad_out: &grad_out,
        };
        // Bag 0: column 0 tie between positions 0 (row 1) and 1 (row 0) → row 1;
        // column 1 → position 0 (row 1). Bag 1: row 0 both columns.
        let want = [30.0, 40.0, 10.0, 20.0, 0.0, 0.0];
        let (twin, _) = case.twin();
        assert_bits_eq("max twin", &twin, &want);
        case.check(gpu, "ties");
        // With the saved winners of a forward: the same gradient.
        let bag = case.bag(gpu, false, true);
        let saved = bag.forward_with_positions(&idx, &csr, None).unwrap();
        let g = case.grad_tensor(gpu);
        let got = bag
            .backward_with_positions(&idx, &csr, &saved, &g)
            .unwrap()
            .to_dense_vec(3, 2)
            .unwrap();
        assert_bits_eq("max with saved positions", &got, &want);
        // Winners of another batch with as many bags: refused, not misrouted.
        for (other_idx, other_csr) in [(&[0u32, 1, 2, 0][..], &csr[..]), (&idx[..], &[0, 1, 4][..])]
        {
            let r = bag.backward_with_positions(other_idx, other_csr, &saved, &g);
            assert!(
                matches!(&r, Err(Error::InvalidArgument { name: "saved", .. })),
                "{other_idx:?} {other_csr:?}: {r:?}"
            );
        }
        // The same batch's winners from another bag (same shape, its own
        // table): refused too; they name positions that won over other rows.
        let other = case.bag(gpu, false, true);
        let r = other.backward_with_positions(&idx, &csr, &saved, &g);
        assert!(
            matches!(&r, Err(Error::InvalidArgument { name: "saved", .. })),
            "another bag: {r:?}"
        );
        // Even one made after the first was dropped, whose table may reuse
        // the first one's buffers from the cache.
        let first = case.bag(gpu, false, true);
        let kept = first.forward_with_positions(&idx, &csr, None).unwrap();
        drop(first);
        let second = case.bag(gpu, false, true);
        let r = second.backward_with_positions(&idx, &csr, &kept, &g);
        assert!(
            matches!(&r, Err(Error::InvalidArgument { name: "saved", .. })),
            "a later bag: {r:?}"
        );
    });
}

#[test]
fn per_sample_weights_gradient_matches_the_twin() {
    each_gpu(|gpu| {
        let mut rng = Rng(0xA076_1D64_78BD_642F);
        for dim in [1, 5, 64] {
            let rows = 40;
            let table = rng.floats(rows * dim);
            let n = 500;
            let idx: Vec<u32> = (0..n).map(|_| rng.zipf(rows)).collect();
            let csr = random_csr(&mut rng, n, 60);
            let grad_out = rng.floats((csr.len() - 1) * dim);
            for padding in [None, Some(2usize)] {
                for dtype in [DType::F32, DType::F16] {
                    let opts = EmbeddingOptions {
                        padding_idx: padding,
                        dtype,
                        ..Default::default()
                    };
                    let emb = Embedding::from_pretrained_with_options(gpu, &table, rows, dim, opts)
                        .unwrap();
                    let bag = EmbeddingBag::from_embedding(
                        emb,
                        EmbeddingBagOptions {
                            mode: BagMode::Sum,
                            include_last_offset: true,
                        },
                    );
                    let g = Tensor::from_slice(gpu, &grad_out, &[csr.len() - 1, dim]).unwrap();
                    let got = bag.per_sample_weights_grad(&idx, &csr, &g).unwrap();
                    assert_eq!(got.shape(), [n]);
                    let mut want = vec![0.0; n];
                    let args = (rows, dim, padding, &idx[..], &csr[..], &grad_out[..]);
                    if dtype == DType::F32 {
                        psw_grad(
                            args.0, args.1, args.2, args.3, args.4, args.5, &table, &mut want,
                        );
                    } else {
                        let half: Vec<f16> = table.iter().map(|&v| f16::from_f32(v)).collect();
                        psw_grad_f16(
                            args.0, args.1, args.2, args.3, args.4, args.5, &half, &mut want,
                        );
                    }
                    if let Some(p) = padding {
                        for (i, &r) in idx.iter().enumerate() {
                            if r as usize == p {
                                assert_eq!(want[i], 0.0, "padding entries get no gradient");
                            }
                        }
                    }
                    let what = format!("psw grad dim={dim} padding={padding:?} {dtype:?}");
                    assert_bits_eq(&what, &got.to_vec().unwrap(), &want);
                }
            }
        }
    });
}

/// L(table, psw) = sum over bags and columns of forward(...)[b, c] * G[b, c],
/// on the CPU twin in f32.
fn loss(case: &Case, table: &[f32], psw: Option<&[f32]>) -> f64 {
    let bags = case.num_bags();
    let mut out = vec![0.0; bags * case.dim];
    let mut pos = vec![0; bags * case.dim];
    let mut status = u32::MAX;
    cpu::embedding_bag(
        case.mode,
        case.rows,
        case.dim,
        case.padding,
        case.idx,
        case.csr,
        psw,
        &mut status,
        &mut pos,
        table,
        &mut out,
    );
    out.iter()
        .zip(case.grad_out)
        .map(|(&o, &g)| o as f64 * g as f64)
        .sum()
}

#[test]
fn finite_differences_agree_with_backward() {
    each_gpu(|gpu| {
        // Distinct values far apart, so no max-mode winner changes under ±h.
        let (rows, dim) = (4, 3);
        let table: Vec<f32> = (0..rows * dim)
            .map(|i| ((i * 7) % 12) as f32 * 0.75 - 4.0)
            .collect();
        let idx = [0u32, 2, 3, 1, 1, 2, 0];
        let csr = [0u32, 0, 3, 5, 7];
        let grad_out = [
            0.5, -1.25, 2.0, 1.5, 0.25, -0.75, -2.0, 1.0, 0.5, 0.75, -0.5, 1.25,
        ];
        let psw = [0.5f32, -1.5, 2.0, 1.0, 0.25, -0.5, 1.5];
        let h = 1.0f32 / 64.0;
        for mode in MODES {
            let weights = (mode == BagMode::Sum).then_some(&psw[..]);
            let case = Case {
                mode,
                rows,
                dim,
                padding: Some(3),
                table: &table,
                idx: &idx,
                csr: &csr,
                psw: weights,
                grad_out: &grad_out,
            };
            let bag = case.bag(gpu, false, true);
            let g = case.grad_tensor(gpu);
            let got = bag
                .backward(&idx, &csr, weights, &g)
                .unwrap()
                .to_dense_vec(rows, dim)
                .unwrap();
            for e in 0..rows * dim {
                let (mut plus, mut minus) = (table.clone(), table.clone());
                plus[e] += h;
                minus[e] -= h;
                let fd =
                    (loss(&case, &plus, weights) - loss(&case, &minus, weights)) / (2.0 * h as f64);
                assert!(
                    (fd - got[e] as f64).abs() <= 1e-3 * (1.0 + fd.abs()),
                    "{mode:?} element {e}: finite difference {fd}, backward {}",
                    got[e]
                );
            }
            assert!(
                got[9..12].iter().all(|&v| v == 0.0),
                "padding row 3 gets none"
            );
            if mode == BagMode::Sum {
                let got = bag
                    .per_sample_weights_grad(&idx, &csr, &g)
                    .unwrap()
                    .to_vec()
                    .unwrap();
                for p in 0..psw.len() {
                    let (mut plus, mut minus) = (psw, psw);
                    plus[p] += h;
                    minus[p] -= h;
                    let fd = (loss(&case, &table, Some(&plus)) - loss(&case, &table, Some(&minus)))
                        / (2.0 * h as f64);
                    assert!(
                        (fd - got[p] as f64).abs() <= 1e-3 * (1.0 + fd.abs()),
                        "psw {p}: finite difference {fd}, backward {}",
                        got[p]
                    );
                }
            }
        }
    });
}

#[test]
fn backward_sgd_matches_the_twin() {
    each_gpu(|gpu| {
        let mut rng = Rng(0x1234_5678_9ABC_DEF1);
        let (rows, dim, n) = (30, 8, 400);
        let table = rng.floats(rows * dim);
        let idx: Vec<u32> = (0..n).map(|_| rng.zipf(rows)).collect();
        let csr = random_csr(&mut rng, n, 50);
        let grad_out = rng.floats((csr.len() - 1) * dim);
        let psw = rng.floats(n);
        let lr = 0.125;
        for mode in MODES {
            let case = Case {
                mode,
                rows,
                dim,
                padding: Some(4),
                table: &table,
                idx: &idx,
                csr: &csr,
                psw: (mode == BagMode::Sum).then_some(&psw[..]),
                grad_out: &grad_out,
            };
            let mut bag = case.bag(gpu, false, true);
            let g = case.grad_tensor(gpu);
            bag.backward_sgd(&idx, &csr, case.psw, &g, lr).unwrap();
            let pos = if mode == BagMode::Max {
                case.max_positions()
            } else {
                Vec::new()
            };
            let mut want = table.clone();
            cpu::embedding_bag_backward_sgd(
                &BagBatch {
                    mode,
                    num_embeddings: rows,
                    dim,
                    indices: &idx,
                    offsets: &csr,
                    per_sample_weights: case.psw,
                    max_positions: &pos,
                    grad_out: &grad_out,
                },
                &case.options(),
                &mut want,
                lr,
            );
            assert_ne!(want, table, "the step changed something");
            let got = bag.weight().rows_to_vec(0, rows).unwrap();
            assert_bits_eq(&format!("{mode:?} sgd"), &got, &want);
        }
    });
}

#[test]
fn bad_inputs_are_typed_errors_and_leave_the_weights() {
    each_gpu(|gpu| {
        let mut rng = Rng(99);
        let (rows, dim) = (6, 4);
        let table = rng.floats(rows * dim);
        let idx = [0u32, 1, 5, 2];
        let csr = [0u32, 2, 4];
        for mode in MODES {
            let case = Case {
                mode,
                rows,
                dim,
                padding: None,
                table: &table,
                idx: &idx,
                csr: &csr,
                psw: None,
                grad_out: &[],
            };
            let mut bag = case.bag(gpu, false, true);
            let good = Tensor::zeros(gpu, &[2, dim]).unwrap();
            for shape in [[3, dim], [2, dim + 1], [1, dim]] {
                let wrong = Tensor::zeros(gpu, &shape).unwrap();
                let err = bag.backward(&idx, &csr, None, &wrong).unwrap_err();
                assert!(
                    matches!(&err, Error::ShapeMismatch { expected, found, .. }
                        if expected == &vec![2, dim] && found == &shape.to_vec()),
                    "{mode:?} {shape:?}: {err}"
                );
                let err = bag.backward_sgd(&idx, &csr, None, &wrong, 0.5).unwrap_err();
                assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
            }
            let err = bag
                .backward_sgd(&[0, 1, 6, 2], &csr, None, &good, 0.5)
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::IndexOutOfRange {
                        position: 2,
                        index: 6,
                        ..
                    }
                ),
                "{err}"
            );
            let err = bag
                .backward_sgd(&idx, &[0, 3, 2], None, &good, 0.5)
                .unwrap_err();
            assert!(
                matches!(err, Error::InvalidOffsets { position: 2, .. }),
                "{err}"
            );
            let err = bag
                .backward_sgd(&idx, &csr, None, &good, f32::NAN)
                .unwrap_err();
            assert!(
                matches!(err, Error::InvalidArgument { name: "lr", .. }),
                "{err}"
            );
            if mode != BagMode::Sum {
                let err = bag
                    .backward_sgd(&idx, &csr, Some(&[1.0; 4]), &good, 0.5)
                    .unwrap_err();
                assert!(
                    matches!(
                        err,
                        Error::InvalidArgument {
                            name: "per_sample_weights",
                            ..
                        }
                    ),
                    "{err}"
                );
                let err = bag.per_sample_weights_grad(&idx, &csr, &good).unwrap_err();
                assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
            } else {
                let err = bag
                    .backward_sgd(&idx, &csr, Some(&[1.0; 3]), &good, 0.5)
                    .unwrap_err();
                assert!(matches!(err, Error::LengthMismatch { .. }), "{err}");
                let wrong = Tensor::zeros(gpu, &[2, dim + 1]).unwrap();
                let err = bag.per_sample_weights_grad(&idx, &csr, &wrong).unwrap_err();
                assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
                // A weighted forward's output cannot stand in for the weights:
                // its backward would be the unweighted sum's.
                let weighted = bag
                    .forward_with_positions(&idx, &csr, Some(&[0.5; 4]))
                    .unwrap();
                let err = bag
                    .backward_with_positions(&idx, &csr, &weighted, &good)
                    .unwrap_err();
                assert!(
                    matches!(err, Error::InvalidArgument { name: "saved", .. }),
                    "{err}"
                );
                let unweighted = bag.forward_with_positions(&idx, &csr, None).unwrap();
                let g = Tensor::from_slice(gpu, &rng.floats(2 * dim), &[2, dim]).unwrap();
                let via_saved = bag
                    .backward_with_positions(&idx, &csr, &unweighted, &g)
                    .unwrap()
                    .to_dense_vec(rows, dim)
                    .unwrap();
                let direct = bag
                    .backward(&idx, &csr, None, &g)
                    .unwrap()
                    .to_dense_vec(rows, dim)
                    .unwrap();
                assert_bits_eq("sum backward via saved", &via_saved, &direct);
            }
            if mode == BagMode::Max {
                // Winners saved from a forward of another batch shape.
                let other = bag.forward_with_positions(&idx, &[0, 4], None).unwrap();
                let err = bag
                    .backward_with_positions(&idx, &csr, &other, &good)
                    .unwrap_err();
                assert!(matches!(err, Error::ShapeMismatch { .. }), "{err}");
            }
            assert_bits_eq(
                &format!("{mode:?} weights after errors"),
                &bag.weight().rows_to_vec(0, rows).unwrap(),
                &table,
            );
            // A frozen table has no gradient.
            let frozen = EmbeddingBag::from_pretrained(gpu, &table, rows, dim, true, mode).unwrap();
            let err = frozen.backward(&idx, &[0, 2], None, &good).unwrap_err();
            assert!(matches!(err, Error::Frozen), "{err}");
        }
    });
}

// Row-chunked tables (forward, every backward, psw grad, fused SGD): tests/chunked.rs.
