//! `sgd_update`: `weight -= lr * grad` for a dense or a sparse gradient.
//! Shader: `shaders/sgd_update.wgsl`; CPU twin: `cpu::sgd_update`.

use crate::binding::{self, RowBlock, Span};
use crate::cpu::Round16;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::to_u32;
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};

/// The update, its f16 rounding, and the Philox that rounding draws from.
const SOURCE: &str = concat!(
    include_str!("../../shaders/sgd_update.wgsl"),
    include_str!("../../shaders/sgd_update/f16_round.wgsl"),
    include_str!("../../shaders/uniform_init/philox.wgsl"),
    include_str!("../../shaders/exact_arith/ops.wgsl"),
);

const fn spec(entry: &'static str, defs: &'static [&'static str]) -> KernelSpec {
    KernelSpec {
        name: "sgd_update",
        source: SOURCE,
        entry,
        defs,
    }
}

const DENSE: KernelSpec = spec("sgd_dense", &[]);
const SPARSE: KernelSpec = spec("sgd_sparse", &[]);
const DENSE16: KernelSpec = spec("sgd_dense", &["F16"]);
const SPARSE16: KernelSpec = spec("sgd_sparse", &["F16"]);

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    dim: u32,
    num_embeddings: u32,
    lr: f32,
    row_begin: u32,
    row_end: u32,
    grad_offset: u32,
    stochastic: u32,
    seed: [u32; 2],
    step: [u32; 2],
}

/// The shader's rounding fields for an f16 table (`f32` tables ignore them).
pub(crate) fn round_fields(round: Option<Round16>) -> (u32, [u32; 2], [u32; 2]) {
    let split = |x: u64| [x as u32, (x >> 32) as u32];
    match round {
        Some(Round16::Stochastic { seed, step }) => (1, split(seed), split(step)),
        _ => (0, [0; 2], [0; 2]),
    }
}

/// The gradient an update reads.
#[derive(Clone, Debug)]
pub enum SgdGrad<'a> {
    /// Dense gradient rows that include every row of the weight block:
    /// the matching row-block of a gradient stored like the table, or a
    /// whole `[num_embeddings, dim]` gradient (any size up to
    /// `max_buffer_size`, bound in windows).
    Dense(RowBlock<'a>),
    /// `count` unique rows and their `[count, dim]` values.
    Sparse {
        /// `count` u32 table rows, each at most once (two updates of one row
        /// would race); rows outside the table or the weight block are
        /// skipped.
        rows: &'a wgpu::Buffer,
        /// `[count, dim]` row-major: f32, or f16 packed two per u32 when
        /// [`SgdArgs::half`] is set.
        values: &'a wgpu::Buffer,
        /// Number of rows in the sparse gradient.
        count: usize,
    },
}

/// One update of one row-block of a `[num_embeddings, dim]` table.
pub struct SgdArgs<'a> {
    /// The row-block updated in place: its rows (clipped to
    /// `num_embeddings`) × `dim` elements, f32 or f16 as `half` says.
    pub weight: RowBlock<'a>,
    /// Rows in the whole table.
    pub num_embeddings: usize,
    /// Elements per row of the weight and the gradient.
    pub dim: usize,
    /// The gradient subtracted, in the weight's element type.
    pub grad: SgdGrad<'a>,
    /// Learning rate: each element moves by `lr · grad`.
    pub lr: f32,
    /// `Some`: the weight and the gradient are f16 (packed two per u32) and
    /// the result is rounded so; `None`: f32.
    pub half: Option<Round16>,
}

