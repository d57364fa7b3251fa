//! Bad input: adversarial indices, shapes, NaN/Inf values, wrong lengths and
//! tensors from another Gpu. Every call returns Ok or a typed error (a panic
//! fails the property), and after every failed call the weights read back
//! bit-identical to before.

mod common;

use common::{each_gpu, gpus};
use proptest::prelude::*;
use wgpu_embed::{Embedding, EmbeddingOptions, Error, Gpu, IndexTensor, Tensor};

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Indices biased to the edges: u32::MAX, num_embeddings, num_embeddings − 1, 0.
fn index_strategy(rows: usize) -> impl Strategy<Value = Vec<u32>> {
    let r = rows as u32;
    prop::collection::vec(
        prop_oneof![
            Just(u32::MAX),
            Just(r),
            Just(r - 1),
            Just(0u32),
            0..r,
            r..u32::MAX,
        ],
        0..12,
    )
}

/// Finite values, NaN, ±Inf.
fn value_strategy() -> impl Strategy<Value = f32> {
    prop_oneof![
        4 => -4.0f32..4.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => Just(f32::NEG_INFINITY),
    ]
}

/// A call that is Ok, or fails with the weights left exactly as they were.
fn keeps_weights_on_error<T>(
    emb: &mut Embedding,
    call: impl FnOnce(&mut Embedding) -> Result<T, Error>,
) -> Result<T, Error> {
    let before = bits(&emb.weight().to_vec().unwrap());
    let out = call(emb);
    if let Err(e) = &out {
        let after = bits(&emb.weight().to_vec().unwrap());
        assert_eq!(before, after, "weights changed after failed call: {e}");
    }
    out
}

fn expect_index_error<T: std::fmt::Debug>(r: Result<T, Error>, idx: &[u32], rows: usize) {
    let bad = idx.iter().position(|&i| i as usize >= rows);
    match (bad, r) {
        (None, Ok(_)) => {}
        (
            Some(p),
            Err(Error::IndexOutOfRange {
                position, index, ..
            }),
        ) => {
            assert_eq!(position, p);
            assert_eq!(index, idx[p] as u64);
        }
        (bad, other) => panic!("indices {idx:?} (first bad {bad:?}): got {other:?}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn adversarial_batches_give_ok_or_a_typed_error(
        (rows, idx) in (1usize..20).prop_flat_map(|r| (Just(r), index_strategy(r))),
        dim in 1usize..6,
        chunked in any::<bool>(),
        weights_seed in prop::collection::vec(value_strategy(), 1..8),
        grads in prop::collection::vec(value_strategy(), 1..8),
        lr in prop_oneof![Just(0.5f32), Just(f32::NAN), Just(f32::INFINITY)],
    ) {
        let w: Vec<f32> = (0..rows * dim).map(|i| weights_seed[i % weights_seed.len()]).collect();
        let g: Vec<f32> = (0..idx.len() * dim).map(|i| grads[i % grads.len()]).collect();
        each_gpu(|gpu| {
            let options = EmbeddingOptions {
                chunk_bytes: chunked.then_some((dim * 4 * 2) as u64),
                ..EmbeddingOptions::default()
            };
            let mut emb =
                Embedding::from_pretrained_with_options(gpu, &w, rows, dim, options).unwrap();

            // Forward: NaN/Inf rows come back as they are (a gather copies bits).
            let r = emb.forward(&idx);
            if let Ok(out) = &r {
                let out = out.to_vec().unwrap();
                for (p, &i) in idx.iter().enumerate() {
                    let i = i as usize;
                    for c in 0..dim {
                        let (got, want) = (out[p * dim + c], w[i * dim + c]);
                        assert!(got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()));
                    }
                }
            }
            expect_index_error(r, &idx, rows);
            let on_gpu = IndexTensor::from_slice(gpu, &idx).unwrap();
            expect_index_error(emb.forward_gpu(&on_gpu), &idx, rows);

            // Backward and updates: NaN/Inf gradients are accepted (as in
            // PyTorch); bad indices and a bad lr leave the weights untouched.
            let grad_out = Tensor::from_slice(gpu, &g, &[idx.len(), dim]).unwrap();
            let r = keeps_weights_on_error(&mut emb, |e| e.backward_sgd(&idx, &grad_out, lr));
            if lr.is_finite() {
                expect_index_error(r, &idx, rows);
            } else {
                assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
            }
            let r = keeps_weights_on_error(&mut emb, |e| e.backward_sgd_gpu(&on_gpu, &grad_out, 0.5));
            expect_index_error(r, &idx, rows);
            let r = keeps_weights_on_error(&mut emb, |e| {
                let grad = e.backward(&idx, &grad_out)?;
                e.sgd_step(&grad, 0.5)
            });
            expect_index_error(r, &idx, rows);

            // Wrong lengths and shapes.
            let short = Tensor::zeros(gpu, &[idx.len() + 1, dim]).unwrap();
            let r = keeps_weights_on_error(&mut emb, |e| e.backward_sgd(&idx, &short, 0.5));
            assert!(matches!(r, Err(Error::ShapeMismatch { .. })), "{r:?}");
            let r = keeps_weights_on_error(&mut emb, |e| e.set_weight(&w[..w.len() - 1]));
            assert!(matches!(r, Err(Error::LengthMismatch { .. })), "{r:?}");
        });
    }
}

