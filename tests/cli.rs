//! The command-line program: argument errors say what is wrong, a small run
//! writes JSON, CSV and SVG that read back, and compare reads them.

use std::path::PathBuf;
use std::process::{Command, Output};

fn wgpu_embed(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgpu-embed"))
        .args(args)
        .output()
        .expect("the wgpu-embed binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn out_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn bad_arguments_fail_with_clear_messages() {
    let o = wgpu_embed(&["--vocab", "1000,0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("must be at least 1"), "{}", stderr(&o));

    let o = wgpu_embed(&["--batch", "lots"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("not a positive whole number"),
        "{}",
        stderr(&o)
    );

    // A count of samples past what the host would keep: refused by the
    // parser, not a capacity panic (or an abort) in the first measurement.
    for args in [
        &["--reps", "18446744073709551615"][..],
        &["roofline", "--reps", "1000000000000"],
        &["figures", "--reps", "2000000"],
    ] {
        let o = wgpu_embed(args);
        assert!(!o.status.success(), "{args:?}");
        let e = stderr(&o);
        assert!(
            e.contains("1000000") && !e.contains("panicked"),
            "{args:?}: {e}"
        );
    }

    let o = wgpu_embed(&["--backend", "glide"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid value 'glide'"),
        "{}",
        stderr(&o)
    );

    let o = wgpu_embed(&["--adapter", "no-such-gpu-anywhere", "--vocab", "10"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("no adapter name contains \"no-such-gpu-anywhere\""),
        "{e}"
    );
    assert!(
        e.contains("llvmpipe"),
        "the message lists the adapters found: {e}"
    );
}

#[test]
fn adapters_lists_every_adapter() {
    let o = wgpu_embed(&["adapters"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("Vulkan"), "{text}");
    assert!(text.contains("Gl"), "{text}");
    assert!(text.contains("max storage binding"), "{text}");
}

/// A vocabulary this adapter cannot hold (2^33 rows: past the kernels' u32
/// rows) does not lose the sweep: its rows say "not run" and why, and the
/// sizes before it keep their figures, in the table, the JSON and the chart.
#[test]
fn a_vocabulary_past_the_adapter_is_not_run_and_the_rest_is_kept() {
    let dir = out_dir("cli-not-run");
    let d = dir.to_str().unwrap();
    let o = wgpu_embed(&[
        "--vocab",
        "10,8589934592",
        "--batch",
        "16",
        "--dim",
        "4",
        "--reps",
        "1",
        "--quiet",
        "--out",
        d,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("not run"), "{table}");
    let svg = std::fs::read_to_string(dir.join("chart.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "not the chart");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10, "two vocabularies × five paths");
    for r in rows {
        let measured = r["forward_ms_median"].as_f64().is_some();
        if r["vocab"] == 10 {
            assert!(measured, "{r}");
        } else {
            assert!(!measured, "{r}");
            let note = r["note"].as_str().unwrap_or_default();
            assert!(
                note.starts_with("not run: ") && note.contains("8589934592"),
                "{r}"
            );
        }
    }
}

#[test]
fn a_small_run_writes_results_that_read_back() {
    let dir = out_dir("cli-small-run");
    let d = dir.to_str().unwrap();
    let o = wgpu_embed(&[
        "--vocab", "10,300", "--batch", "64", "--dim", "8", "--reps", "2", "--quiet", "--out", d,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("gather") && table.contains("one_hot"),
        "{table}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["schema"], "wgpu-embed/bench/v1");
    assert_eq!(json["batch"], 64);
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 10, "two vocabularies × five paths");
    // The fused step holds what the gather path holds but the dense
    // gradient (a table's worth: 300 × 8 floats) and its per-row scratch.
    let peak = |path: &str, vocab: u64| {
        rows.iter()
            .find(|r| r["path"] == path && r["vocab"] == vocab)
            .and_then(|r| r["peak_bytes"].as_u64())
            .unwrap()
    };
    let saved = peak("gather", 300).saturating_sub(peak("gather_sgd", 300));
    assert!(saved >= 300 * 8 * 4, "the step saved only {saved} bytes");
    for r in rows {
        assert!(r["forward_ms_median"].as_f64().unwrap() > 0.0, "{r}");
        // An int8 table is for inference: no backward.
        let trains = r["path"] != "gather_int8";
        assert_eq!(
            r["backward_ms_median"].as_f64().is_some_and(|t| t > 0.0),
            trains,
            "{r}"
        );
        assert!(
            r["peak_bytes"].as_u64().unwrap() >= r["formula_bytes"].as_u64().unwrap() / 2,
            "{r}"
        );
    }
    let csv = std::fs::read_to_string(dir.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 11, "header + 10 rows:\n{csv}");
    assert!(csv.starts_with("schema,producer,adapter"));
    let svg = std::fs::read_to_string(dir.join("chart.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("one-hot"),
        "not the chart: {}",
        &svg[..200.min(svg.len())]
    );

    let json_path = dir.join("results.json");
    let p = json_path.to_str().unwrap();
    let o = wgpu_embed(&["compare", p, p]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("1.00"),
        "a run compared with itself has ratio 1: {text}"
    );

    let bogus = dir.join("bogus.json");
    std::fs::write(&bogus, "{\"schema\": \"something-else\"}").unwrap();
    let o = wgpu_embed(&["compare", p, bogus.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is not a wgpu-embed/bench/v1 file"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_closed_pipe_a_bad_out_dir_and_a_huge_batch_are_not_panics() {
    use std::process::Stdio;
    // `wgpu-embed adapters | head -0`: the reader is gone before the first
    // line (the program takes far longer to open its adapters than this
    // takes to close the pipe), so every write meets a closed pipe.
    let mut child = Command::new(env!("CARGO_BIN_EXE_wgpu-embed"))
        .arg("adapters")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the wgpu-embed binary runs");
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "exit {:?}: {}", o.status, stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    // --out under a regular file cannot be created: said before the sweep runs.
    let file = out_dir("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let bad = file.join("results");
    let o = wgpu_embed(&["--vocab", "10", "--out", bad.to_str().unwrap(), "--quiet"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot create"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    // A batch past the adapter's buffers: refused by size, nothing allocated.
    let o = wgpu_embed(&["--batch", "100000000000000", "--vocab", "10", "--quiet"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("--batch 100000000000000") && e.contains("max_buffer_size"),
        "{e}"
    );
}

/// `figures` (scripts/gpu-bench.sh's half) at its tiny size: every figure,
/// each with a positive time, and the references the table divides by.
#[test]
fn figures_writes_every_figure_with_its_reference() {
    let dir = out_dir("figures");
    let json = dir.join("ours.json");
    let o = wgpu_embed(&[
        "figures",
        "--size",
        "tiny",
        "--reps",
        "2",
        "--out",
        json.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["schema"], "wgpu-embed/figures/v1");
    let figures = v["figures"].as_array().unwrap();
    let names: Vec<&str> = figures
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "gather forward dim 16 uniform",
            "deterministic backward dim 16 uniform",
            "gather forward dim 16 zipf1.1",
            "deterministic backward dim 16 zipf1.1",
            "embedding_bag sum dim 16",
            "matmul fp32 64^3",
            "normal fill",
            "dense Adam step dim 16",
        ]
    );
    for f in figures {
        assert!(f["ms"].as_f64().unwrap() > 0.0, "{f}");
        let referenced = !f["reference"].is_null();
        assert_eq!(
            referenced,
            f["reference_ms"].as_f64().is_some_and(|ms| ms > 0.0),
            "{f}"
        );
    }
    let o = wgpu_embed(&["figures", "--size", "huge"]);
    assert!(!o.status.success());
}
