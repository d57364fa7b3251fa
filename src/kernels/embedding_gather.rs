//! `embedding_gather`: `out[p, :] = table[indices[p], :]`.
//! Shader: `shaders/embedding_gather.wgsl`; CPU twin: `cpu::embedding_gather`.

use crate::binding::{self, RowBlock, Span};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{to_u32, LOOP_BUDGET, WORKGROUP_SIZE};
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};
use crate::status::Status;
use crate::tensor::{DType, IndexTensor, Tensor};

const SOURCE: &str = concat!(
    include_str!("../../shaders/embedding_gather.wgsl"),
    include_str!("../../shaders/exact_arith/ops.wgsl"),
);

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
const INT8_VEC4: KernelSpec = spec(&["INT8", "VEC4"]);
const INT8_SCALAR: KernelSpec = spec(&["INT8"]);
const VEC4_CHUNKS4: KernelSpec = spec(&["CHUNKS4", "VEC4"]);

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

/// The fewest invocations per row that keep each one's loops within the
/// loop budget (`kernels::LOOP_BUDGET`, 32 768 iterations): an invocation
/// may run both its copy loop and the zero-fill loop of the out-of-range
/// branch (SIMD lanes run both sides of a branch), each over its share of
/// the row's words. Mesa's gallivm cuts an invocation's loops short, which
/// one invocation per row reaches at 65 536 words. A caller's
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
    /// The table's row-blocks in row order (one for a table in one binding;
    /// see [`crate::Table::blocks`]).
    pub table: &'a [RowBlock<'a>],
    /// Element type of the table: f32, f16 packed two per u32 (as
    /// [`crate::HalfTensor`] stores them), or int8 row-wise rows (see
    /// [`crate::cpu::int8_rowwise`]). The output is f32 in every case.
    pub dtype: DType,
    /// Rows in the whole table (every block's rows lie below it); an index
    /// at or past it is out of range: its output row is zero-filled and its
    /// position reported in `status`.
    pub num_embeddings: usize,
    /// Elements per row of the table and of `out`.
    pub dim: usize,
    /// u32 row ids, `n` of them.
    pub indices: &'a wgpu::Buffer,
    /// Number of indices (positions), and so of output rows.
    pub n: usize,
    /// One u32, initialised by the caller to [`STATUS_OK`]; the kernel
    /// lowers it (atomic min) to the first out-of-range position.
    pub status: &'a wgpu::Buffer,
    /// `[n, dim]` f32, row-major: row `p` receives `table[indices[p], :]`.
    pub out: &'a wgpu::Buffer,
    /// Invocations per row; `None` picks [`threads_per_row`]. Never fewer
    /// than [`min_threads_per_row`].
    pub threads_per_row: Option<u32>,
    /// Invocations per workgroup; `None` picks [`workgroup_size`].
    pub workgroup_size: Option<u32>,
    /// Bake `dim` into the pipeline (one pipeline per dim, unrolled row copy).
    pub const_dim: bool,
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

/// Records the gather into `encoder`; submits nothing. Every buffer is
/// checked against `n`, `dim` and its rows first. CPU twin:
/// `cpu::embedding_gather` (for f32 and f16 tables).
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &GatherArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| record(rec, args))
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(rec: &mut Recorder, args: &GatherArgs) -> Result<()> {
    let gpu = rec.gpu();
    check_sizes(gpu, args)?;
    // Up front: a later block's dispatch would find it after earlier ones.
    let mut reads: Vec<&wgpu::Buffer> = args.table.iter().map(|b| b.span.buffer).collect();
    reads.push(args.indices);
    binding::check_no_alias("embedding_gather", &reads, &[args.status, args.out])?;
    record_windows(rec, args, &windows(gpu, args)?)
}

/// The most invocations one row may take: a workgroup's worth.
pub const MAX_THREADS_PER_ROW: u32 = 1024;

fn check_sizes(gpu: &Gpu, args: &GatherArgs) -> Result<()> {
    let (n, dim) = (args.n as u64, args.dim as u64);
    binding::check_holds("embedding_gather indices (n u32)", args.indices.size(), n)?;
    binding::check_holds("embedding_gather status (one u32)", args.status.size(), 1)?;
    // Without a block no dispatch runs: the output would stay unwritten
    // and an out-of-range index unreported.
    if args.table.is_empty() && n > 0 {
        return Err(Error::InvalidArgument {
            name: "table",
            reason: format!("no row-blocks given to gather {n} indices from"),
        });
    }
    let out = n.saturating_mul(dim);
    binding::check_holds("embedding_gather out (n × dim f32)", args.out.size(), out)?;
    for block in args.table {
        binding::check_span(gpu, "embedding_gather table block", &block.span)?;
        let elements = (block.rows.len() as u64).saturating_mul(dim);
        let words = match args.dtype {
            DType::F32 => elements,
            DType::F16 => elements.div_ceil(2),
            DType::Int8 => {
                (DType::Int8.row_bytes(args.dim) / 4).saturating_mul(block.rows.len() as u64)
            }
        };
        binding::check_holds(
            "embedding_gather table block (its rows × dim)",
            block.span.size,
            words,
        )?;
        // Each block is bound whole: a later one too large would fail after
        // the earlier blocks' dispatches were recorded.
        binding::check_fits(
            gpu,
            "embedding_gather table block (bound whole)",
            block.span.size,
        )?;
    }
    binding::check_consecutive_rows(args.table, args.num_embeddings)?;
    if let Some(wg) = args.workgroup_size {
        super::check_workgroup_size(gpu, wg)?;
    }
    match args.threads_per_row {
        Some(t) if t == 0 || t > MAX_THREADS_PER_ROW => Err(Error::InvalidArgument {
            name: "threads_per_row",
            reason: format!("{t} is outside 1..={MAX_THREADS_PER_ROW}"),
        }),
        _ => Ok(()),
    }
}

