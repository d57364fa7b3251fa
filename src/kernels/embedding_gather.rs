//! `embedding_gather`: `out[p, :] = table[indices[p], :]`.
//! Shader: `shaders/embedding_gather.wgsl`; CPU twin: `cpu::embedding_gather`.

use std::ops::Range;

use crate::binding::{self, Span};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{to_u32, LOOP_BUDGET, WORKGROUP_SIZE};
use crate::pipeline::KernelSpec;
use crate::recorder::{Recorder, Work};
use crate::status::Status;
use crate::tensor::{IndexTensor, Tensor};

const SOURCE: &str = include_str!("../../shaders/embedding_gather.wgsl");

/// The variants of the one `gather` body (see the shader's header).
const fn spec(defs: &'static [&'static str]) -> KernelSpec {
    KernelSpec {
        name: "embedding_gather",
        source: SOURCE,
        entry: "gather",
        defs,
    }
}
const VEC4: KernelSpec = spec(&["VEC4"]);
const SCALAR: KernelSpec = spec(&[]);
const F16_VEC4: KernelSpec = spec(&["F16", "VEC4"]);
const F16_SCALAR: KernelSpec = spec(&["F16"]);

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    dim: u32,
    num_embeddings: u32,
    row_begin: u32,
    row_end: u32,
    chunk_rows: u32,
    pos_base: u32,
    _pad: u32,
}

pub use crate::status::STATUS_OK;

/// How many invocations share one output row. A CPU adapter (lavapipe) runs
/// invocations as SIMD lanes and is fastest streaming one row per lane; a GPU
/// wants neighbouring invocations on neighbouring vec4s so loads coalesce.
/// Never fewer than [`min_threads_per_row`].
pub fn threads_per_row(gpu: &Gpu, dim: usize) -> u32 {
    let words = if dim.is_multiple_of(4) { dim / 4 } else { dim };
    let preferred = if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
        1
    } else {
        words.clamp(1, 64) as u32
    };
    preferred.max(min_threads_per_row(dim))
}

/// The fewest invocations per row that keep each one's loops within
/// [`LOOP_BUDGET`]: an invocation may run both its copy loop and the
/// zero-fill loop of the out-of-range branch (SIMD lanes run both sides of a
/// branch), each over its share of the row's words. Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`), which one invocation per row reaches at 65 536 words. A caller's
/// `threads_per_row` is raised to this too.
pub fn min_threads_per_row(dim: usize) -> u32 {
    let words = if dim.is_multiple_of(4) { dim / 4 } else { dim };
    words.div_ceil(LOOP_BUDGET / 2).max(1) as u32
}

/// The buffers one gather reads and writes. `status` is one u32 that the
/// caller initialises to [`STATUS_OK`]; the kernel lowers it to the first
/// out-of-range position. `indices` and `out` may be past one storage
/// binding (up to `max_buffer_size`): the gather then runs in windows of
/// positions, one dispatch each.
pub struct GatherArgs<'a> {
    pub table: &'a wgpu::Buffer,
    pub num_embeddings: usize,
    pub dim: usize,
    pub indices: &'a wgpu::Buffer,
    pub n: usize,
    pub status: &'a wgpu::Buffer,
    pub out: &'a wgpu::Buffer,
    /// Invocations per row; `None` picks [`threads_per_row`]. Never fewer
    /// than [`min_threads_per_row`].
    pub threads_per_row: Option<u32>,
    /// Invocations per workgroup; `None` picks [`workgroup_size`].
    pub workgroup_size: Option<u32>,
    /// Bake `dim` into the pipeline (one pipeline per dim, unrolled row copy).
    pub const_dim: bool,
    /// `table` holds only rows `row_begin .. row_begin + rows` of a table
    /// stored in row-chunks; `None`: the whole table. The dispatch writes the
    /// output rows whose index falls in the chunk (and zeroes out-of-range ones).
    pub chunk: Option<TableChunk>,
}

/// Rows `row_begin .. row_begin + rows` of a chunked table.
#[derive(Clone, Copy, Debug)]
pub struct TableChunk {
    pub row_begin: usize,
    pub rows: usize,
}

/// Table rows `rows`, stored from the start of `span`: a row-chunk of a
/// table, or a window of a buffer past one binding read as a table.
#[derive(Clone, Debug)]
pub(crate) struct TableBlock<'a> {
    pub rows: Range<usize>,
    pub span: Span<'a>,
}

/// One dispatch's share of the index list: positions `pos_base .. pos_base + n`,
/// bound as `indices`, their rows written from the start of `out`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window<'a> {
    pub indices: Span<'a>,
    pub out: Span<'a>,
    pub pos_base: usize,
    pub n: usize,
}

