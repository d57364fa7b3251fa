//! Tables from and to safetensors and .npy files, f32 and f16, on every
//! adapter: NumPy-written fixtures (tests/data, made by make_fixtures.py),
//! save → load round trips bit for bit, and every bad file as a typed error.

mod common;

use std::path::PathBuf;

use common::{assert_bits_eq, each_gpu};
use half::f16;
use wgpu_embed::{
    BagMode, DType, Embedding, EmbeddingBag, EmbeddingBagOptions, EmbeddingOptions, Error,
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// A fresh path under the system temp folder, unique per test and call.
fn scratch(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!("wgpu-embed-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{}-{name}", N.fetch_add(1, Ordering::Relaxed)))
}

/// What make_fixtures.py writes: w[i, j] = (i * 7 + j) * 0.25 - 3, 6 × 5.
/// A version-1 `.npy` file: `dict` as its header (padded to 64 bytes, as
/// NumPy pads it), then `data`.
fn npy_file(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.as_bytes().to_vec();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut file = b"\x93NUMPY\x01\x00".to_vec();
    file.extend((header.len() as u16).to_le_bytes());
    file.extend(header);
    file.extend(data);
    file
}

fn fixture_values() -> Vec<f32> {
    (0..6)
        .flat_map(|i| (0..5).map(move |j| (i * 7 + j) as f32 * 0.25 - 3.0))
        .collect()
}

#[test]
fn numpy_written_fixtures_load() {
    let want = fixture_values();
    each_gpu(|gpu| {
        for (file, dtype) in [
            ("table_f32.npy", DType::F32),
            ("table_f16.npy", DType::F16),
            ("table_f32_fortran.npy", DType::F32),
            ("table_f32_bigendian.npy", DType::F32),
        ] {
            let emb = Embedding::from_npy(gpu, data(file), true).unwrap();
            assert_eq!(
                (emb.num_embeddings(), emb.dim(), emb.dtype()),
                (6, 5, dtype)
            );
            assert_bits_eq(file, &emb.weight().to_vec().unwrap(), &want);
            // The lookup reads the table in its own dtype.
            let rows = emb.forward(&[5, 0]).unwrap().to_vec().unwrap();
            assert_bits_eq(file, &rows, &[&want[25..], &want[..5]].concat());
        }
        for (name, dtype) in [("weight", DType::F32), ("weight_f16", DType::F16)] {
            let path = data("tables.safetensors");
            let emb = Embedding::from_safetensors(gpu, &path, name, false).unwrap();
            assert_eq!(emb.dtype(), dtype);
            assert_bits_eq(name, &emb.weight().to_vec().unwrap(), &want);
        }
        // The dtype on disk need not be the table's.
        let opts = EmbeddingOptions {
            dtype: DType::F16,
            ..Default::default()
        };
        let emb = Embedding::from_npy_with_options(gpu, data("table_f32.npy"), opts).unwrap();
        assert_eq!(emb.dtype(), DType::F16);
        assert_bits_eq(
            "f32 file, f16 table",
            &emb.weight().to_vec().unwrap(),
            &want,
        );
        let bag = EmbeddingBag::from_safetensors(
            gpu,
            data("tables.safetensors"),
            "weight_f16",
            true,
            EmbeddingBagOptions {
                mode: BagMode::Sum,
                include_last_offset: false,
            },
        )
        .unwrap();
        let sum = bag.forward(&[1, 2], &[0], None).unwrap().to_vec().unwrap();
        let by_hand: Vec<f32> = (0..5).map(|j| want[5 + j] + want[10 + j]).collect();
        assert_bits_eq("bag from file", &sum, &by_hand);
    });
}

#[test]
fn save_then_load_round_trips_both_formats_and_dtypes() {
    each_gpu(|gpu| {
        for dtype in [DType::F32, DType::F16] {
            for dim in [1, 5, 8] {
                let rows = 11;
                let opts = EmbeddingOptions {
                    dtype,
                    seed: Some(3),
                    ..Default::default()
                };
                let emb = Embedding::with_options(gpu, rows, dim, opts).unwrap();
                let want = emb.weight().to_vec().unwrap();
                let what = format!("{dtype:?} dim={dim}");

                let st = scratch("t.safetensors");
                emb.save_safetensors(&st, "emb.weight").unwrap();
                let back = Embedding::from_safetensors(gpu, &st, "emb.weight", true).unwrap();
                assert_eq!(back.dtype(), dtype, "{what}");
                assert_eq!((back.num_embeddings(), back.dim()), (rows, dim));
                assert_bits_eq(&what, &back.weight().to_vec().unwrap(), &want);

                let npy = scratch("t.npy");
                emb.save_npy(&npy).unwrap();
                let back = Embedding::from_npy(gpu, &npy, true).unwrap();
                assert_eq!(back.dtype(), dtype, "{what}");
                assert_bits_eq(&what, &back.weight().to_vec().unwrap(), &want);
                if dtype == DType::F16 {
                    assert_eq!(back.weight().dtype(), DType::F16);
                    let h = back.weight().to_f16_vec().unwrap();
                    let w: Vec<f16> = want.iter().map(|&x| f16::from_f32(x)).collect();
                    assert_eq!(h, w, "{what}: the f16 bits survive");
                }
                let _ = std::fs::remove_file(st);
                let _ = std::fs::remove_file(npy);
            }
        }
    });
}

