//! `segment_sum`: each row's gradient as the sum of its sorted segment of
//! `grad_out`, in ascending position order, with long segments split into
//! tiles summed in parallel and combined in tile order; written as a dense
//! gradient, a sparse one, or fused into an SGD or row-wise Adagrad update.
//! Rows whose width is a multiple of 4 run the `*4` entry points, which read
//! and write vec4s (the same sums, the same bits).
//! Shader: `shaders/segment_sum.wgsl`; CPU twin: `cpu::segment_sum`.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::{to_u32, WORKGROUP_SIZE};
use crate::pipeline::{Access, KernelSpec};

const SOURCE: &str = include_str!("../../shaders/segment_sum.wgsl");

const PARTIALS: KernelSpec = KernelSpec {
    name: "segment_sum",
    source: SOURCE,
    entry: "segment_partials",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::Read),
        (3, Access::Read),
        (4, Access::Read),
        (5, Access::Read),
        (6, Access::ReadWrite),
    ],
};
const REDUCE_BINDINGS: [(u32, Access); 7] = [
    (0, Access::Uniform),
    (1, Access::Read),
    (2, Access::Read),
    (4, Access::Read),
    (5, Access::Read),
    (6, Access::ReadWrite),
    (7, Access::ReadWrite),
];
const DENSE: KernelSpec = KernelSpec {
    name: "segment_sum",
    source: SOURCE,
    entry: "segment_dense",
    bindings: &REDUCE_BINDINGS,
};
const SGD: KernelSpec = KernelSpec {
    name: "segment_sum",
    source: SOURCE,
    entry: "segment_sgd",
    bindings: &REDUCE_BINDINGS,
};
const SPARSE: KernelSpec = KernelSpec {
    name: "segment_sum",
    source: SOURCE,
    entry: "segment_sparse",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::Read),
        (4, Access::Read),
        (5, Access::Read),
        (6, Access::ReadWrite),
        (7, Access::ReadWrite),
        (8, Access::Read),
        (9, Access::ReadWrite),
    ],
};
const ADAGRAD: KernelSpec = KernelSpec {
    name: "segment_sum",
    source: SOURCE,
    entry: "segment_adagrad",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::Read),
        (4, Access::Read),
        (5, Access::Read),
        (6, Access::ReadWrite),
        (7, Access::ReadWrite),
        (10, Access::ReadWrite),
    ],
};

// The vec4 entry points (dim % 4 == 0): grad_out, partials and the output
// bound as vec4 arrays at 11, 12 and 13 instead of 5, 6 and 7.
const PARTIALS4: KernelSpec = KernelSpec {
    name: "segment_sum",
    source: SOURCE,
    entry: "segment_partials4",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::Read),
        (3, Access::Read),
        (4, Access::Read),
        (11, Access::Read),
        (12, Access::ReadWrite),
    ],
};
const REDUCE4_BINDINGS: [(u32, Access); 7] = [
    (0, Access::Uniform),
    (1, Access::Read),
    (2, Access::Read),
    (4, Access::Read),
    (11, Access::Read),
    (12, Access::ReadWrite),
    (13, Access::ReadWrite),
];
const DENSE4: KernelSpec = KernelSpec {
    name: "segment_sum",
    source: SOURCE,
    entry: "segment_dense4",
    bindings: &REDUCE4_BINDINGS,
};
const SGD4: KernelSpec = KernelSpec {
    name: "segment_sum",
    source: SOURCE,
    entry: "segment_sgd4",
    bindings: &REDUCE4_BINDINGS,
};
const SPARSE4: KernelSpec = KernelSpec {
    name: "segment_sum",
    source: SOURCE,
    entry: "segment_sparse4",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::Read),
        (4, Access::Read),
        (11, Access::Read),
        (12, Access::ReadWrite),
        (13, Access::ReadWrite),
        (8, Access::Read),
        (9, Access::ReadWrite),
    ],
};
const ADAGRAD4: KernelSpec = KernelSpec {
    name: "segment_sum",
    source: SOURCE,
    entry: "segment_adagrad4",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::Read),
        (4, Access::Read),
        (11, Access::Read),
        (12, Access::ReadWrite),
        (13, Access::ReadWrite),
        (10, Access::ReadWrite),
    ],
};

