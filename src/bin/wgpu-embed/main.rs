//! `wgpu-embed`: benchmark an embedding's gather against a one-hot matmul on
//! this machine's GPU, forward and backward, time and memory.

mod compare;
mod figures;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use wgpu_embed::bench;
use wgpu_embed::bench::MAX_REPS;
use wgpu_embed::kernels::uniform_init;
use wgpu_embed::{Gpu, GpuOptions};

#[derive(Parser, Debug)]
#[command(
    name = "wgpu-embed",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Gather vs one-hot matmul at each vocabulary size (the default).
    Bench(BenchArgs),
    /// Every adapter wgpu finds, with its limits and features.
    Adapters {
        #[command(flatten)]
        adapter: AdapterArgs,
        /// Also open each adapter and print its RNG digest (FNV-1a of a
        /// 4096 × 64 table after uniform_(-1, 1, 42)): the same everywhere.
        #[arg(long)]
        digest: bool,
    },
    /// The adapter's ceilings: copy bandwidth, shader copy, FMA peak, RNG fill.
    Roofline {
        #[command(flatten)]
        adapter: AdapterArgs,
        /// Samples per measurement.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=MAX_REPS as u64))]
        reps: u64,
    },
    /// Two results.json files side by side (e.g. ours and scripts/torch_reference.py's).
    Compare { a: PathBuf, b: PathBuf },
    /// The figures of BENCHMARKS.md (gather, backward, bags, matmul, fill),
    /// each beside its in-run reference, as JSON (scripts/gpu-bench.sh).
    Figures {
        #[command(flatten)]
        adapter: AdapterArgs,
        /// The sizes, or smaller ones for a CPU adapter.
        #[arg(long, value_enum, default_value = "issue")]
        size: figures::Size,
        /// Samples per figure (after one warm-up).
        #[arg(long, default_value_t = 10, value_parser = reps)]
        reps: usize,
        /// Where to write the JSON.
        #[arg(long, default_value = "target/figures/ours.json")]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Backend {
    Vulkan,
    Gl,
    Metal,
    Dx12,
}

#[derive(Args, Debug, Clone, Default)]
struct AdapterArgs {
    /// Use the first adapter whose name contains this (case-insensitive).
    #[arg(long)]
    adapter: Option<String>,
    /// Only look at this backend.
    #[arg(long, value_enum)]
    backend: Option<Backend>,
}

impl AdapterArgs {
    fn options(&self) -> GpuOptions {
        GpuOptions {
            backends: self.backend.map(|b| match b {
                Backend::Vulkan => wgpu::Backends::VULKAN,
                Backend::Gl => wgpu::Backends::GL,
                Backend::Metal => wgpu::Backends::METAL,
                Backend::Dx12 => wgpu::Backends::DX12,
            }),
            adapter_name: self.adapter.clone(),
            ..GpuOptions::default()
        }
    }
}

fn reps(s: &str) -> Result<usize, String> {
    match positive(s)? {
        r if r > MAX_REPS => Err(format!("{r} is past the most samples taken, {MAX_REPS}")),
        r => Ok(r),
    }
}

fn positive(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{s:?} is not a positive whole number: {e}")),
    }
}

