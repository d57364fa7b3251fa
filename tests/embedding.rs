//! The Embedding layer's surface and every bad input of the foundation: a
//! typed error naming the value and the limit, and the weights unchanged.

mod common;

use common::{assert_bits_eq, each_gpu, gpus, table};
use wgpu_embed::{cpu, Embedding, EmbeddingOptions, Error, IndexTensor};

#[test]
fn the_documented_example() {
    each_gpu(|gpu| {
        let mut emb = Embedding::new(gpu, 10_000, 64).unwrap();
        emb.uniform_(-1.0, 1.0, 42).unwrap();
        emb.normal_(0.0, 1.0, 7).unwrap();
        let rows = table(10_000, 64);
        emb.set_weight(&rows).unwrap();
        let out = emb.forward(&[0, 1, 9_999]).unwrap();
        assert_eq!(out.shape(), [3, 64]);
        let v = out.to_vec().unwrap();
        assert_bits_eq("row 0", &v[..64], &rows[..64]);
        assert_bits_eq("row 9999", &v[128..], &rows[9_999 * 64..]);
        let w = emb.weight().to_vec().unwrap();
        assert_bits_eq("weight", &w, &rows);
        let pre = Embedding::from_pretrained(gpu, &[1.0, 2.0, 2.0, 2.0], 2, 2, true).unwrap();
        assert_eq!(
            pre.forward(&[1, 0]).unwrap().to_vec().unwrap(),
            [2.0, 2.0, 1.0, 2.0]
        );
        assert!(matches!(
            emb.forward(&[10_000]),
            Err(Error::IndexOutOfRange { .. })
        ));
    });
}

