//! The default command: gather against one-hot matmul, forward and backward,
//! time and memory, at each vocabulary size, on one adapter.

use crate::kernels::matmul::{self, MatmulArgs, MatmulOptions};
use crate::kernels::one_hot;
use crate::{DType, Embedding, EmbeddingOptions, Error, Gpu, IndexTensor, Result, Tensor};

use super::report::{summarize, Results, Row, SCHEMA};
use super::roofline;

/// What to run. [`Plan::for_adapter`] gives the defaults; the command line
/// and the page's URL override each field.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Table sizes to sweep, in rows, in the order they run.
    pub vocab: Vec<usize>,
    /// Indices per lookup: rows of the output and of dY.
    pub batch: usize,
    /// Values per table row.
    pub dim: usize,
    /// Whether to time the backward passes too (and compare their gradients).
    pub backward: bool,
    /// Timed runs per path and direction (the ceilings take at least 3); at
    /// most [`MAX_REPS`], more is an error from [`run`].
    pub reps: usize,
    /// Untimed runs before the timed ones.
    pub warmup: usize,
    /// Seeds the table's initialization, the index list and dY.
    pub seed: u64,
}

/// The most timed runs a measurement takes: each sample is kept (and
/// sorted) on the host, and a million already runs for hours at the
/// smallest sizes.
pub const MAX_REPS: usize = 1_000_000;

impl Plan {
    /// The defaults for `gpu`: sizes a CPU adapter (lavapipe, llvmpipe,
    /// SwiftShader, natively or behind a browser's WebGPU) finishes in a
    /// minute or two, and sizes that fill a real GPU.
    pub fn for_adapter(gpu: &Gpu) -> Plan {
        let info = gpu.adapter_info();
        let software = ["llvmpipe", "lavapipe", "swiftshader"];
        let text = format!("{} {} {}", info.name, info.driver, info.driver_info).to_lowercase();
        let cpu =
            info.device_type == wgpu::DeviceType::Cpu || software.iter().any(|s| text.contains(s));
        Plan {
            vocab: if cpu {
                vec![1_000, 3_000, 10_000, 30_000, 100_000]
            } else {
                vec![1_000, 10_000, 100_000, 1_000_000]
            },
            batch: if cpu { 2048 } else { 16384 },
            dim: if cpu { 64 } else { 128 },
            backward: true,
            reps: if cpu { 5 } else { 20 },
            warmup: 1,
            seed: 42,
        }
    }

    /// Measurements the sweep takes: the ceilings, then five paths per
    /// vocabulary (gather, one-hot, the fused SGD step, and gather from f16
    /// and int8 tables).
    pub fn steps(&self) -> u64 {
        self.vocab.len() as u64 * 5 + 1
    }
}

/// Where a sweep is, for a progress bar: `done` of `total` steps, and what runs now.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Steps finished.
    pub done: u64,
    /// Steps in the whole sweep ([`Plan::steps`]).
    pub total: u64,
    /// The step starting now, or "done" at the end.
    pub message: String,
}

/// Relative Frobenius error allowed between the two backward paths: they sum
/// the same products in different orders (segment order vs. matmul tiles), so
/// they agree to a few ulps of the largest row sum, not bit for bit.
pub const BACKWARD_TOLERANCE: f64 = 1e-5;

/// The fraction of `ceiling` (per second) that `work` in `ms` reaches;
/// none for a time below the clock's resolution (a page's timestamps are
/// quantised: a short kernel can measure 0), which no rate comes from.
fn fraction(work: f64, ms: Option<f64>, ceiling: f64) -> Option<f64> {
    ms.filter(|&ms| ms > 0.0)
        .map(|ms| work / (ms * 1e-3) / ceiling)
        .filter(|f| f.is_finite())
}

/// Times `work` `reps` times after `warmup` runs; seconds per run.
async fn sample(
    gpu: &Gpu,
    plan: &Plan,
    mut work: impl FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
) -> Result<Vec<f64>> {
    for _ in 0..plan.warmup {
        super::sample_seconds(gpu, &mut work).await?;
    }
    let mut seconds = Vec::with_capacity(plan.reps);
    for _ in 0..plan.reps {
        seconds.push(super::sample_seconds(gpu, &mut work).await?);
    }
    Ok(seconds)
}

