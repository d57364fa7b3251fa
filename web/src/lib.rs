//! wgpu-embed in a web page: the self-check that `index.html?check` runs and
//! the browser tests call. Each kernel runs on the browser's WebGPU adapter
//! and is compared with its CPU twin, in the page.

use serde_json::{json, Value};
use wasm_bindgen::prelude::*;
use wgpu_embed::cpu::uniform_init::{digest, fnv1a_f32, normal_fill, uniform_fill, DIGEST_SHAPE};
use wgpu_embed::cpu::{self, BackwardOptions};
use wgpu_embed::kernels::matmul::{matmul, MatmulOptions};
use wgpu_embed::kernels::uniform_init::fill;
use wgpu_embed::{
    BagMode, Distribution, Embedding, EmbeddingBag, Gpu, Gradient, IndexTensor, Tensor,
};

fn js(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

/// One line of the self-check: bit-for-bit unless `tolerance` (relative to
/// the largest wanted magnitude) is given.
fn line(kernel: &str, got: &[f32], want: &[f32], tolerance: Option<f32>) -> Value {
    let max_abs_diff = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let scale = want.iter().fold(0.0f32, |m, x| m.max(x.abs())).max(1.0);
    let pass = got.len() == want.len()
        && match tolerance {
            None => got
                .iter()
                .zip(want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            Some(t) => max_abs_diff <= t * scale,
        };
    json!({"kernel": kernel, "pass": pass, "max_abs_diff": max_abs_diff})
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
    let gpu = Gpu::new_async().await.map_err(js)?;
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
    let mut want = vec![0.0; 100 * DIM];
    let mut positions = vec![0u32; 100 * DIM];
    cpu::embedding_bag(
        BagMode::Sum,
        ROWS,
        DIM,
        None,
        &ids,
        &csr,
        None,
        &mut status,
        &mut positions,
        &table,
        &mut want,
    );
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
    let l = gpu.limits();
    let result = json!({
        "adapter": gpu.describe(),
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
        },
        "results": results,
        "rng_digest": format!("{:016x}", fnv1a_f32(&uniform)),
        "native_digest": format!("{:016x}", digest()),
    });
    Ok(result.to_string())
}