/// Windows over the whole index list of `args`: each window's indices and
/// output rows fit one binding and start at aligned offsets.
pub(crate) fn windows<'a>(gpu: &Gpu, args: &GatherArgs<'a>) -> Result<Vec<Window<'a>>> {
    let row_bytes = args.dim as u64 * 4;
    Ok(binding::windows(
        gpu,
        args.n,
        &[4, row_bytes],
        "embedding_gather window (indices and output rows)",
    )?
    .into_iter()
    .map(|w| Window {
        indices: Span::items(args.indices, &w, 4),
        out: Span::items(args.out, &w, row_bytes),
        pos_base: w.start,
        n: w.len(),
    })
    .collect())
}

/// Records the gather into `encoder`; submits nothing.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &GatherArgs) -> Result<()> {
    encode_dtype(gpu, encoder, args, false)
}

/// Records the gather of an f16 table (`args.table` holds halves packed two
/// per u32, as [`crate::nn::HalfTensor`] stores them; `args.out` is f32);
/// submits nothing. CPU twin: `cpu::embedding_gather_f16`.
pub fn encode_f16(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &GatherArgs) -> Result<()> {
    encode_dtype(gpu, encoder, args, true)
}

fn encode_dtype(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    args: &GatherArgs,
    half: bool,
) -> Result<()> {
    let rows = match args.chunk {
        Some(c) => c.row_begin..c.row_begin.saturating_add(c.rows),
        None => 0..args.num_embeddings,
    };
    let block = TableBlock {
        rows,
        span: Span::whole(args.table),
    };
    encode_block(gpu, encoder, args, half, &block, &windows(gpu, args)?)
}

fn params(args: &GatherArgs, window: &Window, rows: &Range<usize>) -> Result<Params> {
    to_u32("index count", args.n)?;
    Ok(Params {
        n: to_u32("index count", window.n)?,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        row_begin: to_u32("chunk first row", rows.start)?,
        row_end: to_u32("chunk end row", rows.end)?,
        chunk_rows: 0,
        pos_base: to_u32("window first position", window.pos_base)?,
        _pad: 0,
    })
}

/// One table block (one binding) gathered over `windows`.
pub(crate) fn encode_block(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    args: &GatherArgs,
    half: bool,
    block: &TableBlock,
    windows: &[Window],
) -> Result<()> {
    if windows.is_empty() {
        return Ok(());
    }
    let tpr = args
        .threads_per_row
        .unwrap_or_else(|| threads_per_row(gpu, args.dim))
        .max(min_threads_per_row(args.dim));
    let vec4 = args.dim.is_multiple_of(4);
    let spec = match (half, vec4) {
        (false, true) => &VEC4,
        (false, false) => &SCALAR,
        (true, true) => &F16_VEC4,
        (true, false) => &F16_SCALAR,
    };
    let wg = args.workgroup_size.unwrap_or_else(|| workgroup_size(gpu));
    let constants = [
        ("THREADS_PER_ROW", tpr as f64),
        (
            "DIM4",
            if vec4 && args.const_dim {
                (args.dim / 4) as f64
            } else {
                0.0
            },
        ),
    ];
    let mut rec = Recorder::new(gpu, encoder);
    for window in windows {
        rec.launch(
            spec,
            &constants,
            &params(args, window, &block.rows)?,
            &[
                (1, window.indices),
                (2, args.status.into()),
                (3, block.span),
                (4, window.out),
            ],
            Work::InvocationsIn {
                count: window.n as u64 * tpr as u64,
                workgroup_size: wg,
            },
        )?;
    }
    Ok(())
}

const VEC4_CHUNKS4: KernelSpec = spec(&["CHUNKS4", "VEC4"]);

/// Chunks one `CHUNKS4` dispatch binds at most.
pub const CHUNKS_PER_DISPATCH: usize = 4;

/// Up to [`CHUNKS_PER_DISPATCH`] consecutive row-chunks of one f32 table:
/// chunk `k` holds rows `row_begin + k·chunk_rows ..` (the last may be short).
pub struct ChunkGroup<'a> {
    pub chunks: &'a [&'a wgpu::Buffer],
    pub row_begin: usize,
    pub chunk_rows: usize,
    /// Rows the group holds in all.
    pub rows: usize,
}

/// Records a gather from a group of bound chunks (`dim % 4 == 0`): output
/// rows whose index falls in the group are written; out-of-range indices are
/// zero-filled and reported as by [`encode`]. `args.table` and `args.chunk`
/// are ignored.
pub fn encode_chunk_group(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    args: &GatherArgs,
    group: &ChunkGroup,
) -> Result<()> {
    let blocks: Vec<TableBlock> = group
        .chunks
        .iter()
        .enumerate()
        .map(|(k, &buffer)| {
            let begin = group.row_begin + k * group.chunk_rows;
            TableBlock {
                rows: begin..(begin + group.chunk_rows).min(group.row_begin + group.rows),
                span: Span::whole(buffer),
            }
        })
        .collect();
    encode_group(gpu, encoder, args, &blocks, &windows(gpu, args)?)
}

