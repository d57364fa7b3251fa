//! `embedding_gather`: `out[p, :] = table[indices[p], :]`.
//! Shader: `shaders/embedding_gather.wgsl`; CPU twin: `cpu::embedding_gather`.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{to_u32, WORKGROUP_SIZE};
use crate::pipeline::{Access, KernelSpec};
use crate::tensor::{IndexTensor, Tensor};

const SOURCE: &str = include_str!("../../shaders/embedding_gather.wgsl");

const VEC4: KernelSpec = KernelSpec {
    name: "embedding_gather",
    source: SOURCE,
    entry: "gather_vec4",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
        (3, Access::Read),
        (4, Access::ReadWrite),
    ],
};

const SCALAR: KernelSpec = KernelSpec {
    name: "embedding_gather",
    source: SOURCE,
    entry: "gather_scalar",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
        (5, Access::Read),
        (6, Access::ReadWrite),
    ],
};

const F16_VEC4: KernelSpec = KernelSpec {
    name: "embedding_gather",
    source: SOURCE,
    entry: "gather_f16_vec4",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
        (7, Access::Read),
        (4, Access::ReadWrite),
    ],
};

const F16_SCALAR: KernelSpec = KernelSpec {
    name: "embedding_gather",
    source: SOURCE,
    entry: "gather_f16_scalar",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
        (8, Access::Read),
        (6, Access::ReadWrite),
    ],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    dim: u32,
    num_embeddings: u32,
    row_begin: u32,
    row_end: u32,
    chunk_rows: u32,
    _pad: [u32; 2],
}

/// The status word's value when every index was in range.
pub const STATUS_OK: u32 = u32::MAX;

/// How many invocations share one output row. A CPU adapter (lavapipe) runs
/// invocations as SIMD lanes and is fastest streaming one row per lane; a GPU
/// wants neighbouring invocations on neighbouring vec4s so loads coalesce.
pub fn threads_per_row(gpu: &Gpu, dim: usize) -> u32 {
    if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
        return 1;
    }
    let words = if dim.is_multiple_of(4) { dim / 4 } else { dim };
    words.clamp(1, 64) as u32
}

/// The buffers one gather reads and writes. `status` is one u32 that the
/// caller initialises to [`STATUS_OK`]; the kernel lowers it to the first
/// out-of-range position.
pub struct GatherArgs<'a> {
    pub table: &'a wgpu::Buffer,
    pub num_embeddings: usize,
    pub dim: usize,
    pub indices: &'a wgpu::Buffer,
    pub n: usize,
    pub status: &'a wgpu::Buffer,
    pub out: &'a wgpu::Buffer,
    /// Invocations per row; `None` picks [`threads_per_row`].
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
    if args.n == 0 {
        return Ok(());
    }
    let tpr = args
        .threads_per_row
        .unwrap_or_else(|| threads_per_row(gpu, args.dim))
        .max(1);
    let (row_begin, row_end) = match args.chunk {
        Some(c) => (c.row_begin, c.row_begin.saturating_add(c.rows)),
        None => (0, args.num_embeddings),
    };
    let params = Params {
        n: to_u32("index count", args.n)?,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        row_begin: to_u32("chunk first row", row_begin)?,
        row_end: to_u32("chunk end row", row_end)?,
        chunk_rows: 0,
        _pad: [0; 2],
    };
    let vec4 = args.dim.is_multiple_of(4);
    let spec = match (half, vec4) {
        (false, true) => &VEC4,
        (false, false) => &SCALAR,
        (true, true) => &F16_VEC4,
        (true, false) => &F16_SCALAR,
    };
    let wg = args.workgroup_size.unwrap_or_else(|| workgroup_size(gpu));
    let kernel = gpu.kernel(
        spec,
        &[
            ("WORKGROUP_SIZE", wg as f64),
            ("THREADS_PER_ROW", tpr as f64),
            (
                "DIM4",
                if vec4 && args.const_dim {
                    (args.dim / 4) as f64
                } else {
                    0.0
                },
            ),
        ],
    )?;
    let uniform = gpu.uniform("embedding_gather params", &params)?;
    let (table_slot, out_slot) = match (half, vec4) {
        (false, true) => (3, 4),
        (false, false) => (5, 6),
        (true, true) => (7, 4),
        (true, false) => (8, 6),
    };
    let bind = kernel.bind(
        gpu,
        &[
            (0, uniform.raw()),
            (1, args.indices),
            (2, args.status),
            (table_slot, args.table),
            (out_slot, args.out),
        ],
    );
    let invocations = args.n as u64 * tpr as u64;
    kernel.dispatch(gpu, encoder, &bind, invocations.div_ceil(wg as u64));
    Ok(())
}