/// Sorted entries per tile. A segment longer than this is summed as several
/// pieces in parallel; 256 keeps a row's serial work short (one hot row of
/// 2^18 × 30 % entries becomes 300 pieces) while the partials stay small
/// (2 × dim floats per tile).
pub const CHUNK: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    dim: u32,
    num_embeddings: u32,
    chunk: u32,
    num_tiles: u32,
    padding_idx: u32,
    scale_by_freq: u32,
    _pad: u32,
    lr: f32,
    eps: f32,
    row_begin: u32,
    row_end: u32,
}

/// Where the row sums go.
pub enum SegmentOutput<'a> {
    /// `[num_embeddings, dim]`; every row written (untouched rows 0).
    Dense { grad: &'a wgpu::Buffer },
    /// Row `r` with `rank = ranks[r]` (exclusive scan of the referenced-row
    /// flags, padding excluded) writes `rows[rank] = r` and `values[rank, :]`.
    Sparse {
        ranks: &'a wgpu::Buffer,
        rows: &'a wgpu::Buffer,
        values: &'a wgpu::Buffer,
    },
    /// `weight[r] -= lr * grad[r]` for referenced rows.
    Sgd { weight: &'a wgpu::Buffer, lr: f32 },
    /// FBGEMM EXACT_ROWWISE_ADAGRAD on referenced rows; `state` is one f32 per row.
    Adagrad {
        weight: &'a wgpu::Buffer,
        state: &'a wgpu::Buffer,
        lr: f32,
        eps: f32,
    },
}

/// The inputs of the segment reduction (see the shader's header).
pub struct SegmentArgs<'a> {
    pub n: usize,
    pub dim: usize,
    pub num_embeddings: usize,
    pub padding_idx: Option<usize>,
    pub scale_by_freq: bool,
    /// Written by `row_histogram`; every entry point skips all writes unless it is `STATUS_OK`.
    pub status: &'a wgpu::Buffer,
    /// `num_embeddings + 1` u32s: where each row's segment starts.
    pub offsets: &'a wgpu::Buffer,
    pub sorted_keys: &'a wgpu::Buffer,
    pub sorted_positions: &'a wgpu::Buffer,
    /// `[n, dim]` f32.
    pub grad_out: &'a wgpu::Buffer,
    pub output: SegmentOutput<'a>,
    /// Tile length; `None` uses [`CHUNK`]. Tests use small tiles to split often.
    pub chunk: Option<usize>,
    /// Dense, SGD and Adagrad outputs: the bound `grad`/`weight` holds only
    /// table rows `row_begin .. row_end` (one row-chunk of a large table);
    /// `None`: every row. Sparse output ignores it.
    pub rows: Option<std::ops::Range<usize>>,
}

/// Invocations per row: 1 on CPU adapters (each SIMD lane streams a row), up
/// to 8 on GPUs (neighbouring lanes read neighbouring column blocks: 16
/// columns on the vec4 path, 8 otherwise).
pub fn threads_per_row(gpu: &Gpu, dim: usize) -> u32 {
    if gpu.adapter_info().device_type == wgpu::DeviceType::Cpu {
        return 1;
    }
    let block = if dim.is_multiple_of(4) { 16 } else { 8 };
    dim.div_ceil(block).clamp(1, 8).next_power_of_two() as u32
}

