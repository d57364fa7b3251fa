//! In a real browser (headless Chromium on WebGPU; see web/README.md): the
//! self-check passes and the RNG digest is the native build's.

use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// `wgpu-embed adapters --digest` on lavapipe, llvmpipe-GL and SwiftShader.
const NATIVE_DIGEST: &str = "037a0bf3b8387ae0";

#[wasm_bindgen_test]
async fn the_self_check_passes_and_the_digest_is_the_native_one() {
    let json = wgpu_embed_web::check().await.expect("the self-check runs");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    console_log!("{json}");
    for r in v["results"].as_array().unwrap() {
        assert_eq!(r["pass"], true, "{r} on {}", v["adapter"]);
    }
    assert_eq!(v["rng_digest"], NATIVE_DIGEST, "{json}");
    assert_eq!(v["native_digest"], NATIVE_DIGEST);
}
