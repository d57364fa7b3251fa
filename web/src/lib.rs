//! wgpu-embed in a web page: the self-check that `index.html?check` runs and
//! the browser tests call. Each kernel runs on the browser's WebGPU adapter
//! and is compared with its CPU twin, in the page.

use std::cell::RefCell;

use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wgpu_embed::bench;
use wgpu_embed::cpu::uniform_init::{digest, fnv1a_f32, normal_fill, uniform_fill, DIGEST_SHAPE};
use wgpu_embed::cpu::{self, BackwardOptions};
use wgpu_embed::kernels::matmul::{matmul, MatmulOptions};
use wgpu_embed::kernels::uniform_init::fill;
use wgpu_embed::{
    BagMode, DType, Distribution, Embedding, EmbeddingBag, EmbeddingOptions, Gpu, Gradient,
    IndexTensor, Tensor,
};

fn js(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

thread_local! {
    /// One device for the page: pipelines are built once and shared by the
    /// self-check and the benchmark.
    static GPU: RefCell<Option<Gpu>> = const { RefCell::new(None) };
}

async fn gpu() -> Result<Gpu, JsValue> {
    if let Some(g) = GPU.with(|g| g.borrow().clone()) {
        return Ok(g);
    }
    let g = Gpu::new_async().await.map_err(js)?;
    GPU.with(|slot| *slot.borrow_mut() = Some(g.clone()));
    Ok(g)
}

fn adapter_json(gpu: &Gpu) -> Value {
    let l = gpu.limits();
    let i = gpu.adapter_info();
    json!({
        "adapter": gpu.describe(),
        "info": {
            "name": i.name,
            "vendor": i.vendor,
            "device": i.device,
            "driver": i.driver,
            "driver_info": i.driver_info,
            "backend": format!("{:?}", i.backend),
            "device_type": format!("{:?}", i.device_type),
        },
        "limits": {
            "max_storage_buffer_binding_size": l.max_storage_buffer_binding_size,
            "max_buffer_size": l.max_buffer_size,
            "max_compute_workgroup_storage_size": l.max_compute_workgroup_storage_size,
            "max_compute_invocations_per_workgroup": l.max_compute_invocations_per_workgroup,
            "max_compute_workgroups_per_dimension": l.max_compute_workgroups_per_dimension,
            "min_storage_buffer_offset_alignment": l.min_storage_buffer_offset_alignment,
        },
        "features": {
            "float32_atomics": gpu.has_float_atomics(),
            "timestamps": gpu.has_timestamps(),
            "shader_f16": gpu.features().contains(wgpu::Features::SHADER_F16),
        },
        "clock": gpu.clock().to_string(),
    })
}

/// The browser's adapter: name, info, limits and features, as JSON.
#[wasm_bindgen]
pub async fn adapter() -> Result<String, JsValue> {
    Ok(adapter_json(&gpu().await?).to_string())
}

/// What the benchmark would run on this adapter by default, as JSON
/// (`{"vocab", "batch", "dim", "reps", "backward", "seed"}`).
#[wasm_bindgen]
pub async fn default_plan() -> Result<String, JsValue> {
    let p = bench::Plan::for_adapter(&gpu().await?);
    Ok(
        json!({"vocab": p.vocab, "batch": p.batch, "dim": p.dim, "reps": p.reps,
              "backward": p.backward, "seed": p.seed})
        .to_string(),
    )
}

/// The gather-vs-one-hot sweep on the browser's adapter: the CLI's sweep,
/// schema and chart. `plan` is JSON whose fields (`vocab`, `batch`, `dim`,
/// `reps`, `backward`, `seed`) override [`bench::Plan::for_adapter`]'s;
/// `progress(done, total, message)` is called before each step. Returns
/// `{"results": <wgpu-embed/bench/v1>, "table": <text>, "svg": <chart>}`.
#[wasm_bindgen]
pub async fn run_bench(plan: String, progress: js_sys::Function) -> Result<String, JsValue> {
    let gpu = gpu().await?;
    let mut p = bench::Plan::for_adapter(&gpu);
    let o: Value = serde_json::from_str(if plan.trim().is_empty() { "{}" } else { &plan })
        .map_err(|e| js(format!("the plan is not JSON: {e}")))?;
    let count = |k: &str| -> Result<Option<usize>, JsValue> {
        match &o[k] {
            Value::Null => Ok(None),
            // usize is 32 bits here: a larger number is refused, not wrapped.
            v => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .filter(|&n| n > 0)
                .map(Some)
                .ok_or_else(|| {
                    js(format!(
                        "plan field {k} must be a positive whole number, not {v}"
                    ))
                }),
        }
    };
    if let Some(v) = o["vocab"].as_array() {
        p.vocab = v
            .iter()
            .map(|x| {
                x.as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| {
                        js(format!(
                            "vocabulary sizes must be positive whole numbers, not {x}"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
    }
    p.batch = count("batch")?.unwrap_or(p.batch);
    p.dim = count("dim")?.unwrap_or(p.dim);
    p.reps = count("reps")?.unwrap_or(p.reps);
    if let Some(b) = o["backward"].as_bool() {
        p.backward = b;
    }
    if let Some(seed) = o["seed"].as_u64() {
        p.seed = seed;
    }
    let mut tell = |s: bench::Progress| {
        let _ = progress.call3(
            &JsValue::NULL,
            &JsValue::from_f64(s.done as f64),
            &JsValue::from_f64(s.total as f64),
            &JsValue::from_str(&s.message),
        );
    };
    let results = bench::run(&gpu, &p, &mut tell).await.map_err(js)?;
    let svg = bench::svg(&results).map_err(js)?;
    Ok(json!({
        "results": results,
        "table": results.table(),
        "svg": svg,
    })
    .to_string())
}

/// One line of the self-check: bit-for-bit unless `tolerance` (relative to
/// the largest wanted magnitude) is given.
fn line(kernel: &str, got: &[f32], want: &[f32], tolerance: Option<f32>) -> Value {
    let max_abs_diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        // NaN wins (f32::max would skip it): reported as null.
        .fold(0.0f32, |m, d| {
            if m.is_nan() || d.is_nan() {
                f32::NAN
            } else {
                m.max(d)
            }
        });
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1.0);
    let pass = got.len() == want.len()
        && match tolerance {
            None => got
                .iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            // Element by element: a NaN fails (the fold above skips it).
            Some(t) => got
                .iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits() || (a - b).abs() <= t * scale),
        };
    json!({"kernel": kernel, "pass": pass, "max_abs_diff": max_abs_diff})
}

/// The bag twin's output for 100 bags of 10 ids (`csr`) over `table`.
fn bag_twin<R: cpu::Rows + ?Sized>(mode: BagMode, ids: &[u32], csr: &[u32], table: &R) -> Vec<f32> {
    let mut want = vec![0.0; 100 * DIM];
    let (mut status, mut positions) = (u32::MAX, vec![0u32; 100 * DIM]);
    cpu::embedding_bag(
        mode,
        ROWS,
        DIM,
        None,
        ids,
        csr,
        None,
        &mut status,
        &mut positions,
        table,
        &mut want,
    );
    want
}

/// A line for a call that failed in the page: a failure naming the error.
fn failed(kernel: &str, e: impl std::fmt::Display) -> Value {
    json!({"kernel": kernel, "pass": false, "max_abs_diff": null, "error": e.to_string()})
}

/// Values in [-1, 1] that are exact in f32 sums of a few terms.
fn data(n: usize, seed: u32) -> Vec<f32> {
    (0..n as u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) ^ seed) % 257) as f32 / 128.0 - 1.0)
        .collect()
}

async fn rng(gpu: &Gpu, normal: bool) -> Result<(Vec<f32>, Vec<f32>), wgpu_embed::Error> {
    let [rows, cols] = DIGEST_SHAPE;
    let t = Tensor::zeros(gpu, &[rows, cols])?;
    let mut want = vec![0.0f32; rows * cols];
    let d = if normal {
        normal_fill(42, 0, 0.0, 1.0, &mut want);
        Distribution::Normal {
            mean: 0.0,
            std: 1.0,
        }
    } else {
        uniform_fill(42, 0, -1.0, 1.0, &mut want);
        Distribution::Uniform { lo: -1.0, hi: 1.0 }
    };
    fill(&t, 42, d)?;
    Ok((t.to_vec_async().await?, want))
}

const ROWS: usize = 300;
const DIM: usize = 24;

async fn gather(gpu: &Gpu, ids: &[u32], table: &[f32]) -> Result<Vec<f32>, wgpu_embed::Error> {
    let emb = Embedding::from_pretrained(gpu, table, ROWS, DIM, true)?;
    emb.forward(ids)?.to_vec_async().await
}

async fn gather_gpu(gpu: &Gpu, ids: &[u32], table: &[f32]) -> Result<Vec<f32>, wgpu_embed::Error> {
    let emb = Embedding::from_pretrained(gpu, table, ROWS, DIM, true)?;
    let idx = IndexTensor::from_slice(gpu, ids)?;
    emb.forward_gpu_async(&idx).await?.to_vec_async().await
}

async fn bad_index(gpu: &Gpu, table: &[f32]) -> Result<Tensor, wgpu_embed::Error> {
    let emb = Embedding::from_pretrained(gpu, table, ROWS, DIM, true)?;
    let idx = IndexTensor::from_slice(gpu, &[1, 2, ROWS as u32, 4])?;
    emb.forward_gpu_async(&idx).await
}

async fn backward(
    gpu: &Gpu,
    ids: &[u32],
    table: &[f32],
    go: &[f32],
) -> Result<Vec<f32>, wgpu_embed::Error> {
    let emb = Embedding::from_pretrained(gpu, table, ROWS, DIM, false)?;
    let grad_out = Tensor::from_slice(gpu, go, &[ids.len(), DIM])?;
    match emb.backward(ids, &grad_out)? {
        Gradient::Dense(t) => match t.as_tensor() {
            Some(t) => t.to_vec_async().await,
            None => Ok(Vec::new()),
        },
        Gradient::Sparse { .. } => Ok(Vec::new()),
    }
}

async fn bag(
    gpu: &Gpu,
    ids: &[u32],
    starts: &[u32],
    table: &[f32],
) -> Result<Vec<f32>, wgpu_embed::Error> {
    let bag = EmbeddingBag::from_pretrained(gpu, table, ROWS, DIM, true, BagMode::Sum)?;
    bag.forward(ids, starts, None)?.to_vec_async().await
}

async fn product(
    gpu: &Gpu,
    a: &[f32],
    b: &[f32],
    m: usize,
    k: usize,
    n: usize,
) -> Result<Vec<f32>, wgpu_embed::Error> {
    let ta = Tensor::from_slice(gpu, a, &[m, k])?;
    let tb = Tensor::from_slice(gpu, b, &[k, n])?;
    matmul(&ta, &tb, None, MatmulOptions::default())?
        .to_vec_async()
        .await
}

/// The self-check as JSON: `{"adapter", "results": [{"kernel", "pass",
/// "max_abs_diff"}], "rng_digest", "native_digest"}`; `rng_digest` is the
/// 64-bit FNV-1a of the 4096 × 64 table after `uniform_(-1, 1, 42)`, which
/// must equal what `wgpu-embed adapters --digest` prints natively.
#[wasm_bindgen]
pub async fn check() -> Result<String, JsValue> {
    let gpu = gpu().await?;
    let mut results = Vec::new();
    let (uniform, want) = rng(&gpu, false).await.map_err(js)?;
    results.push(line("uniform_init (uniform)", &uniform, &want, None));
    match rng(&gpu, true).await {
        Ok((got, want)) => results.push(line("uniform_init (normal)", &got, &want, None)),
        Err(e) => results.push(failed("uniform_init (normal)", e)),
    }
    let table = data(ROWS * DIM, 1);
    let ids: Vec<u32> = (0..1000u32)
        .map(|i| i.wrapping_mul(7919) % ROWS as u32)
        .collect();
    let mut want = vec![0.0; ids.len() * DIM];
    let mut status = u32::MAX;
    cpu::embedding_gather(ROWS, DIM, &ids, &mut status, &table, &mut want);
    results.push(match gather(&gpu, &ids, &table).await {
        Ok(got) => line("embedding_gather", &got, &want, None),
        Err(e) => failed("embedding_gather", e),
    });
    results.push(match gather_gpu(&gpu, &ids, &table).await {
        Ok(got) => line(
            "embedding_gather (GPU indices, status word read back)",
            &got,
            &want,
            None,
        ),
        Err(e) => failed("embedding_gather (GPU indices)", e),
    });
    // A bad index in the page: a typed error naming it, not a device assert.
    let bad = bad_index(&gpu, &table).await;
    let caught = matches!(
        bad,
        Err(wgpu_embed::Error::IndexOutOfRange {
            position: 2,
            index: 300,
            ..
        })
    );
    results.push(json!({
        "kernel": "embedding_gather (index 300 of 300 rows: IndexOutOfRange at position 2)",
        "pass": caught,
        "max_abs_diff": null,
        "error": bad.err().map(|e| e.to_string()),
    }));
    let go = data(ids.len() * DIM, 2);
    let want = cpu::embedding_backward_dense(ROWS, DIM, &ids, &go, &BackwardOptions::default());
    results.push(match backward(&gpu, &ids, &table, &go).await {
        Ok(got) => line(
            "embedding backward (deterministic: sort, scan, segment_sum)",
            &got,
            &want,
            None,
        ),
        Err(e) => failed("embedding backward", e),
    });
    let starts: Vec<u32> = (0..100u32).map(|b| b * 10).collect();
    let csr: Vec<u32> = (0..=100u32).map(|b| b * 10).collect();
    let want = bag_twin(BagMode::Sum, &ids, &csr, &table);
    results.push(match bag(&gpu, &ids, &starts, &table).await {
        Ok(got) => line("embedding_bag (sum)", &got, &want, None),
        Err(e) => failed("embedding_bag", e),
    });
    let (m, k, n) = (70, 130, 50);
    let (a, b) = (data(m * k, 3), data(k * n, 4));
    let mut want = vec![0.0; m * n];
    cpu::matmul::matmul(m, n, k, false, false, false, &a, &b, None, &mut want);
    results.push(match product(&gpu, &a, &b, m, k, n).await {
        Ok(got) => line("matmul", &got, &want, Some(1e-5)),
        Err(e) => failed("matmul", e),
    });
    results.extend(more_lines(&gpu, &table, &ids).await);
    let mut result = adapter_json(&gpu);
    result["results"] = Value::Array(results);
    result["rng_digest"] = json!(format!("{:016x}", fnv1a_f32(&uniform)));
    result["native_digest"] = json!(format!("{:016x}", digest()));
    Ok(result.to_string())
}

/// The lines past the first ones: updates, bag modes, f16, and the small kernels.
async fn more_lines(gpu: &Gpu, table: &[f32], ids: &[u32]) -> Vec<Value> {
    let mut out = Vec::new();
    let go = data(ids.len() * DIM, 5);
    let opts = BackwardOptions::default();

    // Fused backward + SGD (segment_sum's SGD epilogue).
    let mut want = table.to_vec();
    cpu::embedding_backward_sgd(ROWS, DIM, ids, &go, &opts, &mut want, 0.5);
    let got = async {
        let mut emb = Embedding::from_pretrained(gpu, table, ROWS, DIM, false)?;
        let grad_out = Tensor::from_slice(gpu, &go, &[ids.len(), DIM])?;
        emb.backward_sgd(ids, &grad_out, 0.5)?;
        emb.weight().to_vec_async().await
    }
    .await;
    out.push(result_line(
        "backward_sgd (segment_sum, fused SGD)",
        got,
        &want,
    ));

    // Fused backward + row-wise Adagrad.
    let mut want = table.to_vec();
    let mut state = vec![0.0f32; ROWS];
    cpu::embedding_backward_adagrad(
        ROWS, DIM, ids, &go, &opts, &mut want, &mut state, 0.1, 1e-10,
    );
    let got = async {
        let mut emb = Embedding::from_pretrained(gpu, table, ROWS, DIM, false)?;
        let grad_out = Tensor::from_slice(gpu, &go, &[ids.len(), DIM])?;
        let mut s = emb.adagrad_state()?;
        emb.backward_adagrad(ids, &grad_out, &mut s, 0.1, 1e-10)?;
        let mut both = emb.weight().to_vec_async().await?;
        both.extend(s.to_vec_async().await?);
        Ok(both)
    }
    .await;
    want.extend(state);
    out.push(result_line(
        "backward_adagrad (row-wise Adagrad, weights and state)",
        got,
        &want,
    ));

    // Fused backward + Adam (torch.optim.SparseAdam's step), weights and moments.
    let options = wgpu_embed::AdamOptions::default();
    let adam = cpu::AdamArgs::for_step(1, options.lr, options.betas, options.eps, 0.0, true);
    let mut want = table.to_vec();
    let (mut m, mut v) = (vec![0.0f32; ROWS * DIM], vec![0.0f32; ROWS * DIM]);
    cpu::embedding_backward_adam(ROWS, DIM, ids, &go, &opts, &mut want, &mut m, &mut v, &adam);
    let got = async {
        let mut emb = Embedding::from_pretrained(gpu, table, ROWS, DIM, false)?;
        let grad_out = Tensor::from_slice(gpu, &go, &[ids.len(), DIM])?;
        let mut state = emb.adam_state()?;
        emb.backward_adam(ids, &grad_out, &mut state, &options)?;
        let mut all = emb.weight().to_vec_async().await?;
        all.extend(state.exp_avg().to_vec_async().await?);
        all.extend(state.exp_avg_sq().to_vec_async().await?);
        Ok(all)
    }
    .await;
    want.extend(m);
    want.extend(v);
    out.push(result_line(
        "backward_adam (SparseAdam: weights and both moments)",
        got,
        &want,
    ));

    // GPU-resident indices, one out of range: a typed error, weights unchanged.
    let got = async {
        let mut emb = Embedding::from_pretrained(gpu, table, ROWS, DIM, false)?;
        let idx = IndexTensor::from_slice(gpu, &[3, 7, ROWS as u32 + 5, 1])?;
        let grad_out = Tensor::from_slice(gpu, &go[..4 * DIM], &[4, DIM])?;
        let outcome = emb.backward_sgd_gpu_async(&idx, &grad_out, 0.5).await;
        Ok::<_, wgpu_embed::Error>((outcome, emb.weight().to_vec_async().await?))
    }
    .await;
    out.push(match got {
        Ok((Err(e @ wgpu_embed::Error::IndexOutOfRange { position: 2, .. }), after)) => {
            let mut v = line("backward_sgd_gpu_async (index 305 at position 2: IndexOutOfRange, weights unchanged)", &after, table, None);
            v["error"] = json!(e.to_string());
            v
        }
        Ok((outcome, _)) => failed("backward_sgd_gpu_async (bad index)", format!("expected IndexOutOfRange at position 2, got {outcome:?}")),
        Err(e) => failed("backward_sgd_gpu_async (bad index)", e),
    });

    // Bags: mean and max (max also returns the arg-max positions).
    let csr: Vec<u32> = (0..=100u32).map(|b| b * 10).collect();
    let starts = &csr[..100];
    for mode in [BagMode::Mean, BagMode::Max] {
        let want = bag_twin(mode, ids, &csr, table);
        let got = async {
            let bag = EmbeddingBag::from_pretrained(gpu, table, ROWS, DIM, true, mode)?;
            bag.forward(ids, starts, None)?.to_vec_async().await
        }
        .await;
        out.push(result_line(
            &format!("embedding_bag ({mode:?})").to_lowercase(),
            got,
            &want,
        ));
    }

    // An f16 table: the same gather, reading halves (exact widening).
    let halves: Vec<half::f16> = table.iter().map(|&x| half::f16::from_f32(x)).collect();
    let mut want = vec![0.0; ids.len() * DIM];
    let mut status = u32::MAX;
    cpu::embedding_gather(ROWS, DIM, ids, &mut status, &halves, &mut want);
    let got = async {
        let options = EmbeddingOptions {
            dtype: DType::F16,
            ..EmbeddingOptions::default()
        };
        let emb = Embedding::from_pretrained_with_options(gpu, table, ROWS, DIM, options)?;
        emb.forward(ids)?.to_vec_async().await
    }
    .await;
    out.push(match got {
        Err(wgpu_embed::Error::MissingFeature { .. })
            if !gpu.features().contains(wgpu::Features::SHADER_F16) =>
        {
            json!({"kernel": "embedding_gather (f16 table)", "pass": true, "max_abs_diff": null,
                   "note": "this adapter has no shader-f16: f16 tables are a typed MissingFeature error here"})
        }
        got => result_line("embedding_gather (f16 table)", got, &want),
    });

    // An int8 row-wise table (FBGEMM's format): lookup and sum bag,
    // dequantized on the fly.
    let fused = cpu::int8_rowwise::quantize(table, DIM);
    let rows8 = cpu::int8_rowwise::Int8Rows { fused: &fused };
    let mut want = vec![0.0; ids.len() * DIM];
    let mut status = u32::MAX;
    cpu::embedding_gather(ROWS, DIM, ids, &mut status, &rows8, &mut want);
    let got = async {
        Embedding::from_int8_rowwise(gpu, &fused, ROWS, DIM)?
            .forward(ids)?
            .to_vec_async()
            .await
    }
    .await;
    out.push(result_line(
        "embedding_gather (int8 row-wise table)",
        got,
        &want,
    ));
    let want = bag_twin(BagMode::Sum, ids, &csr, &rows8);
    let got = async {
        let emb = Embedding::from_int8_rowwise(gpu, &fused, ROWS, DIM)?;
        let options = wgpu_embed::EmbeddingBagOptions {
            mode: BagMode::Sum,
            ..Default::default()
        };
        EmbeddingBag::from_embedding(emb, options)
            .forward(ids, starts, None)?
            .to_vec_async()
            .await
    }
    .await;
    out.push(result_line(
        "embedding_bag (sum, int8 row-wise table)",
        got,
        &want,
    ));

    // max_norm: the lookup renormalises the rows it reads, in place.
    let mut want = table.to_vec();
    cpu::embedding_renorm(ROWS, DIM, 1.0, 2.0, u32::MAX, ids, &mut want);
    let got = async {
        let options = EmbeddingOptions {
            max_norm: Some(1.0),
            ..EmbeddingOptions::default()
        };
        let emb = Embedding::from_pretrained_with_options(gpu, table, ROWS, DIM, options)?;
        emb.forward(ids)?;
        emb.weight().to_vec_async().await
    }
    .await;
    out.push(result_line(
        "embedding_renorm (max_norm 1.0, the rows read)",
        got,
        &want,
    ));

    // one_hot and column_sum (Linear's bias gradient).
    let mut want = vec![0.0; ids.len() * ROWS];
    let mut status = wgpu_embed::STATUS_OK;
    cpu::one_hot(ids, ROWS, &mut status, &mut want);
    // Ids on the GPU: the kernel's status word is read back, as for a lookup.
    let got = async {
        let on_gpu = IndexTensor::from_slice(gpu, ids)?;
        wgpu_embed::kernels::one_hot::one_hot_gpu_async(&on_gpu, ROWS)
            .await?
            .to_vec_async()
            .await
    }
    .await;
    if status == wgpu_embed::STATUS_OK {
        out.push(result_line("one_hot", got, &want));
    } else {
        // The ids are the self-check's own, all in range: a twin that
        // reports one is a broken reference, not a pass.
        out.push(failed(
            "one_hot",
            format!("the CPU twin reported position {status} out of range"),
        ));
    }
    let mut want = vec![0.0; DIM];
    cpu::column_sum(ids.len(), DIM, false, &go, &mut want);
    let got = async {
        let x = Tensor::from_slice(gpu, &go, &[ids.len(), DIM])?;
        wgpu_embed::kernels::column_sum::column_sum(&x)?
            .to_vec_async()
            .await
    }
    .await;
    out.push(result_line("column_sum", got, &want));

    // Float atomics: where the adapter has none, a typed error says so.
    let mut emb = match Embedding::from_pretrained(gpu, table, ROWS, DIM, false) {
        Ok(e) => e,
        Err(e) => {
            out.push(failed("scatter_add_atomic", e));
            return out;
        }
    };
    emb.set_gradient_mode(wgpu_embed::GradientMode::Atomic);
    let got = async {
        let grad_out = Tensor::from_slice(gpu, &go, &[ids.len(), DIM])?;
        match emb.backward(ids, &grad_out)? {
            Gradient::Dense(t) => t.to_vec_async().await,
            Gradient::Sparse { .. } => Ok(Vec::new()),
        }
    }
    .await;
    let want = cpu::embedding_backward_dense(ROWS, DIM, ids, &go, &opts);
    out.push(match got {
        Err(wgpu_embed::Error::MissingFeature { .. }) if !gpu.has_float_atomics() => json!({
            "kernel": "scatter_add_atomic", "pass": true, "max_abs_diff": null,
            "note": "this adapter has no float atomics: GradientMode::Atomic is a typed MissingFeature error here"}),
        // Atomic sums run in any order: within a few ulps of the sorted sum.
        Ok(got) => line("scatter_add_atomic", &got, &want, Some(1e-5)),
        Err(e) => failed("scatter_add_atomic", e),
    });
    out
}

/// A line from a call that may have failed: bit for bit against `want`.
fn result_line(kernel: &str, got: Result<Vec<f32>, wgpu_embed::Error>, want: &[f32]) -> Value {
    match got {
        Ok(got) => line(kernel, &got, want, None),
        Err(e) => failed(kernel, e),
    }
}