#[test]
fn degenerate_and_huge_shapes_are_typed_errors() {
    each_gpu(|gpu| {
        for (rows, dim) in [(0, 4), (4, 0), (0, 0)] {
            assert!(matches!(
                Embedding::new(gpu, rows, dim),
                Err(Error::EmptyTable { .. })
            ));
            assert!(matches!(
                Embedding::from_pretrained(gpu, &[], rows, dim, false),
                Err(Error::EmptyTable { .. })
            ));
        }
        // Rows past the shaders' u32 arithmetic are too many; a row past
        // the largest buffer is too large.
        for (rows, dim, too_many) in [
            (usize::MAX, 1, true),
            (1, usize::MAX, false),
            (usize::MAX / 2, 3, true),
            (1 << 33, 1, true),
        ] {
            let r = Embedding::new(gpu, rows, dim);
            assert!(
                match &r {
                    Err(Error::TooMany { .. }) => too_many,
                    Err(Error::TooLarge { .. }) => !too_many,
                    _ => false,
                },
                "{rows} x {dim}: {:?}",
                r.map(|_| ())
            );
        }
        assert!(matches!(
            Tensor::zeros(gpu, &[usize::MAX, 2]),
            Err(Error::TooMany { count, limit, limit_name, .. })
                if count == 2 * usize::MAX as u128 && limit == usize::MAX as u64 && limit_name.contains("usize")
        ));
        // A one-row table, an empty batch, and an output past the largest buffer.
        let mut emb = Embedding::new(gpu, 1, 4).unwrap();
        assert_eq!(emb.forward(&[]).unwrap().shape(), [0, 4]);
        let g = Tensor::zeros(gpu, &[0, 4]).unwrap();
        emb.backward_sgd(&[], &g, 0.5).unwrap();
        // (Past one binding it is gathered in windows: tests/scale_windows.rs.)
        let mut wide = Embedding::new(gpu, 1, 1024).unwrap();
        let too_many = (gpu.max_buffer_bytes() / 4096 + 1) as usize;
        let r = keeps_weights_on_error(&mut wide, |e| e.forward(&vec![0; too_many]).map(drop));
        assert!(matches!(r, Err(Error::TooLarge { .. })), "{r:?}");
        // A tiny chunk_bytes on a big table: refused, not 2^24 buffer handles.
        let tiny = EmbeddingOptions {
            chunk_bytes: Some(4),
            ..EmbeddingOptions::default()
        };
        let r = Embedding::with_options(gpu, 1 << 24, 1, tiny);
        assert!(
            matches!(
                r,
                Err(Error::TooMany {
                    count: 16_777_216,
                    limit: 65_536,
                    ..
                })
            ),
            "{:?}",
            r.err()
        );
    });
}

/// Fixed-length bags of no ids agree with any bag count: a count past the
/// output's buffer, or past u32, is a typed error before the host builds an
/// offset per bag. Max mode refuses a frequency-scaled gradient, as PyTorch
/// does, with the weights unchanged.
#[test]
fn bag_shapes_and_options_past_what_works_are_typed_errors() {
    use wgpu_embed::{BagMode, EmbeddingBag, EmbeddingBagOptions};
    each_gpu(|gpu| {
        let bag = EmbeddingBag::new(gpu, 4, 8, BagMode::Sum).unwrap();
        let g = Tensor::zeros(gpu, &[0, 8]).unwrap();
        for bags in [
            usize::MAX,
            1 << 40,
            (gpu.max_buffer_bytes() / 32 + 1) as usize,
        ] {
            let r = bag.forward_2d(&[], [bags, 0], None);
            assert!(
                matches!(r, Err(Error::TooLarge { .. } | Error::TooMany { .. })),
                "forward_2d of {bags} empty bags: {:?}",
                r.map(|t| t.shape().to_vec())
            );
            let r = bag.backward_2d(&[], [bags, 0], None, &g);
            assert!(
                matches!(r, Err(Error::TooLarge { .. } | Error::TooMany { .. })),
                "backward_2d of {bags} empty bags: {r:?}"
            );
        }
        // A few empty bags are zeros, as PyTorch gives.
        let out = bag.forward_2d(&[], [3, 0], None).unwrap();
        assert_eq!(out.shape(), [3, 8]);
        assert!(out.to_vec().unwrap().iter().all(|&x| x == 0.0));

        let table = EmbeddingOptions {
            scale_grad_by_freq: true,
            ..EmbeddingOptions::default()
        };
        let options = EmbeddingBagOptions {
            mode: BagMode::Max,
            ..Default::default()
        };
        let mut max = EmbeddingBag::with_options(gpu, 4, 8, table, options).unwrap();
        let before = bits(&max.weight().to_vec().unwrap());
        let (idx, offsets) = ([0u32, 1, 2], [0u32, 2]);
        assert_eq!(max.forward(&idx, &offsets, None).unwrap().shape(), [2, 8]);
        // A gradient a wrongly run step would move the weights by.
        let g = Tensor::from_slice(gpu, &[1.0; 16], &[2, 8]).unwrap();
        let refused = |r: wgpu_embed::Result<()>| {
            assert!(
                matches!(
                    &r,
                    Err(Error::InvalidArgument {
                        name: "scale_grad_by_freq",
                        ..
                    })
                ),
                "{r:?}"
            )
        };
        refused(max.backward(&idx, &offsets, None, &g).map(drop));
        refused(max.backward_2d(&[0, 1], [2, 1], None, &g).map(drop));
        refused(max.backward_sgd(&idx, &offsets, None, &g, 0.5));
        assert_eq!(bits(&max.weight().to_vec().unwrap()), before);
    });
}

#[test]
fn tensors_from_another_gpu_leave_the_weights_alone() {
    let _turn = common::serial();
    // Another device on the same adapter: "another Gpu" needs no second
    // adapter (a machine may have one).
    let a = &gpus()[0];
    let b = &common::reopen(a, |_| {});
    for chunk_bytes in [None, Some(32)] {
        let options = EmbeddingOptions {
            chunk_bytes,
            ..EmbeddingOptions::default()
        };
        let mut emb = Embedding::with_options(a, 10, 4, options).unwrap();
        let idx = IndexTensor::from_slice(b, &[1, 2]).unwrap();
        let g = Tensor::zeros(b, &[2, 4]).unwrap();
        let r = keeps_weights_on_error(&mut emb, |e| e.forward_gpu(&idx).map(drop));
        assert!(matches!(r, Err(Error::DifferentGpu { .. })), "{r:?}");
        let r = keeps_weights_on_error(&mut emb, |e| e.backward_sgd(&[1, 2], &g, 0.5));
        assert!(matches!(r, Err(Error::DifferentGpu { .. })), "{r:?}");
        let r = keeps_weights_on_error(&mut emb, |e| e.backward(&[1, 2], &g).map(drop));
        assert!(matches!(r, Err(Error::DifferentGpu { .. })), "{r:?}");
    }
}

