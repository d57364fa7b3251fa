//! The benchmark's results: one schema for JSON and CSV, and the terminal table.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Bumped whenever a field changes meaning.
pub const SCHEMA: &str = "wgpu-embed/bench/v1";

/// A whole run: where it ran, its ceilings, and one row per (vocabulary, path).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Results {
    /// The schema this file follows: [`SCHEMA`] (`read_json` refuses any other).
    pub schema: String,
    /// Who produced it: `"wgpu-embed"`, or `"pytorch <version>"`
    /// (`scripts/torch_reference.py`).
    pub producer: String,
    /// The adapter's name, as `Gpu::name` gives it.
    pub adapter: String,
    /// The wgpu backend it ran on, as `wgpu::Backend`'s `Debug` writes it
    /// ("Vulkan", "Metal", ...).
    pub backend: String,
    /// The adapter's `wgpu::DeviceType`, as its `Debug` writes it
    /// ("DiscreteGpu", "Cpu", ...).
    pub device_type: String,
    /// "gpu timestamps" or "wall time" ([`Clock`](crate::Clock)'s `Display`),
    /// or "cuda events" from `scripts/torch_reference.py`.
    pub clock: String,
    /// Indices per lookup: rows of the output.
    pub batch: usize,
    /// Values per table row.
    pub dim: usize,
    /// Timed runs per path and direction; the times are summarized over these.
    pub reps: usize,
    /// The ceilings the fractions in `rows` are taken of; `None` where they
    /// were not measured.
    pub roofline: Option<Roofline>,
    /// One per (vocabulary, path), vocabularies in the order swept.
    pub rows: Vec<Row>,
}

/// The adapter's ceilings, measured in the same run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Roofline {
    /// `copy_buffer_to_buffer`, bytes read + written per second.
    pub copy_bytes_per_s: f64,
    /// A plain compute-shader vec4 copy, bytes read + written per second.
    pub shader_copy_bytes_per_s: f64,
    /// Register-only fused multiply-adds, FLOP/s (2 per FMA).
    pub fma_flops_per_s: f64,
    /// Normal-distribution fill (`uniform_init`), bytes written per second.
    pub rng_fill_bytes_per_s: f64,
}

/// One path at one vocabulary size. Times in milliseconds; `None` where the
/// path did not run (see `note`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Row {
    /// Rows of the table.
    pub vocab: usize,
    /// "gather", "one_hot", "gather_sgd" (the gather's lookup, and as its
    /// backward the fused training step: sorted backward with SGD in place,
    /// no dense gradient), "gather_f16" (an f16 table) or "gather_int8" (an
    /// int8 row-wise table, forward only).
    pub path: String,
    /// Median of the timed forward runs (the index upload included), in
    /// milliseconds.
    pub forward_ms_median: Option<f64>,
    /// Fastest timed forward run, in milliseconds.
    pub forward_ms_min: Option<f64>,
    /// Slowest timed forward run, in milliseconds.
    pub forward_ms_max: Option<f64>,
    /// Median of the timed backward runs, in milliseconds; `None` also when
    /// the backward was not run (`Plan::backward` off, or a path without one).
    pub backward_ms_median: Option<f64>,
    /// Fastest timed backward run, in milliseconds.
    pub backward_ms_min: Option<f64>,
    /// Slowest timed backward run, in milliseconds.
    pub backward_ms_max: Option<f64>,
    /// Peak bytes the library held while this path ran (table included).
    pub peak_bytes: Option<u64>,
    /// Bytes the forward pass allocated beyond what was already live (the
    /// table, dY): indices, the one-hot matrix, the output.
    pub forward_extra_bytes: Option<u64>,
    /// Bytes the path needs by formula (table included).
    pub formula_bytes: u64,
    /// Forward: bytes moved / time, as a fraction of `copy_bytes_per_s` (the
    /// gather paths, f32, f16 and int8); FLOP/s as a fraction of
    /// `fma_flops_per_s` (one_hot's matmul).
    pub forward_fraction_of_ceiling: Option<f64>,
    /// Backward, measured the same way: the scatter-add's bytes moved / time
    /// as a fraction of `copy_bytes_per_s` (the gather paths, f32 and f16;
    /// int8 has no backward); FLOP/s as a fraction of
    /// `fma_flops_per_s` (one_hot's transposed matmul).
    pub backward_fraction_of_ceiling: Option<f64>,
    /// Why a value is missing, or how the two paths compared.
    pub note: String,
}