#[test]
fn bad_files_are_typed_errors_naming_expected_and_found() {
    each_gpu(|gpu| {
        let st = data("tables.safetensors");
        match Embedding::from_safetensors(gpu, &st, "nope", true).err() {
            Some(Error::TensorNotFound {
                name, available, ..
            }) => {
                assert_eq!(name, "nope");
                assert_eq!(available, "bias, ids, weight, weight_f16");
            }
            other => panic!("expected TensorNotFound, got {other:?}"),
        }
        match Embedding::from_safetensors(gpu, &st, "bias", true).err() {
            Some(Error::FileShape { found, .. }) => assert_eq!(found, [5]),
            other => panic!("expected FileShape, got {other:?}"),
        }
        let e = Embedding::from_safetensors(gpu, &st, "ids", true)
            .err()
            .expect("an I64 tensor is refused");
        assert!(
            matches!(&e, Error::FileDType { found, .. } if found == "I64"),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .contains("expected F32, F16, BF16 or F64, or U8"),
            "{e}"
        );

        match Embedding::from_npy(gpu, data("bad_3d.npy"), true).err() {
            Some(Error::FileShape { found, .. }) => assert_eq!(found, [6, 5, 1]),
            other => panic!("expected FileShape, got {other:?}"),
        }
        match Embedding::from_npy(gpu, data("bad_int.npy"), true).err() {
            Some(Error::FileDType { found, .. }) => assert_eq!(found, "<i4"),
            other => panic!("expected FileDType, got {other:?}"),
        }

        // Truncated files: the header promises more than the file holds.
        let bytes = std::fs::read(data("table_f32.npy")).unwrap();
        let cut = scratch("cut.npy");
        std::fs::write(&cut, &bytes[..bytes.len() - 8]).unwrap();
        assert!(matches!(
            Embedding::from_npy(gpu, &cut, true).err(),
            Some(Error::FileSize {
                expected: 120,
                found: 112,
                ..
            })
        ));
        let bytes = std::fs::read(&st).unwrap();
        let cut_st = scratch("cut.safetensors");
        std::fs::write(&cut_st, &bytes[..bytes.len() - 4]).unwrap();
        match Embedding::from_safetensors(gpu, &cut_st, "weight", true).err() {
            Some(Error::FileSize {
                expected, found, ..
            }) => assert_eq!(expected, found + 4),
            other => panic!("expected FileSize, got {other:?}"),
        }
        std::fs::write(&cut, b"not a numpy file").unwrap();
        assert!(matches!(
            Embedding::from_npy(gpu, &cut, true),
            Err(Error::File { .. })
        ));
        assert!(matches!(
            Embedding::from_npy(gpu, data("missing.npy"), true),
            Err(Error::File { .. })
        ));
        // A crafted Fortran-order header whose element count wraps in 64
        // bits, with 8 bytes of data: a typed error, not a panic in the transpose.
        for shape in ["(9223372036854775809, 2)", "(4611686018427387905, 4)"] {
            let dict = format!("{{'descr': '<f4', 'fortran_order': True, 'shape': {shape}, }}");
            std::fs::write(&cut, npy_file(&dict, &[0; 8])).unwrap();
            match Embedding::from_npy(gpu, &cut, true) {
                Err(Error::FileShape { .. } | Error::FileSize { .. }) => {}
                other => panic!(
                    "{shape}: expected FileShape or FileSize, got {:?}",
                    other.err()
                ),
            }
        }
        // Found by fuzz/npy: a shape whose product passes 64 bits made npyz's
        // own element count overflow (a panic where overflow checks are on).
        // Refused before npyz parses the header, naming the shape.
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (6666666666666666666, 5), }";
        std::fs::write(&cut, npy_file(dict, &[0; 8])).unwrap();
        match Embedding::from_npy(gpu, &cut, true) {
            Err(Error::FileShape {
                expected, found, ..
            }) if expected.contains("multiply within 64 bits") => {
                assert_eq!(found, [6_666_666_666_666_666_666, 5]);
            }
            other => panic!("expected FileShape, got {:?}", other.err()),
        }
        // Found by fuzz/npy: a descr of deeply nested brackets kept npyz's
        // header parser busy for minutes. Now a typed error at once.
        let nested = format!(
            "{{'descr': {}'<i4', 'fortran_order': False, 'shape': (6, 5), }}",
            "[".repeat(70)
        );
        std::fs::write(&cut, npy_file(&nested, &[])).unwrap();
        let started = std::time::Instant::now();
        let r = Embedding::from_npy(gpu, &cut, true);
        assert!(matches!(r, Err(Error::FileDType { .. })), "{:?}", r.err());
        assert!(
            started.elapsed().as_secs() < 5,
            "took {:?}",
            started.elapsed()
        );
        // A shape npyz would evaluate but this check could not bound (hex,
        // a sum): refused, not left to npyz's unchecked product.
        for shape in ["(0x100000000, 0x100000000)", "(4294967296+0, 4294967296)"] {
            let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
            std::fs::write(&cut, npy_file(&dict, &[0; 8])).unwrap();
            match Embedding::from_npy(gpu, &cut, true) {
                Err(Error::File { reason, .. }) => {
                    assert!(reason.contains("decimal integers"), "{shape}: {reason}")
                }
                other => panic!("{shape}: expected File, got {:?}", other.err()),
            }
        }
        // A version-2 header declaring 4 GiB in a 12-byte file: refused at
        // once (npyz allocated the declared length before reading it).
        std::fs::write(&cut, b"\x93NUMPY\x02\x00\xff\xff\xff\xff").unwrap();
        match Embedding::from_npy(gpu, &cut, true) {
            Err(Error::File { reason, .. }) => assert!(
                reason.contains("4294967295 bytes from byte 12, past the file's 12 bytes"),
                "{reason}"
            ),
            other => panic!("expected File, got {:?}", other.err()),
        }
        let _ = std::fs::remove_file(cut);
        let _ = std::fs::remove_file(cut_st);
    });
}

