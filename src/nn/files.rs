//! Embedding tables from and to files: safetensors (the `safetensors` crate)
//! and NumPy `.npy` (the `npyz` crate): f32, f16, or an int8 row-wise table
//! as `[rows, dim + 8]` bytes; bf16 and f64 files load as f32 (bf16 widened
//! exactly, f64 rounded once). Files are memory-mapped and converted once
//! into the host copy that is uploaded (plus a transpose for Fortran order,
//! or a conversion where `options.dtype` differs from the file's).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use half::f16;
use npyz::WriterBuilder;
use safetensors::tensor::{Dtype as StDtype, SafeTensorError, SafeTensors, TensorView};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::{Embedding, EmbeddingOptions};
use crate::tensor::DType;

const EXPECTED_DTYPE: &str = "F32, F16, BF16 or F64, or U8 rows of dim + 8 bytes (int8 \
     row-wise) (npy: '<f4', '<f2', '<f8' or '|u1')";
const EXPECTED_SHAPE: &str = "2-D [num_embeddings, dim]";

/// A table as read from disk, in the file's element type.
enum Values {
    F32(Vec<f32>),
    F16(Vec<f16>),
    /// Int8 row-wise rows in FBGEMM's layout (`dim + 8` bytes each).
    Int8(Vec<u8>),
}

struct Loaded {
    values: Values,
    rows: usize,
    dim: usize,
}

fn shown(path: &Path) -> String {
    path.display().to_string()
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::File {
        path: shown(path),
        reason: reason.to_string(),
    }
}

/// Maps `path` read-only. Safety: the mapping is read while we hold it; a
/// file truncated or rewritten by another process meanwhile is undefined
/// behaviour, the usual caveat of every memory-mapped reader (safetensors'
/// own loaders included).
fn map(path: &Path) -> Result<memmap2::Mmap> {
    let file = File::open(path).map_err(|e| file_error(path, e))?;
    // SAFETY: see above; we only read, and only while `file` is not being modified by us.
    unsafe { memmap2::Mmap::map(&file) }.map_err(|e| file_error(path, e))
}

fn two_d(path: &Path, tensor: &str, shape: &[u64]) -> Result<(usize, usize)> {
    let bad = || Error::FileShape {
        path: shown(path),
        tensor: tensor.to_string(),
        expected: EXPECTED_SHAPE,
        found: shape.to_vec(),
    };
    match shape {
        [rows, dim] => Ok((
            usize::try_from(*rows).map_err(|_| bad())?,
            usize::try_from(*dim).map_err(|_| bad())?,
        )),
        _ => Err(bad()),
    }
}

fn read_safetensors(path: &Path, name: &str) -> Result<Loaded> {
    let map = map(path)?;
    let tensors = SafeTensors::deserialize(&map).map_err(|e| match e {
        SafeTensorError::MetadataIncompleteBuffer => size_error(path, &map),
        other => file_error(path, format!("not a valid safetensors file: {other}")),
    })?;
    let view = tensors.tensor(name).map_err(|e| match e {
        SafeTensorError::TensorNotFound(_) => {
            let mut names = tensors.names();
            names.sort();
            Error::TensorNotFound {
                path: shown(path),
                name: name.to_string(),
                available: if names.is_empty() {
                    "no tensors".into()
                } else {
                    names.join(", ")
                },
            }
        }
        other => file_error(path, other),
    })?;
    let shape: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
    let (rows, mut dim) = two_d(path, name, &shape)?;
    let bytes = view.data();
    let values = match view.dtype() {
        StDtype::U8 => {
            dim = int8_dim(path, name, &shape)?;
            Values::Int8(host_collect(
                "int8 table from the file",
                bytes.len(),
                bytes.iter().copied(),
            )?)
        }
        // safetensors stores little-endian whatever the host.
        StDtype::F32 => Values::F32(from_le(
            "f32 table from the file",
            bytes,
            f32::from_le_bytes,
        )?),
        StDtype::F16 => Values::F16(from_le(
            "f16 table from the file",
            bytes,
            f16::from_le_bytes,
        )?),
        // Most checkpoints: widened to f32 exactly (bf16 is f32's top half).
        StDtype::BF16 => Values::F32(from_le(
            "bf16 table from the file, widened to f32",
            bytes,
            |b| half::bf16::from_le_bytes(b).to_f32(),
        )?),
        // Rounded once to the nearest f32, as `tensor.float()`.
        StDtype::F64 => Values::F32(from_le(
            "f64 table from the file, rounded to f32",
            bytes,
            |b| f64::from_le_bytes(b) as f32,
        )?),
        other => {
            return Err(Error::FileDType {
                path: shown(path),
                tensor: name.to_string(),
                expected: EXPECTED_DTYPE,
                found: format!("{other:?}"),
            })
        }
    };
    Ok(Loaded { values, rows, dim })
}

