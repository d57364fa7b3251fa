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

/// The benchmark page's sweep, tiny: both paths at each size, the paths
/// agree bit for bit, and the chart is the CLI's SVG.
#[wasm_bindgen_test]
async fn the_benchmark_sweep_runs_and_draws_its_chart() {
    let plan = r#"{"vocab": [100, 1000], "batch": 64, "dim": 8, "reps": 2}"#;
    let steps = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let seen = steps.clone();
    let progress = wasm_bindgen::closure::Closure::<dyn FnMut(f64, f64, String)>::new(
        move |_done: f64, total: f64, _message: String| {
            assert_eq!(total, 11.0);
            seen.set(seen.get() + 1);
        },
    );
    let json = wgpu_embed_web::run_bench(
        plan.into(),
        wasm_bindgen::JsCast::unchecked_ref::<js_sys::Function>(progress.as_ref()).clone(),
    )
    .await
    .expect("the sweep runs");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let r = &v["results"];
    assert_eq!(r["schema"], "wgpu-embed/bench/v1");
    assert_eq!(r["batch"], 64);
    let rows = r["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10, "{r}");
    for row in rows {
        assert!(row["forward_ms_median"].as_f64().unwrap() > 0.0, "{row}");
        // An int8 table is for inference: no backward.
        let trains = row["path"] != "gather_int8";
        let bwd = row["backward_ms_median"].as_f64();
        assert_eq!(bwd.is_some_and(|t| t > 0.0), trains, "{row}");
        if row["path"] == "gather" {
            assert!(
                row["note"]
                    .as_str()
                    .unwrap()
                    .starts_with("forward equal bit for bit"),
                "{row}"
            );
        }
    }
    // The ceilings, five paths per size, and "done".
    assert_eq!(steps.get(), 12);
    let svg = v["svg"].as_str().unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("gather forward") && svg.contains("SGD step"),
        "{svg:.200}"
    );
    assert!(v["table"].as_str().unwrap().contains("one_hot"));
}

/// A bad plan is an error the page can show, not a panic.
#[wasm_bindgen_test]
async fn a_bad_plan_is_an_error() {
    let noop = js_sys::Function::new_no_args("");
    for plan in [
        r#"{"vocab": [0]}"#,
        r#"{"batch": -1}"#,
        "not json",
        r#"{"vocab": []}"#,
    ] {
        let e = wgpu_embed_web::run_bench(plan.into(), noop.clone()).await;
        assert!(e.is_err(), "{plan}");
    }
}