/// A save replaces the file whole: over an old file it leaves the new
/// table; one that fails (here the path is a directory) leaves what was
/// there and no partial file beside it.
#[test]
fn saves_replace_the_file_whole_or_not_at_all() {
    each_gpu(|gpu| {
        let values = fixture_values();
        let emb = Embedding::from_pretrained(gpu, &values, 6, 5, true).unwrap();
        let other: Vec<f32> = values.iter().map(|v| v + 1.0).collect();
        let newer = Embedding::from_pretrained(gpu, &other, 6, 5, true).unwrap();
        let npy = scratch("replace.npy");
        let st = scratch("replace.safetensors");
        emb.save_npy(&npy).unwrap();
        emb.save_safetensors(&st, "weight").unwrap();
        newer.save_npy(&npy).unwrap();
        newer.save_safetensors(&st, "weight").unwrap();
        let back = Embedding::from_npy(gpu, &npy, true).unwrap();
        assert_eq!(back.weight().to_vec().unwrap(), other);
        let back = Embedding::from_safetensors(gpu, &st, "weight", true).unwrap();
        assert_eq!(back.weight().to_vec().unwrap(), other);
        let dir = scratch("a-directory");
        std::fs::create_dir_all(dir.join("kept")).unwrap();
        for r in [emb.save_npy(&dir), emb.save_safetensors(&dir, "weight")] {
            assert!(matches!(r, Err(Error::File { .. })), "{r:?}");
        }
        assert!(dir.join("kept").is_dir(), "the directory is untouched");
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let left: Vec<String> = std::fs::read_dir(dir.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&name) && f.ends_with(".partial"))
            .collect();
        assert!(left.is_empty(), "partial files left: {left:?}");
        for f in [npy, st] {
            let _ = std::fs::remove_file(f);
        }
        let _ = std::fs::remove_dir_all(dir);
    });
}