/// The crate only says the data does not match the header; read the header
/// ourselves to say by how much.
fn size_error(path: &Path, file: &[u8]) -> Error {
    let declared = || -> Option<(u64, u64)> {
        let n = u64::from_le_bytes(file.get(..8)?.try_into().ok()?);
        let header_end = 8usize.checked_add(usize::try_from(n).ok()?)?;
        let header: serde_json::Value = serde_json::from_slice(file.get(8..header_end)?).ok()?;
        let end = header
            .as_object()?
            .iter()
            .filter(|(k, _)| k.as_str() != "__metadata__")
            .filter_map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
            .max()
            .unwrap_or(0);
        Some((end, (file.len() - header_end) as u64))
    };
    match declared() {
        Some((expected, found)) => Error::FileSize {
            path: shown(path),
            expected,
            found,
        },
        None => file_error(path, "the data does not match the header's offsets"),
    }
}

/// Refuses, before npyz parses it, a header this loader could never accept
/// and that npyz's parser takes exponential time on: brackets nested deep
/// inside (a structured dtype, or a crafted one; found by `fuzz/npy`). A
/// plain float array's header holds one `{`, one `(` (the shape) and no `[`.
fn check_npy_header(path: &Path, file: &[u8]) -> Result<()> {
    if !file.starts_with(b"\x93NUMPY") {
        return Ok(()); // not a .npy file at all: npyz says so
    }
    let header = || -> Option<(usize, usize)> {
        Some(match *file.get(6)? {
            1 => (
                10,
                u16::from_le_bytes(file.get(8..10)?.try_into().ok()?) as usize,
            ),
            _ => (
                12,
                u32::from_le_bytes(file.get(8..12)?.try_into().ok()?) as usize,
            ),
        })
    };
    let Some((start, len)) = header() else {
        return Ok(()); // too short to hold a header: npyz says what is wrong
    };
    // npyz allocates the declared length before reading it: up to 4 GiB
    // for a 12-byte file.
    let end = start.saturating_add(len);
    if end > file.len() {
        return Err(file_error(
            path,
            format_args!(
                "the header declares {len} bytes from byte {start}, past the file's {} bytes",
                file.len()
            ),
        ));
    }
    let header = &file[start..end];
    let count = |c: u8| header.iter().filter(|&&b| b == c).count();
    if count(b'[') > 0 || count(b'(') > 1 || count(b'{') > 1 {
        return Err(Error::FileDType {
            path: shown(path),
            tensor: "array".into(),
            expected: EXPECTED_DTYPE,
            found: "a structured or nested dtype header".into(),
        });
    }
    check_npy_shape(path, header)
}

