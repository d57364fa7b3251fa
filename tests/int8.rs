//! Int8 row-wise tables (FBGEMM's fused 8-bit row-wise format): our
//! quantizer against PyTorch's FBGEMM prepack byte for byte, lookups and
//! every bag mode against their twins bit for bit on every adapter (tables
//! in one block and in several) and against FBGEMM's kernels (fixture
//! tests/data/int8.json, made by tests/data/make_int8_fixture.py), files,
//! and training calls refused with a typed error.

mod common;

use common::*;
use serde_json::Value;
use wgpu_embed::cpu::int8_rowwise::{self, Int8Rows};
use wgpu_embed::cpu::{self, BagMode};
use wgpu_embed::{DType, Embedding, EmbeddingBag, EmbeddingOptions, Error, Int8Tensor, Tensor};

fn fixture() -> Value {
    serde_json::from_str(include_str!("data/int8.json")).expect("tests/data/int8.json is JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// FBGEMM's kernels and ours both dequantize each value then add; they may
/// round a multiply-add once or twice: within a few ulps of the sums.
fn assert_near(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-6 * w.abs().max(1.0),
            "{what}: element {i} is {g}, FBGEMM's {w}"
        );
    }
}

#[test]
fn quantize_is_fbgemms_prepack_byte_for_byte() {
    for case in fixture()["cases"].as_array().unwrap() {
        let dim = case["dim"].as_u64().unwrap() as usize;
        let table = floats(&case["table"]);
        let packed: Vec<u8> = u32s(&case["packed"]).iter().map(|&b| b as u8).collect();
        assert_eq!(int8_rowwise::quantize(&table, dim), packed, "dim {dim}");
    }
}

#[test]
fn lookups_and_bags_match_the_twin_and_fbgemm() {
    for case in fixture()["cases"].as_array().unwrap() {
        let (rows, dim) = (
            case["rows"].as_u64().unwrap() as usize,
            case["dim"].as_u64().unwrap() as usize,
        );
        let packed: Vec<u8> = u32s(&case["packed"]).iter().map(|&b| b as u8).collect();
        let idx = u32s(&case["indices"]);
        let offsets = u32s(&case["offsets"]);
        let psw = floats(&case["per_sample_weights"]);
        let twin_rows = Int8Rows { fused: &packed };
        let mut csr = offsets.clone();
        csr.push(idx.len() as u32);
        let twin = |mode: BagMode, weights: Option<&[f32]>| {
            let bags = offsets.len();
            let (mut out, mut status, mut pos) =
                (vec![0.0; bags * dim], u32::MAX, vec![0u32; bags * dim]);
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
                &twin_rows,
                &mut out,
            );
            out
        };
        let mut want_lookup = vec![0.0; idx.len() * dim];
        let mut status = u32::MAX;
        cpu::embedding_gather(rows, dim, &idx, &mut status, &twin_rows, &mut want_lookup);
        assert_near(
            "twin lookup vs FBGEMM",
            &want_lookup,
            &floats(&case["lookup"]),
        );
        assert_near(
            "twin sum vs FBGEMM",
            &twin(BagMode::Sum, None),
            &floats(&case["sum"]),
        );
        assert_near(
            "twin weighted sum vs FBGEMM",
            &twin(BagMode::Sum, Some(&psw)),
            &floats(&case["weighted_sum"]),
        );
        each_gpu(|gpu| {
            for chunk_rows in [None, Some(4)] {
                let options = EmbeddingOptions {
                    dtype: DType::Int8,
                    chunk_bytes: chunk_rows.map(|r| r as u64 * DType::Int8.row_bytes(dim)),
                    ..EmbeddingOptions::default()
                };
                let emb =
                    Embedding::from_int8_with_options(gpu, &packed, rows, dim, options.clone())
                        .unwrap();
                let what = format!("dim {dim}, blocks of {chunk_rows:?} rows");
                assert_eq!(
                    emb.weight().num_blocks() > 1,
                    chunk_rows.is_some(),
                    "{what}"
                );
                assert_eq!(
                    emb.weight().to_int8_rowwise().unwrap().unwrap(),
                    packed,
                    "{what}"
                );
                let got = emb.forward(&idx).unwrap().to_vec().unwrap();
                assert_bits_eq(&format!("{what}: lookup vs twin"), &got, &want_lookup);
                for (mode, weights, name) in [
                    (BagMode::Sum, None, "sum"),
                    (BagMode::Mean, None, "mean"),
                    (BagMode::Max, None, "max"),
                    (BagMode::Sum, Some(&psw[..]), "weighted sum"),
                ] {
                    let table =
                        Embedding::from_int8_with_options(gpu, &packed, rows, dim, options.clone())
                            .unwrap();
                    let bag = EmbeddingBag::from_embedding(
                        table,
                        wgpu_embed::EmbeddingBagOptions {
                            mode,
                            ..Default::default()
                        },
                    );
                    let got = bag
                        .forward(&idx, &offsets, weights)
                        .unwrap()
                        .to_vec()
                        .unwrap();
                    assert_bits_eq(
                        &format!("{what}: {name} vs twin"),
                        &got,
                        &twin(mode, weights),
                    );
                }
            }
        });
    }
}