/// Every public `kernels::*::encode` checks its buffers against the sizes it
/// is given: a buffer too short for them is `LengthMismatch`, with nothing
/// recorded, where the kernel used to read zeros or drop writes.
#[test]
fn public_encodes_check_their_buffers() {
    use wgpu_embed::kernels::{
        buffer_copy, embedding_bag, exclusive_scan, one_hot, radix_sort, row_histogram,
        scatter_add_atomic, segment_sum, sgd_update, uniform_init,
    };
    use wgpu_embed::{Distribution, RowBlock};
    each_gpu(|gpu| {
        let short = Tensor::zeros(gpu, &[3]).unwrap(); // 3 words
        let s = short.buffer();
        let big = Tensor::zeros(gpu, &[4096]).unwrap();
        let b = big.buffer();
        let mut enc = gpu.encoder("short buffers");
        let expect = |what: &str, r: wgpu_embed::Result<()>| {
            assert!(
                matches!(r, Err(Error::LengthMismatch { .. })),
                "{what}: {r:?}"
            );
        };
        let hist = |indices, counts| row_histogram::HistogramArgs {
            indices,
            n: 8,
            num_embeddings: 8,
            status: b,
            counts,
        };
        expect(
            "histogram indices",
            row_histogram::encode(gpu, &mut enc, &hist(s, Some(b))),
        );
        expect(
            "histogram counts",
            row_histogram::encode(gpu, &mut enc, &hist(b, Some(s))),
        );
        let scan = exclusive_scan::ScanArgs {
            input: b,
            len: 3,
            out: s, // needs len + 1
            exclude: None,
            mode: Default::default(),
        };
        expect("scan out", exclusive_scan::encode(gpu, &mut enc, &scan));
        let sort = radix_sort::SortArgs {
            keys: b,
            n: 8,
            key_bound: 8,
            keys_out: b,
            positions_out: s,
        };
        expect("sort positions", radix_sort::encode(gpu, &mut enc, &sort));
        let word = Tensor::zeros(gpu, &[1]).unwrap();
        let hot = one_hot::OneHotArgs {
            indices: b,
            n: 2,
            num_classes: 2,
            status: word.buffer(),
            out: s, // needs n × num_classes
        };
        expect("one_hot out", one_hot::encode(gpu, &mut enc, &hot));
        let fill = uniform_init::FillArgs {
            out: s,
            begin: 0,
            end: 8,
            counter_base: 0,
            seed: 1,
            distribution: Distribution::Uniform { lo: 0.0, hi: 1.0 },
            workgroup_size: None,
        };
        expect("uniform_init", uniform_init::encode(gpu, &mut enc, &fill));
        let atomic = scatter_add_atomic::AtomicArgs {
            indices: b,
            n: 4,
            num_embeddings: 4,
            dim: 2,
            padding_idx: None,
            counts: b,
            scale_by_freq: false,
            status: b,
            grad_out: b,
            grad: RowBlock::new(s, 0..4), // 4 rows × 2 in 3 words
        };
        if gpu.has_float_atomics() {
            expect(
                "scatter grad",
                scatter_add_atomic::encode(gpu, &mut enc, &atomic),
            );
        }
        let update = sgd_update::SgdArgs {
            weight: RowBlock::new(s, 0..4),
            num_embeddings: 4,
            dim: 2,
            grad: sgd_update::SgdGrad::Dense(RowBlock::new(b, 0..4)),
            lr: 0.5,
            half: None,
        };
        expect(
            "sgd_update weight",
            sgd_update::encode(gpu, &mut enc, &update),
        );
        let bag = embedding_bag::BagArgs {
            mode: wgpu_embed::BagMode::Sum,
            table: b,
            dtype: wgpu_embed::DType::F32,
            num_embeddings: 4,
            dim: 2,
            indices: b,
            n: 4,
            offsets: b,
            num_bags: 2,
            max_bag_len: 4,
            per_sample_weights: None,
            padding_idx: None,
            status: b,
            max_positions: None,
            out: s, // 2 bags × 2 in 3 words
            threads_per_bag: None,
        };
        expect(
            "embedding_bag out",
            embedding_bag::encode(gpu, &mut enc, &bag),
        );
        let seg = segment_sum::SegmentArgs {
            n: 8,
            dim: 2,
            num_embeddings: 4,
            padding_idx: None,
            scale_by_freq: false,
            status: b,
            offsets: Some(b),
            sorted_keys: b,
            sorted_positions: s, // needs n
            grad_out: b,
            chunk: None,
            half: None,
        };
        let out = [segment_sum::SegmentOutput::Dense {
            grad: RowBlock::new(b, 0..4),
        }];
        expect(
            "segment_sum positions",
            segment_sum::encode(gpu, &mut enc, &seg, &out),
        );
        expect(
            "buffer_copy dst",
            buffer_copy::encode(gpu, &mut enc, b, s, 64),
        );
        // Nothing was recorded: the encoder submits as an empty one.
        gpu.submit_and_wait(enc).unwrap();
        assert_eq!(short.to_vec().unwrap(), [0.0; 3]);
    });
}

/// Two bags of four positions, dim 2, over a 4-row table, every buffer `b`
/// (large enough for each).
fn small_bag_layout(
    b: &wgpu::Buffer,
) -> wgpu_embed::kernels::embedding_bag_backward::BagLayout<'_> {
    wgpu_embed::kernels::embedding_bag_backward::BagLayout {
        num_embeddings: 4,
        dim: 2,
        indices: b,
        n: 4,
        offsets: b,
        num_bags: 2,
        padding_idx: None,
        grad_out: b,
    }
}

/// The bag backward's kernels refuse what they would read wrongly without a
/// word: max mode without the forward's winning positions (each element
/// would read a placeholder), an int8 table for `psw_grad` (its rows
/// would be read as f32), and positions with no bag to belong to. Nothing
/// is recorded.
#[test]
fn bag_backward_kernels_refuse_inputs_they_would_misread() {
    use wgpu_embed::kernels::embedding_bag_backward::{self, ExpandArgs};
    use wgpu_embed::{BagMode, DType, RowBlock};
    each_gpu(|gpu| {
        let big = Tensor::zeros(gpu, &[4096]).unwrap();
        let b = big.buffer();
        let expanded = Tensor::from_slice(gpu, &[5.0; 8], &[8]).unwrap();
        let layout = small_bag_layout(b);
        let mut enc = gpu.encoder("bag backward refusals");
        let max = ExpandArgs {
            mode: BagMode::Max,
            per_sample_weights: None,
            max_positions: None,
            expanded: expanded.buffer(),
        };
        let r = embedding_bag_backward::encode_expand(gpu, &mut enc, &layout, &max);
        assert!(
            matches!(
                &r,
                Err(Error::InvalidArgument {
                    name: "max_positions",
                    ..
                })
            ),
            "{r:?}"
        );
        // The same call with the positions records the expansion.
        let positions = ExpandArgs {
            max_positions: Some(b),
            ..max
        };
        let table = [RowBlock::new(b, 0..4)];
        let r = embedding_bag_backward::encode_psw_grad(
            gpu,
            &mut enc,
            &layout,
            &table,
            DType::Int8,
            expanded.buffer(),
        );
        assert!(
            matches!(&r, Err(Error::InvalidArgument { name: "dtype", .. })),
            "{r:?}"
        );
        // Positions but no bag: each would read bag 0's missing grad_out row.
        let bagless = wgpu_embed::kernels::embedding_bag_backward::BagLayout {
            num_bags: 0,
            ..small_bag_layout(b)
        };
        let r = embedding_bag_backward::encode_expand(gpu, &mut enc, &bagless, &positions);
        let no_bag = |r: &wgpu_embed::Result<()>| {
            matches!(
                r,
                Err(Error::InvalidArgument {
                    name: "num_bags",
                    ..
                })
            )
        };
        assert!(no_bag(&r), "expand without bags: {r:?}");
        let r = embedding_bag_backward::encode_psw_grad(
            gpu,
            &mut enc,
            &bagless,
            &table,
            DType::F32,
            expanded.buffer(),
        );
        assert!(no_bag(&r), "psw_grad without bags: {r:?}");
        gpu.submit_and_wait(enc).unwrap();
        assert_eq!(expanded.to_vec().unwrap(), [5.0; 8], "nothing was recorded");
        let mut enc = gpu.encoder("bag backward with positions");
        embedding_bag_backward::encode_expand(gpu, &mut enc, &layout, &positions).unwrap();
        gpu.submit_and_wait(enc).unwrap();
        assert_ne!(expanded.to_vec().unwrap(), [5.0; 8], "the expansion ran");
    });
}