/// Refuses, before npyz parses it, a shape whose dimensions (the zeros left
/// out) multiply past 64 bits: npyz multiplies them unchecked, which panics
/// where overflow checks are on (debug builds, `fuzz/npy`) and wraps where
/// they are off. NumPy writes the shape as a tuple of decimal integers; a
/// dimension written any other way (hex, `2**40`, `1_0`, which npyz's
/// parser evaluates) is refused too, as this check could not bound it.
fn check_npy_shape(path: &Path, header: &[u8]) -> Result<()> {
    let text = String::from_utf8_lossy(header);
    let Some(tuple) = text
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inside, _)| inside)
    else {
        return Ok(());
    };
    let words: Vec<&str> = tuple
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        // Python 2's NumPy wrote longs as `3L`.
        .map(|d| d.trim_end_matches(['L', 'l']))
        .collect();
    let decimal = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let dims: Option<Vec<u64>> = words
        .iter()
        .map(|d| decimal(d).then(|| d.parse().ok()).flatten())
        .collect();
    let Some(dims) = dims else {
        return Err(file_error(
            path,
            format_args!(
                "the shape ({}) is not a tuple of decimal integers, as NumPy writes it",
                tuple.chars().take(60).collect::<String>()
            ),
        ));
    };
    let fits = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .is_some();
    if fits {
        return Ok(());
    }
    Err(Error::FileShape {
        path: shown(path),
        tensor: "array".into(),
        expected: "a shape whose dimensions multiply within 64 bits",
        found: dims,
    })
}

/// The `dim` of an int8 row-wise table stored as `[rows, dim + 8]` bytes.
fn int8_dim(path: &Path, tensor: &str, shape: &[u64]) -> Result<usize> {
    match shape {
        [_, cols] if *cols > 8 => Ok((*cols - 8) as usize),
        _ => Err(Error::FileShape {
            path: shown(path),
            tensor: tensor.to_string(),
            expected: "[rows, dim + 8] bytes: an int8 row-wise table (codes, f32 scale, f32 bias)",
            found: shape.to_vec(),
        }),
    }
}

fn read_npy(path: &Path) -> Result<Loaded> {
    let map = map(path)?;
    check_npy_header(path, &map)?;
    let mut data: &[u8] = &map;
    let header = npyz::NpyHeader::from_reader(&mut data)
        .map_err(|e| file_error(path, format!("not a valid .npy file: {e}")))?;
    let tensor = "array";
    let (rows, dim) = two_d(path, tensor, header.shape())?;
    let dtype = header.dtype();
    let size = match &dtype {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float => t.size_field(),
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Uint && t.size_field() == 1 => 1,
        _ => 0,
    };
    if ![8, 4, 2, 1].contains(&size) {
        return Err(Error::FileDType {
            path: shown(path),
            tensor: tensor.into(),
            expected: EXPECTED_DTYPE,
            found: match &dtype {
                npyz::DType::Plain(t) => t.to_string(),
                other => format!("{other:?}"),
            },
        });
    }
    // From the shape, checked: npyz's own element count wraps on a crafted
    // shape, and the transpose below trusts rows × dim.
    let expected = (rows as u64)
        .checked_mul(dim as u64)
        .and_then(|n| n.checked_mul(size))
        .ok_or_else(|| Error::FileShape {
            path: shown(path),
            tensor: tensor.to_string(),
            expected: "a shape whose rows × dim × element size fits 64 bits",
            found: vec![rows as u64, dim as u64],
        })?;
    if data.len() as u64 != expected {
        return Err(Error::FileSize {
            path: shown(path),
            expected,
            found: data.len() as u64,
        });
    }
    let fortran = header.order() == npyz::Order::Fortran;
    let npy = npyz::NpyFile::with_header(header, data);
    let n = rows.saturating_mul(dim);
    let values = if size == 1 {
        let v = host_collect("int8 table from the file", data.len(), data.iter().copied())?;
        let v = if fortran { transpose(v, rows, dim)? } else { v };
        let int8 = int8_dim(path, tensor, &[rows as u64, dim as u64])?;
        return Ok(Loaded {
            values: Values::Int8(v),
            rows,
            dim: int8,
        });
    } else if size == 8 {
        // NumPy's default float: rounded once to the nearest f32, as
        // `torch.from_numpy(a).float()`.
        let v = npy_values(path, npy, n, "f64 table from the file", |x: f64| x as f32)?;
        Values::F32(if fortran { transpose(v, rows, dim)? } else { v })
    } else if size == 4 {
        let v = npy_values(path, npy, n, "f32 table from the file", |x: f32| x)?;
        Values::F32(if fortran { transpose(v, rows, dim)? } else { v })
    } else {
        let v = npy_values(path, npy, n, "f16 table from the file", |x: f16| x)?;
        Values::F16(if fortran { transpose(v, rows, dim)? } else { v })
    };
    Ok(Loaded { values, rows, dim })
}