/// Shapes past the fixture: both kernel variants (dim % 4), a padding row,
/// long rows, one-row blocks; quantized from f32 by `quantize_int8`.
#[test]
fn quantize_int8_tables_match_the_twin_over_shapes() {
    for dim in [1, 3, 4, 5, 8, 17, 64, 130] {
        let rows = 50;
        let mut rng = Rng(dim as u64);
        let table = rng.floats(rows * dim);
        let idx: Vec<u32> = (0..200).map(|_| rng.below(rows) as u32).collect();
        let fused = int8_rowwise::quantize(&table, dim);
        let mut want = vec![0.0; idx.len() * dim];
        let mut status = u32::MAX;
        cpu::embedding_gather(
            rows,
            dim,
            &idx,
            &mut status,
            &Int8Rows { fused: &fused },
            &mut want,
        );
        each_gpu(|gpu| {
            let f32_table = Embedding::from_pretrained(gpu, &table, rows, dim, false).unwrap();
            let q = f32_table.quantize_int8().unwrap();
            assert_eq!(q.dtype(), DType::Int8);
            assert_eq!(
                q.weight().bytes(),
                (rows * (dim.div_ceil(4) + 2) * 4) as u64,
                "dim {dim}: codes padded to words, scale, bias"
            );
            let got = q.forward(&idx).unwrap().to_vec().unwrap();
            assert_bits_eq(&format!("dim {dim}: lookup"), &got, &want);
            // The same table made with dtype Int8 directly, in one-row blocks.
            let options = EmbeddingOptions {
                dtype: DType::Int8,
                // A block is allocated in whole 8-byte units.
                chunk_bytes: Some(DType::Int8.row_bytes(dim).next_multiple_of(8)),
                ..EmbeddingOptions::default()
            };
            let split =
                Embedding::from_pretrained_with_options(gpu, &table, rows, dim, options).unwrap();
            assert_eq!(split.weight().num_blocks(), rows);
            let got = split.forward(&idx).unwrap().to_vec().unwrap();
            assert_bits_eq(&format!("dim {dim}: lookup, one-row blocks"), &got, &want);
        });
    }
}