/// A sparse gradient's `rows` buffer shorter than its `values`: only the
/// slots both hold are written. Before, the kernel wrote every slot `values`
/// held and each later row id went past `rows`' end (clamped or dropped by
/// the driver), so a short buffer gave rows and values that disagree.
/// The ids 2, 0, 2, 3 of a 4-row table and a 4 × 2 `grad_out` (1, 2, …),
/// sorted on the GPU as the deterministic backward sorts them: the
/// histogram, its scan into `offsets` and the radix sort, recorded into
/// `enc`. Three rows are referenced: 0 (position 1), 2 (positions 0 and 2)
/// and 3 (position 3).
struct SortedBatch {
    idx: IndexTensor,
    grad_out: Tensor,
    status: wgpu_embed::Status,
    counts: IndexTensor,
    offsets: IndexTensor,
    keys: IndexTensor,
    positions: IndexTensor,
}

const SORTED_ROWS: usize = 4;
const SORTED_DIM: usize = 2;

fn sorted_batch(gpu: &Gpu, enc: &mut wgpu::CommandEncoder) -> SortedBatch {
    use wgpu_embed::kernels::{exclusive_scan, radix_sort, row_histogram};
    let (v, dim) = (SORTED_ROWS, SORTED_DIM);
    let idx = IndexTensor::from_slice(gpu, &[2, 0, 2, 3]).unwrap();
    let n = idx.len();
    let grad_out: Vec<f32> = (0..n * dim).map(|i| i as f32 + 1.0).collect();
    let u32s = |len: usize| IndexTensor::from_slice(gpu, &vec![0; len]).unwrap();
    let b = SortedBatch {
        grad_out: Tensor::from_slice(gpu, &grad_out, &[n, dim]).unwrap(),
        status: wgpu_embed::Status::new(gpu).unwrap(),
        counts: u32s(v),
        offsets: u32s(v + 1),
        keys: u32s(n),
        positions: u32s(n),
        idx,
    };
    let hist = row_histogram::HistogramArgs {
        indices: b.idx.buffer(),
        n,
        num_embeddings: v,
        status: b.status.buffer(),
        counts: Some(b.counts.buffer()),
    };
    row_histogram::encode(gpu, enc, &hist).unwrap();
    let scan = exclusive_scan::ScanArgs {
        input: b.counts.buffer(),
        len: v,
        out: b.offsets.buffer(),
        exclude: None,
        mode: exclusive_scan::ScanMode::Sum,
    };
    exclusive_scan::encode(gpu, enc, &scan).unwrap();
    let sort = radix_sort::SortArgs {
        keys: b.idx.buffer(),
        n,
        key_bound: v,
        keys_out: b.keys.buffer(),
        positions_out: b.positions.buffer(),
    };
    radix_sort::encode(gpu, enc, &sort).unwrap();
    b
}

impl SortedBatch {
    /// `segment_sum`'s inputs for this batch (f32, no padding or scaling).
    fn segment_args(&self) -> wgpu_embed::kernels::segment_sum::SegmentArgs<'_> {
        wgpu_embed::kernels::segment_sum::SegmentArgs {
            n: self.idx.len(),
            dim: SORTED_DIM,
            num_embeddings: SORTED_ROWS,
            padding_idx: None,
            scale_by_freq: false,
            status: self.status.buffer(),
            offsets: Some(self.offsets.buffer()),
            sorted_keys: self.keys.buffer(),
            sorted_positions: self.positions.buffer(),
            grad_out: self.grad_out.buffer(),
            chunk: None,
            half: None,
        }
    }
}

#[test]
fn a_sparse_gradient_writes_only_the_slots_rows_and_values_both_hold() {
    use wgpu_embed::kernels::{exclusive_scan, segment_sum};
    each_gpu(|gpu| {
        let dim = SORTED_DIM;
        let mut enc = gpu.encoder("sparse gradient, short rows");
        let batch = sorted_batch(gpu, &mut enc);
        // One slot per sorted entry (keys 0, 2, 2, 3), and the total.
        let n = batch.idx.len();
        let ranks = IndexTensor::from_slice(gpu, &vec![0; n + 1]).unwrap();
        let rows = IndexTensor::from_slice(gpu, &[777]).unwrap(); // one slot
        let values = Tensor::from_slice(gpu, &[-1.0; 6], &[3, dim]).unwrap(); // three
        let scan = exclusive_scan::ScanArgs {
            input: batch.keys.buffer(),
            len: n,
            out: ranks.buffer(),
            exclude: None,
            mode: exclusive_scan::ScanMode::RunStarts,
        };
        exclusive_scan::encode(gpu, &mut enc, &scan).unwrap();
        let out = [segment_sum::SegmentOutput::Sparse {
            ranks: ranks.buffer(),
            rows: rows.buffer(),
            values: values.buffer(),
        }];
        segment_sum::encode(gpu, &mut enc, &batch.segment_args(), &out).unwrap();
        gpu.submit_and_wait(enc).unwrap();
        assert_eq!(ranks.to_vec().unwrap(), [0, 1, 2, 2, 3]);
        assert_eq!(rows.to_vec().unwrap(), [0], "slot 0 holds row 0");
        // Row 0 is position 1's gradient; the slots past `rows` stay as they were.
        assert_eq!(values.to_vec().unwrap(), [3.0, 4.0, -1.0, -1.0, -1.0, -1.0]);
    });
}