#[test]
fn default_init_is_seeded_normal_and_padding_row_is_zero() {
    each_gpu(|gpu| {
        let opts = EmbeddingOptions {
            seed: Some(99),
            padding_idx: Some(3),
            ..Default::default()
        };
        let emb = Embedding::with_options(gpu, 50, 6, opts).unwrap();
        let w = emb.weight().to_vec().unwrap();
        let mut want = vec![0.0; 300];
        cpu::normal_fill(99, 0, 0.0, 1.0, &mut want);
        want[18..24].fill(0.0);
        assert_bits_eq("seeded init with padding row", &w, &want);
        // The options keep the seed given.
        assert_eq!(emb.options().seed, Some(99));
        // Embedding::new draws its seed from the Gpu: two tables differ (as
        // two `nn.Embedding`s do), the seeds step by the documented stride,
        // each table is its seed's normal fill, and its seed builds it again.
        let a = Embedding::new(gpu, 20, 3).unwrap();
        let b = Embedding::new(gpu, 20, 3).unwrap();
        let (sa, sb) = (a.options().seed.unwrap(), b.options().seed.unwrap());
        assert_eq!(sb.wrapping_sub(sa), 0x9E37_79B9_7F4A_7C15);
        let drawn = |k: u64| {
            wgpu_embed::nn::DEFAULT_SEED.wrapping_add(k.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        };
        assert!(
            (0..10_000).any(|k| drawn(k) == sa),
            "seed {sa:#x} is not a draw"
        );
        let (wa, wb) = (a.weight().to_vec().unwrap(), b.weight().to_vec().unwrap());
        assert_ne!(wa, wb);
        let mut want = vec![0.0; 60];
        cpu::normal_fill(sa, 0, 0.0, 1.0, &mut want);
        assert_bits_eq("drawn seed", &wa, &want);
        let again = Embedding::with_options(gpu, 20, 3, a.options().clone()).unwrap();
        assert_bits_eq("drawn seed, again", &again.weight().to_vec().unwrap(), &wa);
        // A pretrained table draws none.
        let pre = Embedding::from_pretrained(gpu, &wa, 20, 3, false).unwrap();
        assert_eq!(pre.options().seed, None);
    });
}

#[test]
fn uniform_matches_the_twin() {
    each_gpu(|gpu| {
        let mut emb = Embedding::new(gpu, 300, 7).unwrap();
        emb.uniform_(-1.0, 1.0, 42).unwrap();
        let mut want = vec![0.0; 2100];
        cpu::uniform_fill(42, 0, -1.0, 1.0, &mut want);
        assert_bits_eq("uniform_", &emb.weight().to_vec().unwrap(), &want);
    });
}

#[test]
fn empty_index_list_gives_an_empty_output() {
    each_gpu(|gpu| {
        let emb = Embedding::new(gpu, 5, 3).unwrap();
        let out = emb.forward(&[]).unwrap();
        assert_eq!(out.shape(), [0, 3]);
        assert!(out.to_vec().unwrap().is_empty());
        let out = emb
            .forward_gpu(&IndexTensor::from_slice(gpu, &[]).unwrap())
            .unwrap();
        assert_eq!(out.shape(), [0, 3]);
    });
}

/// Runs `f`, which must fail, and checks that the weights did not change.
fn fails_and_keeps_weights(
    emb: &mut Embedding,
    f: impl FnOnce(&mut Embedding) -> Result<(), Error>,
) -> Error {
    let before = emb.weight().to_vec().unwrap();
    let err = f(emb).expect_err("the call should have failed");
    assert_bits_eq(
        &format!("weights after {err}"),
        &emb.weight().to_vec().unwrap(),
        &before,
    );
    err
}

#[test]
fn bad_indices_are_typed_errors_and_lose_nothing() {
    each_gpu(|gpu| {
        let mut emb = Embedding::new(gpu, 100, 4).unwrap();
        let e = fails_and_keeps_weights(&mut emb, |e| e.forward(&[0, 5, 100, 7]).map(drop));
        assert_eq!(
            e,
            Error::IndexOutOfRange {
                position: 2,
                index: 100,
                num_embeddings: 100
            }
        );
        assert_eq!(
            e.to_string(),
            "index 100 at position 2 is out of range for a table of 100 rows"
        );
        let e = fails_and_keeps_weights(&mut emb, |e| e.forward(&[u32::MAX]).map(drop));
        assert_eq!(
            e,
            Error::IndexOutOfRange {
                position: 0,
                index: u32::MAX as u64,
                num_embeddings: 100
            }
        );
        // GPU-resident indices: found by the kernel's status word, same error.
        let idx = IndexTensor::from_slice(gpu, &[99, 1, 2, 3, 4, 100, 101]).unwrap();
        let e = fails_and_keeps_weights(&mut emb, |e| e.forward_gpu(&idx).map(drop));
        assert_eq!(
            e,
            Error::IndexOutOfRange {
                position: 5,
                index: 100,
                num_embeddings: 100
            }
        );
        // The last row is fine.
        assert_eq!(emb.forward(&[99]).unwrap().shape(), [1, 4]);
    });
}

/// With `max_norm` a lookup writes the table (it renormalises the rows it
/// reads), so a failed lookup is where weights could change: GPU-resident
/// ids with one out of range renormalise nothing, through every form of the
/// lookup (the renorm kernel must skip on the status word); the same lookup
/// of good ids renormalises the rows it reads.
#[test]
fn a_failed_max_norm_lookup_renormalises_nothing() {
    use wgpu_embed::{Status, Tensor};
    each_gpu(|gpu| {
        let (rows, dim) = (8, 4);
        // Every row's norm is past 1.
        let weights: Vec<f32> = (0..rows * dim).map(|i| 1.0 + i as f32 * 0.25).collect();
        let options = EmbeddingOptions {
            max_norm: Some(1.0),
            ..EmbeddingOptions::default()
        };
        let emb =
            Embedding::from_pretrained_with_options(gpu, &weights, rows, dim, options).unwrap();
        let bad = IndexTensor::from_slice(gpu, &[1, 2, 8, 3]).unwrap();
        let out_of_range = |r: Result<(), Error>, what: &str| {
            assert!(
                matches!(
                    r,
                    Err(Error::IndexOutOfRange {
                        position: 2,
                        index: 8,
                        ..
                    })
                ),
                "{what}: {r:?}"
            );
            assert_bits_eq(what, &emb.weight().to_vec().unwrap(), &weights);
        };
        out_of_range(emb.forward_gpu(&bad).map(drop), "forward_gpu");
        let out = Tensor::zeros(gpu, &[4, dim]).unwrap();
        out_of_range(emb.forward_into(&bad, &out), "forward_into");
        out_of_range(
            pollster::block_on(emb.forward_gpu_async(&bad)).map(drop),
            "forward_gpu_async",
        );
        let status = Status::new(gpu).unwrap();
        let mut encoder = gpu.encoder("max_norm lookup");
        emb.encode_forward(&mut encoder, &bad, &out, &status)
            .unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        assert_eq!(status.read().unwrap(), Some(2));
        assert_bits_eq("encode_forward", &emb.weight().to_vec().unwrap(), &weights);
        // The control: in range, rows 1, 2 and 3 are renormalised, the rest kept.
        let good = IndexTensor::from_slice(gpu, &[1, 2, 3]).unwrap();
        emb.forward_gpu(&good).unwrap();
        let after = emb.weight().to_vec().unwrap();
        for r in 0..rows {
            let row = &after[r * dim..(r + 1) * dim];
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            match r {
                1..=3 => assert!(norm <= 1.0 + 1e-6, "row {r}: norm {norm}"),
                _ => assert_bits_eq("untouched row", row, &weights[r * dim..(r + 1) * dim]),
            }
        }
    });
}

#[test]
fn bad_shapes_lengths_and_arguments() {
    each_gpu(|gpu| {
        assert_eq!(
            Embedding::new(gpu, 0, 4).err(),
            Some(Error::EmptyTable {
                num_embeddings: 0,
                dim: 4
            })
        );
        assert_eq!(
            Embedding::new(gpu, 4, 0).err(),
            Some(Error::EmptyTable {
                num_embeddings: 4,
                dim: 0
            })
        );
        assert!(matches!(
            Embedding::from_pretrained(gpu, &[1.0; 5], 2, 3, false),
            Err(Error::LengthMismatch {
                expected: 6,
                found: 5,
                ..
            })
        ));
        assert!(matches!(
            Embedding::with_options(
                gpu,
                4,
                2,
                EmbeddingOptions {
                    padding_idx: Some(4),
                    ..Default::default()
                }
            ),
            Err(Error::InvalidArgument {
                name: "padding_idx",
                ..
            })
        ));
        let mut emb = Embedding::new(gpu, 10, 3).unwrap();
        let e = fails_and_keeps_weights(&mut emb, |e| e.set_weight(&[0.0; 29]));
        assert!(
            matches!(
                e,
                Error::LengthMismatch {
                    expected: 30,
                    found: 29,
                    ..
                }
            ),
            "{e}"
        );
        for (lo, hi) in [
            (1.0, -1.0),
            (f32::NAN, 1.0),
            (0.0, f32::INFINITY),
            (-f32::MAX, f32::MAX),
        ] {
            let e = fails_and_keeps_weights(&mut emb, |e| e.uniform_(lo, hi, 1));
            assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        }
        let e = fails_and_keeps_weights(&mut emb, |e| e.normal_(0.0, -1.0, 1));
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    });
}

#[test]
fn a_row_past_the_binding_limit_names_both_sizes() {
    // Tables past one binding are stored in row-chunks (tests/scale.rs); one
    // row is the unit of a chunk, so a row past the binding cannot be stored.
    each_gpu(|gpu| {
        let dim = 1024;
        let row_dim = (gpu.max_binding_bytes() / 4 + 1) as usize;
        match Embedding::new(gpu, 2, row_dim) {
            Err(Error::TooLarge { bytes, limit, .. }) => {
                assert_eq!(bytes, row_dim as u64 * 4);
                assert!(limit < bytes);
            }
            Err(e) => panic!("expected TooLarge, got {e}"),
            Ok(_) => panic!("expected TooLarge, got a table"),
        }
        // An output past one binding is gathered in windows (tests/scale_windows.rs);
        // one past the largest buffer is refused, naming that limit, before any allocation.
        let emb = Embedding::new(gpu, 2, dim).unwrap();
        let rows = (gpu.max_buffer_bytes() / 4 / dim as u64 + 1) as usize;
        let idx = vec![0u32; rows];
        match emb.forward(&idx) {
            Err(Error::TooLarge {
                bytes,
                limit,
                limit_name,
                ..
            }) => {
                assert_eq!(limit, gpu.max_buffer_bytes());
                assert!(bytes > limit);
                assert_eq!(limit_name, "max_buffer_size");
            }
            other => panic!(
                "expected TooLarge, got {:?}",
                other.map(|t| t.shape().to_vec())
            ),
        }
    });
}

#[test]
fn tensors_from_another_gpu_are_refused() {
    // Serial: the shared Gpu's seed draws are counted by another test.
    let _serial = common::serial();
    let a = &gpus()[0];
    // Another device on the same adapter: one adapter suffices.
    let b = common::reopen(a, |_| {});
    let emb = Embedding::from_pretrained(a, &[0.5; 40], 10, 4, false).unwrap();
    let idx = IndexTensor::from_slice(&b, &[1, 2]).unwrap();
    assert_eq!(
        emb.forward_gpu(&idx).err(),
        Some(Error::DifferentGpu { what: "indices" })
    );
}

#[test]
fn memory_accounting_counts_live_and_peak_bytes() {
    // A Gpu of its own, so no other test's buffers are counted.
    let gpu = wgpu_embed::Gpu::new().unwrap();
    assert_eq!(gpu.memory_live(), 0);
    let emb = Embedding::new(&gpu, 1000, 64).unwrap();
    assert_eq!(gpu.memory_live(), 256_000, "only the table stays alive");
    let out = emb.forward(&[1, 2, 3]).unwrap();
    assert_eq!(gpu.memory_live(), 256_000 + 3 * 64 * 4);
    assert!(
        gpu.memory_peak() >= 256_000 + 3 * 64 * 4 + 12,
        "indices were live during forward"
    );
    drop(out);
    drop(emb);
    assert_eq!(gpu.memory_live(), 0);
    gpu.reset_memory_peak();
    assert_eq!(gpu.memory_peak(), 0);
}

#[test]
fn forward_into_reuses_the_callers_output_and_reports_bad_indices() {
    each_gpu(|gpu| {
        let (rows, dim) = (9, 5);
        let t = table(rows, dim);
        let emb = Embedding::from_pretrained(gpu, &t, rows, dim, true).unwrap();
        let out = wgpu_embed::Tensor::zeros(gpu, &[4, dim]).unwrap();
        let live = gpu.memory_live();
        for batch in [[0u32, 8, 3, 3], [7, 1, 0, 2]] {
            let idx = IndexTensor::from_slice(gpu, &batch).unwrap();
            emb.forward_into(&idx, &out).unwrap();
            let mut want = vec![0.0; 4 * dim];
            let mut status = u32::MAX;
            cpu::embedding_gather(rows, dim, &batch, &mut status, &t, &mut want);
            assert_bits_eq("forward_into", &out.to_vec().unwrap(), &want);
        }
        assert_eq!(
            gpu.memory_live(),
            live,
            "nothing left allocated between steps"
        );
        let bad = IndexTensor::from_slice(gpu, &[1, 9, 2, 3]).unwrap();
        assert!(matches!(
            emb.forward_into(&bad, &out),
            Err(Error::IndexOutOfRange {
                position: 1,
                index: 9,
                ..
            })
        ));
        let wrong = wgpu_embed::Tensor::zeros(gpu, &[3, dim]).unwrap();
        let idx = IndexTensor::from_slice(gpu, &[0, 1, 2, 3]).unwrap();
        assert!(matches!(
            emb.forward_into(&idx, &wrong),
            Err(Error::ShapeMismatch { .. })
        ));
    });
}

/// The page's lookup (web/): GPU-resident indices, the status word read back
/// without blocking; a bad index is the same typed error.
#[test]
fn forward_gpu_async_looks_up_and_reports_bad_indices() {
    each_gpu(|gpu| {
        let (rows, dim) = (9, 5);
        let t = table(rows, dim);
        let emb = Embedding::from_pretrained(gpu, &t, rows, dim, true).unwrap();
        let batch = [0u32, 8, 3, 3];
        let idx = IndexTensor::from_slice(gpu, &batch).unwrap();
        let out = pollster::block_on(emb.forward_gpu_async(&idx)).unwrap();
        let mut want = vec![0.0; batch.len() * dim];
        let mut status = u32::MAX;
        cpu::embedding_gather(rows, dim, &batch, &mut status, &t, &mut want);
        assert_bits_eq("forward_gpu_async", &out.to_vec().unwrap(), &want);
        let bad = IndexTensor::from_slice(gpu, &[1, 9, 2, 3]).unwrap();
        let r = pollster::block_on(emb.forward_gpu_async(&bad));
        assert!(
            matches!(
                r,
                Err(Error::IndexOutOfRange {
                    position: 1,
                    index: 9,
                    ..
                })
            ),
            "{r:?}"
        );
    });
}

/// As PyTorch, `norm_type` is read only with a `max_norm`: without one any
/// value is accepted; with one it must be positive (finite, or +∞).
#[test]
fn norm_type_matters_only_with_max_norm() {
    each_gpu(|gpu| {
        let no_max = EmbeddingOptions {
            norm_type: 0.0,
            ..EmbeddingOptions::default()
        };
        assert!(Embedding::with_options(gpu, 4, 2, no_max).is_ok());
        let with_max = EmbeddingOptions {
            norm_type: 0.0,
            max_norm: Some(1.0),
            ..EmbeddingOptions::default()
        };
        let r = Embedding::with_options(gpu, 4, 2, with_max).map(drop);
        assert!(
            matches!(
                r,
                Err(Error::InvalidArgument {
                    name: "norm_type",
                    ..
                })
            ),
            "{r:?}"
        );
    });
}
