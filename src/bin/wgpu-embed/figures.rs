//! `wgpu-embed figures`: the figures BENCHMARKS.md holds (issue #15), ours,
//! in one run: each kernel's median GPU time beside its in-run reference (a
//! copy of the same bytes, or our own forward). `scripts/torch_figures.py`
//! writes PyTorch's side with the same names; `scripts/gpu-bench.sh` runs
//! both and `scripts/figures_table.py` puts them side by side.

use serde::Serialize;
use serde_json::json;
use wgpu_embed::kernels::embedding_bag::{self, BagArgs};
use wgpu_embed::kernels::matmul::{self, MatmulArgs, MatmulOptions};
use wgpu_embed::kernels::uniform_init::{self, FillArgs};
use wgpu_embed::{
    ids, AdamOptions, BagMode, DType, Distribution, Embedding, Error, Gpu, GpuOptions, IndexTensor,
    Result, Status, Tensor,
};

use wgpu_embed::bench::{sample_seconds_blocking, summarize};

/// The sizes of one run: the issue's, or smaller ones for CPU adapters.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Size {
    /// The issue's: V = 2^20, N = 2^22, dim 128 and 256; 2^18 bags × 32
    /// ids; matmul 4096³; 2^28 floats filled. Needs about 12 GiB.
    Issue,
    /// A sixteenth to a sixty-fourth of each, for a CPU adapter.
    Small,
    /// Tiny, for the test that runs the command.
    Tiny,
}

struct Plan {
    vocab: usize,
    n: usize,
    dims: &'static [usize],
    bags: usize,
    bag_len: usize,
    bag_dim: usize,
    matmul: usize,
    fill: usize,
}

impl Size {
    fn plan(self) -> Plan {
        match self {
            Size::Issue => Plan {
                vocab: 1 << 20,
                n: 1 << 22,
                dims: &[128, 256],
                bags: 1 << 18,
                bag_len: 32,
                bag_dim: 128,
                matmul: 4096,
                fill: 1 << 28,
            },
            Size::Small => Plan {
                vocab: 1 << 16,
                n: 1 << 16,
                dims: &[128, 256],
                bags: 1 << 12,
                bag_len: 32,
                bag_dim: 128,
                matmul: 512,
                fill: 1 << 22,
            },
            Size::Tiny => Plan {
                vocab: 1 << 10,
                n: 1 << 10,
                dims: &[16],
                bags: 64,
                bag_len: 8,
                bag_dim: 16,
                matmul: 64,
                fill: 1 << 12,
            },
        }
    }
}

/// One figure: our median time, and the in-run reference it is judged by.
#[derive(Serialize)]
pub struct Figure {
    pub name: String,
    pub params: serde_json::Value,
    pub ms: f64,
    /// What `reference_ms` timed (`None` when the figure has no in-run reference).
    pub reference: Option<String>,
    pub reference_ms: Option<f64>,
}

#[derive(Serialize)]
pub struct Figures {
    pub schema: &'static str,
    pub side: &'static str,
    pub adapter: String,
    pub driver: String,
    pub clock: String,
    pub reps: usize,
    pub figures: Vec<Figure>,
}

/// Median GPU time of `work` over `reps` runs after one warm-up, in ms.
fn median_ms(
    gpu: &Gpu,
    reps: usize,
    mut work: impl FnMut(&mut wgpu::CommandEncoder) -> Result<()>,
) -> Result<f64> {
    sample_seconds_blocking(gpu, &mut work)?;
    let mut s: Vec<f64> = (0..reps)
        .map(|_| sample_seconds_blocking(gpu, &mut work))
        .collect::<Result<_>>()?;
    let (median, ..) = summarize(&mut s).ok_or_else(|| Error::InvalidArgument {
        name: "reps",
        reason: "no samples: reps must be at least 1".into(),
    })?;
    Ok(median)
}