/// `segment_sum`'s outputs may be disjoint spans of one buffer (a caller's
/// own table layout): two dense row-blocks side by side get the right rows,
/// and blocks that share bytes, or a sparse target's rows and values in one
/// buffer, are refused before anything is recorded.
#[test]
fn segment_sum_outputs_may_share_a_buffer_but_not_its_bytes() {
    use wgpu_embed::kernels::segment_sum;
    use wgpu_embed::Span;
    each_gpu(|gpu| {
        let dim = SORTED_DIM;
        let mut enc = gpu.encoder("dense gradient into spans of one buffer");
        let batch = sorted_batch(gpu, &mut enc);
        let seg = batch.segment_args();
        let u32s = |len: usize| IndexTensor::from_slice(gpu, &vec![0; len]).unwrap();
        // Rows 0..2 from byte 0, rows 2..4 from the next aligned offset.
        let align = gpu.limits().min_storage_buffer_offset_alignment.max(16) as usize;
        let words = align / 4 + 2 * dim;
        let out = Tensor::from_slice(gpu, &vec![-1.0; words], &[words]).unwrap();
        let span = |offset: usize| Span {
            buffer: out.buffer(),
            offset: offset as u64,
            size: (2 * dim * 4) as u64,
        };
        let block = |rows: std::ops::Range<usize>, offset| wgpu_embed::RowBlock {
            rows,
            span: span(offset),
        };
        let overlapping = [
            segment_sum::SegmentOutput::Dense {
                grad: block(0..2, 0),
            },
            segment_sum::SegmentOutput::Dense {
                grad: block(2..4, 0),
            },
        ];
        let r = segment_sum::encode(gpu, &mut enc, &seg, &overlapping);
        match &r {
            Err(Error::InvalidArgument { name, reason }) => {
                assert_eq!(*name, "buffers");
                assert!(reason.contains("share bytes"), "{reason}");
            }
            other => panic!("overlapping dense blocks: {other:?}"),
        }
        let one = u32s(2 * dim);
        let sparse = [segment_sum::SegmentOutput::Sparse {
            ranks: batch.offsets.buffer(),
            rows: one.buffer(),
            values: one.buffer(),
        }];
        let r = segment_sum::encode(gpu, &mut enc, &seg, &sparse);
        assert!(
            matches!(
                &r,
                Err(Error::InvalidArgument {
                    name: "buffers",
                    ..
                })
            ),
            "sparse rows and values in one buffer: {r:?}"
        );
        let apart = [
            segment_sum::SegmentOutput::Dense {
                grad: block(0..2, 0),
            },
            segment_sum::SegmentOutput::Dense {
                grad: block(2..4, align),
            },
        ];
        segment_sum::encode(gpu, &mut enc, &seg, &apart).unwrap();
        gpu.submit_and_wait(enc).unwrap();
        // Row 0: position 1; row 1: none; row 2: positions 0 and 2; row 3: position 3.
        let mut want = vec![-1.0; words];
        want[..4].copy_from_slice(&[3.0, 4.0, 0.0, 0.0]);
        want[align / 4..].copy_from_slice(&[6.0, 8.0, 7.0, 8.0]);
        assert_eq!(out.to_vec().unwrap(), want);
    });
}

/// A gather over row-blocks of unequal sizes (a caller's own layout) reads
/// the right rows: the grouped shader, which divides by the first block's
/// rows, takes only even layouts; this one, whose last block is longer,
/// once read row 15 for index 25.
#[test]
fn a_gather_over_uneven_row_blocks_reads_the_right_rows() {
    use wgpu_embed::kernels::embedding_gather::{self, GatherArgs};
    use wgpu_embed::{DType, RowBlock, Status};
    each_gpu(|gpu| {
        let (v, dim) = (100, 4);
        let table: Vec<f32> = (0..v * dim).map(|i| i as f32).collect();
        let first = Tensor::from_slice(gpu, &table[..10 * dim], &[10, dim]).unwrap();
        let rest = Tensor::from_slice(gpu, &table[10 * dim..], &[90, dim]).unwrap();
        let blocks = [
            RowBlock::new(first.buffer(), 0..10),
            RowBlock::new(rest.buffer(), 10..100),
        ];
        let ids = [25u32, 5, 99, 10, 9, 60];
        let idx = IndexTensor::from_slice(gpu, &ids).unwrap();
        let out = Tensor::zeros(gpu, &[ids.len(), dim]).unwrap();
        let status = Status::new(gpu).unwrap();
        let args = GatherArgs {
            table: &blocks,
            dtype: DType::F32,
            num_embeddings: v,
            dim,
            indices: idx.buffer(),
            n: ids.len(),
            status: status.buffer(),
            out: out.buffer(),
            threads_per_row: None,
            workgroup_size: None,
            const_dim: false,
        };
        let mut enc = gpu.encoder("uneven gather");
        embedding_gather::encode(gpu, &mut enc, &args).unwrap();
        gpu.submit_and_wait(enc).unwrap();
        let want: Vec<f32> = ids
            .iter()
            .flat_map(|&r| table[r as usize * dim..][..dim].to_vec())
            .collect();
        assert_eq!(out.to_vec().unwrap(), want);
        assert_eq!(status.read().unwrap(), None);
        // No blocks at all: nothing would be written or reported.
        let none = GatherArgs { table: &[], ..args };
        let mut enc = gpu.encoder("gather without blocks");
        let r = embedding_gather::encode(gpu, &mut enc, &none);
        assert!(
            matches!(&r, Err(Error::InvalidArgument { name: "table", .. })),
            "{r:?}"
        );
        // A block whose span runs past its buffer, and an empty block between
        // two others (bound as it was, a zero size meant the rest of its
        // buffer to wgpu): typed errors, not wgpu's.
        let past = [RowBlock {
            rows: 0..100,
            span: wgpu_embed::Span {
                buffer: first.buffer(),
                offset: 0,
                size: (v * dim * 4) as u64,
            },
        }];
        let empty = [
            RowBlock::new(first.buffer(), 0..10),
            RowBlock {
                rows: 10..10,
                span: wgpu_embed::Span {
                    buffer: rest.buffer(),
                    offset: 0,
                    size: 0,
                },
            },
            RowBlock::new(rest.buffer(), 10..100),
        ];
        for (what, table) in [("past its buffer", &past[..]), ("empty", &empty[..])] {
            let r = embedding_gather::encode(gpu, &mut enc, &GatherArgs { table, ..args });
            assert!(
                matches!(
                    &r,
                    Err(Error::InvalidArgument {
                        name: "buffer span",
                        ..
                    })
                ),
                "{what}: {r:?}"
            );
        }
        // A workgroup size the adapter cannot run: refused here, not left
        // to pipeline creation (which a page does not check).
        let max = gpu.limits().max_compute_invocations_per_workgroup;
        for wg in [0, max + 1] {
            let r = embedding_gather::encode(
                gpu,
                &mut enc,
                &GatherArgs {
                    workgroup_size: Some(wg),
                    ..args
                },
            );
            assert!(
                matches!(
                    &r,
                    Err(Error::InvalidArgument {
                        name: "workgroup_size",
                        ..
                    })
                ),
                "{wg}: {r:?}"
            );
        }
        gpu.submit_and_wait(enc).unwrap();
    });
}