fn indices(plan: &Plan, vocab: usize) -> Vec<u32> {
    // A fixed xorshift stream: the same index list for both paths and every run.
    let mut s = plan.seed | 1;
    (0..plan.batch)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s % vocab as u64) as u32
        })
        .collect()
}

/// Moving the indices in is part of each path: a copy from an upload buffer
/// recorded in the same encoder, so the GPU timestamps include it.
fn record_upload(encoder: &mut wgpu::CommandEncoder, upload: &IndexTensor, dst: &IndexTensor) {
    if !upload.is_empty() {
        encoder.copy_buffer_to_buffer(upload.buffer(), 0, dst.buffer(), 0, upload.len() as u64 * 4);
    }
}

struct PathResult {
    forward: Vec<f64>,
    backward: Option<Vec<f64>>,
    peak: u64,
    /// Bytes the forward pass allocated on top of what was live before it.
    forward_extra: u64,
    output: Vec<f32>,
    grad: Option<Vec<f32>>,
}

async fn gather_path(
    gpu: &Gpu,
    plan: &Plan,
    emb: &Embedding,
    idx: &[u32],
    grad_out: Option<&Tensor>,
) -> Result<PathResult> {
    let (n, dim) = (plan.batch, plan.dim);
    gpu.reset_memory_peak();
    let before = gpu.memory_live();
    let (staging, idx_buf) = index_buffers(gpu, idx)?;
    let out = Tensor::zeros(gpu, &[n, dim])?;
    let status = crate::Status::new(gpu)?;
    // The layer's own lookup: it also handles tables split into row-blocks.
    let forward = sample(gpu, plan, |enc| {
        record_upload(enc, &staging, &idx_buf);
        emb.encode_forward(enc, &idx_buf, &out, &status)
    })
    .await?;
    let forward_extra = gpu.memory_peak().saturating_sub(before);
    // A dense gradient is as large as the table, and stored like it (in
    // row-blocks past one binding).
    let (backward, grad) = match grad_out {
        Some(grad_out) => {
            let (times, grad) = gather_backward(gpu, plan, emb, &idx_buf, grad_out).await?;
            (Some(times), Some(grad))
        }
        _ => (None, None),
    };
    // Before the readbacks: their staging buffers (a table's worth for the
    // gradient) are the benchmark's checking, not the path's memory.
    let peak = gpu.memory_peak();
    let grad = match grad {
        Some(g) => Some(
            g.to_dense_vec_async(emb.num_embeddings(), emb.dim())
                .await?,
        ),
        None => None,
    };
    Ok(PathResult {
        forward,
        backward,
        peak,
        forward_extra,
        output: out.to_vec_async().await?,
        grad,
    })
}

async fn one_hot_path(
    gpu: &Gpu,
    plan: &Plan,
    emb: &Embedding,
    idx: &[u32],
    grad_out: Option<&Tensor>,
) -> Result<PathResult> {
    let (n, dim, vocab) = (plan.batch, plan.dim, emb.num_embeddings());
    gpu.reset_memory_peak();
    let before = gpu.memory_live();
    let (staging, idx_buf) = index_buffers(gpu, idx)?;
    let hot = Tensor::zeros(gpu, &[n, vocab])?;
    // As the gather's: the benchmark's ids are in range, so it is not read.
    let status = crate::Status::new(gpu)?;
    let out = Tensor::zeros(gpu, &[n, dim])?;
    let table = emb.weight().buffer()?;
    // out[n, dim] = one_hot[n, vocab] · W[vocab, dim]
    let forward = sample(gpu, plan, |enc| {
        record_upload(enc, &staging, &idx_buf);
        let args = one_hot::OneHotArgs {
            indices: idx_buf.buffer(),
            n,
            num_classes: vocab,
            status: status.buffer(),
            out: hot.buffer(),
        };
        one_hot::encode(gpu, enc, &args)?;
        matmul::encode(
            gpu,
            enc,
            &MatmulArgs {
                m: n,
                n: dim,
                k: vocab,
                a: hot.buffer(),
                b: table,
                bias: None,
                c: out.buffer(),
                options: MatmulOptions::default(),
                tiles: None,
                fuse_extras: None,
            },
        )
    })
    .await?;
    let forward_extra = gpu.memory_peak().saturating_sub(before);
    let (backward, grad) = if let Some(grad_out) = grad_out {
        // dW[vocab, dim] = one_hotᵀ · dY: the one-hot matrix is the saved activation.
        let dw = Tensor::zeros(gpu, &[vocab, dim])?;
        let times = sample(gpu, plan, |enc| {
            matmul::encode(
                gpu,
                enc,
                &MatmulArgs {
                    m: vocab,
                    n: dim,
                    k: n,
                    a: hot.buffer(),
                    b: grad_out.buffer(),
                    bias: None,
                    c: dw.buffer(),
                    options: MatmulOptions {
                        trans_a: true,
                        ..MatmulOptions::default()
                    },
                    tiles: None,
                    fuse_extras: None,
                },
            )
        })
        .await?;
        (Some(times), Some(dw))
    } else {
        (None, None)
    };
    // Before the readbacks, as the gather's.
    let peak = gpu.memory_peak();
    let grad = match grad {
        Some(dw) => Some(dw.to_vec_async().await?),
        None => None,
    };
    Ok(PathResult {
        forward,
        backward,
        peak,
        forward_extra,
        output: out.to_vec_async().await?,
        grad,
    })
}

