//! `scatter_add_atomic`: the opt-in float-atomic gradient. Fast where the
//! adapter has `SHADER_FLOAT32_ATOMIC`, but the order of the additions — and
//! so the last bits of any row several positions share — varies from run to run.
//! Shader: `shaders/scatter_add_atomic.wgsl`; CPU twin: `cpu::scatter_add_atomic`
//! (one of the orders the GPU may take: ascending positions).

use crate::binding::{self, RowBlock, Span};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{padding_word, to_u32, LOOP_BUDGET};
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};

const SPEC: KernelSpec = KernelSpec {
    name: "scatter_add_atomic",
    source: include_str!("../../shaders/scatter_add_atomic.wgsl"),
    entry: "scatter_add_atomic",
    defs: &[],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    dim: u32,
    num_embeddings: u32,
    padding_idx: u32,
    scale_by_freq: u32,
    row_begin: u32,
    row_end: u32,
    pos_base: u32,
    col_block: u32,
    blocks: u32,
    _pad: [u32; 2],
}

/// The buffers of one atomic scatter-add.
pub struct AtomicArgs<'a> {
    /// u32 row ids, `n` of them.
    pub indices: &'a wgpu::Buffer,
    /// Number of indices (positions), and so of rows in `grad_out`.
    pub n: usize,
    /// Rows in the whole table (and u32 entries in `counts`): an index at
    /// or past it adds nothing and is reported in `status`.
    pub num_embeddings: usize,
    /// Elements per row of `grad_out` and `grad`.
    pub dim: usize,
    /// The row that receives no gradient, or `None`.
    pub padding_idx: Option<usize>,
    /// Row counts (`row_histogram`), read only when `scale_by_freq`.
    pub counts: &'a wgpu::Buffer,
    /// Divide each position's term by its row's count (at least 1) before
    /// adding it, as PyTorch's `scale_grad_by_freq`.
    pub scale_by_freq: bool,
    /// One u32, set by the caller to `STATUS_OK`; lowered (atomic min) to
    /// the first out-of-range position.
    pub status: &'a wgpu::Buffer,
    /// `[n, dim]`; past one binding, read in windows of positions.
    pub grad_out: &'a wgpu::Buffer,
    /// The gradient rows written (one row-block of a gradient stored like
    /// the table), cleared here first. Past one binding, written in windows of rows.
    pub grad: RowBlock<'a>,
}

/// Columns one invocation adds: a row wider than this is split over several
/// invocations, because Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`).
const COL_BLOCK: usize = LOOP_BUDGET;

/// `MissingFeature` unless the adapter can add floats atomically.
pub fn check_supported(gpu: &Gpu) -> Result<()> {
    if gpu.has_float_atomics() {
        Ok(())
    } else {
        Err(Error::MissingFeature {
            feature:
                "SHADER_FLOAT32_ATOMIC (use GradientMode::Deterministic, which runs everywhere)",
            adapter: gpu.adapter_info().name.clone(),
        })
    }
}

/// Records the clear of `grad` and the scatter-add into `encoder`: one
/// dispatch per window of `grad` rows and window of positions.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &AtomicArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| record(rec, args))
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(rec: &mut Recorder, args: &AtomicArgs) -> Result<()> {
    let gpu = rec.gpu();
    check_supported(gpu)?;
    let rows = args.grad.rows.clone();
    let rows = rows.start.min(args.num_embeddings)..rows.end.min(args.num_embeddings);
    // The shader reports a bad index only from a dispatch, and a block of
    // no rows records none: refused, where the twin would report it.
    if rows.is_empty() && args.n > 0 {
        return Err(Error::InvalidArgument {
            name: "grad",
            reason: format!(
                "its rows {:?} hold none of the table's {} rows",
                args.grad.rows, args.num_embeddings
            ),
        });
    }
    let row_bytes = args.dim as u64 * 4;
    let (n, dim) = (args.n as u64, args.dim as u64);
    binding::check_holds("scatter_add_atomic indices (n u32)", args.indices.size(), n)?;
    binding::check_holds("scatter_add_atomic status (one u32)", args.status.size(), 1)?;
    let grad_out = n.saturating_mul(dim);
    binding::check_holds(
        "scatter_add_atomic grad_out (n × dim)",
        args.grad_out.size(),
        grad_out,
    )?;
    let grad = (rows.len() as u64).saturating_mul(dim);
    binding::check_holds(
        "scatter_add_atomic grad (its rows × dim)",
        args.grad.span.size,
        grad,
    )?;
    if args.scale_by_freq {
        let counts = args.num_embeddings as u64;
        binding::check_holds("scatter_add_atomic counts", args.counts.size(), counts)?;
    }
    // Everything that can fail comes before the clear and the windows' bind
    // groups are made (the recorder keeps a failed call out of the encoder).
    binding::check_span(gpu, "scatter_add_atomic grad", &args.grad.span)?;
    binding::check_no_alias(
        "scatter_add_atomic",
        &[args.indices, args.counts, args.grad_out],
        &[args.status, args.grad.span.buffer],
    )?;
    to_u32("index count", args.n)?;
    to_u32("table chunk elements", rows.len().saturating_mul(args.dim))?;
    to_u32("embedding dim", args.dim)?;
    to_u32("num_embeddings", args.num_embeddings)?;
    to_u32("chunk end row", rows.end)?;
    let padding_idx = padding_word(args.padding_idx, args.num_embeddings)?;
    let (row_windows, positions) = if args.n == 0 {
        (Vec::new(), Vec::new())
    } else {
        (
            binding::windows(gpu, rows.len(), &[row_bytes], "gradient rows")?,
            binding::windows(
                gpu,
                args.n,
                &[4, row_bytes],
                "scatter_add_atomic window (indices and grad_out rows)",
            )?,
        )
    };
    let grad = args.grad.span;
    rec.clear_buffer(
        grad.buffer,
        grad.offset,
        Some(rows.len() as u64 * row_bytes),
    );
    let blocks = args.dim.div_ceil(COL_BLOCK).max(1);
    for rw in &row_windows {
        for pw in &positions {
            let params = Params {
                n: to_u32("index count", pw.len())?,
                dim: to_u32("embedding dim", args.dim)?,
                num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
                padding_idx,
                scale_by_freq: args.scale_by_freq as u32,
                row_begin: to_u32("chunk first row", rows.start + rw.start)?,
                row_end: to_u32("chunk end row", rows.start + rw.end)?,
                pos_base: to_u32("window first position", pw.start)?,
                col_block: COL_BLOCK as u32,
                blocks: blocks as u32,
                _pad: [0; 2],
            };
            rec.launch(
                &SPEC,
                &[],
                &params,
                &[
                    (1, Span::items(args.indices, pw, 4)),
                    (2, args.status.into()),
                    (3, args.counts.into()),
                    (4, Span::items(args.grad_out, pw, row_bytes)),
                    (5, grad.slice(rw, row_bytes)),
                ],
                Work::Invocations(pw.len() as u64 * blocks as u64),
            )?;
        }
    }
    Ok(())
}