/// Writes `bytes` beside `path` and renames them over it: a run killed or a
/// disk filled mid-write leaves the last results, not half of new ones.
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(format!(".{}.partial", std::process::id()));
    let partial = std::path::PathBuf::from(partial);
    let written = std::fs::write(&partial, bytes).and_then(|()| std::fs::rename(&partial, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written
}

impl Results {
    /// Writes the results to `path` as pretty-printed JSON, replacing the
    /// file whole ([`write_file`]).
    pub fn write_json(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        write_file(path, (text + "\n").as_bytes())
    }

    /// Reads a results file, refusing one whose `schema` is not [`SCHEMA`];
    /// the error names the file and the cause.
    pub fn read_json(path: &Path) -> Result<Results, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let results: Results = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a {SCHEMA} file: {e}", path.display()))?;
        if results.schema != SCHEMA {
            return Err(format!(
                "{} has schema {:?}; this program reads {SCHEMA:?}",
                path.display(),
                results.schema
            ));
        }
        Ok(results)
    }

    /// One line per row; the run's fields repeated on every line.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "schema,producer,adapter,backend,clock,batch,dim,reps,vocab,path,\
             forward_ms_median,forward_ms_min,forward_ms_max,\
             backward_ms_median,backward_ms_min,backward_ms_max,\
             peak_bytes,forward_extra_bytes,formula_bytes,forward_fraction_of_ceiling,backward_fraction_of_ceiling,note\n",
        );
        let opt = |v: Option<f64>| v.map(|x| format!("{x}")).unwrap_or_default();
        for r in &self.rows {
            s += &format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                csv_text(&self.schema),
                csv_text(&self.producer),
                csv_text(&self.adapter),
                csv_text(&self.backend),
                csv_text(&self.clock),
                self.batch,
                self.dim,
                self.reps,
                r.vocab,
                csv_text(&r.path),
                opt(r.forward_ms_median),
                opt(r.forward_ms_min),
                opt(r.forward_ms_max),
                opt(r.backward_ms_median),
                opt(r.backward_ms_min),
                opt(r.backward_ms_max),
                r.peak_bytes.map(|b| b.to_string()).unwrap_or_default(),
                r.forward_extra_bytes
                    .map(|b| b.to_string())
                    .unwrap_or_default(),
                r.formula_bytes,
                opt(r.forward_fraction_of_ceiling),
                opt(r.backward_fraction_of_ceiling),
                csv_text(&r.note),
            );
        }
        s
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} [{}, {}] — batch {}, dim {}, {} reps, times from {}\n",
            self.adapter,
            self.backend,
            self.device_type,
            self.batch,
            self.dim,
            self.reps,
            self.clock
        );
        if let Some(r) = &self.roofline {
            s += &format!(
                "ceilings: copy_buffer_to_buffer {:.1} GB/s, shader copy {:.1} GB/s, FMA peak {:.1} GFLOP/s, normal fill {:.1} GB/s\n",
                r.copy_bytes_per_s / 1e9,
                r.shader_copy_bytes_per_s / 1e9,
                r.fma_flops_per_s / 1e9,
                r.rng_fill_bytes_per_s / 1e9
            );
        }
        s += &format!(
            "{:>9} {:<11} {:>11} {:>11} {:>10} {:>10} {:>10} {:>8} {:>8}  {}\n",
            "vocab",
            "path",
            "fwd ms",
            "bwd ms",
            "fwd+ MiB",
            "peak MiB",
            "need MiB",
            "fwd/ceil",
            "bwd/ceil",
            "note"
        );
        let ms = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into());
        let frac = |v: Option<f64>| {
            v.map(|x| format!("{:.0}%", x * 100.0))
                .unwrap_or_else(|| "—".into())
        };
        for r in &self.rows {
            s += &format!(
                "{:>9} {:<11} {:>11} {:>11} {:>10} {:>10} {:>10.1} {:>8} {:>8}  {}\n",
                r.vocab,
                r.path,
                ms(r.forward_ms_median),
                ms(r.backward_ms_median),
                r.forward_extra_bytes
                    .map(|b| format!("{:.2}", b as f64 / 1048576.0))
                    .unwrap_or_else(|| "—".into()),
                r.peak_bytes
                    .map(|b| format!("{:.1}", b as f64 / 1048576.0))
                    .unwrap_or_else(|| "—".into()),
                r.formula_bytes as f64 / 1048576.0,
                frac(r.forward_fraction_of_ceiling),
                frac(r.backward_fraction_of_ceiling),
                r.note
            );
        }
        s
    }
}