/// A gather whose second row-block is past one binding is refused before
/// the first block's dispatch is recorded (it used to be recorded, then the
/// second block's bind group failed: the caller's encoder held half a call).
#[test]
fn a_gather_checks_every_block_against_the_binding_before_recording() {
    use wgpu_embed::kernels::embedding_gather::{self, GatherArgs};
    use wgpu_embed::{DType, RowBlock, Status};
    common::each_capped_gpu(|gpu| {
        let dim = 4;
        let rows = (common::CAPPED_BINDING as usize / (dim * 4)) + 1; // past one binding
        let first = Tensor::from_slice(gpu, &[1.0; 4], &[1, dim]).unwrap();
        let rest = Tensor::zeros(gpu, &[rows, dim]).unwrap();
        let blocks = [
            RowBlock::new(first.buffer(), 0..1),
            RowBlock::new(rest.buffer(), 1..1 + rows),
        ];
        let idx = IndexTensor::from_slice(gpu, &[0]).unwrap();
        let out = Tensor::from_slice(gpu, &[5.0; 4], &[1, dim]).unwrap();
        let status = Status::new(gpu).unwrap();
        let args = GatherArgs {
            table: &blocks,
            dtype: DType::F32,
            num_embeddings: 1 + rows,
            dim,
            indices: idx.buffer(),
            n: 1,
            status: status.buffer(),
            out: out.buffer(),
            threads_per_row: None,
            workgroup_size: None,
            const_dim: false,
        };
        let mut enc = gpu.encoder("a block past one binding");
        let r = embedding_gather::encode(gpu, &mut enc, &args);
        assert!(matches!(&r, Err(Error::TooLarge { .. })), "{r:?}");
        gpu.submit_and_wait(enc).unwrap();
        assert_eq!(out.to_vec().unwrap(), [5.0; 4], "nothing was recorded");
    });
}

