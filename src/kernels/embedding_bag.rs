//! `embedding_bag`: one fused gather-and-reduce per bag (sum, mean or max).
//! Shader: `shaders/embedding_bag.wgsl`; CPU twin: `cpu::embedding_bag` (f32
//! tables) and `cpu::embedding_bag_f16` (f16 tables).

use crate::cpu::embedding_bag::BagMode;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::{to_u32, WORKGROUP_SIZE};
use crate::nn::DType;
use crate::pipeline::{Access, KernelSpec};

const SOURCE: &str = include_str!("../../shaders/embedding_bag.wgsl");

const VEC4: KernelSpec = KernelSpec {
    name: "embedding_bag",
    source: SOURCE,
    entry: "bag_vec4",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::Read),
        (3, Access::Read),
        (4, Access::ReadWrite),
        (5, Access::ReadWrite),
        (6, Access::Read),
        (7, Access::ReadWrite),
    ],
};

const SCALAR: KernelSpec = KernelSpec {
    name: "embedding_bag",
    source: SOURCE,
    entry: "bag_scalar",
    bindings: &[
        (0, Access::Uniform),
        (1, Access::Read),
        (2, Access::Read),
        (3, Access::Read),
        (4, Access::ReadWrite),
        (5, Access::ReadWrite),
        (8, Access::Read),
        (9, Access::ReadWrite),
    ],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    num_bags: u32,
    dim: u32,
    num_embeddings: u32,
    n: u32,
    padding_idx: u32,
    _pad: [u32; 3],
}

/// Invocations per bag: one on a CPU adapter (each SIMD lane streams its own
/// bag), else one per 4-float word of the row up to 64, so neighbouring
/// invocations read neighbouring words (coalesced).
pub fn threads_per_bag(gpu: &Gpu, dim: usize) -> u32 {
    crate::kernels::embedding_gather::threads_per_row(gpu, dim)
}

/// The buffers one bag reduction reads and writes.
pub struct BagArgs<'a> {
    pub mode: BagMode,
    /// `[num_embeddings, dim]`, f32 or f16 packed two per u32 (see [`crate::nn::HalfTensor`]).
    pub table: &'a wgpu::Buffer,
    pub dtype: DType,
    pub num_embeddings: usize,
    pub dim: usize,
    /// u32 row ids, `n` of them.
    pub indices: &'a wgpu::Buffer,
    pub n: usize,
    /// `num_bags + 1` u32 offsets into `indices` (CSR: the last is `n`).
    pub offsets: &'a wgpu::Buffer,
    pub num_bags: usize,
    /// `n` f32 weights (sum mode), or `None`.
    pub per_sample_weights: Option<&'a wgpu::Buffer>,
    pub padding_idx: Option<u32>,
    /// One u32 set to `STATUS_OK` that the kernel lowers to the first out-of-range position.
    pub status: &'a wgpu::Buffer,
    /// `[num_bags, dim]` u32 winning positions, written in max mode (`None` discards them).
    pub max_positions: Option<&'a wgpu::Buffer>,
    /// `[num_bags, dim]` f32.
    pub out: &'a wgpu::Buffer,
    /// Invocations per bag; `None` picks [`threads_per_bag`].
    pub threads_per_bag: Option<u32>,
}

/// Records the fused gather-and-reduce into `encoder`; submits nothing.
/// Offsets are the caller's to validate (`EmbeddingBag` does); the kernel only
/// clamps them to the index list.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &BagArgs) -> Result<()> {
    if args.num_bags == 0 || args.dim == 0 {
        return Ok(());
    }
    let tpb = args
        .threads_per_bag
        .unwrap_or_else(|| threads_per_bag(gpu, args.dim))
        .max(1);
    let params = Params {
        num_bags: to_u32("bag count", args.num_bags)?,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        n: to_u32("index count", args.n)?,
        padding_idx: args.padding_idx.unwrap_or(u32::MAX),
        _pad: [0; 3],
    };
    let vec4 = args.dim.is_multiple_of(4);
    let spec = if vec4 { &VEC4 } else { &SCALAR };
    let kernel = gpu.kernel(
        spec,
        &[
            ("WORKGROUP_SIZE", WORKGROUP_SIZE as f64),
            ("THREADS_PER_BAG", tpb as f64),
            ("MODE", args.mode.code() as f64),
            (
                "WEIGHTED",
                if args.per_sample_weights.is_some() {
                    1.0
                } else {
                    0.0
                },
            ),
            ("HALF", if args.dtype == DType::F16 { 1.0 } else { 0.0 }),
        ],
    )?;
    let uniform = gpu.uniform("embedding_bag params", &params)?;
    // Bindings the chosen variant never touches still need a buffer; one
    // buffer cannot be both read-only and read-write in one dispatch.
    let unused_read = gpu.storage("embedding_bag unused input", 4)?;
    let unused_write = gpu.storage("embedding_bag unused output", 4)?;
    let (table_slot, out_slot) = if vec4 { (6, 7) } else { (8, 9) };
    let bind = kernel.bind(
        gpu,
        &[
            (0, uniform.raw()),
            (1, args.indices),
            (2, args.offsets),
            (3, args.per_sample_weights.unwrap_or(unused_read.raw())),
            (4, args.status),
            (5, args.max_positions.unwrap_or(unused_write.raw())),
            (table_slot, args.table),
            (out_slot, args.out),
        ],
    );
    let invocations = args.num_bags as u64 * tpb as u64;
    kernel.dispatch(
        gpu,
        encoder,
        &bind,
        invocations.div_ceil(WORKGROUP_SIZE as u64),
    );
    Ok(())
}
