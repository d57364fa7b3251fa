//! wgpu-embed in a web page: the self-check that `index.html?check` runs and
//! the browser tests call. Every kernel it checks runs on the browser's
//! WebGPU adapter and is compared with its CPU twin, in the page.

use wasm_bindgen::prelude::*;
use wgpu_embed::cpu::uniform_init::{digest, fnv1a_f32, uniform_fill, DIGEST_SHAPE};
use wgpu_embed::kernels::uniform_init::fill;
use wgpu_embed::{Distribution, Gpu, Tensor};

fn js(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

/// The self-check as JSON: `{"adapter", "results": [{"kernel", "pass",
/// "max_abs_diff"}], "rng_digest", "native_digest"}`; `rng_digest` is the
/// 64-bit FNV-1a of the 4096 × 64 table after `uniform_(-1, 1, 42)`, which
/// must equal what `wgpu-embed adapters --digest` prints natively.
#[wasm_bindgen]
pub async fn check() -> Result<String, JsValue> {
    let gpu = Gpu::new_async().await.map_err(js)?;
    let [rows, cols] = DIGEST_SHAPE;
    let table = Tensor::zeros(&gpu, &[rows, cols]).map_err(js)?;
    fill(&table, 42, Distribution::Uniform { lo: -1.0, hi: 1.0 }).map_err(js)?;
    let got = table.to_vec_async().await.map_err(js)?;
    let mut want = vec![0.0f32; rows * cols];
    uniform_fill(42, 0, -1.0, 1.0, &mut want);
    let bits_equal = got
        .iter()
        .zip(&want)
        .all(|(a, b)| a.to_bits() == b.to_bits());
    let max_abs_diff = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let result = serde_json::json!({
        "adapter": gpu.describe(),
        "results": [
            {"kernel": "uniform_init", "pass": bits_equal && got.len() == want.len(), "max_abs_diff": max_abs_diff},
        ],
        "rng_digest": format!("{:016x}", fnv1a_f32(&got)),
        "native_digest": format!("{:016x}", digest()),
    });
    Ok(result.to_string())
}