/// A gather from up to [`CHUNKS_PER_DISPATCH`] blocks bound at once, every
/// block but the last holding the same number of rows (`dim % 4 == 0`).
fn encode_group(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    args: &GatherArgs,
    group: &[TableBlock],
    windows: &[Window],
) -> Result<()> {
    let chunk_rows = group.first().map_or(0, |b| b.rows.len());
    if group.is_empty() || group.len() > CHUNKS_PER_DISPATCH || chunk_rows == 0 {
        return Err(Error::InvalidArgument {
            name: "chunk group",
            reason: format!(
                "needs 1..={CHUNKS_PER_DISPATCH} chunks of at least one row, got {} chunks of {} rows",
                group.len(),
                chunk_rows
            ),
        });
    }
    if !args.dim.is_multiple_of(4) {
        return Err(Error::InvalidArgument {
            name: "dim",
            reason: format!(
                "bound chunk groups use the vec4 path; {} is not a multiple of 4",
                args.dim
            ),
        });
    }
    if windows.is_empty() {
        return Ok(());
    }
    let tpr = args
        .threads_per_row
        .unwrap_or_else(|| threads_per_row(gpu, args.dim))
        .max(min_threads_per_row(args.dim));
    let rows = group[0].rows.start..group[group.len() - 1].rows.end;
    let wg = args.workgroup_size.unwrap_or_else(|| workgroup_size(gpu));
    let mut rec = Recorder::new(gpu, encoder);
    // Unused slots repeat the last chunk: the shader never picks them.
    let slot = |k: usize| group[k.min(group.len() - 1)].span;
    for window in windows {
        let mut params = params(args, window, &rows)?;
        params.chunk_rows = to_u32("rows per chunk", chunk_rows)?;
        rec.launch(
            &VEC4_CHUNKS4,
            &[("THREADS_PER_ROW", tpr as f64)],
            &params,
            &[
                (1, window.indices),
                (2, args.status.into()),
                (3, slot(0)),
                (4, window.out),
                (5, slot(1)),
                (6, slot(2)),
                (7, slot(3)),
            ],
            Work::InvocationsIn {
                count: window.n as u64 * tpr as u64,
                workgroup_size: wg,
            },
        )?;
    }
    Ok(())
}

/// A gather from a table stored as `blocks` (row-chunks, or windows of one
/// buffer) over `windows`: with `dim % 4 == 0` and f32, up to four blocks
/// bound per dispatch (measured against one dispatch per block in
/// examples/chunked_gather.rs: fewer passes over the indices won), else one
/// dispatch per block. Each dispatch writes the output rows whose index falls
/// in its blocks and zero-fills out-of-range ones.
pub(crate) fn encode_blocks(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    args: &GatherArgs,
    half: bool,
    blocks: &[TableBlock],
    windows: &[Window],
) -> Result<()> {
    if blocks.len() > 1 && !half && args.dim.is_multiple_of(4) {
        for group in blocks.chunks(CHUNKS_PER_DISPATCH) {
            encode_group(gpu, encoder, args, group, windows)?;
        }
        return Ok(());
    }
    for block in blocks {
        encode_block(gpu, encoder, args, half, block, windows)?;
    }
    Ok(())
}

/// Invocations per workgroup.
pub fn workgroup_size(_gpu: &Gpu) -> u32 {
    WORKGROUP_SIZE
}

/// Gathers rows of `table` (`[num_embeddings, dim]`) at GPU-resident `indices`,
/// submits, waits, and reports the first out-of-range index as
/// `Error::IndexOutOfRange` (those rows are zero in the kernel's output).
pub fn embedding_gather(table: &Tensor, indices: &IndexTensor) -> Result<Tensor> {
    let gpu = table.gpu();
    indices.check_gpu(gpu, "indices")?;
    let [num_embeddings, dim] = table.shape() else {
        return Err(Error::ShapeMismatch {
            what: "embedding_gather table ([num_embeddings, dim])",
            expected: vec![0, 0],
            found: table.shape().to_vec(),
        });
    };
    let (num_embeddings, dim) = (*num_embeddings, *dim);
    let out = Tensor::zeros(gpu, &[indices.len(), dim])?;
    let status = Status::new(gpu)?;
    let mut encoder = gpu.encoder("embedding_gather");
    encode(
        gpu,
        &mut encoder,
        &GatherArgs {
            table: table.buffer(),
            num_embeddings,
            dim,
            indices: indices.buffer(),
            n: indices.len(),
            status: status.buffer(),
            out: out.buffer(),
            threads_per_row: None,
            workgroup_size: None,
            const_dim: false,
            chunk: None,
        },
    )?;
    status.submit_and_check(encoder, indices, num_embeddings)?;
    Ok(out)
}