/// `copy_buffer_to_buffer` of `bytes`, in ms.
fn copy_ms(gpu: &Gpu, reps: usize, bytes: u64) -> Result<f64> {
    let src = Tensor::zeros(gpu, &[(bytes / 4) as usize])?;
    let dst = Tensor::zeros(gpu, &[(bytes / 4) as usize])?;
    median_ms(gpu, reps, |enc| {
        enc.copy_buffer_to_buffer(src.buffer(), 0, dst.buffer(), 0, bytes);
        Ok(())
    })
}

/// Runs every figure of `size` on `gpu`, `reps` samples each.
pub fn run(gpu: &Gpu, size: Size, reps: usize) -> Result<Figures> {
    let p = size.plan();
    let mut figures = Vec::new();
    let status = Status::new(gpu)?;
    for &dim in p.dims {
        let emb = Embedding::new(gpu, p.vocab, dim)?;
        let out = Tensor::zeros(gpu, &[p.n, dim])?;
        let out_bytes = (p.n * dim * 4) as u64;
        let copy = copy_ms(gpu, reps, out_bytes)?;
        let grad_out = Tensor::from_slice(gpu, &vec![1e-3; p.n * dim], &[p.n, dim])?;
        let grad = Tensor::zeros(gpu, &[p.vocab, dim])?;
        for (dist, ids) in [
            ("uniform", ids::uniform(p.n, p.vocab, 1)),
            ("zipf1.1", ids::zipf(p.n, p.vocab, 1.1, 2)),
        ] {
            let idx = IndexTensor::from_slice(gpu, &ids)?;
            let forward = median_ms(gpu, reps, |enc| {
                emb.encode_forward(enc, &idx, &out, &status)
            })?;
            let backward = median_ms(gpu, reps, |enc| {
                emb.encode_backward(enc, &idx, &grad_out, &grad, &status)
            })?;
            let params = json!({"vocab": p.vocab, "n": p.n, "dim": dim, "indices": dist});
            figures.push(Figure {
                name: format!("gather forward dim {dim} {dist}"),
                params: params.clone(),
                ms: forward,
                reference: Some(format!(
                    "copy_buffer_to_buffer of the output's {out_bytes} bytes"
                )),
                reference_ms: Some(copy),
            });
            figures.push(Figure {
                name: format!("deterministic backward dim {dim} {dist}"),
                params,
                ms: backward,
                reference: Some("our gather forward of the same batch".into()),
                reference_ms: Some(forward),
            });
        }
        drop((emb, out, grad_out, grad));
    }
    figures.push(bag_figure(gpu, &p, reps, &status)?);
    figures.push(matmul_figure(gpu, p.matmul, reps)?);
    figures.push(fill_figure(gpu, p.fill, reps)?);
    figures.push(adam_figure(gpu, &p, reps)?);
    let info = gpu.adapter_info();
    Ok(Figures {
        schema: "wgpu-embed/figures/v1",
        side: "wgpu-embed",
        adapter: gpu.describe(),
        driver: format!("{} {}", info.driver, info.driver_info),
        clock: gpu.clock().to_string(),
        reps,
        figures,
    })
}

fn bag_figure(gpu: &Gpu, p: &Plan, reps: usize, status: &Status) -> Result<Figure> {
    let (bags, len, dim) = (p.bags, p.bag_len, p.bag_dim);
    let n = bags * len;
    let emb = Embedding::new(gpu, p.vocab, dim)?;
    let idx = IndexTensor::from_slice(gpu, &ids::uniform(n, p.vocab, 3))?;
    let csr: Vec<u32> = (0..=bags as u32).map(|b| b * len as u32).collect();
    let offsets = IndexTensor::from_slice(gpu, &csr)?;
    let out = Tensor::zeros(gpu, &[bags, dim])?;
    let table = emb.weight().buffer()?;
    let ms = median_ms(gpu, reps, |enc| {
        embedding_bag::encode(
            gpu,
            enc,
            &BagArgs {
                mode: BagMode::Sum,
                table,
                dtype: DType::F32,
                num_embeddings: p.vocab,
                dim,
                indices: idx.buffer(),
                n,
                offsets: offsets.buffer(),
                num_bags: bags,
                max_bag_len: len,
                per_sample_weights: None,
                padding_idx: None,
                status: status.buffer(),
                max_positions: None,
                out: out.buffer(),
                threads_per_bag: None,
            },
        )
    })?;
    Ok(Figure {
        name: format!("embedding_bag sum dim {dim}"),
        params: json!({"vocab": p.vocab, "bags": bags, "ids_per_bag": len, "dim": dim}),
        ms,
        reference: None,
        reference_ms: None,
    })
}

