//! EmbeddingBag on every adapter against its CPU twin: sum and max bit for
//! bit, mean bit for bit where division rounds as IEEE does (WGSL allows
//! x / y 2.5 ULP, so on other adapters within 3 ULP); offsets edge cases and
//! every bad input as a typed error.

mod common;

use common::{assert_bits_eq, bag_twin, bag_twin_status, each_gpu, Rng};
use half::f16;
use wgpu_embed::cpu::embedding_bag::NO_POSITION;
use wgpu_embed::{
    cpu, BagMode, DType, Embedding, EmbeddingBag, EmbeddingBagOptions, EmbeddingOptions, Error, Gpu,
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

#[test]
fn every_mode_and_option_matches_the_twin() {
    each_gpu(|gpu| {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for dim in [1, 3, 4, 7, 64, 128] {
            let rows = 50;
            let table: Vec<f32> = (0..rows * dim).map(|_| rng.float()).collect();
            let n = 300;
            let idx: Vec<u32> = (0..n).map(|_| rng.below(rows) as u32).collect();
            let csr = random_csr(&mut rng, n, 40);
            let psw: Vec<f32> = (0..n).map(|_| rng.float()).collect();
            for padding in [None, Some(3usize)] {
                for mode in MODES {
                    let opts = EmbeddingOptions {
                        padding_idx: padding,
                        ..Default::default()
                    };
                    let emb = Embedding::from_pretrained_with_options(gpu, &table, rows, dim, opts)
                        .unwrap();
                    let bag = EmbeddingBag::from_embedding(
                        emb,
                        EmbeddingBagOptions {
                            mode,
                            include_last_offset: true,
                        },
                    );
                    let what = format!("{mode:?} dim={dim} padding={padding:?}");
                    let got = bag.forward_with_positions(&idx, &csr, None).unwrap();
                    assert_eq!(got.output.shape(), [csr.len() - 1, dim]);
                    let (want, want_pos) =
                        bag_twin(mode, rows, dim, padding, &table, &idx, &csr, None);
                    assert_bits_eq(&what, &got.output.to_vec().unwrap(), &want);
                    if mode == BagMode::Max {
                        assert_eq!(got.max_positions_to_vec().unwrap(), want_pos, "{what}");
                    }
                    if mode == BagMode::Sum {
                        // Product then add, never fused: bit for bit on both adapters.
                        let got = bag.forward(&idx, &csr, Some(&psw)).unwrap();
                        let (want, _) =
                            bag_twin(mode, rows, dim, padding, &table, &idx, &csr, Some(&psw));
                        assert_bits_eq(&format!("{what} weighted"), &got.to_vec().unwrap(), &want);
                    }
                }
            }
        }
    });
}

#[test]
fn f16_tables_match_the_f16_twin() {
    each_gpu(|gpu| {
        let mut rng = Rng(77);
        for dim in [3, 4, 6, 128] {
            let rows = 33;
            let halves: Vec<f16> = (0..rows * dim)
                .map(|_| f16::from_f32(rng.float()))
                .collect();
            let wide: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
            let n = 200;
            let idx: Vec<u32> = (0..n).map(|_| rng.below(rows) as u32).collect();
            let csr = random_csr(&mut rng, n, 25);
            for mode in MODES {
                let opts = EmbeddingOptions {
                    dtype: DType::F16,
                    padding_idx: Some(1),
                    ..Default::default()
                };
                let emb =
                    Embedding::from_pretrained_with_options(gpu, &wide, rows, dim, opts).unwrap();
                assert_eq!(emb.dtype(), DType::F16);
                let bag = EmbeddingBag::from_embedding(
                    emb,
                    EmbeddingBagOptions {
                        mode,
                        include_last_offset: true,
                    },
                );
                let got = bag.forward_with_positions(&idx, &csr, None).unwrap();
                let bags = csr.len() - 1;
                let mut want = vec![0.0; bags * dim];
                let mut pos = vec![0; bags * dim];
                let mut status = u32::MAX;
                cpu::embedding_bag(
                    mode,
                    rows,
                    dim,
                    Some(1),
                    &idx,
                    &csr,
                    None,
                    &mut status,
                    &mut pos,
                    &halves,
                    &mut want,
                );
                let what = format!("f16 {mode:?} dim={dim}");
                assert_bits_eq(&what, &got.output.to_vec().unwrap(), &want);
                if mode == BagMode::Max {
                    assert_eq!(got.max_positions_to_vec().unwrap(), pos, "{what}");
                }
            }
        }
    });
}

fn small_bag(gpu: &Gpu, mode: BagMode, include_last_offset: bool) -> EmbeddingBag {
    // Row r is [r, 10 r, -r, 0.5].
    let table: Vec<f32> = (0..6)
        .flat_map(|r| [r as f32, 10.0 * r as f32, -(r as f32), 0.5])
        .collect();
    let opts = EmbeddingOptions {
        padding_idx: Some(0),
        ..Default::default()
    };
    let emb = Embedding::from_pretrained_with_options(gpu, &table, 6, 4, opts).unwrap();
    EmbeddingBag::from_embedding(
        emb,
        EmbeddingBagOptions {
            mode,
            include_last_offset,
        },
    )
}

#[test]
fn empty_and_padding_bags_give_zeros_and_mean_counts_non_padding() {
    each_gpu(|gpu| {
        // Bags: [] (first empty), [1, 0, 3], [0, 0] (padding only), [] (last empty).
        let idx = [1, 0, 3, 0, 0];
        let offsets = [0, 0, 3, 5];
        let mean = small_bag(gpu, BagMode::Mean, false);
        let got = mean
            .forward(&idx, &offsets, None)
            .unwrap()
            .to_vec()
            .unwrap();
        assert_eq!(
            got,
            [
                [0.0; 4],
                [2.0, 20.0, -2.0, 0.5], // (row1 + row3) / 2: the padding entry is not counted
                [0.0; 4],
                [0.0; 4],
            ]
            .concat()
        );
        let sum = small_bag(gpu, BagMode::Sum, false);
        let got = sum.forward(&idx, &offsets, None).unwrap().to_vec().unwrap();
        assert_eq!(got[4..8], [4.0, 40.0, -4.0, 1.0]);
        assert_eq!(got[8..], [0.0; 8]);
        let max = small_bag(gpu, BagMode::Max, false);
        let out = max.forward_with_positions(&idx, &offsets, None).unwrap();
        assert_eq!(
            out.output.to_vec().unwrap()[..8],
            [0.0, 0.0, 0.0, 0.0, 3.0, 30.0, -1.0, 0.5]
        );
        let pos = out.max_positions_to_vec().unwrap();
        // Column 3 ties (0.5 in both rows): the lowest position, 0, wins.
        assert_eq!(pos[4..8], [2, 2, 0, 0]);
        assert_eq!(pos[..4], [NO_POSITION; 4]);
        assert_eq!(pos[8..], [NO_POSITION; 8]);
        // The same bags in CSR form (include_last_offset) give the same bits.
        let csr = small_bag(gpu, BagMode::Mean, true);
        let a = csr.forward(&idx, &[0, 0, 3, 5, 5], None).unwrap();
        let b = mean.forward(&idx, &offsets, None).unwrap();
        assert_bits_eq(
            "include_last_offset",
            &a.to_vec().unwrap(),
            &b.to_vec().unwrap(),
        );
        // No bags at all.
        let none = mean.forward(&[], &[], None).unwrap();
        assert_eq!(none.shape(), [0, 4]);
    });
}

#[test]
fn fixed_length_bags_equal_offsets() {
    each_gpu(|gpu| {
        let idx = [1, 2, 3, 4, 5, 1, 0, 0, 2];
        for mode in MODES {
            let bag = small_bag(gpu, mode, false);
            let fixed = bag.forward_2d(&idx, [3, 3], None).unwrap();
            let offs = bag.forward(&idx, &[0, 3, 6], None).unwrap();
            assert_eq!(fixed.shape(), [3, 4]);
            assert_bits_eq(
                &format!("{mode:?} 2-D"),
                &fixed.to_vec().unwrap(),
                &offs.to_vec().unwrap(),
            );
        }
        let bag = small_bag(gpu, BagMode::Sum, false);
        let zero_len = bag.forward_2d(&[], [2, 0], None).unwrap();
        assert_eq!(zero_len.to_vec().unwrap(), [0.0; 8]);
        assert!(matches!(
            bag.forward_2d(&idx, [2, 3], None),
            Err(Error::ShapeMismatch { .. })
        ));
    });
}

#[test]
fn bad_inputs_are_typed_errors_and_change_nothing() {
    each_gpu(|gpu| {
        let bag = small_bag(gpu, BagMode::Sum, false);
        let before = bag.weight().to_vec().unwrap();
        let idx = [1, 2, 3, 4];
        let offsets_err = |offsets: &[u32]| match bag.forward(&idx, offsets, None) {
            Err(Error::InvalidOffsets {
                position, offset, ..
            }) => (position, offset),
            other => panic!("{offsets:?}: expected InvalidOffsets, got {other:?}"),
        };
        assert_eq!(offsets_err(&[1, 2]), (0, 1)); // first bag must start at 0
        assert_eq!(offsets_err(&[0, 3, 2]), (2, 2)); // decreasing
        assert_eq!(offsets_err(&[0, 5]), (1, 5)); // past the end
        let e = bag.forward(&idx, &[0, 3, 2], None).unwrap_err().to_string();
        assert!(
            e.contains("offsets[2] = 2") && e.contains("offsets[1] = 3"),
            "{e}"
        );
        assert!(matches!(
            bag.forward(&idx, &[], None),
            Err(Error::InvalidArgument { .. })
        ));

        let csr = small_bag(gpu, BagMode::Sum, true);
        assert!(matches!(
            csr.forward(&idx, &[0, 2, 3], None),
            Err(Error::InvalidOffsets {
                position: 2,
                offset: 3,
                ..
            })
        ));
        assert!(matches!(
            csr.forward(&idx, &[], None),
            Err(Error::InvalidArgument { .. })
        ));

        assert_eq!(
            bag.forward(&[1, 9, 2], &[0], None).unwrap_err(),
            Error::IndexOutOfRange {
                position: 1,
                index: 9,
                num_embeddings: 6
            }
        );
        assert!(matches!(
            bag.forward(&idx, &[0], Some(&[1.0, 2.0])),
            Err(Error::LengthMismatch {
                expected: 4,
                found: 2,
                ..
            })
        ));
        for mode in [BagMode::Mean, BagMode::Max] {
            let other = small_bag(gpu, mode, false);
            let e = other.forward(&idx, &[0], Some(&[1.0; 4])).unwrap_err();
            assert!(
                matches!(
                    e,
                    Error::InvalidArgument {
                        name: "per_sample_weights",
                        ..
                    }
                ),
                "{e}"
            );
        }
        assert_bits_eq(
            "weights after errors",
            &bag.weight().to_vec().unwrap(),
            &before,
        );
        // And it still works.
        let ok = bag.forward(&idx, &[0, 2], None).unwrap().to_vec().unwrap();
        assert_eq!(ok, [3.0, 30.0, -3.0, 1.0, 7.0, 70.0, -7.0, 1.0]);

        // A bag whose forward writes the table (max_norm renormalises the
        // rows it reads, in place): the same errors leave it as it was,
        // and a good call does renormalise (so the check above can fail).
        let table = bag.weight().to_vec().unwrap();
        let opts = EmbeddingOptions {
            max_norm: Some(2.0),
            ..Default::default()
        };
        let emb = Embedding::from_pretrained_with_options(gpu, &table, 6, 4, opts).unwrap();
        let renorming = EmbeddingBag::from_embedding(emb, EmbeddingBagOptions::default());
        for r in [
            renorming.forward(&idx, &[0, 3, 2], None),
            renorming.forward(&idx, &[], None),
            renorming.forward(&[1, 9, 2], &[0], None),
            renorming.forward(&idx, &[0], Some(&[1.0, 2.0])),
            renorming.forward_2d(&idx, [3, 2], None),
        ] {
            assert!(r.is_err(), "{:?}", r.map(|t| t.shape().to_vec()));
        }
        assert_bits_eq(
            "renorming bag after errors",
            &renorming.weight().to_vec().unwrap(),
            &table,
        );
        renorming.forward(&idx, &[0], None).unwrap();
        assert_ne!(
            renorming.weight().to_vec().unwrap(),
            table,
            "the renorm did not run"
        );
    });
}

#[test]
fn max_norm_renormalises_the_referenced_rows_before_pooling() {
    each_gpu(|gpu| {
        let mut rng = Rng(0x5EED_4A11);
        let (rows, dim) = (30, 12);
        let table: Vec<f32> = (0..rows * dim).map(|_| rng.float()).collect();
        let idx: Vec<u32> = (0..40).map(|_| rng.below(20) as u32).collect();
        let csr = random_csr(&mut rng, idx.len(), 6);
        let options = EmbeddingOptions {
            max_norm: Some(1.5),
            ..Default::default()
        };
        let norm = |r: usize| {
            table[r * dim..(r + 1) * dim]
                .iter()
                .map(|x| x * x)
                .sum::<f32>()
                .sqrt()
        };
        assert!(
            idx.iter().any(|&r| norm(r as usize) > 1.5),
            "some rows need renormalising"
        );
        for mode in MODES {
            let what = format!("{mode:?} with max_norm");
            let emb =
                Embedding::from_pretrained_with_options(gpu, &table, rows, dim, options.clone())
                    .unwrap();
            let bag_options = EmbeddingBagOptions {
                mode,
                include_last_offset: true,
            };
            let bag = EmbeddingBag::from_embedding(emb, bag_options);
            let got = bag.forward(&idx, &csr, None).unwrap().to_vec().unwrap();
            // The same rows renormalised by the layer's own lookup…
            let lookup =
                Embedding::from_pretrained_with_options(gpu, &table, rows, dim, options.clone())
                    .unwrap();
            lookup.forward(&idx).unwrap();
            let renormed = lookup.weight().to_vec().unwrap();
            assert_bits_eq(&what, &bag.weight().to_vec().unwrap(), &renormed);
            assert!(renormed != table, "{what}: the table was renormalised");
            // …then pooled: the bag's output, as PyTorch's embedding_bag does.
            let (want, _) = bag_twin(mode, rows, dim, None, &renormed, &idx, &csr, None);
            assert_bits_eq(&what, &got, &want);
        }
    });
}

#[test]
fn winners_saved_on_another_gpu_are_refused() {
    each_gpu(|gpu| {
        // Another device of the same adapter: a different Gpu.
        let other = Gpu::new().unwrap();
        let here = small_bag(gpu, BagMode::Max, false);
        let there = small_bag(&other, BagMode::Max, false);
        let (idx, offsets) = ([1u32, 2, 3, 4], [0u32, 2]);
        let saved = there.forward_with_positions(&idx, &offsets, None).unwrap();
        let g = wgpu_embed::Tensor::zeros(gpu, &[2, here.embedding().dim()]).unwrap();
        let r = here.backward_with_positions(&idx, &offsets, &saved, &g);
        assert!(
            matches!(r, Err(Error::DifferentGpu { .. })),
            "{:?}",
            r.err()
        );
    });
}

/// The low-level kernel takes offsets on the GPU, so it cannot check the
/// `max_bag_len` it is promised: a bag longer than what its dispatches pool
/// lowers the status word to the first position left out, and the bags it
/// finished are still the twin's. (One invocation per bag at dim 4096 makes
/// a piece 31 positions on every adapter.)
#[test]
fn a_bag_past_max_bag_len_is_reported_by_the_low_level_kernel() {
    use wgpu_embed::kernels::embedding_bag::{self, BagArgs};
    use wgpu_embed::{IndexTensor, Status, Tensor};
    let (rows, dim) = (6, 4096);
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let table: Vec<f32> = (0..rows * dim).map(|_| rng.float()).collect();
    let idx: Vec<u32> = (0..227).map(|_| rng.below(rows) as u32).collect();
    // A max_bag_len and the first position it leaves out (None: every bag
    // pooled). One piece pools 31 positions of each bag, two 62, three 93,
    // four 124.
    type Case = (usize, Option<usize>);
    // CSR offsets and their cases.
    let layouts: [(&[u32], &[Case]); 2] = [
        // Bags of 5, 100, 40, 0 and 20 positions.
        (
            &[0, 5, 105, 145, 145, 165],
            &[
                (10, Some(5 + 31)),
                (40, Some(5 + 62)),
                (62, Some(5 + 62)),
                (63, Some(5 + 93)),
                (100, None),
            ],
        ),
        // 62 positions, exactly what two pieces pool: not reported.
        (&[0, 8, 70], &[(40, None), (31, Some(8 + 31)), (62, None)]),
    ];
    each_gpu(|gpu| {
        let table_t = Tensor::from_slice(gpu, &table, &[rows, dim]).unwrap();
        let idx_t = IndexTensor::from_slice(gpu, &idx).unwrap();
        for (csr, cases) in layouts {
            let n = *csr.last().unwrap() as usize;
            let idx = &idx[..n];
            let csr_t = IndexTensor::from_slice(gpu, csr).unwrap();
            for mode in MODES {
                let (want, _) = bag_twin(mode, rows, dim, None, &table, idx, csr, None);
                for &(max_bag_len, left_out) in cases {
                    let what = format!("{mode:?} bags {csr:?} max_bag_len={max_bag_len}");
                    let out = Tensor::zeros(gpu, &[csr.len() - 1, dim]).unwrap();
                    let status = Status::new(gpu).unwrap();
                    let args = BagArgs {
                        mode,
                        table: table_t.buffer(),
                        dtype: DType::F32,
                        num_embeddings: rows,
                        dim,
                        indices: idx_t.buffer(),
                        n,
                        offsets: csr_t.buffer(),
                        num_bags: csr.len() - 1,
                        max_bag_len,
                        per_sample_weights: None,
                        padding_idx: None,
                        status: status.buffer(),
                        max_positions: None,
                        out: out.buffer(),
                        threads_per_bag: Some(1),
                    };
                    let mut enc = gpu.encoder("bag past max_bag_len");
                    embedding_bag::encode(gpu, &mut enc, &args).unwrap();
                    gpu.submit_and_wait(enc).unwrap();
                    assert_eq!(status.read().unwrap(), left_out, "{what}");
                    // The bags it finished are the twin's.
                    let got = out.to_vec().unwrap();
                    let pooled = max_bag_len.div_ceil(31) * 31;
                    for b in 0..csr.len() - 1 {
                        if (csr[b + 1] - csr[b]) as usize <= pooled {
                            let at = b * dim..(b + 1) * dim;
                            let what = format!("{what} bag {b}");
                            assert_bits_eq(&what, &got[at.clone()], &want[at]);
                        }
                    }
                }
            }
        }
    });
}

/// An id of 0xFFFFFFFF is out of range, not the padding row, though the
/// shaders' word for "no padding" is the same number: the forward reports
/// it and pools the rest as the twin does, and the backward neither counts
/// it as padding in a mean bag's divisor nor zeroes its gradient. A padding
/// row past the table is refused.
#[test]
fn an_id_of_all_ones_is_out_of_range_not_padding() {
    use wgpu_embed::kernels::embedding_bag::{self, BagArgs};
    use wgpu_embed::kernels::embedding_bag_backward::{self, BagLayout, ExpandArgs};
    use wgpu_embed::{IndexTensor, Status, Tensor};
    let (rows, dim) = (4, 4);
    let table: Vec<f32> = (0..rows * dim).map(|i| i as f32 + 0.5).collect();
    let idx = [1, u32::MAX, 2, 3];
    let csr = [0u32, 3, 4];
    let grad_out: Vec<f32> = (0..2 * dim).map(|i| (i + 1) as f32).collect();
    each_gpu(|gpu| {
        let table_t = Tensor::from_slice(gpu, &table, &[rows, dim]).unwrap();
        let idx_t = IndexTensor::from_slice(gpu, &idx).unwrap();
        let csr_t = IndexTensor::from_slice(gpu, &csr).unwrap();
        for mode in [BagMode::Sum, BagMode::Mean] {
            let out = Tensor::zeros(gpu, &[2, dim]).unwrap();
            let status = Status::new(gpu).unwrap();
            let args = BagArgs {
                mode,
                table: table_t.buffer(),
                dtype: DType::F32,
                num_embeddings: rows,
                dim,
                indices: idx_t.buffer(),
                n: idx.len(),
                offsets: csr_t.buffer(),
                num_bags: 2,
                max_bag_len: 3,
                per_sample_weights: None,
                padding_idx: None,
                status: status.buffer(),
                max_positions: None,
                out: out.buffer(),
                threads_per_bag: None,
            };
            let mut enc = gpu.encoder("all-ones id");
            embedding_bag::encode(gpu, &mut enc, &args).unwrap();
            gpu.submit_and_wait(enc).unwrap();
            assert_eq!(status.read().unwrap(), Some(1), "{mode:?}: reported");
            let (want, _, twin_status) =
                bag_twin_status(mode, rows, dim, None, &table, &idx, &csr, None);
            assert_eq!(twin_status, 1);
            assert_bits_eq(&format!("{mode:?} forward"), &out.to_vec().unwrap(), &want);
            // The backward's per-position gradient: the twin's, so the mean
            // divides bag 0 by 3 (no padding) and position 1 gets its share.
            let go = Tensor::from_slice(gpu, &grad_out, &[2, dim]).unwrap();
            let expanded = Tensor::zeros(gpu, &[idx.len(), dim]).unwrap();
            let layout = BagLayout {
                num_embeddings: rows,
                dim,
                indices: idx_t.buffer(),
                n: idx.len(),
                offsets: csr_t.buffer(),
                num_bags: 2,
                padding_idx: None,
                grad_out: go.buffer(),
            };
            let expand = ExpandArgs {
                mode,
                per_sample_weights: None,
                max_positions: None,
                expanded: expanded.buffer(),
            };
            let mut enc = gpu.encoder("all-ones id backward");
            embedding_bag_backward::encode_expand(gpu, &mut enc, &layout, &expand).unwrap();
            gpu.submit_and_wait(enc).unwrap();
            let batch = cpu::embedding_bag_backward::BagBatch {
                mode,
                num_embeddings: rows,
                dim,
                indices: &idx,
                offsets: &csr,
                per_sample_weights: None,
                max_positions: &[],
                grad_out: &grad_out,
            };
            let want = cpu::embedding_bag_backward::expand(&batch, None);
            assert_ne!(want[dim..2 * dim], [0.0; 4], "the twin gives it a share");
            assert_bits_eq(
                &format!("{mode:?} expand"),
                &expanded.to_vec().unwrap(),
                &want,
            );
            // A padding row that is not a row of the table.
            let far = BagArgs {
                padding_idx: Some(rows),
                ..args
            };
            let mut enc = gpu.encoder("padding past the table");
            let r = embedding_bag::encode(gpu, &mut enc, &far);
            assert!(
                matches!(
                    r,
                    Err(Error::InvalidArgument {
                        name: "padding_idx",
                        ..
                    })
                ),
                "{r:?}"
            );
        }
    });
}