/// A row for the gather from a `dtype` table: its memory by formula (the
/// table and its dense gradient in that storage) and its share of the copy
/// ceiling (the table bytes read per row, f32 written).
fn storage_row(
    vocab: usize,
    path: &str,
    r: Option<&PathResult>,
    plan: &Plan,
    dtype: DType,
    note: String,
    copy_bytes_per_s: f64,
) -> Row {
    let (n64, d64) = (plan.batch as u64, plan.dim as u64);
    let table = (vocab as u64).saturating_mul(dtype.row_bytes(plan.dim));
    // An int8 table is forward only.
    let backward = r.map_or(plan.backward && dtype != DType::Int8, |r| {
        r.backward.is_some()
    });
    let bwd = if backward {
        table.saturating_add(n64 * d64 * 4)
    } else {
        0
    };
    let formula = table
        .saturating_add(n64 * 4 * 2 + n64 * d64 * 4)
        .saturating_add(bwd);
    let mut row = row(vocab, path, r, formula, note);
    let moved = (n64 * (dtype.row_bytes(plan.dim) + d64 * 4) + n64 * 4) as f64;
    row.forward_fraction_of_ceiling = fraction(moved, row.forward_ms_median, copy_bytes_per_s);
    let scatter = (n64 * d64 * 4 + n64 * 4) as f64 + table as f64;
    row.backward_fraction_of_ceiling = fraction(scatter, row.backward_ms_median, copy_bytes_per_s);
    row
}

/// The f16 and int8 rows of a vocabulary whose tables did not run, noted why.
fn storage_rows_not_run(vocab: usize, plan: &Plan, note: &str) -> [Row; 2] {
    // No times: the ceiling the fractions are taken of does not matter.
    let row = |path, dtype| storage_row(vocab, path, None, plan, dtype, note.into(), 1.0);
    [
        row("gather_f16", DType::F16),
        row("gather_int8", DType::Int8),
    ]
}

/// A path's error as a row's note when it is a size this adapter cannot
/// run (its limits, its memory, the host's): the sweep goes on to the next
/// path, keeping what it measured. Anything else (a validation error, a
/// lost device) ends the sweep.
fn not_run(err: Error) -> std::result::Result<String, String> {
    match err {
        Error::TooLarge { .. }
        | Error::TooMany { .. }
        | Error::OutOfHostMemory { .. }
        | Error::OutOfDeviceMemory { .. }
        | Error::ChunkedTable { .. } => Ok(format!("not run: {err}")),
        err => Err(err.to_string()),
    }
}

/// The deterministic scatter-add: dW[vocab, dim] from dY, every row written.
async fn gather_backward(
    gpu: &Gpu,
    plan: &Plan,
    emb: &Embedding,
    idx: &IndexTensor,
    grad_out: &Tensor,
) -> Result<(Vec<f64>, crate::Gradient)> {
    let grad = emb.dense_gradient_zeros()?;
    let status = crate::Status::new(gpu)?;
    let times = sample(gpu, plan, |enc| {
        emb.encode_backward_into(enc, idx, grad_out, &grad, &status)
    })
    .await?;
    Ok((times, grad))
}