fn csv_text(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// (median, min, max) of the samples (seconds), in milliseconds; `None`
/// for no samples. Sorts `seconds`.
pub fn summarize(seconds: &mut [f64]) -> Option<(f64, f64, f64)> {
    seconds.sort_by(f64::total_cmp);
    let n = seconds.len();
    if n == 0 {
        return None;
    }
    let median = if n % 2 == 1 {
        seconds[n / 2]
    } else {
        (seconds[n / 2 - 1] + seconds[n / 2]) / 2.0
    };
    Some((median * 1e3, seconds[0] * 1e3, seconds[n - 1] * 1e3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        Results {
            schema: SCHEMA.into(),
            producer: "wgpu-embed".into(),
            adapter: "llvmpipe, with a comma".into(),
            backend: "Vulkan".into(),
            device_type: "Cpu".into(),
            clock: "gpu timestamps".into(),
            batch: 64,
            dim: 8,
            reps: 2,
            roofline: Some(Roofline {
                copy_bytes_per_s: 2e10,
                shader_copy_bytes_per_s: 7e9,
                fma_flops_per_s: 1e11,
                rng_fill_bytes_per_s: 1e9,
            }),
            rows: vec![Row {
                vocab: 10,
                path: "gather".into(),
                forward_ms_median: Some(0.5),
                forward_ms_min: Some(0.4),
                forward_ms_max: Some(0.7),
                backward_ms_median: None,
                backward_ms_min: None,
                backward_ms_max: None,
                peak_bytes: Some(4096),
                forward_extra_bytes: Some(1024),
                formula_bytes: 4000,
                forward_fraction_of_ceiling: Some(0.25),
                backward_fraction_of_ceiling: None,
                note: "not run: \"quoted\"".into(),
            }],
        }
    }

    #[test]
    fn json_round_trip() {
        let dir = std::env::temp_dir().join(format!("wgpu-embed-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("results.json");
        let r = sample();
        r.write_json(&path).unwrap();
        assert_eq!(Results::read_json(&path).unwrap(), r);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn csv_quotes_text_with_commas_and_quotes() {
        let csv = sample().to_csv();
        let line = csv.lines().nth(1).unwrap();
        assert!(line.contains("\"llvmpipe, with a comma\""), "{line}");
        assert!(line.ends_with("\"not run: \"\"quoted\"\"\""), "{line}");
        assert_eq!(csv.lines().next().unwrap().split(',').count(), 22);
    }

    #[test]
    fn summary_is_median_min_max_in_ms() {
        assert_eq!(summarize(&mut [0.003, 0.001, 0.002]), Some((2.0, 1.0, 3.0)));
        assert_eq!(
            summarize(&mut [0.004, 0.001, 0.002, 0.003]),
            Some((2.5, 1.0, 4.0))
        );
        assert_eq!(summarize(&mut []), None);
    }
}