/// Column-major `[rows, dim]` (NumPy's `fortran_order`) to row-major, in
/// a fallible host allocation (the caller checked `v.len() == rows × dim`).
fn transpose<T: Copy>(v: Vec<T>, rows: usize, dim: usize) -> Result<Vec<T>> {
    host_collect(
        "the table transposed from Fortran order",
        v.len(),
        (0..v.len()).map(|i| v[(i % dim) * rows + i / dim]),
    )
}

impl Embedding {
    /// The 2-D tensor `tensor_name` of a safetensors file (F32, F16, or U8
    /// `[rows, dim + 8]` for an int8 row-wise table), in the file's dtype, as
    /// `Embedding.from_pretrained`; a BF16 tensor (most checkpoints) is
    /// widened to f32 exactly, an F64 one rounded once to f32. The file is
    /// memory-mapped.
    pub fn from_safetensors(
        gpu: &Gpu,
        path: impl AsRef<Path>,
        tensor_name: &str,
        freeze: bool,
    ) -> Result<Embedding> {
        let path = path.as_ref();
        let loaded = read_safetensors(path, tensor_name)?;
        let dtype = loaded.dtype();
        from_loaded(gpu, loaded, options(freeze, dtype))
    }

    /// [`Embedding::from_safetensors`] with all options; the table is stored
    /// as `options.dtype` (f16 from an f32 file rounds to nearest, once).
    pub fn from_safetensors_with_options(
        gpu: &Gpu,
        path: impl AsRef<Path>,
        tensor_name: &str,
        options: EmbeddingOptions,
    ) -> Result<Embedding> {
        from_loaded(gpu, read_safetensors(path.as_ref(), tensor_name)?, options)
    }

    /// The 2-D array of a `.npy` file (`<f4`/`>f4`, `<f2`/`>f2`, or `|u1`
    /// `[rows, dim + 8]` for an int8 row-wise table; C or Fortran order), in
    /// the file's dtype; `<f8`/`>f8` (NumPy's default float) is rounded once
    /// to f32. The file is memory-mapped.
    pub fn from_npy(gpu: &Gpu, path: impl AsRef<Path>, freeze: bool) -> Result<Embedding> {
        let loaded = read_npy(path.as_ref())?;
        let dtype = loaded.dtype();
        from_loaded(gpu, loaded, options(freeze, dtype))
    }

    /// [`Embedding::from_npy`] with all options; the table is stored as `options.dtype`.
    pub fn from_npy_with_options(
        gpu: &Gpu,
        path: impl AsRef<Path>,
        options: EmbeddingOptions,
    ) -> Result<Embedding> {
        from_loaded(gpu, read_npy(path.as_ref())?, options)
    }

    /// Writes the table as tensor `tensor_name` of a safetensors file, in the
    /// table's dtype (F32, F16, or an int8 row-wise table's `[rows, dim + 8]`
    /// U8 bytes). The table is read first and the file replaced whole (written
    /// beside it, then renamed): an error leaves any file at `path` as it was.
    pub fn save_safetensors(&self, path: impl AsRef<Path>, tensor_name: &str) -> Result<()> {
        let path = path.as_ref();
        let (dtype, cols, bytes): (StDtype, usize, Vec<u8>) = match self.dtype() {
            DType::F32 => (
                StDtype::F32,
                self.dim(),
                le_bytes(&self.weight().to_vec()?, |x| x.to_le_bytes())?,
            ),
            DType::F16 => (
                StDtype::F16,
                self.dim(),
                le_bytes(&self.weight().to_f16_vec()?, |x| x.to_le_bytes())?,
            ),
            DType::Int8 => (
                StDtype::U8,
                self.dim() + 8,
                self.weight().to_int8_rowwise()?.unwrap_or_default(),
            ),
        };
        let shape = vec![self.num_embeddings(), cols];
        let view = TensorView::new(dtype, shape, &bytes).map_err(|e| file_error(path, e))?;
        replace_file(path, |partial| {
            safetensors::tensor::serialize_to_file([(tensor_name, view)], None, partial)
                .map_err(|e| file_error(path, e))
        })
    }