/// The learning rate of the timed SGD steps (the table is not read after).
const STEP_LR: f32 = 1e-3;

/// The training step that needs no dense gradient: the fused backward (ids
/// sorted, each row's gradient summed in id order, the bits of the dense
/// one) with SGD applied in place, as a sparse-gradient `nn.Embedding`
/// under `optim.SGD`. Its times, and the peak bytes while it ran with what
/// the gather path holds beside its backward (the ids, twice, and the
/// lookup's output), so the two peaks differ by what each backward needs.
async fn sgd_step_path(
    gpu: &Gpu,
    plan: &Plan,
    emb: &Embedding,
    idx: &[u32],
    grad_out: &Tensor,
) -> Result<(Vec<f64>, u64)> {
    gpu.reset_memory_peak();
    let (staging, idx_buf) = index_buffers(gpu, idx)?;
    let out = Tensor::zeros(gpu, &[plan.batch, plan.dim])?;
    let status = crate::Status::new(gpu)?;
    // The ids are copied in by the first run (the warm-up, unless there is
    // none), as the gather's backward finds them in place.
    let mut uploaded = false;
    let times = sample(gpu, plan, |enc| {
        if !std::mem::replace(&mut uploaded, true) {
            record_upload(enc, &staging, &idx_buf);
        }
        emb.encode_backward_sgd(enc, &idx_buf, grad_out, STEP_LR, &status)
    })
    .await?;
    let peak = gpu.memory_peak();
    drop((staging, idx_buf, out));
    Ok((times, peak))
}

/// The index list twice: an upload buffer and the buffer the kernels read.
fn index_buffers(gpu: &Gpu, idx: &[u32]) -> Result<(IndexTensor, IndexTensor)> {
    Ok((
        IndexTensor::from_slice(gpu, idx)?,
        IndexTensor::from_slice(gpu, &vec![0; idx.len()])?,
    ))
}

