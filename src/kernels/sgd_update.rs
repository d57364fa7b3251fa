//! `sgd_update`: `weight -= lr * grad` for a dense or a sparse gradient.
//! Shader: `shaders/sgd_update.wgsl`; CPU twin: `cpu::sgd_update`.

use crate::binding::{self, RowBlock, Span};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::to_u32;
use crate::pipeline::KernelSpec;
use crate::recorder::{Recorder, Work};

const SOURCE: &str = include_str!("../../shaders/sgd_update.wgsl");

const DENSE: KernelSpec = KernelSpec {
    name: "sgd_update",
    source: SOURCE,
    entry: "sgd_dense",
    defs: &[],
};
const SPARSE: KernelSpec = KernelSpec {
    name: "sgd_update",
    source: SOURCE,
    entry: "sgd_sparse",
    defs: &[],
};

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
    _pad: u32,
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
        rows: &'a wgpu::Buffer,
        values: &'a wgpu::Buffer,
        count: usize,
    },
}

/// One update of one row-block of a `[num_embeddings, dim]` table.
pub struct SgdArgs<'a> {
    pub weight: RowBlock<'a>,
    pub num_embeddings: usize,
    pub dim: usize,
    pub grad: SgdGrad<'a>,
    pub lr: f32,
}

/// Records the update into `encoder`: one dispatch, or one per window where
/// the gradient is past one storage binding.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &SgdArgs) -> Result<()> {
    let range = &args.weight.rows;
    let range = range.start.min(args.num_embeddings)..range.end.min(args.num_embeddings);
    to_u32(
        "table elements",
        args.num_embeddings.saturating_mul(args.dim),
    )?;
    to_u32("table block elements", range.len().saturating_mul(args.dim))?;
    let row_bytes = args.dim as u64 * 4;
    let params = Params {
        len: 0,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        lr: args.lr,
        row_begin: to_u32("block first row", range.start)?,
        row_end: to_u32("block end row", range.end)?,
        grad_offset: 0,
        _pad: 0,
    };
    let weight = args.weight.span;
    let words = (range.len() as u64).saturating_mul(args.dim as u64);
    binding::check_holds("sgd_update weight (its rows × dim)", weight.size, words)?;
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
            let words = (grad.rows.len() as u64).saturating_mul(args.dim as u64);
            binding::check_holds(
                "sgd_update dense gradient (its rows × dim)",
                grad.span.size,
                words,
            )?;
            // The weight's first row within the gradient block.
            let skip = (range.start - grad.rows.start) as u64 * row_bytes;
            if grad.span.size <= gpu.max_binding_bytes() {
                let mut p = params;
                p.len = to_u32("table block elements", range.len() * args.dim)?;
                p.grad_offset = to_u32("gradient offset", (skip / 4) as usize)?;
                dispatches.push((p, grad.span, weight, None));
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
                    let start = grad.span.offset + skip + w.start as u64 * row_bytes;
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
            let words = (count as u64).saturating_mul(args.dim as u64);
            binding::check_holds(
                "sgd_update sparse values (count × dim)",
                values.size(),
                words,
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
    let spec = if sparse { &SPARSE } else { &DENSE };
    let mut rec = Recorder::new(gpu, encoder);
    for (p, grad, weight, rows) in dispatches {
        let elements = if sparse {
            p.len as u64 * args.dim as u64
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