    /// Writes the table as a `.npy` file (`<f4`, `<f2`, or an int8 row-wise
    /// table's `[rows, dim + 8]` `|u1` bytes; C order). As
    /// [`save_safetensors`](Self::save_safetensors), the table is read first
    /// and the file replaced whole.
    pub fn save_npy(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let rows = self.num_embeddings() as u64;
        match self.dtype() {
            DType::F32 => write_npy(path, [rows, self.dim() as u64], self.weight().to_vec()?),
            DType::F16 => write_npy(path, [rows, self.dim() as u64], self.weight().to_f16_vec()?),
            DType::Int8 => write_npy(
                path,
                [rows, self.dim() as u64 + 8],
                self.weight().to_int8_rowwise()?.unwrap_or_default(),
            ),
        }
    }
}

/// `values` as a C-order `.npy` array of `shape`, replacing `path` whole.
fn write_npy<T: npyz::AutoSerialize>(path: &Path, shape: [u64; 2], values: Vec<T>) -> Result<()> {
    replace_file(path, |partial| {
        let io = |e: std::io::Error| file_error(path, e);
        let mut out = BufWriter::new(File::create(partial).map_err(io)?);
        let mut w = npyz::WriteOptions::<T>::new()
            .default_dtype()
            .shape(&shape)
            .writer(&mut out)
            .begin_nd()
            .map_err(io)?;
        w.extend(values).map_err(io)?;
        w.finish().map_err(io)?;
        out.flush().map_err(io)
    })
}