/// Records the partials pass (when any segment crosses a tile) and the row pass.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &SegmentArgs) -> Result<()> {
    let chunk = args.chunk.unwrap_or(CHUNK).max(1);
    let num_tiles = args.n.div_ceil(chunk);
    let (lr, eps) = match args.output {
        SegmentOutput::Sgd { lr, .. } => (lr, 0.0),
        SegmentOutput::Adagrad { lr, eps, .. } => (lr, eps),
        _ => (0.0, 0.0),
    };
    let rows = match (&args.output, &args.rows) {
        (SegmentOutput::Sparse { .. }, _) | (_, None) => 0..args.num_embeddings,
        (_, Some(r)) => r.start.min(args.num_embeddings)..r.end.min(args.num_embeddings),
    };
    let params = Params {
        n: to_u32("index count", args.n)?,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        chunk: to_u32("segment chunk", chunk)?,
        num_tiles: to_u32("segment tiles", num_tiles)?,
        padding_idx: match args.padding_idx {
            Some(p) => to_u32("padding_idx", p)?,
            None => u32::MAX,
        },
        scale_by_freq: args.scale_by_freq as u32,
        _pad: 0,
        lr,
        eps,
        row_begin: to_u32("chunk first row", rows.start)?,
        row_end: to_u32("chunk end row", rows.end)?,
    };
    to_u32("grad_out elements", args.n.saturating_mul(args.dim))?;
    to_u32("table chunk elements", rows.len().saturating_mul(args.dim))?;
    let uniform = gpu.uniform("segment_sum params", &params)?;
    let partials_bytes = (num_tiles as u64 * 2 * args.dim as u64 * 4).max(16);
    let partials = gpu.storage("segment_sum partials", partials_bytes)?;
    let tpr = match args.output {
        SegmentOutput::Adagrad { .. } => 1,
        _ => threads_per_row(gpu, args.dim),
    };
    let constants = [
        ("WORKGROUP_SIZE", WORKGROUP_SIZE as f64),
        ("THREADS_PER_ROW", tpr as f64),
    ];
    // The vec4 entry points when rows are whole vec4s; see the shader. (An
    // empty batch's grad_out is a 4-byte placeholder, too short for a vec4.)
    let vec4 = args.dim.is_multiple_of(4) && args.n > 0;
    let (grad_at, partials_at, out_at) = if vec4 { (11, 12, 13) } else { (5, 6, 7) };
    if args.n > chunk {
        let kernel = gpu.kernel(if vec4 { &PARTIALS4 } else { &PARTIALS }, &constants)?;
        let bind = kernel.bind(
            gpu,
            &[
                (0, uniform.raw()),
                (1, args.status),
                (2, args.offsets),
                (3, args.sorted_keys),
                (4, args.sorted_positions),
                (grad_at, args.grad_out),
                (partials_at, partials.raw()),
            ],
        );
        let invocations = num_tiles as u64 * 2 * tpr as u64;
        kernel.dispatch(
            gpu,
            encoder,
            &bind,
            invocations.div_ceil(WORKGROUP_SIZE as u64),
        );
    }
    let mut buffers = vec![
        (0, uniform.raw()),
        (1, args.status),
        (2, args.offsets),
        (4, args.sorted_positions),
        (grad_at, args.grad_out),
        (partials_at, partials.raw()),
    ];
    let spec = match args.output {
        SegmentOutput::Dense { grad } => {
            buffers.push((out_at, grad));
            if vec4 {
                &DENSE4
            } else {
                &DENSE
            }
        }
        SegmentOutput::Sparse {
            ranks,
            rows,
            values,
        } => {
            buffers.extend([(out_at, values), (8, ranks), (9, rows)]);
            if vec4 {
                &SPARSE4
            } else {
                &SPARSE
            }
        }
        SegmentOutput::Sgd { weight, .. } => {
            buffers.push((out_at, weight));
            if vec4 {
                &SGD4
            } else {
                &SGD
            }
        }
        SegmentOutput::Adagrad { weight, state, .. } => {
            buffers.extend([(out_at, weight), (10, state)]);
            if vec4 {
                &ADAGRAD4
            } else {
                &ADAGRAD
            }
        }
    };
    let kernel = gpu.kernel(spec, &constants)?;
    let bind = kernel.bind(gpu, &buffers);
    let invocations = rows.len() as u64 * tpr as u64;
    kernel.dispatch(
        gpu,
        encoder,
        &bind,
        invocations.div_ceil(WORKGROUP_SIZE as u64),
    );
    Ok(())
}