/// A save through a symlink replaces the file the link names and leaves the
/// link a link; the replaced file keeps its permissions.
#[cfg(unix)]
#[test]
fn saves_follow_symlinks_and_keep_permissions() {
    use std::os::unix::fs::PermissionsExt;
    each_gpu(|gpu| {
        let values = fixture_values();
        let emb = Embedding::from_pretrained(gpu, &values, 6, 5, true).unwrap();
        for npy in [true, false] {
            let file = scratch("linked-target");
            let link = scratch("the-link");
            std::fs::write(&file, b"old").unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
            std::os::unix::fs::symlink(&file, &link).unwrap();
            match npy {
                true => emb.save_npy(&link).unwrap(),
                false => emb.save_safetensors(&link, "weight").unwrap(),
            }
            let meta = std::fs::symlink_metadata(&link).unwrap();
            assert!(
                meta.file_type().is_symlink(),
                "the link was replaced by a file"
            );
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o640, "the file's permissions changed");
            let back = match npy {
                true => Embedding::from_npy(gpu, &file, true).unwrap(),
                false => Embedding::from_safetensors(gpu, &file, "weight", true).unwrap(),
            };
            assert_eq!(back.weight().to_vec().unwrap(), values);
            // A plain file keeps its mode too; a read-only one is refused
            // and left as it was, as an in-place write would leave it.
            let plain = scratch("plain");
            std::fs::write(&plain, b"old").unwrap();
            std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o600)).unwrap();
            let save = |path: &std::path::Path| match npy {
                true => emb.save_npy(path),
                false => emb.save_safetensors(path, "weight"),
            };
            save(&plain).unwrap();
            let mode = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "the plain file's permissions changed");
            std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o444)).unwrap();
            // Whether this process may write it in place (root may): the
            // save does exactly what that write could.
            let writable = std::fs::OpenOptions::new().write(true).open(&plain).is_ok();
            let before = std::fs::read(&plain).unwrap();
            let r = save(&plain);
            if writable {
                r.unwrap();
            } else {
                assert!(matches!(r, Err(Error::File { .. })), "{r:?}");
                assert_eq!(
                    std::fs::read(&plain).unwrap(),
                    before,
                    "a read-only file changed"
                );
            }
            // A new file gets what a plain create gives it (the umask's
            // mode; safetensors' own temporary file was owner-only).
            let new = scratch("new-file");
            let _ = std::fs::remove_file(&new);
            let probe = scratch("probe");
            std::fs::File::create(&probe).unwrap();
            save(&new).unwrap();
            let mode =
                |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&new), mode(&probe), "a new file's permissions");
            for f in [link, file, plain, new, probe] {
                let _ = std::fs::remove_file(f);
            }
        }
    });
}

/// What most checkpoints and NumPy hold: BF16 and F64 safetensors, `<f8`
/// and `>f8` npy (NumPy's default float) load as f32 tables: bf16 widened
/// exactly, f64 rounded once to the nearest f32 (as `tensor.float()`).
#[test]
fn bf16_and_f64_files_load_as_f32() {
    use safetensors::tensor::{Dtype, TensorView};
    // f64 values most of which no f32 holds: each must round once.
    let wide: Vec<f64> = fixture_values().iter().map(|&v| v as f64 + 0.1).collect();
    let rounded: Vec<f32> = wide.iter().map(|&v| v as f32).collect();
    assert!(wide.iter().zip(&rounded).any(|(&w, &r)| r as f64 != w));
    let halves: Vec<half::bf16> = wide.iter().map(|&v| half::bf16::from_f64(v)).collect();
    let widened: Vec<f32> = halves.iter().map(|h| h.to_f32()).collect();
    let f64_bytes: Vec<u8> = wide.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bf16_bytes: Vec<u8> = halves.iter().flat_map(|v| v.to_le_bytes()).collect();
    let st = scratch("wide.safetensors");
    let views = [
        (
            "w64",
            TensorView::new(Dtype::F64, vec![6, 5], &f64_bytes).unwrap(),
        ),
        (
            "wbf16",
            TensorView::new(Dtype::BF16, vec![6, 5], &bf16_bytes).unwrap(),
        ),
    ];
    safetensors::tensor::serialize_to_file(views, None, &st).unwrap();
    let le = scratch("wide-le.npy");
    let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (6, 5), }";
    std::fs::write(&le, npy_file(dict, &f64_bytes)).unwrap();
    let be = scratch("wide-be.npy");
    let be_bytes: Vec<u8> = wide.iter().flat_map(|v| v.to_be_bytes()).collect();
    let dict = "{'descr': '>f8', 'fortran_order': False, 'shape': (6, 5), }";
    std::fs::write(&be, npy_file(dict, &be_bytes)).unwrap();
    each_gpu(|gpu| {
        for (what, emb, want) in [
            (
                "F64",
                Embedding::from_safetensors(gpu, &st, "w64", true),
                &rounded,
            ),
            (
                "BF16",
                Embedding::from_safetensors(gpu, &st, "wbf16", true),
                &widened,
            ),
            ("<f8", Embedding::from_npy(gpu, &le, true), &rounded),
            (">f8", Embedding::from_npy(gpu, &be, true), &rounded),
        ] {
            let emb = emb.unwrap();
            assert_eq!(
                (emb.num_embeddings(), emb.dim(), emb.dtype()),
                (6, 5, DType::F32),
                "{what}"
            );
            assert_bits_eq(what, &emb.weight().to_vec().unwrap(), want);
        }
    });
    for f in [st, le, be] {
        let _ = std::fs::remove_file(f);
    }
}