/// Chunks one `CHUNKS4` dispatch binds at most.
pub const CHUNKS_PER_DISPATCH: usize = 4;

/// The gather of `args` over `windows`. With `dim % 4 == 0` and an f32
/// table in several blocks, up to [`CHUNKS_PER_DISPATCH`] blocks are bound
/// per dispatch (measured against one dispatch per block in
/// examples/chunked_gather.rs: fewer passes over the indices won), else one
/// dispatch per block. Each dispatch writes the output rows whose index
/// falls in its blocks and zero-fills out-of-range ones.
pub(crate) fn record_windows(
    rec: &mut Recorder,
    args: &GatherArgs,
    windows: &[Window],
) -> Result<()> {
    let gpu = rec.gpu();
    to_u32("index count", args.n)?;
    let vec4 = args.dim.is_multiple_of(4);
    let half = args.dim > 0 && args.dtype == DType::F16;
    let int8 = args.dim > 0 && args.dtype == DType::Int8;
    // The grouped shader finds a row's block by dividing by the first
    // block's rows, so it takes only tables whose blocks all hold that many
    // (at least one), but for a last that may hold fewer (as `Table` makes
    // them); any other layout gets a dispatch per block.
    let even = args.table.split_first().is_some_and(|(first, rest)| {
        let rows = first.rows.len();
        rows > 0
            && rest.iter().enumerate().all(|(k, b)| {
                let last = k + 1 == rest.len();
                b.rows.len() == rows || (last && b.rows.len() <= rows)
            })
    });
    let grouped = args.table.len() > 1 && !half && !int8 && vec4 && even;
    let group_len = if grouped { CHUNKS_PER_DISPATCH } else { 1 };
    if windows.is_empty() {
        return Ok(());
    }
    let tpr = args
        .threads_per_row
        .unwrap_or_else(|| threads_per_row(gpu, args.dim))
        .max(min_threads_per_row(args.dim));
    let spec = match (grouped, half, vec4) {
        _ if int8 && vec4 => &INT8_VEC4,
        _ if int8 => &INT8_SCALAR,
        (true, _, _) => &VEC4_CHUNKS4,
        (false, false, true) => &VEC4,
        (false, false, false) => &SCALAR,
        (false, true, true) => &F16_VEC4,
        (false, true, false) => &F16_SCALAR,
    };
    let dim4 = if vec4 && args.const_dim && !grouped {
        args.dim / 4
    } else {
        0
    };
    let constants = [("THREADS_PER_ROW", tpr as f64), ("DIM4", dim4 as f64)];
    let wg = args.workgroup_size.unwrap_or_else(|| workgroup_size(gpu));
    for group in args.table.chunks(group_len) {
        let rows = group[0].rows.start..group[group.len() - 1].rows.end;
        // Unused slots repeat the last block: the shader never picks them.
        let slot = |k: usize| group[k.min(group.len() - 1)].span;
        for window in windows {
            let params = Params {
                n: to_u32("index count", window.n)?,
                dim: to_u32("embedding dim", args.dim)?,
                num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
                row_begin: to_u32("block first row", rows.start)?,
                row_end: to_u32("block end row", rows.end)?,
                chunk_rows: to_u32("rows per block", group[0].rows.len())?,
                pos_base: to_u32("window first position", window.pos_base)?,
                _pad: 0,
            };
            let mut bindings = vec![
                (1, window.indices),
                (2, args.status.into()),
                (3, slot(0)),
                (4, window.out),
            ];
            if grouped {
                bindings.extend([(5, slot(1)), (6, slot(2)), (7, slot(3))]);
            }
            rec.launch(
                spec,
                &constants,
                &params,
                &bindings,
                Work::InvocationsIn {
                    count: window.n as u64 * tpr as u64,
                    workgroup_size: wg,
                },
            )?;
        }
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
    let _scope = crate::memory::Scope::enter();
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
            table: &[RowBlock::new(table.buffer(), 0..num_embeddings)],
            dtype: DType::F32,
            num_embeddings,
            dim,
            indices: indices.buffer(),
            n: indices.len(),
            status: status.buffer(),
            out: out.buffer(),
            threads_per_row: None,
            workgroup_size: None,
            const_dim: false,
        },
    )?;
    status.submit_and_check(encoder, indices, num_embeddings)?;
    Ok(out)
}