fn matmul_figure(gpu: &Gpu, side: usize, reps: usize) -> Result<Figure> {
    let a = Tensor::from_slice(gpu, &vec![0.5; side * side], &[side, side])?;
    let b = Tensor::from_slice(gpu, &vec![0.25; side * side], &[side, side])?;
    let c = Tensor::zeros(gpu, &[side, side])?;
    let args = MatmulArgs {
        m: side,
        n: side,
        k: side,
        a: a.buffer(),
        b: b.buffer(),
        bias: None,
        c: c.buffer(),
        options: MatmulOptions::default(),
        tiles: None,
        fuse_extras: None,
    };
    let ms = median_ms(gpu, reps, |enc| matmul::encode(gpu, enc, &args))?;
    Ok(Figure {
        name: format!("matmul fp32 {side}^3"),
        params: json!({"m": side, "n": side, "k": side, "gflop": 2.0 * (side as f64).powi(3) / 1e9}),
        ms,
        reference: None,
        reference_ms: None,
    })
}

fn fill_figure(gpu: &Gpu, floats: usize, reps: usize) -> Result<Figure> {
    let bytes = floats as u64 * 4;
    let copy = copy_ms(gpu, reps, bytes)?;
    let t = Tensor::zeros(gpu, &[floats])?;
    let ms = median_ms(gpu, reps, |enc| {
        uniform_init::encode(
            gpu,
            enc,
            &FillArgs {
                out: t.buffer(),
                begin: 0,
                end: floats,
                counter_base: 0,
                seed: 7,
                distribution: Distribution::Normal {
                    mean: 0.0,
                    std: 1.0,
                },
                workgroup_size: None,
            },
        )
    })?;
    Ok(Figure {
        name: "normal fill".into(),
        params: json!({"floats": floats}),
        ms,
        // The fill writes the bytes once; a copy reads and writes them.
        reference: Some(format!("copy_buffer_to_buffer of the same {bytes} bytes")),
        reference_ms: Some(copy),
    })
}

/// Dense Adam over the whole table (`Embedding::adam_step`, eight of
/// exact_arith's operations per element), with its checked common case on,
/// beside the same step with the general functions only: what the check is
/// worth on this adapter (`GpuOptions::exact_checked`; the bits are the
/// same). Each side on a device of its own, opened on `gpu`'s adapter.
fn adam_figure(gpu: &Gpu, p: &Plan, reps: usize) -> Result<Figure> {
    let dim = p.bag_dim;
    let n = p.n.min(1 << 16);
    let info = gpu.adapter_info();
    let mut ms = [0.0; 2];
    for (slot, checked) in [(0, true), (1, false)] {
        let side = Gpu::with_options(&GpuOptions {
            backends: Some(info.backend.into()),
            adapter_name: Some(info.name.clone()),
            exact_checked: Some(checked),
            ..GpuOptions::default()
        })?;
        let emb = Embedding::new(&side, p.vocab, dim)?;
        let grad_out = Tensor::from_slice(&side, &vec![1e-3; n * dim], &[n, dim])?;
        let grad = emb.backward(&ids::uniform(n, p.vocab, 4), &grad_out)?;
        let mut state = emb.adam_state()?;
        let options = AdamOptions::default();
        ms[slot] = median_ms(&side, reps, |enc| {
            emb.encode_adam_step(enc, &grad, &mut state, &options)
        })?;
    }
    Ok(Figure {
        name: format!("dense Adam step dim {dim}"),
        params: json!({"vocab": p.vocab, "dim": dim, "exact_checked": true}),
        ms: ms[0],
        reference: Some("the same step, exact_arith's general functions only".into()),
        reference_ms: Some(ms[1]),
    })
}