/// Records the update into `encoder`: one dispatch, or one per window where
/// the gradient is past one storage binding.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &SgdArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| record(rec, args))
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(rec: &mut Recorder, args: &SgdArgs) -> Result<()> {
    let gpu = rec.gpu();
    let range = &args.weight.rows;
    let range = range.start.min(args.num_embeddings)..range.end.min(args.num_embeddings);
    // Per block, not the whole table: the shader indexes within its block
    // (the Philox element key is 64-bit), so a table past 2^32 elements in
    // several blocks steps as the fused updates do.
    to_u32("table block elements", range.len().saturating_mul(args.dim))?;
    let elem = if args.half.is_some() { 2 } else { 4 };
    let row_bytes = args.dim as u64 * elem;
    let (stochastic, seed, step) = round_fields(args.half);
    let params = Params {
        len: 0,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        lr: args.lr,
        row_begin: to_u32("block first row", range.start)?,
        row_end: to_u32("block end row", range.end)?,
        grad_offset: 0,
        stochastic,
        seed,
        step,
    };
    let weight = args.weight.span;
    binding::check_span(gpu, "sgd_update weight", &weight)?;
    let reads = match &args.grad {
        SgdGrad::Dense(grad) => {
            binding::check_span(gpu, "sgd_update dense gradient", &grad.span)?;
            vec![grad.span.buffer]
        }
        SgdGrad::Sparse { rows, values, .. } => vec![*rows, *values],
    };
    binding::check_no_alias("sgd_update", &reads, &[weight.buffer])?;
    // The words of `count` rows: f32s, or halves two per word.
    let words = |count: u64| {
        count
            .saturating_mul(args.dim as u64)
            .saturating_mul(elem)
            .div_ceil(4)
    };
    binding::check_holds(
        "sgd_update weight (its rows × dim)",
        weight.size,
        words(range.len() as u64),
    )?;
    // (params, grad span, weight span, rows span) per dispatch.
    let mut dispatches: Vec<(Params, Span, Span, Option<Span>)> = Vec::new();
    match &args.grad {
        SgdGrad::Dense(grad) => {
            if grad.rows.start > range.start || grad.rows.end < range.end {
                return Err(Error::ShapeMismatch {
                    what: "dense gradient rows (must include the weight block's rows)",
                    expected: vec![range.start, range.end],
                    found: vec![grad.rows.start, grad.rows.end],
                });
            }
            binding::check_holds(
                "sgd_update dense gradient (its rows × dim)",
                grad.span.size,
                words(grad.rows.len() as u64),
            )?;
            // The weight's first row within the gradient block.
            let skip = (range.start - grad.rows.start) as u64 * row_bytes;
            if grad.span.size <= gpu.max_binding_bytes() {
                let mut p = params;
                p.len = to_u32("table block elements", range.len() * args.dim)?;
                p.grad_offset = to_u32("gradient offset", (skip / elem) as usize)?;
                dispatches.push((p, grad.span, weight, None));
            } else if args.half.is_some() {
                // An f16 gradient is made in its table's row-blocks, each one binding.
                return Err(Error::ShapeMismatch {
                    what: "f16 dense gradient row-blocks (those of its table, each one binding)",
                    expected: vec![range.start, range.end],
                    found: vec![grad.rows.start, grad.rows.end],
                });
            } else {
                // Rows of a gradient past one binding, bound from the aligned
                // offset at or before the window's first row: the windows
                // leave room for the bytes in between.
                let align = gpu.storage_offset_alignment();
                let limit = gpu.max_binding_bytes().saturating_sub(align - 4);
                let windows = binding::windows_within(
                    gpu,
                    range.len(),
                    &[row_bytes],
                    limit,
                    "gradient rows",
                )?;
                for w in windows {
                    let start = grad
                        .span
                        .offset
                        .saturating_add(skip)
                        .saturating_add(w.start as u64 * row_bytes);
                    let offset = start / align * align;
                    let size = w.len() as u64 * row_bytes + (start - offset);
                    let mut p = params;
                    p.len = to_u32("table block elements", w.len() * args.dim)?;
                    p.grad_offset = ((start - offset) / 4) as u32;
                    let span = Span {
                        buffer: grad.span.buffer,
                        offset,
                        size,
                    };
                    dispatches.push((p, span, weight.slice(&w, row_bytes), None));
                }
            }
        }
        &SgdGrad::Sparse {
            rows,
            values,
            count,
        } => {
            to_u32("sparse gradient elements", count.saturating_mul(args.dim))?;
            binding::check_holds(
                "sgd_update sparse rows (count u32)",
                rows.size(),
                count as u64,
            )?;
            binding::check_holds(
                "sgd_update sparse values (count × dim)",
                values.size(),
                words(count as u64),
            )?;
            let windows = binding::windows(
                gpu,
                count,
                &[4, row_bytes],
                "sparse gradient rows and values",
            )?;
            for w in windows {
                let mut p = params;
                p.len = to_u32("sparse rows", w.len())?;
                dispatches.push((
                    p,
                    Span::items(values, &w, row_bytes),
                    weight,
                    Some(Span::items(rows, &w, 4)),
                ));
            }
        }
    }
    let sparse = matches!(args.grad, SgdGrad::Sparse { .. });
    let spec = match (sparse, args.half.is_some()) {
        (false, false) => &DENSE,
        (true, false) => &SPARSE,
        (false, true) => &DENSE16,
        (true, true) => &SPARSE16,
    };
    for (p, grad, weight, rows) in dispatches {
        // Sparse: one invocation per value; dense: per element, or per
        // word of two halves.
        let elements = if sparse {
            p.len as u64 * args.dim as u64
        } else if args.half.is_some() {
            (p.len as u64).div_ceil(2)
        } else {
            p.len as u64
        };
        let mut spans = vec![(1, grad), (2, weight)];
        if let Some(rows) = rows {
            spans.push((3, rows));
        }
        rec.launch(spec, &[], &p, &spans, Work::Invocations(elements))?;
    }
    Ok(())
}