#[test]
fn int8_files_round_trip_and_bad_shapes_are_refused() {
    let dir = std::env::temp_dir().join(format!("wgpu-embed-int8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (rows, dim) = (9, 5);
    let table = data(rows * dim, 4);
    let fused = int8_rowwise::quantize(&table, dim);
    each_gpu(|gpu| {
        let emb = Embedding::from_int8_rowwise(gpu, &fused, rows, dim).unwrap();
        let st = dir.join("t.safetensors");
        let npy = dir.join("t.npy");
        emb.save_safetensors(&st, "emb").unwrap();
        emb.save_npy(&npy).unwrap();
        let int8 = EmbeddingOptions {
            dtype: DType::Int8,
            ..EmbeddingOptions::default()
        };
        for loaded in [
            Embedding::from_safetensors_with_options(gpu, &st, "emb", int8.clone()).unwrap(),
            Embedding::from_npy_with_options(gpu, &npy, int8.clone()).unwrap(),
        ] {
            assert_eq!((loaded.num_embeddings(), loaded.dim()), (rows, dim));
            assert_eq!(loaded.weight().to_int8_rowwise().unwrap().unwrap(), fused);
        }
        // Loaded as the file's dtype by default; asked for f32, dequantized.
        assert_eq!(
            Embedding::from_npy(gpu, &npy, true).unwrap().dtype(),
            DType::Int8
        );
        let f32_options = EmbeddingOptions {
            freeze: true,
            ..EmbeddingOptions::default()
        };
        let wide = Embedding::from_npy_with_options(gpu, &npy, f32_options).unwrap();
        assert_eq!(wide.dtype(), DType::F32);
        assert_bits_eq(
            "dequantized on load",
            &wide.weight().to_vec().unwrap(),
            &int8_rowwise::dequantize(&fused, dim),
        );
    });
    // u8 rows too short to hold a scale and a bias.
    let short = dir.join("short.npy");
    use npyz::WriterBuilder;
    let mut w = npyz::WriteOptions::<u8>::new()
        .default_dtype()
        .shape(&[3, 8])
        .writer(std::io::BufWriter::new(
            std::fs::File::create(&short).unwrap(),
        ))
        .begin_nd()
        .unwrap();
    w.extend(vec![0u8; 24]).unwrap();
    w.finish().unwrap();
    let gpu = &gpus()[0];
    assert!(matches!(
        Embedding::from_npy(gpu, &short, true),
        Err(Error::FileShape { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn training_an_int8_table_is_a_typed_error_and_changes_nothing() {
    each_gpu(|gpu| {
        let (rows, dim) = (6, 4);
        let table = data(rows * dim, 2);
        let options = EmbeddingOptions {
            dtype: DType::Int8,
            ..EmbeddingOptions::default()
        };
        let mut emb =
            Embedding::from_pretrained_with_options(gpu, &table, rows, dim, options).unwrap();
        let before = emb.weight().to_int8_rowwise().unwrap().unwrap();
        let g = Tensor::from_slice(gpu, &[0.5; 8], &[2, dim]).unwrap();
        let dtype_error = |r: wgpu_embed::Result<()>| matches!(r, Err(Error::InvalidArgument { name: "dtype", ref reason }) if reason.contains("int8"));
        assert!(dtype_error(emb.backward(&[1, 2], &g).map(|_| ())));
        assert!(dtype_error(emb.backward_sgd(&[1, 2], &g, 0.1)));
        let mut state = emb.adagrad_state().unwrap();
        assert!(dtype_error(emb.backward_adagrad(
            &[1, 2],
            &g,
            &mut state,
            0.1,
            1e-8
        )));
        // Adam refuses the table when its state is made.
        assert!(dtype_error(emb.adam_state().map(drop)));
        // The usual int8 tables are frozen as well: the dtype is what is named.
        let quantized = Embedding::from_pretrained(gpu, &table, rows, dim, false)
            .unwrap()
            .quantize_int8()
            .unwrap();
        assert!(dtype_error(quantized.backward(&[1, 2], &g).map(|_| ())));
        assert!(matches!(
            Embedding::from_pretrained_with_options(
                gpu,
                &table,
                rows,
                dim,
                EmbeddingOptions {
                    dtype: DType::Int8,
                    max_norm: Some(1.0),
                    ..EmbeddingOptions::default()
                }
            ),
            Err(Error::InvalidArgument {
                name: "max_norm",
                ..
            })
        ));
        assert_eq!(emb.weight().to_int8_rowwise().unwrap().unwrap(), before);
    });
}

/// Rows int8 row-wise cannot hold (a NaN, an infinity, or values whose
/// max − min overflows f32: FBGEMM's min and max skip a NaN, and an
/// infinite scale or bias makes the whole row NaN) are refused with an error
/// that names the table's row, in a table of one block and of one-row
/// blocks, by every path that quantizes: the constructors, `set_weight`,
/// `Int8Tensor::write`, and `quantize_int8` of an f32 table. Nothing is
/// written.
#[test]
fn rows_int8_cannot_hold_are_refused_by_row() {
    let (rows, dim) = (6, 3);
    let good: Vec<f32> = (0..rows * dim).map(|i| i as f32 * 0.25 - 2.0).collect();
    let refused = |what: &str, row: usize, r: wgpu_embed::Result<()>| match &r {
        Err(Error::InvalidArgument {
            name: "int8 row-wise data",
            reason,
        }) if reason.starts_with(&format!("row {row}:")) => {}
        _ => panic!("{what}: want row {row} refused, got {r:?}"),
    };
    each_gpu(|gpu| {
        for (bad_row, values) in [
            (4, [1.0, f32::NAN, 2.0]),
            (1, [f32::INFINITY, 0.0, 0.0]),
            (5, [-0.0, f32::NEG_INFINITY, 1.0]),
            (3, [-3e38, 0.0, 3e38]),
        ] {
            let mut bad = good.clone();
            bad[bad_row * dim..(bad_row + 1) * dim].copy_from_slice(&values);
            let what = format!("row {bad_row} = {values:?}");
            let r = Int8Tensor::quantize(gpu, &bad, [rows, dim]).map(drop);
            refused(&format!("Int8Tensor::quantize, {what}"), bad_row, r);
            let tensor = Int8Tensor::quantize(gpu, &good, [rows, dim]).unwrap();
            let before = tensor.to_fused_vec().unwrap();
            refused(
                &format!("Int8Tensor::write, {what}"),
                bad_row,
                tensor.write(&bad),
            );
            assert_eq!(tensor.to_fused_vec().unwrap(), before, "{what}");
            for one_row_blocks in [false, true] {
                let options = EmbeddingOptions {
                    dtype: DType::Int8,
                    chunk_bytes: one_row_blocks
                        .then(|| DType::Int8.row_bytes(dim).next_multiple_of(8)),
                    ..EmbeddingOptions::default()
                };
                let what = format!("{what}, one-row blocks {one_row_blocks}");
                let r =
                    Embedding::from_pretrained_with_options(gpu, &bad, rows, dim, options.clone());
                refused(&format!("int8 table of {what}"), bad_row, r.map(drop));
                let mut emb =
                    Embedding::from_pretrained_with_options(gpu, &good, rows, dim, options)
                        .unwrap();
                assert_eq!(
                    emb.weight().blocks().len(),
                    if one_row_blocks { rows } else { 1 }
                );
                let before = emb.weight().to_int8_rowwise().unwrap();
                refused(
                    &format!("set_weight, {what}"),
                    bad_row,
                    emb.set_weight(&bad),
                );
                assert_eq!(emb.weight().to_int8_rowwise().unwrap(), before, "{what}");
                let f32_table = Embedding::from_pretrained(gpu, &bad, rows, dim, false).unwrap();
                let r = f32_table.quantize_int8().map(drop);
                refused(&format!("quantize_int8, {what}"), bad_row, r);
            }
        }
    });
}

/// The public constructors take any shape: one whose rows would pass every
/// buffer is a typed error before any host copy (its `dim + 8` row once
/// wrapped to a byte, and the conversion then asked for 2^62 words).
#[test]
fn int8_tensors_of_huge_shapes_are_typed_errors() {
    each_gpu(|gpu| {
        for shape in [[1, usize::MAX - 6], [2, usize::MAX / 2], [usize::MAX, 4]] {
            let r = Int8Tensor::from_fused(gpu, &[0u8], shape);
            assert!(
                matches!(r, Err(Error::TooLarge { .. })),
                "{shape:?}: {:?}",
                r.err()
            );
            let r = Int8Tensor::quantize(gpu, &[], shape);
            assert!(
                matches!(r, Err(Error::TooLarge { .. })),
                "{shape:?}: {:?}",
                r.err()
            );
        }
        // No rows: nothing to hold, whatever the width.
        let empty = Int8Tensor::quantize(gpu, &[], [0, usize::MAX]);
        assert!(empty.is_ok(), "{:?}", empty.err());
        // A right shape still round-trips through the fused bytes.
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let fused = int8_rowwise::quantize(&data, 4);
        let t = Int8Tensor::from_fused(gpu, &fused, [3, 4]).unwrap();
        assert_eq!(t.to_fused_vec().unwrap(), fused);
    });
}

/// An int8 table's padding row is quantized and written alone: it reads
/// back as zeros, and every other row keeps the codes, scale and bias of
/// the same seed's table without one (in one block and in one-row blocks).
#[test]
fn an_int8_padding_row_is_written_alone() {
    each_gpu(|gpu| {
        for dim in [1, 3, 4, 5] {
            let rows = 7;
            for one_row_blocks in [false, true] {
                let options = EmbeddingOptions {
                    dtype: DType::Int8,
                    seed: Some(11),
                    chunk_bytes: one_row_blocks
                        .then(|| DType::Int8.row_bytes(dim).next_multiple_of(8)),
                    ..EmbeddingOptions::default()
                };
                let plain = Embedding::with_options(gpu, rows, dim, options.clone()).unwrap();
                let padded = EmbeddingOptions {
                    padding_idx: Some(2),
                    ..options
                };
                let emb = Embedding::with_options(gpu, rows, dim, padded).unwrap();
                let what = format!("dim {dim}, one-row blocks {one_row_blocks}");
                let (want, got) = (
                    plain.weight().to_int8_rowwise().unwrap().unwrap(),
                    emb.weight().to_int8_rowwise().unwrap().unwrap(),
                );
                let stride = int8_rowwise::fused_row_bytes(dim);
                for r in 0..rows {
                    let row = &got[r * stride..(r + 1) * stride];
                    if r == 2 {
                        assert_eq!(
                            row,
                            &int8_rowwise::quantize(&vec![0.0; dim], dim)[..],
                            "{what}"
                        );
                    } else {
                        assert_eq!(row, &want[r * stride..(r + 1) * stride], "{what}: row {r}");
                    }
                }
                let zeros = emb.weight().rows_to_vec(2, 1).unwrap();
                assert!(zeros.iter().all(|&x| x == 0.0), "{what}: {zeros:?}");
            }
        }
    });
}