/// Writes a file beside `path` with `write` (given its path), then renames
/// it over `path`: a failure at any point (a full disk, a bad directory)
/// leaves what was at `path` untouched and removes the partial file. The
/// partial file's name is this process's and this call's own.
///
/// As an in-place write would, a save through a symlink replaces the file it
/// names (the link stays a link), the replaced file keeps its permissions
/// (a new one gets those of a plain create), and a file this process cannot
/// write is refused.
fn replace_file(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    // A dangling link has nothing to resolve to: the link itself is replaced.
    let target = if is_link {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    } else {
        path.to_path_buf()
    };
    let kept = std::fs::metadata(&target).ok().map(|m| m.permissions());
    // A file this process could not write in place is not replaced either
    // (opening it for writing changes nothing; a rename would get past its
    // permissions).
    if kept.is_some() {
        if let Err(e) = std::fs::OpenOptions::new().write(true).open(&target) {
            return Err(file_error(path, format!("{e}; the file was left as it is")));
        }
    }
    let mut partial = target.as_os_str().to_owned();
    partial.push(format!(
        ".{}-{}.partial",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    let partial = std::path::PathBuf::from(partial);
    // A new file gets the permissions a plain create gives (the umask's),
    // learnt from the partial file made first: safetensors writes through
    // a temporary file that only its owner may read.
    let permissions = match kept {
        Some(p) => Ok(p),
        // Removed at once: `write` makes the file its own way, and one
        // left here could be unwritable under a umask without owner write.
        None => File::create(&partial)
            .and_then(|f| f.metadata())
            .map(|m| m.permissions())
            .and_then(|p| std::fs::remove_file(&partial).map(|()| p))
            .map_err(|e| file_error(path, e)),
    };
    let written = permissions.and_then(|permissions| {
        write(&partial)?;
        // On disk before it replaces the old file. Windows flushes only
        // through a handle that may write; elsewhere a read-only one does,
        // and works whatever mode the umask gave the new file.
        #[cfg(windows)]
        let handle = std::fs::OpenOptions::new().write(true).open(&partial);
        #[cfg(not(windows))]
        let handle = File::open(&partial);
        handle
            .and_then(|f| f.sync_all())
            .and_then(|()| std::fs::set_permissions(&partial, permissions))
            .and_then(|()| std::fs::rename(&partial, &target))
            .map_err(|e| file_error(path, e))
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

impl Loaded {
    fn dtype(&self) -> DType {
        match self.values {
            Values::F32(_) => DType::F32,
            Values::F16(_) => DType::F16,
            Values::Int8(_) => DType::Int8,
        }
    }
}

fn options(freeze: bool, dtype: DType) -> EmbeddingOptions {
    EmbeddingOptions {
        freeze,
        dtype,
        ..EmbeddingOptions::default()
    }
}

/// `items` (`n` of them) collected into a `Vec` sized up front, or
/// `OutOfHostMemory` naming `what` when the host cannot hold it: a file past
/// the host's memory is an error, not an abort.
fn host_collect<T>(what: &'static str, n: usize, items: impl Iterator<Item = T>) -> Result<Vec<T>> {
    let mut out = crate::tensor::host_vec(what, n)?;
    out.extend(items);
    Ok(out)
}

/// Little-endian `bytes` (safetensors' order whatever the host), `N` per
/// value, as values, in a fallible host allocation: [`le_bytes`] reversed.
fn from_le<T, const N: usize>(
    what: &'static str,
    bytes: &[u8],
    value: impl Fn([u8; N]) -> T,
) -> Result<Vec<T>> {
    host_collect(
        what,
        bytes.len() / N,
        bytes.as_chunks::<N>().0.iter().map(|&b| value(b)),
    )
}

/// `values` as little-endian bytes (safetensors' order whatever the host),
/// `N` per value, in a fallible host allocation.
fn le_bytes<T, const N: usize>(values: &[T], bytes: impl Fn(&T) -> [u8; N]) -> Result<Vec<u8>> {
    host_collect(
        "the file's bytes",
        values.len().saturating_mul(N),
        values.iter().flat_map(bytes),
    )
}

/// An npy file's `n` values, each through `into` (f64 rounded to f32, say:
/// no f64 copy of the table), in a fallible host allocation (npyz's
/// `into_vec` would abort where the host cannot hold them).
fn npy_values<T: npyz::Deserialize, U>(
    path: &Path,
    npy: npyz::NpyFile<&[u8]>,
    n: usize,
    what: &'static str,
    into: impl Fn(T) -> U,
) -> Result<Vec<U>> {
    let mut v = crate::tensor::host_vec(what, n)?;
    for x in npy.data::<T>().map_err(|e| file_error(path, e))? {
        v.push(into(x.map_err(|e| file_error(path, e))?));
    }
    Ok(v)
}

fn from_loaded(gpu: &Gpu, loaded: Loaded, options: EmbeddingOptions) -> Result<Embedding> {
    let Loaded { values, rows, dim } = loaded;
    match (values, options.dtype) {
        // f16 → f16: upload the file's bits, no round trip through f32.
        (Values::F16(v), DType::F16) => {
            Embedding::from_f16_with_options(gpu, &v, rows, dim, options)
        }
        // f16 → f32 or int8: widened exactly, then stored (or quantized) as asked.
        (Values::F16(v), DType::F32 | DType::Int8) => {
            let wide = host_collect(
                "the f16 table widened",
                v.len(),
                v.iter().map(|h| h.to_f32()),
            )?;
            Embedding::from_pretrained_with_options(gpu, &wide, rows, dim, options)
        }
        (Values::F32(v), _) => Embedding::from_pretrained_with_options(gpu, &v, rows, dim, options),
        // An int8 file: as it is when int8 is asked for, else dequantized.
        (Values::Int8(v), DType::Int8) => {
            Embedding::from_int8_with_options(gpu, &v, rows, dim, options)
        }
        (Values::Int8(v), _) => {
            let wide = crate::tensor::dequantize(&v, dim)?;
            Embedding::from_pretrained_with_options(gpu, &wide, rows, dim, options)
        }
    }
}