fn rel_error(got: &[f32], want: &[f32]) -> f64 {
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (g, w) in got.iter().zip(want) {
        num += (*g as f64 - *w as f64).powi(2);
        den += (*w as f64).powi(2);
    }
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

fn row(vocab: usize, path: &str, r: Option<&PathResult>, formula: u64, note: String) -> Row {
    let split = |s: Option<(f64, f64, f64)>| match s {
        Some((median, min, max)) => (Some(median), Some(min), Some(max)),
        None => (None, None, None),
    };
    let (fm, fmin, fmax) = split(r.and_then(|r| summarize(&mut r.forward.clone())));
    let (bm, bmin, bmax) = split(r.and_then(|r| summarize(&mut r.backward.clone()?)));
    Row {
        vocab,
        path: path.into(),
        forward_ms_median: fm,
        forward_ms_min: fmin,
        forward_ms_max: fmax,
        backward_ms_median: bm,
        backward_ms_min: bmin,
        backward_ms_max: bmax,
        peak_bytes: r.map(|r| r.peak),
        forward_extra_bytes: r.map(|r| r.forward_extra),
        formula_bytes: formula,
        forward_fraction_of_ceiling: None,
        backward_fraction_of_ceiling: None,
        note,
    }
}

/// Refuses a plan whose output or dY (one buffer each) is past what the
/// adapter can hold, before anything is allocated (a huge `--batch` would
/// otherwise try to build its index list on the host first). Tables are
/// not limited here: they are stored in row-blocks, so a vocabulary past
/// one buffer runs (the one-hot path reports what it cannot hold).
fn check_sizes(gpu: &Gpu, plan: &Plan) -> std::result::Result<(), String> {
    let limit = gpu.max_buffer_bytes();
    let bytes = (plan.batch as u64)
        .checked_mul(plan.dim as u64)
        .and_then(|x| x.checked_mul(4));
    match bytes {
        Some(b) if b <= limit => Ok(()),
        _ => Err(format!(
            "--batch {} × --dim {} floats is past this adapter's max_buffer_size ({limit} bytes)",
            plan.batch, plan.dim
        )),
    }
}

/// [`run`], blocking this thread until it ends (native only; a page awaits
/// [`run`]). Its waits for the GPU run on this thread, so a wall-clock
/// sample (an adapter without timestamps) holds no helper thread's start.
#[cfg(not(target_arch = "wasm32"))]
pub fn run_blocking(
    gpu: &Gpu,
    plan: &Plan,
    progress: &mut dyn FnMut(Progress),
) -> std::result::Result<Results, String> {
    crate::readback::block_here(run(gpu, plan, progress))
}

/// Runs the whole sweep, telling `progress` before each step. A mismatch
/// between the paths is an error: the run fails loudly. A path past what
/// the adapter holds (a limit, its memory or the host's) is a row noted
/// "not run: …", and the sweep goes on.
pub async fn run(
    gpu: &Gpu,
    plan: &Plan,
    progress: &mut dyn FnMut(Progress),
) -> std::result::Result<Results, String> {
    let e = |e: Error| e.to_string();
    let total = plan.steps();
    let mut done = 0;
    let mut step = |message: String| {
        progress(Progress {
            done,
            total,
            message,
        });
        done += 1;
    };
    check_sizes(gpu, plan)?;
    if plan.vocab.is_empty()
        || plan.vocab.contains(&0)
        || plan.batch == 0
        || plan.dim == 0
        || plan.reps == 0
    {
        return Err(format!(
            "nothing to measure: {} vocabulary sizes, batch {}, dim {}, {} reps (each must be at least 1)",
            plan.vocab.len(),
            plan.batch,
            plan.dim,
            plan.reps
        ));
    }
    if plan.reps > MAX_REPS {
        return Err(format!(
            "{} reps is past the most samples taken, {MAX_REPS}",
            plan.reps
        ));
    }
    step("measuring the adapter's ceilings".into());
    let ceilings = roofline::measure_async(gpu, plan.reps.max(3))
        .await
        .map_err(e)?;
    let (n, dim) = (plan.batch, plan.dim);
    let mut rows = Vec::new();
    for &vocab in &plan.vocab {
        let options = EmbeddingOptions {
            seed: Some(plan.seed),
            ..EmbeddingOptions::default()
        };
        // The last vocabulary's buffers go back to the driver: each size
        // starts from the same empty cache, and none is "not run" for
        // memory the cache held.
        gpu.empty_cache();
        let idx = indices(plan, vocab);
        // Saturating: a vocabulary past the adapter (a "not run" row) may
        // be past u64 bytes too.
        let (n64, d64, v64) = (n as u64, dim as u64, vocab as u64);
        let table = v64.saturating_mul(d64).saturating_mul(4);
        let bwd_extra = if plan.backward {
            table.saturating_add(n64 * d64 * 4)
        } else {
            0
        };
        let io = n64 * 4 * 2 + n64 * d64 * 4;
        let gather_formula = table.saturating_add(io).saturating_add(bwd_extra);
        let hot_bytes = n64.saturating_mul(v64).saturating_mul(4);
        let one_hot_formula = gather_formula.saturating_add(hot_bytes);
        // The step: the gather's bytes without the dense dW (dY only).
        let step_extra = if plan.backward { n64 * d64 * 4 } else { 0 };
        let step_formula = table.saturating_add(io).saturating_add(step_extra);

        step(format!("vocab {vocab}: gather"));
        let first = async {
            let emb = Embedding::with_options(gpu, vocab, dim, options)?;
            // dY, shared by both backward paths (and counted in both peaks).
            let grad_out = if plan.backward {
                let t = Tensor::zeros(gpu, &[n, dim])?;
                let normal = crate::Distribution::Normal {
                    mean: 0.0,
                    std: 1.0,
                };
                crate::kernels::uniform_init::fill(&t, plan.seed ^ 0xD1, normal)?;
                Some(t)
            } else {
                None
            };
            let g = gather_path(gpu, plan, &emb, &idx, grad_out.as_ref()).await?;
            Ok((emb, grad_out, g))
        };
        let (emb, grad_out, g) = match first.await {
            Ok(done) => done,
            // A size this adapter cannot hold: this vocabulary's rows say
            // why, and the finished ones are kept.
            Err(err) => {
                let note = not_run(err)?;
                // The steps this vocabulary will not take, told as such.
                for path in ["one-hot", "fused SGD step", "f16 table", "int8 table"] {
                    step(format!("vocab {vocab}: {path}: not run"));
                }
                rows.push(row(vocab, "gather", None, gather_formula, note.clone()));
                rows.push(row(vocab, "one_hot", None, one_hot_formula, note.clone()));
                rows.push(row(vocab, "gather_sgd", None, step_formula, note.clone()));
                rows.extend(storage_rows_not_run(vocab, plan, &note));
                continue;
            }
        };
        step(format!("vocab {vocab}: one-hot"));
        let one_hot = async {
            gpu.check_size("one-hot matrix", hot_bytes, true)?;
            one_hot_path(gpu, plan, &emb, &idx, grad_out.as_ref()).await
        };
        let (h, note) = match one_hot.await {
            Ok(h) => (Some(h), String::new()),
            Err(err) => (None, not_run(err)?),
        };
        let mut gather_note = String::new();
        if let Some(h) = &h {
            if h.output
                .iter()
                .zip(&g.output)
                .any(|(a, b)| a.to_bits() != b.to_bits())
            {
                return Err(format!(
                    "vocab {vocab}: the one-hot matmul's output differs from the gather's; the paths must agree bit for bit"
                ));
            }
            gather_note = "forward equal bit for bit".into();
            if let (Some(a), Some(b)) = (&g.grad, &h.grad) {
                let err = rel_error(b, a);
                // A NaN error (a NaN in either gradient) fails too.
                if err.is_nan() || err > BACKWARD_TOLERANCE {
                    return Err(format!(
                        "vocab {vocab}: backward weight gradients differ by relative error {err:.2e} > {BACKWARD_TOLERANCE:.0e}"
                    ));
                }
                gather_note += &format!("; grads within {err:.1e}");
            }
        }
        let mut gr = row(vocab, "gather", Some(&g), gather_formula, gather_note);
        // Gather moves the rows read, the rows written and the indices.
        let gather_bytes = (2 * n64 * d64 * 4 + n64 * 4) as f64;
        gr.forward_fraction_of_ceiling = fraction(
            gather_bytes,
            gr.forward_ms_median,
            ceilings.copy_bytes_per_s,
        );
        // Scatter-add reads dY and the indices and writes the dense gradient.
        let scatter_bytes = (n64 * d64 * 4 + n64 * 4 + table) as f64;
        gr.backward_fraction_of_ceiling = fraction(
            scatter_bytes,
            gr.backward_ms_median,
            ceilings.copy_bytes_per_s,
        );
        rows.push(gr);
        let mut hr = row(vocab, "one_hot", h.as_ref(), one_hot_formula, note);
        let flops = 2.0 * n64 as f64 * v64 as f64 * d64 as f64;
        hr.forward_fraction_of_ceiling =
            fraction(flops, hr.forward_ms_median, ceilings.fma_flops_per_s);
        hr.backward_fraction_of_ceiling =
            fraction(flops, hr.backward_ms_median, ceilings.fma_flops_per_s);
        rows.push(hr);

        // The same lookup from smaller tables: f16 (trains too) and FBGEMM's
        // int8 row-wise (inference: forward only). Each runs with only its
        // own table live, so the memory columns show the saving.
        // The int8 table is made after the f16 path: here only its bytes,
        // on the host (live, it would count in the f16 path's peak).
        let weights = match emb.weight().to_vec_async().await {
            Ok(w) => w,
            Err(err) => {
                let note = not_run(err)?;
                for path in ["fused SGD step", "f16 table", "int8 table"] {
                    step(format!("vocab {vocab}: {path}: not run"));
                }
                rows.push(row(vocab, "gather_sgd", None, step_formula, note.clone()));
                rows.extend(storage_rows_not_run(vocab, plan, &note));
                continue;
            }
        };
        // The fused step, after the weights are read (it changes them): its
        // forward is the gather row's (the same lookup of the same table).
        step(format!("vocab {vocab}: fused SGD step"));
        let (step_times, step_peak, step_note) = match &grad_out {
            Some(grad_out) => match sgd_step_path(gpu, plan, &emb, &idx, grad_out).await {
                Ok((times, peak)) => (
                    Some(times),
                    peak,
                    "forward: the gather row's; backward: sorted, fused with SGD in place \
                     (no dense dW)"
                        .to_string(),
                ),
                Err(err) => (
                    None,
                    0,
                    format!("forward: the gather row's; backward {}", not_run(err)?),
                ),
            },
            None => (
                None,
                0,
                "forward: the gather row's; backward not asked for".to_string(),
            ),
        };
        let ran = step_times.is_some();
        let stepped = PathResult {
            forward: g.forward.clone(),
            backward: step_times,
            peak: step_peak,
            forward_extra: g.forward_extra,
            output: Vec::new(),
            grad: None,
        };
        let mut sr = row(vocab, "gather_sgd", Some(&stepped), step_formula, step_note);
        if !ran {
            sr.peak_bytes = None; // nothing ran to hold any
        }
        sr.forward_fraction_of_ceiling = fraction(
            gather_bytes,
            sr.forward_ms_median,
            ceilings.copy_bytes_per_s,
        );
        rows.push(sr);
        let fused = crate::cpu::int8_rowwise::quantize(&weights, dim);
        drop((weights, emb));
        let f32_out = g.output;
        let half_options = EmbeddingOptions {
            seed: Some(plan.seed),
            dtype: DType::F16,
            ..EmbeddingOptions::default()
        };
        step(format!("vocab {vocab}: gather from an f16 table"));
        let f16_path = async {
            let table16 = Embedding::with_options(gpu, vocab, dim, half_options)?;
            gather_path(gpu, plan, &table16, &idx, grad_out.as_ref()).await
        };
        let c = ceilings.copy_bytes_per_s;
        let (r, note) = match f16_path.await {
            Ok(r) => {
                // The f16 table of a seed is its f32 table rounded once: so is the lookup.
                if r.output
                    .iter()
                    .zip(&f32_out)
                    .any(|(&a, &b)| a.to_bits() != half::f16::from_f32(b).to_f32().to_bits())
                {
                    return Err(format!(
                        "vocab {vocab}: the f16 table's lookup is not the f32 lookup rounded to f16"
                    ));
                }
                (Some(r), "f32 rows rounded once".into())
            }
            Err(err) => (None, not_run(err)?),
        };
        let f16_row = storage_row(vocab, "gather_f16", r.as_ref(), plan, DType::F16, note, c);
        rows.push(f16_row);
        drop(grad_out);
        step(format!("vocab {vocab}: gather from an int8 row-wise table"));
        let quantized = async {
            let int8 = Embedding::from_int8_rowwise(gpu, &fused, vocab, dim)?;
            drop(fused);
            gather_path(gpu, plan, &int8, &idx, None).await
        };
        let (r, note) = match quantized.await {
            Ok(r) => {
                let worst = r
                    .output
                    .iter()
                    .zip(&f32_out)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0f32, f32::max);
                (
                    Some(r),
                    format!("dequantized; max |error| {worst:.1e} vs f32"),
                )
            }
            Err(err) => (None, not_run(err)?),
        };
        let int8_row = storage_row(vocab, "gather_int8", r.as_ref(), plan, DType::Int8, note, c);
        rows.push(int8_row);
    }
    progress(Progress {
        done: total,
        total,
        message: "done".into(),
    });
    let info = gpu.adapter_info();
    Ok(Results {
        schema: SCHEMA.into(),
        producer: "wgpu-embed".into(),
        adapter: gpu.name(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        clock: gpu.clock().to_string(),
        batch: n,
        dim,
        reps: plan.reps,
        roofline: Some(ceilings),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::not_run;
    use crate::Error;

    /// Sizes are "not run" rows; a validation error or a lost device ends
    /// the sweep.
    #[test]
    fn only_sizes_the_adapter_cannot_hold_are_not_run() {
        let oom = Error::OutOfDeviceMemory {
            during: "buffer allocation",
            message: "out of memory".into(),
        };
        assert!(not_run(oom).is_ok_and(|n| n.starts_with("not run: ")));
        let host = Error::OutOfHostMemory {
            what: "table",
            bytes: 1 << 40,
        };
        assert!(not_run(host).is_ok());
        let invalid = Error::Gpu {
            during: "submit",
            message: "validation".into(),
        };
        assert!(not_run(invalid).is_err());
        let lost = Error::DeviceLost {
            reason: "gone".into(),
        };
        assert!(not_run(lost).is_err());
    }
}
