//! `sgd_update`: `weight -= lr * grad` for a dense or a sparse gradient.
//! Shader: `shaders/sgd_update.wgsl`; CPU twin: `cpu::sgd_update`.

use crate::binding::{self, Span};
use crate::error::Result;
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
#[derive(Clone, Copy)]
pub enum SgdGrad<'a> {
    /// `[num_embeddings, dim]` (any size up to `max_buffer_size`).
    Dense(&'a wgpu::Buffer),
    /// Exactly the rows `weight` holds, from its start: the matching
    /// row-chunk of a chunked gradient.
    DenseChunk(&'a wgpu::Buffer),
    /// `count` unique rows and their `[count, dim]` values.
    Sparse {
        rows: &'a wgpu::Buffer,
        values: &'a wgpu::Buffer,
        count: usize,
    },
}

/// One update of `weight` (`[num_embeddings, dim]`).
pub struct SgdArgs<'a> {
    pub weight: &'a wgpu::Buffer,
    pub num_embeddings: usize,
    pub dim: usize,
    pub grad: SgdGrad<'a>,
    pub lr: f32,
    /// `weight` holds only table rows `row_begin .. row_end` (a row-chunk);
    /// `None`: the whole table.
    pub rows: Option<std::ops::Range<usize>>,
}

/// Records the update into `encoder`: one dispatch, or one per window where
/// the gradient is past one storage binding.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &SgdArgs) -> Result<()> {
    let range = args.rows.clone().unwrap_or(0..args.num_embeddings);
    let range = range.start.min(args.num_embeddings)..range.end.min(args.num_embeddings);
    to_u32(
        "table elements",
        args.num_embeddings.saturating_mul(args.dim),
    )?;
    to_u32("table chunk elements", range.len().saturating_mul(args.dim))?;
    let row_bytes = args.dim as u64 * 4;
    let mut params = Params {
        len: 0,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        lr: args.lr,
        row_begin: to_u32("chunk first row", range.start)?,
        row_end: to_u32("chunk end row", range.end)?,
        grad_offset: 0,
        _pad: 0,
    };
    // (params, grad span, weight span, rows span) per dispatch.
    let mut dispatches: Vec<(Params, Span, Span, Option<Span>)> = Vec::new();
    match args.grad {
        SgdGrad::Dense(grad) if grad.size() <= gpu.max_binding_bytes() => {
            params.len = to_u32("table chunk elements", range.len() * args.dim)?;
            params.grad_offset = to_u32("gradient offset", range.start * args.dim)?;
            dispatches.push((params, grad.into(), args.weight.into(), None));
        }
        SgdGrad::Dense(grad) => {
            // Rows of a gradient past one binding, bound from the aligned
            // offset at or before the chunk's first row: the windows leave
            // room for the bytes in between.
            let align = gpu.storage_offset_alignment();
            let limit = gpu.max_binding_bytes().saturating_sub(align - 4);
            let windows =
                binding::windows_within(gpu, range.len(), &[row_bytes], limit, "gradient rows")?;
            for w in windows {
                let start = (range.start + w.start) as u64 * row_bytes;
                let offset = start / align * align;
                let size = w.len() as u64 * row_bytes + (start - offset);
                let mut p = params;
                p.len = to_u32("table chunk elements", w.len() * args.dim)?;
                p.grad_offset = ((start - offset) / 4) as u32;
                let span = Span {
                    buffer: grad,
                    offset,
                    size,
                };
                let weight = Span::items(args.weight, &w, row_bytes);
                dispatches.push((p, span, weight, None));
            }
        }
        SgdGrad::DenseChunk(grad) => {
            for w in binding::windows(gpu, range.len(), &[row_bytes], "gradient rows")? {
                let mut p = params;
                p.len = to_u32("table chunk elements", w.len() * args.dim)?;
                let span = Span::items(grad, &w, row_bytes);
                dispatches.push((p, span, Span::items(args.weight, &w, row_bytes), None));
            }
        }
        SgdGrad::Sparse {
            rows,
            values,
            count,
        } => {
            to_u32("sparse gradient elements", count.saturating_mul(args.dim))?;
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
                    args.weight.into(),
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