#[derive(Args, Debug, Clone, Default)]
struct BenchArgs {
    #[command(flatten)]
    adapter: AdapterArgs,
    /// Vocabulary sizes, comma-separated [default: by adapter type].
    #[arg(long, value_delimiter = ',', value_parser = positive)]
    vocab: Vec<usize>,
    /// Indices per batch [default: 2048 on a CPU adapter, 16384 on a GPU].
    #[arg(long, value_parser = positive)]
    batch: Option<usize>,
    /// Embedding width [default: 64 on a CPU adapter, 128 on a GPU].
    #[arg(long, value_parser = positive)]
    dim: Option<usize>,
    /// Also time the backward pass (the default).
    #[arg(long, overrides_with = "no_backward")]
    backward: bool,
    /// Forward only.
    #[arg(long)]
    no_backward: bool,
    /// Timed runs per measurement, after warm-up [default: 5 on a CPU adapter, 20 on a GPU].
    #[arg(long, value_parser = reps)]
    reps: Option<usize>,
    /// Seed of the table and the index list.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Where results.json, results.csv and chart.svg go.
    #[arg(long, default_value = "target/wgpu-embed")]
    out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// `println!` that returns an error instead of panicking when stdout is
/// closed; a closed pipe (`wgpu-embed adapters | head -1`) ends the program
/// quietly, as it does for other command-line tools.
macro_rules! out {
    ($($arg:tt)*) => {
        say(format_args!($($arg)*))?
    };
}

pub(crate) fn say(line: std::fmt::Arguments) -> Result<(), String> {
    use std::io::Write;
    match writeln!(std::io::stdout().lock(), "{line}") {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(format!("cannot write to stdout: {e}")),
    }
}

fn open(args: &AdapterArgs) -> Result<Gpu, String> {
    Gpu::with_options(&args.options()).map_err(|e| e.to_string())
}

fn run_bench(args: &BenchArgs) -> Result<(), String> {
    let gpu = open(&args.adapter)?;
    let defaults = bench::Plan::for_adapter(&gpu);
    let plan = bench::Plan {
        vocab: if args.vocab.is_empty() {
            defaults.vocab
        } else {
            args.vocab.clone()
        },
        batch: args.batch.unwrap_or(defaults.batch),
        dim: args.dim.unwrap_or(defaults.dim),
        backward: !args.no_backward,
        reps: args.reps.unwrap_or(defaults.reps),
        warmup: defaults.warmup,
        seed: args.seed,
    };
    eprintln!("adapter: {}", gpu.describe());
    // Before the sweep, so an unwritable --out does not lose a finished run.
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let probe = args.out.join(".wgpu-embed-write-test");
    std::fs::write(&probe, b"")
        .and_then(|()| std::fs::remove_file(&probe))
        .map_err(|e| format!("cannot write in {}: {e}", args.out.display()))?;
    let results = run_with_bar(&gpu, &plan, args.quiet)?;
    out!("{}", results.table().trim_end());
    let json = args.out.join("results.json");
    let csv = args.out.join("results.csv");
    let svg = args.out.join("chart.svg");
    results
        .write_json(&json)
        .map_err(|e| format!("cannot write {}: {e}", json.display()))?;
    bench::write_file(&csv, results.to_csv().as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", csv.display()))?;
    bench::write_file(&svg, bench::svg(&results)?.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", svg.display()))?;
    out!(
        "wrote {}, {} and {}",
        json.display(),
        csv.display(),
        svg.display()
    );
    Ok(())
}

/// The sweep with a progress bar on stderr.
fn run_with_bar(gpu: &Gpu, plan: &bench::Plan, quiet: bool) -> Result<bench::Results, String> {
    use indicatif::{ProgressBar, ProgressStyle};
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(plan.steps())
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            .expect("the progress template is valid")
            .progress_chars("=> "),
    );
    let mut show = |p: bench::Progress| {
        bar.set_position(p.done);
        bar.set_message(p.message);
    };
    let results = bench::run_blocking(gpu, plan, &mut show);
    bar.finish_and_clear();
    results
}

fn list_adapters(args: &AdapterArgs, digest: bool) -> Result<(), String> {
    let list = Gpu::list_adapters(&args.options()).map_err(|e| e.to_string())?;
    let gpus = match digest {
        true => Gpu::all(&args.options()).map_err(|e| e.to_string())?,
        false => Vec::new(),
    };
    for (i, (info, limits, features)) in list.iter().enumerate() {
        out!(
            "{i}: {} [{:?}, {:?}] driver {} {}",
            info.name,
            info.backend,
            info.device_type,
            info.driver,
            info.driver_info
        );
        out!(
            "   max storage binding {} MiB, max buffer {} MiB, workgroup storage {} KiB, workgroups/dim {}, invocations/workgroup {}",
            limits.max_storage_buffer_binding_size >> 20,
            limits.max_buffer_size >> 20,
            limits.max_compute_workgroup_storage_size >> 10,
            limits.max_compute_workgroups_per_dimension,
            limits.max_compute_invocations_per_workgroup
        );
        let f = |feat: wgpu::Features| if features.contains(feat) { "yes" } else { "no" };
        out!(
            "   f32 atomics {}, timestamps {} (inside encoders {}), f16 {}",
            f(wgpu::Features::SHADER_FLOAT32_ATOMIC),
            f(wgpu::Features::TIMESTAMP_QUERY),
            f(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS),
            f(wgpu::Features::SHADER_F16)
        );
        if let Some(gpu) = gpus.get(i) {
            match gpu
                .as_ref()
                .map_err(|e| e.to_string())
                .and_then(|g| uniform_init::digest(g).map_err(|e| e.to_string()))
            {
                Ok(d) => out!(
                    "   rng digest {d:016x} (twin: {:016x})",
                    wgpu_embed::cpu::uniform_init::digest()
                ),
                Err(e) => out!("   rng digest: {e}"),
            }
        }
    }
    Ok(())
}

fn run_figures(gpu: &Gpu, size: figures::Size, reps: usize, out: &PathBuf) -> Result<(), String> {
    eprintln!("adapter: {}", gpu.describe());
    // Checked first, so an unwritable --out does not lose a finished run.
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    // Opened without truncating: a run that fails keeps the last results
    // (and leaves no empty file where there was none).
    let existed = out.exists();
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(out)
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let figures = figures::run(gpu, size, reps).map_err(|e| {
        if !existed {
            let _ = std::fs::remove_file(out);
        }
        e.to_string()
    })?;
    for f in &figures.figures {
        match (&f.reference, f.reference_ms) {
            (Some(r), Some(ms)) => out!("{:<42} {:10.3} ms   ({r}: {ms:.3} ms)", f.name, f.ms),
            _ => out!("{:<42} {:10.3} ms", f.name, f.ms),
        }
    }
    let json = serde_json::to_string_pretty(&figures).map_err(|e| e.to_string())?;
    bench::write_file(out, json.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    out!("wrote {}", out.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        None => run_bench(&cli.bench),
        Some(Command::Bench(args)) => run_bench(args),
        Some(Command::Adapters { adapter, digest }) => list_adapters(adapter, *digest),
        Some(Command::Roofline { adapter, reps }) => open(adapter).and_then(|gpu| {
            let r = bench::measure_roofline(&gpu, *reps as usize).map_err(|e| e.to_string())?;
            out!("{} — times from {}", gpu.describe(), gpu.clock());
            out!(
                "copy_buffer_to_buffer  {:8.2} GB/s (read + write)",
                r.copy_bytes_per_s / 1e9
            );
            out!(
                "compute-shader copy    {:8.2} GB/s (read + write)",
                r.shader_copy_bytes_per_s / 1e9
            );
            out!(
                "FMA peak               {:8.2} GFLOP/s",
                r.fma_flops_per_s / 1e9
            );
            out!(
                "normal fill            {:8.2} GB/s (written)",
                r.rng_fill_bytes_per_s / 1e9
            );
            Ok(())
        }),
        Some(Command::Compare { a, b }) => compare::run(a, b),
        Some(Command::Figures {
            adapter,
            size,
            reps,
            out,
        }) => open(adapter).and_then(|gpu| run_figures(&gpu, *size, *reps, out)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