/// Low-level kernels refuse, before recording anything, what the layers
/// refuse and what the shaders would read past: per-sample weights outside
/// sum mode, an int8 table whose last word the vec4 bag path would read
/// past, a `psw_grad` block shorter than its rows, a `max_norm` that is not
/// finite and at least +0 or a `norm_type` that is not positive (+∞ is
/// allowed), its blocks not a table's consecutive rows or in the ids'
/// buffer, and its kept claims at epoch 0, short, or in the table's or the
/// ids' buffer, an f16 target beside a fused Adam one,
/// a padding row past u32 (bags, their backward, and the atomic
/// gradient after its clear), an atomic gradient block of no rows, and one
/// buffer passed for two outputs.
#[test]
fn low_level_kernels_check_everything_before_recording() {
    use wgpu_embed::kernels::embedding_bag_backward::{self, ExpandArgs};
    use wgpu_embed::kernels::{embedding_bag, embedding_renorm, scatter_add_atomic, segment_sum};
    use wgpu_embed::{BagMode, DType, RowBlock};
    each_gpu(|gpu| {
        let big = Tensor::zeros(gpu, &[4096]).unwrap();
        let b = big.buffer();
        let kept = Tensor::from_slice(gpu, &[5.0; 64], &[64]).unwrap();
        let k = kept.buffer();
        let invalid = |what: &str, name: &str, r: wgpu_embed::Result<()>| match &r {
            Err(Error::InvalidArgument { name: n, .. }) if *n == name => {}
            _ => panic!("{what}: {r:?}"),
        };
        // A buffer of 3 words where 4 are needed.
        let four_for_three = |what: &str, r: wgpu_embed::Result<()>| {
            let want = matches!(
                &r,
                Err(Error::LengthMismatch {
                    expected: 4,
                    found: 3,
                    ..
                })
            );
            assert!(want, "{what}: {r:?}");
        };
        let mut enc = gpu.encoder("refusals");
        let bag = embedding_bag::BagArgs {
            mode: BagMode::Mean,
            table: b,
            dtype: DType::F32,
            num_embeddings: 4,
            dim: 4,
            indices: b,
            n: 4,
            offsets: b,
            num_bags: 2,
            max_bag_len: 4,
            per_sample_weights: Some(b),
            padding_idx: None,
            status: b,
            max_positions: None,
            out: k,
            threads_per_bag: None,
        };
        let r = embedding_bag::encode(gpu, &mut enc, &bag);
        invalid("mean bag with weights", "per_sample_weights", r);
        // dim 4 int8: 3 words a row, so one row is 12 bytes; the vec4 path
        // reads whole vec2<u32>s.
        let row = Tensor::zeros(gpu, &[3]).unwrap();
        let int8 = embedding_bag::BagArgs {
            mode: BagMode::Sum,
            table: row.buffer(),
            dtype: DType::Int8,
            num_embeddings: 1,
            per_sample_weights: None,
            ..bag
        };
        let r = embedding_bag::encode(gpu, &mut enc, &int8);
        four_for_three("int8 bag of a 12-byte row", r);
        // A padding row past the shaders' u32 rows: TooMany, as the
        // gradient kernels (the argument is a usize in every kernel).
        let status = Tensor::zeros(gpu, &[4]).unwrap();
        let far = embedding_bag::BagArgs {
            mode: BagMode::Sum,
            per_sample_weights: None,
            padding_idx: Some(1 << 33),
            status: status.buffer(),
            ..bag
        };
        let r = embedding_bag::encode(gpu, &mut enc, &far);
        let too_many = |r: &wgpu_embed::Result<()>| {
            matches!(
                r,
                Err(Error::TooMany {
                    what: "padding_idx",
                    ..
                })
            )
        };
        assert!(too_many(&r), "bag padding past u32: {r:?}");
        let far_layout = wgpu_embed::kernels::embedding_bag_backward::BagLayout {
            padding_idx: Some(1 << 33),
            ..small_bag_layout(b)
        };
        let sum_expand = ExpandArgs {
            mode: BagMode::Sum,
            per_sample_weights: None,
            max_positions: None,
            expanded: k,
        };
        let r = embedding_bag_backward::encode_expand(gpu, &mut enc, &far_layout, &sum_expand);
        assert!(too_many(&r), "expand padding past u32: {r:?}");
        let layout = small_bag_layout(b);
        let expand = ExpandArgs {
            mode: BagMode::Mean,
            per_sample_weights: Some(b),
            max_positions: None,
            expanded: k,
        };
        let r = embedding_bag_backward::encode_expand(gpu, &mut enc, &layout, &expand);
        invalid("mean expand with weights", "per_sample_weights", r);
        let short = [RowBlock::new(row.buffer(), 0..4)]; // 4 rows × 2 in 3 words
        let r =
            embedding_bag_backward::encode_psw_grad(gpu, &mut enc, &layout, &short, DType::F32, k);
        assert!(matches!(&r, Err(Error::LengthMismatch { .. })), "{r:?}");
        // Blocks that leave rows out: their positions would keep whatever
        // `out` held, where the twin writes a product.
        for blocks in [
            vec![RowBlock::new(b, 0..2)],
            vec![RowBlock::new(b, 0..2), RowBlock::new(b, 3..4)],
            vec![RowBlock::new(b, 1..4)],
        ] {
            let r = embedding_bag_backward::encode_psw_grad(
                gpu,
                &mut enc,
                &layout,
                &blocks,
                DType::F32,
                k,
            );
            invalid("psw_grad over some rows", "table blocks", r);
        }
        for (max_norm, norm_type) in [
            (1.0, 0.0),
            (-1.0, 2.0),
            (f32::NAN, 2.0),
            (f32::INFINITY, 2.0),
            (-0.0, 2.0),
            (1.0, f32::NAN),
            (1.0, f32::NEG_INFINITY),
            (1.0, -2.0),
        ] {
            let renorm = embedding_renorm::RenormArgs {
                num_embeddings: 4,
                dim: 2,
                max_norm,
                norm_type,
                status: b,
                indices: b,
                n: 4,
                blocks: &[RowBlock::new(k, 0..4)],
                claims: None,
            };
            let r = embedding_renorm::encode(gpu, &mut enc, &renorm);
            let name = if norm_type == 2.0 {
                "max_norm"
            } else {
                "norm_type"
            };
            invalid(&format!("renorm {max_norm} {norm_type}"), name, r);
        }
        // Blocks that overlap or leave a gap (every block claims with one
        // epoch, so a row in two blocks would be scaled in one), and a block
        // in the ids' buffer.
        fn renorm_of<'a>(
            b: &'a wgpu::Buffer,
            blocks: &'a [RowBlock<'a>],
        ) -> embedding_renorm::RenormArgs<'a> {
            embedding_renorm::RenormArgs {
                num_embeddings: 4,
                dim: 2,
                max_norm: 1.0,
                norm_type: 2.0,
                status: b,
                indices: b,
                n: 4,
                blocks,
                claims: None,
            }
        }
        for blocks in [
            vec![RowBlock::new(k, 0..3), RowBlock::new(k, 2..4)],
            vec![RowBlock::new(k, 0..1), RowBlock::new(k, 2..4)],
            vec![RowBlock::new(k, 0..5)],
        ] {
            let r = embedding_renorm::encode(gpu, &mut enc, &renorm_of(b, &blocks));
            invalid("renorm blocks", "table blocks", r);
        }
        let r = embedding_renorm::encode(gpu, &mut enc, &renorm_of(b, &[RowBlock::new(b, 0..4)]));
        invalid("renorm of the ids' buffer", "buffers", r);
        // Kept claims: epoch 0 (what a zeroed buffer holds), one u32 short of
        // the table's rows, or in the table's or the ids' buffer.
        let claims = Tensor::zeros(gpu, &[4]).unwrap();
        let short = Tensor::zeros(gpu, &[3]).unwrap();
        let table = [RowBlock::new(k, 0..4)];
        fn with<'a>(
            b: &'a wgpu::Buffer,
            table: &'a [RowBlock<'a>],
            buffer: &'a wgpu::Buffer,
            epoch: u32,
        ) -> embedding_renorm::RenormArgs<'a> {
            embedding_renorm::RenormArgs {
                claims: Some(embedding_renorm::RenormClaims { buffer, epoch }),
                ..renorm_of(b, table)
            }
        }
        let r = embedding_renorm::encode(gpu, &mut enc, &with(b, &table, claims.buffer(), 0));
        invalid("renorm claims at epoch 0", "epoch", r);
        let r = embedding_renorm::encode(gpu, &mut enc, &with(b, &table, short.buffer(), 1));
        four_for_three("short renorm claims", r);
        for alias in [k, b] {
            let r = embedding_renorm::encode(gpu, &mut enc, &with(b, &table, alias, 1));
            invalid("renorm claims in the table's or ids' buffer", "buffers", r);
        }
        let seg = segment_sum::SegmentArgs {
            n: 4,
            dim: 2,
            num_embeddings: 4,
            padding_idx: None,
            scale_by_freq: false,
            status: b,
            offsets: Some(b),
            sorted_keys: b,
            sorted_positions: b,
            grad_out: b,
            chunk: None,
            half: Some(wgpu_embed::cpu::Round16::Nearest),
        };
        let adam = wgpu_embed::cpu::AdamArgs::for_step(1, 1e-3, (0.9, 0.999), 1e-8, 0.0, true);
        // Outputs apart from the inputs (`b`), so the dtype is what is refused.
        let moments = Tensor::zeros(gpu, &[64]).unwrap();
        let m = moments.buffer();
        let targets = [
            segment_sum::SegmentOutput::Dense {
                grad: RowBlock::new(k, 0..4),
            },
            segment_sum::SegmentOutput::Adam {
                weight: RowBlock::new(m, 0..4),
                exp_avg: RowBlock::new(m, 0..4),
                exp_avg_sq: RowBlock::new(m, 0..4),
                adam,
            },
        ];
        let r = segment_sum::encode(gpu, &mut enc, &seg, &targets);
        invalid("f16 beside Adam", "dtype", r);
        // A later target written into an input: refused before the partials
        // and the first target are recorded.
        let into_input = [
            segment_sum::SegmentOutput::Dense {
                grad: RowBlock::new(k, 0..4),
            },
            segment_sum::SegmentOutput::Dense {
                grad: RowBlock::new(b, 0..4),
            },
        ];
        // The shader rounds a gradient to nearest: a stochastic request
        // beside one is refused, not quietly dropped.
        let stochastic = segment_sum::SegmentArgs {
            half: Some(wgpu_embed::cpu::Round16::Stochastic { seed: 1, step: 1 }),
            ..seg
        };
        let grads = [segment_sum::SegmentOutput::Dense {
            grad: RowBlock::new(k, 0..4),
        }];
        let r = segment_sum::encode(gpu, &mut enc, &stochastic, &grads);
        invalid("stochastic gradient", "half", r);
        let f32_seg = segment_sum::SegmentArgs { half: None, ..seg };
        let r = segment_sum::encode(gpu, &mut enc, &f32_seg, &into_input);
        invalid("segment_sum into its grad_out", "buffers", r);
        if gpu.has_float_atomics() {
            let atomic = scatter_add_atomic::AtomicArgs {
                indices: b,
                n: 4,
                num_embeddings: 4,
                dim: 2,
                padding_idx: Some(1 << 33),
                counts: b,
                scale_by_freq: false,
                status: m,
                grad_out: b,
                grad: RowBlock::new(k, 0..4),
            };
            let r = scatter_add_atomic::encode(gpu, &mut enc, &atomic);
            assert!(matches!(&r, Err(Error::TooMany { .. })), "{r:?}");
            // A block of no rows would dispatch nothing, so no bad index
            // could be reported.
            let empty = scatter_add_atomic::AtomicArgs {
                padding_idx: None,
                grad: RowBlock::new(k, 4..4),
                ..atomic
            };
            let r = scatter_add_atomic::encode(gpu, &mut enc, &empty);
            invalid("scatter into no rows", "grad", r);
        }
        // One buffer as a dispatch's input and output: wgpu would refuse
        // it only when the encoder is finished, losing all of it.
        let scan = wgpu_embed::kernels::exclusive_scan::ScanArgs {
            input: k,
            len: 8,
            out: k,
            exclude: None,
            mode: Default::default(),
        };
        let r = wgpu_embed::kernels::exclusive_scan::encode(gpu, &mut enc, &scan);
        invalid("scan in place", "buffers", r);
        let r = wgpu_embed::kernels::buffer_copy::encode(gpu, &mut enc, k, k, 64);
        invalid("copy onto itself", "buffers", r);
        // One buffer for two outputs: wgpu allows two read-write bindings of
        // it, and the kernel would race on it.
        let adam_step = wgpu_embed::kernels::adam_step::AdamStepArgs {
            len: 8,
            grad: b,
            weight: k,
            exp_avg: m,
            exp_avg_sq: m,
            adam,
        };
        let r = wgpu_embed::kernels::adam_step::encode(gpu, &mut enc, &adam_step);
        invalid("exp_avg is exp_avg_sq", "buffers", r);
        let sort = wgpu_embed::kernels::radix_sort::SortArgs {
            keys: b,
            n: 8,
            key_bound: 8,
            keys_out: k,
            positions_out: k,
        };
        let r = wgpu_embed::kernels::radix_sort::encode(gpu, &mut enc, &sort);
        invalid("keys_out is positions_out", "buffers", r);
        let hot = wgpu_embed::kernels::one_hot::OneHotArgs {
            indices: b,
            n: 2,
            num_classes: 2,
            status: k,
            out: k,
        };
        let r = wgpu_embed::kernels::one_hot::encode(gpu, &mut enc, &hot);
        invalid("one_hot status is out", "buffers", r);
        gpu.submit_and_wait(enc).unwrap();
        assert_eq!(kept.to_vec().unwrap(), [5.0; 64], "nothing was recorded");
    });
}