const VEC4_CHUNKS4: KernelSpec = KernelSpec {
    name: "embedding_gather",
    source: SOURCE,
    entry: "gather_vec4_chunks4",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::ReadWrite),
        (4, Access::ReadWrite),
        (9, Access::Read),
        (10, Access::Read),
        (11, Access::Read),
        (12, Access::Read),
    ],
};

/// Chunks one `gather_vec4_chunks4` dispatch binds at most.
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
    if group.chunks.is_empty() || group.chunks.len() > CHUNKS_PER_DISPATCH || group.chunk_rows == 0
    {
        return Err(Error::InvalidArgument {
            name: "chunk group",
            reason: format!(
                "needs 1..={CHUNKS_PER_DISPATCH} chunks of at least one row, got {} chunks of {} rows",
                group.chunks.len(),
                group.chunk_rows
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
    if args.n == 0 {
        return Ok(());
    }
    let tpr = args
        .threads_per_row
        .unwrap_or_else(|| threads_per_row(gpu, args.dim))
        .max(1);
    let params = Params {
        n: to_u32("index count", args.n)?,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        row_begin: to_u32("chunk group first row", group.row_begin)?,
        row_end: to_u32(
            "chunk group end row",
            group.row_begin.saturating_add(group.rows),
        )?,
        chunk_rows: to_u32("rows per chunk", group.chunk_rows)?,
        _pad: [0; 2],
    };
    let wg = args.workgroup_size.unwrap_or_else(|| workgroup_size(gpu));
    let kernel = gpu.kernel(
        &VEC4_CHUNKS4,
        &[
            ("WORKGROUP_SIZE", wg as f64),
            ("THREADS_PER_ROW", tpr as f64),
        ],
    )?;
    let uniform = gpu.uniform("embedding_gather params", &params)?;
    // Unused slots repeat the last chunk: the shader never picks them.
    let slot = |k: usize| group.chunks[k.min(group.chunks.len() - 1)];
    let bind = kernel.bind(
        gpu,
        &[
            (0, uniform.raw()),
            (1, args.indices),
            (2, args.status),
            (4, args.out),
            (9, slot(0)),
            (10, slot(1)),
            (11, slot(2)),
            (12, slot(3)),
        ],
    );
    let invocations = args.n as u64 * tpr as u64;
    kernel.dispatch(gpu, encoder, &bind, invocations.div_ceil(wg as u64));
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
    let status = gpu.storage_from("embedding_gather status", &[STATUS_OK])?;
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
            status: status.raw(),
            out: out.buffer(),
            threads_per_row: None,
            workgroup_size: None,
            const_dim: false,
            chunk: None,
        },
    )?;
    gpu.submit_and_wait(encoder)?;
    check_status(gpu, status.raw(), indices, num_embeddings)?;
    Ok(out)
}

/// Reads a status word and turns a recorded position into `IndexOutOfRange`.
pub(crate) fn check_status(
    gpu: &Gpu,
    status: &wgpu::Buffer,
    indices: &IndexTensor,
    num_embeddings: usize,
) -> Result<()> {
    let word: u32 = bytemuck::pod_read_unaligned(&crate::readback::read_bytes(
        gpu,
        status,
        0,
        4,
        "gather status",
    )?);
    if word == STATUS_OK {
        return Ok(());
    }
    let position = word as usize;
    Err(Error::IndexOutOfRange {
        position,
        index: indices.read_one(position)? as u64,
        num_embeddings,
    })
}
