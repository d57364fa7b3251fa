//! The naming rule (the README's Layout): every kernel has one name across
//! `shaders/<name>.wgsl`, `src/kernels/<name>.rs` (or `<name>/mod.rs`) and
//! `src/cpu/<name>.rs`, and its host module compiles exactly that shader.
//! Runs without a GPU: it reads the source tree.

use std::collections::BTreeSet;
use std::path::Path;

/// Files that break the rule on purpose, and why.
const ALLOW: &[(&str, &str)] = &[
    // Shared WGSL put in front of every shader (src/pipeline.rs); not a kernel.
    ("shaders/prelude.wgsl", "prelude"),
    // A probe of the adapter's FMA rate for the benchmark's "% of peak"
    // column: its output is timing, not data, so there is nothing to twin.
    ("src/cpu/fma_peak.rs", "probe"),
    // The twin of the whole embedding backward (radix_sort, exclusive_scan
    // and segment_sum in sequence), which the layer tests compare against;
    // it has no shader of its own.
    ("shaders/embedding_backward.wgsl", "composite twin"),
    ("src/kernels/embedding_backward.rs", "composite twin"),
    // The int8 row-wise format: FBGEMM's quantizer (host-side) and the
    // twin of the int8 load that embedding_gather and embedding_bag do; it
    // is a storage format, not a kernel of its own.
    ("shaders/int8_rowwise.wgsl", "storage format"),
    ("src/kernels/int8_rowwise.rs", "storage format"),
];

fn stems(dir: &Path, ext: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            let path = e.ok()?.path();
            if path.is_dir() {
                // A kernel whose host code needs several files: <name>/mod.rs or <name>.rs beside it.
                return path.file_name()?.to_str().map(String::from);
            }
            (path.extension()? == ext)
                .then(|| path.file_stem()?.to_str().map(String::from))
                .flatten()
        })
        .filter(|s| s != "mod")
        .collect()
}

fn allowed(path: &str) -> bool {
    ALLOW.iter().any(|(p, _)| *p == path)
}

#[test]
fn every_kernel_has_one_name_in_shaders_kernels_and_cpu() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shaders = stems(&root.join("shaders"), "wgsl");
    let kernels = stems(&root.join("src/kernels"), "rs");
    let cpu = stems(&root.join("src/cpu"), "rs");
    assert!(shaders.len() >= 10, "found only {shaders:?} in shaders/");
    let mut missing = Vec::new();
    for name in shaders.iter().chain(&kernels).chain(&cpu) {
        for (set, path) in [
            (&shaders, format!("shaders/{name}.wgsl")),
            (&kernels, format!("src/kernels/{name}.rs")),
            (&cpu, format!("src/cpu/{name}.rs")),
        ] {
            let alias = allowed(&format!("shaders/{name}.wgsl"));
            if !set.contains(name) && !allowed(&path) && !alias {
                missing.push(path);
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "these files are missing for the naming rule (or belong in ALLOW with a reason): {missing:?}"
    );
}

#[test]
fn every_host_module_compiles_its_own_shader() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for name in stems(&root.join("shaders"), "wgsl") {
        if allowed(&format!("shaders/{name}.wgsl")) {
            continue;
        }
        let flat = root.join(format!("src/kernels/{name}.rs"));
        let host = if flat.exists() {
            flat
        } else {
            root.join(format!("src/kernels/{name}/mod.rs"))
        };
        let text =
            std::fs::read_to_string(&host).unwrap_or_else(|e| panic!("{}: {e}", host.display()));
        let include = format!("shaders/{name}.wgsl\")");
        let label = format!("name: \"{name}\"");
        assert!(
            text.contains(&include) && text.contains(&label),
            "{} must include_str! shaders/{name}.wgsl and label its pipelines {name:?}",
            host.display()
        );
    }
}