/// A key bound past 2^32 once asked for more radix passes than u32 keys
/// have digits; WGSL takes shifts modulo 32, so the extra passes re-sorted
/// by the low digits and scrambled the order.
#[test]
fn radix_sort_with_a_key_bound_past_u32_still_sorts() {
    use wgpu_embed::kernels::radix_sort;
    each_gpu(|gpu| {
        let keys: Vec<u32> = (0..300u32).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        let n = keys.len();
        let k = IndexTensor::from_slice(gpu, &keys).unwrap();
        let (keys_out, pos_out) = (
            Tensor::zeros(gpu, &[n]).unwrap(),
            Tensor::zeros(gpu, &[n]).unwrap(),
        );
        let mut enc = gpu.encoder("radix");
        radix_sort::encode(
            gpu,
            &mut enc,
            &radix_sort::SortArgs {
                keys: k.buffer(),
                n,
                key_bound: 1 << 40,
                keys_out: keys_out.buffer(),
                positions_out: pos_out.buffer(),
            },
        )
        .unwrap();
        gpu.submit_and_wait(enc).unwrap();
        let got: Vec<u32> = keys_out
            .to_vec()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(got, want);
    });
}

/// Sizes past what the kernels address, refused or saturated rather than
/// wrapped: an f16 table of 2^32 + 1 rows (f16 tables now span several
/// buffers, so only the u32 row check stops it), and the FMA-peak probe's
/// flop count for the largest shape a caller can give.
#[test]
fn counts_past_their_integers_are_refused_or_saturate() {
    use wgpu_embed::kernels::fma_peak::FmaPeakShape;
    let huge = FmaPeakShape {
        workgroups: u32::MAX,
        iterations: u32::MAX,
    };
    assert_eq!(huge.flops(), u64::MAX);
    use wgpu_embed::kernels::matmul::{RegisterTile, Tiles};
    let tiles = Tiles {
        wg_x: u32::MAX,
        wg_y: u32::MAX,
        bk: u32::MAX,
        register: RegisterTile::R8x8,
    };
    assert_eq!(tiles.workgroup_bytes(), u64::MAX, "saturates, never wraps");
    // Items past any buffer: a span the bind group refuses, not a wrap.
    let gpu = &gpus()[0];
    let t = Tensor::zeros(gpu, &[4]).unwrap();
    let span = wgpu_embed::Span::whole(t.buffer()).slice(&(usize::MAX - 1..usize::MAX), 1 << 40);
    assert_eq!(span.offset, u64::MAX);
    each_gpu(|gpu| {
        let options = EmbeddingOptions {
            dtype: wgpu_embed::DType::F16,
            ..EmbeddingOptions::default()
        };
        let r = Embedding::with_options(gpu, (1 << 32) + 1, 1, options);
        assert!(
            matches!(r, Err(Error::TooMany { count, limit, .. }) if count == (1 << 32) + 1 && limit == u32::MAX as u64),
            "{:?}",
            r.err()
        );
    });
}
