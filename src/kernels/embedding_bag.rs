//! `embedding_bag`: one fused gather-and-reduce per bag (sum, mean or max).
//! Shader: `shaders/embedding_bag.wgsl`; CPU twin: `cpu::embedding_bag`
//! (f32 and f16 tables).

use crate::cpu::embedding_bag::BagMode;
use std::ops::Range;

use crate::binding::{self, Span};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{padding_word, to_u32, LOOP_BUDGET};
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};
use crate::tensor::DType;

const SOURCE: &str = concat!(
    include_str!("../../shaders/embedding_bag.wgsl"),
    include_str!("../../shaders/exact_arith/ops.wgsl"),
);

const VEC4: KernelSpec = KernelSpec {
    name: "embedding_bag",
    source: SOURCE,
    entry: "bag",
    defs: &["VEC4"],
};

const SCALAR: KernelSpec = KernelSpec {
    name: "embedding_bag",
    source: SOURCE,
    entry: "bag",
    defs: &[],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    num_bags: u32,
    dim: u32,
    num_embeddings: u32,
    n: u32,
    padding_idx: u32,
    pos_base: u32,
    piece_begin: u32,
    piece_len: u32,
    pooled: u32,
}

/// Invocations per bag: one on a CPU adapter (each SIMD lane streams its own
/// bag), else one per 4-float word of the row up to 64, so neighbouring
/// invocations read neighbouring words (coalesced).
pub fn threads_per_bag(gpu: &Gpu, dim: usize) -> u32 {
    crate::kernels::embedding_gather::threads_per_row(gpu, dim)
}

/// Words of a row (vec4s, or floats off the vec4 path) one invocation
/// reduces at most: wider rows get more invocations per bag, so that a piece
/// (below) is never shorter than 31 positions.
const MAX_WORDS_PER_INVOCATION: usize = 1024;

/// Invocations per bag (at least `tpb`) and the positions of each bag one
/// dispatch reduces. An invocation loops over its words once per position,
/// and Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`), so a bag longer than the piece is reduced
/// over several dispatches, each carrying on from the last (see the shader's
/// "Long bags"; same order of additions, same bits, on every adapter).
fn plan(dim: usize, tpb: u32) -> (u32, usize) {
    let words = if dim.is_multiple_of(4) { dim / 4 } else { dim }.max(1);
    let tpb = tpb
        .max(words.div_ceil(MAX_WORDS_PER_INVOCATION) as u32)
        .max(1);
    let per_invocation = words.div_ceil(tpb as usize);
    (tpb, LOOP_BUDGET / per_invocation - 1)
}

/// The buffers one bag reduction reads and writes.
pub struct BagArgs<'a> {
    /// How each bag's rows reduce to one: sum, mean or max.
    pub mode: BagMode,
    /// `[num_embeddings, dim]` in `dtype`: f32, f16 packed two per u32 (see
    /// [`crate::HalfTensor`]), or int8 row-wise rows.
    pub table: &'a wgpu::Buffer,
    /// Element type of `table`; [`DType::Int8`] reads int8 row-wise rows
    /// (codes padded to whole words, then scale and bias, see
    /// [`crate::cpu::int8_rowwise`]).
    pub dtype: DType,
    /// Rows in `table`; an index at or past it is skipped and reported in
    /// `status`.
    pub num_embeddings: usize,
    /// Elements per row of `table` and of `out`.
    pub dim: usize,
    /// u32 row ids, `n` of them.
    pub indices: &'a wgpu::Buffer,
    /// Number of indices (positions) in the batch, all bags together.
    pub n: usize,
    /// `num_bags + 1` u32 offsets into `indices` (CSR: the last is `n`).
    pub offsets: &'a wgpu::Buffer,
    /// Number of bags, and so of output rows.
    pub num_bags: usize,
    /// At least the most positions one bag holds (`n` always is). Bags
    /// longer than one dispatch's piece (31 to 32 767 positions, by dim)
    /// take a dispatch per piece. A bag longer than this value may be left
    /// unfinished: the kernel then lowers `status` to the first position it
    /// left out, and that bag's output is unspecified.
    pub max_bag_len: usize,
    /// `n` f32 weights (sum mode), or `None`.
    pub per_sample_weights: Option<&'a wgpu::Buffer>,
    /// Row id whose entries are skipped: they add nothing and, in mean mode,
    /// are not counted. `None`: no padding row.
    pub padding_idx: Option<usize>,
    /// One u32 set to `STATUS_OK` that the kernel lowers to the first
    /// position it could not pool: an index past the table, or the first
    /// position past what it pooled of a bag longer than `max_bag_len`.
    pub status: &'a wgpu::Buffer,
    /// `[num_bags, dim]` u32 winning positions, written in max mode (`None` discards them).
    pub max_positions: Option<&'a wgpu::Buffer>,
    /// `[num_bags, dim]` f32.
    pub out: &'a wgpu::Buffer,
    /// Invocations per bag; `None` picks [`threads_per_bag`]. Raised where
    /// one invocation would reduce more than 1 024 words of a row.
    pub threads_per_bag: Option<u32>,
}

/// Records the fused gather-and-reduce into `encoder`; submits nothing.
/// Offsets are the caller's to validate (`EmbeddingBag` does); the kernel only
/// clamps them to the index list. Every buffer in one binding (the layer
/// splits larger batches with the host's copy of the offsets).
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &BagArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| {
        check_sizes(args)?;
        let mut reads = vec![args.table, args.indices, args.offsets];
        reads.extend(args.per_sample_weights);
        let mut writes = vec![args.status, args.out];
        writes.extend(args.max_positions);
        binding::check_no_alias("embedding_bag", &reads, &writes)?;
        let window = BagWindow {
            bags: 0..args.num_bags,
            positions: 0..args.n,
            longest: args.max_bag_len.min(args.n),
        };
        record_window(rec, args, &window, false)
    })
}

/// The most invocations one bag may take: a workgroup's worth.
pub const MAX_THREADS_PER_BAG: u32 = 1024;

/// Per-sample weights only in sum mode, as PyTorch: mean would divide a
/// weighted sum, max would ignore them (and the backward with it).
pub(crate) fn check_weighted_mode(mode: BagMode) -> Result<()> {
    if mode != BagMode::Sum {
        return Err(Error::InvalidArgument {
            name: "per_sample_weights",
            reason: format!(
                "only mode Sum takes per-sample weights (as in PyTorch); mode is {mode:?}"
            ),
        });
    }
    Ok(())
}

fn check_sizes(args: &BagArgs) -> Result<()> {
    let (n, dim, bags) = (args.n as u64, args.dim as u64, args.num_bags as u64);
    let table = (args.num_embeddings as u64).saturating_mul(dim);
    let (what, table) = match args.dtype {
        DType::F32 => ("embedding_bag table (num_embeddings × dim)", table),
        DType::F16 => (
            "embedding_bag table (num_embeddings × dim)",
            table.div_ceil(2),
        ),
        // The vec4 path (dim % 4 == 0) reads the table as vec2<u32>s, so an
        // odd last word would be past the binding's end (`Int8Tensor` pads
        // to 8 bytes for this).
        DType::Int8 => (
            "embedding_bag int8 table (num_embeddings × words per row, \
             to a whole 8 bytes when dim % 4 == 0)",
            (DType::Int8.row_bytes(args.dim) / 4)
                .saturating_mul(args.num_embeddings as u64)
                .next_multiple_of(if dim % 4 == 0 { 2 } else { 1 }),
        ),
    };
    binding::check_holds(what, args.table.size(), table)?;
    binding::check_holds("embedding_bag indices (n u32)", args.indices.size(), n)?;
    binding::check_holds(
        "embedding_bag offsets (num_bags + 1 u32)",
        args.offsets.size(),
        bags + 1,
    )?;
    binding::check_holds("embedding_bag status (one u32)", args.status.size(), 1)?;
    let out = bags.saturating_mul(dim);
    binding::check_holds("embedding_bag out (num_bags × dim)", args.out.size(), out)?;
    if let Some(w) = args.per_sample_weights {
        binding::check_holds("embedding_bag per_sample_weights (n f32)", w.size(), n)?;
        check_weighted_mode(args.mode)?;
    }
    if let Some(p) = args.max_positions {
        binding::check_holds(
            "embedding_bag max_positions (num_bags × dim)",
            p.size(),
            out,
        )?;
    }
    match args.threads_per_bag {
        Some(t) if t == 0 || t > MAX_THREADS_PER_BAG => Err(Error::InvalidArgument {
            name: "threads_per_bag",
            reason: format!("{t} is outside 1..={MAX_THREADS_PER_BAG}"),
        }),
        _ => Ok(()),
    }
}

/// Bags `bags` of a batch, reading positions `positions` (from an aligned
/// position at or before the first bag's start to the last bag's end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BagWindow {
    pub bags: Range<usize>,
    pub positions: Range<usize>,
    /// The most positions one of these bags holds.
    pub longest: usize,
}

/// Cuts a batch (CSR offsets `csr`, `num_bags + 1` of them) into windows of
/// bags whose outputs, offsets, index and weight ranges (and, `gathered`,
/// scratch rows) each fit one binding, bound at aligned offsets. One window
/// when everything fits. `TooLarge` when one alignment step of bags holds
/// more positions than a binding.
pub(crate) fn windows(
    gpu: &Gpu,
    csr: &[u32],
    dim: usize,
    gathered: bool,
) -> Result<Vec<BagWindow>> {
    let num_bags = csr.len().saturating_sub(1);
    let row_bytes = dim as u64 * 4;
    let limit = gpu.max_binding_bytes();
    let bag_step = binding::granularity(gpu.storage_offset_alignment(), &[4, row_bytes]) as usize;
    let pos_step = binding::granularity(gpu.storage_offset_alignment(), &[4]) as usize;
    let window = |b0: usize, b1: usize| {
        let s0 = if b0 == 0 {
            0
        } else {
            csr[b0] as usize / pos_step * pos_step
        };
        BagWindow {
            bags: b0..b1,
            positions: s0..csr[b1] as usize,
            longest: 0,
        }
    };
    // Only for a window kept: the growth below probes many (a scan per
    // probe made it quadratic in the bags of a window).
    let finish = |w: BagWindow| BagWindow {
        longest: w
            .bags
            .clone()
            .map(|b| csr[b + 1].saturating_sub(csr[b]) as usize)
            .max()
            .unwrap_or(0),
        ..w
    };
    // The largest of what one window binds: outputs, offsets, indices
    // (and weights, the same size), gathered rows.
    let largest = |w: &BagWindow| {
        let (bags, positions) = (w.bags.len() as u64, w.positions.len() as u64);
        let rows = if gathered { positions * row_bytes } else { 0 };
        (bags * row_bytes)
            .max((bags + 1) * 4)
            .max(positions * 4)
            .max(rows)
    };
    let fits = |w: &BagWindow| largest(w) <= limit;
    let all = window(0, num_bags);
    if fits(&all) {
        return Ok(vec![finish(all)]);
    }
    let mut out = Vec::new();
    let mut b0 = 0;
    while b0 < num_bags {
        let mut b1 = (b0 + bag_step).min(num_bags);
        let first = window(b0, b1);
        if !fits(&first) {
            return Err(Error::TooLarge {
                what: "the largest binding of a run of bags (one offset-alignment step): \
                       outputs, offsets, indices or gathered rows",
                bytes: largest(&first),
                limit,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        while b1 < num_bags && fits(&window(b0, (b1 + bag_step).min(num_bags))) {
            b1 = (b1 + bag_step).min(num_bags);
        }
        out.push(finish(window(b0, b1)));
        b0 = b1;
    }
    Ok(out)
}

/// One window of bags. `gathered`: `args.table` is the scratch the
/// batch's rows were gathered into, row `k` for position `positions.start + k`.
pub(crate) fn record_window(
    rec: &mut Recorder,
    args: &BagArgs,
    window: &BagWindow,
    gathered: bool,
) -> Result<()> {
    let gpu = rec.gpu();
    if window.bags.is_empty() || args.dim == 0 {
        return Ok(());
    }
    let (tpb, piece_len) = plan(
        args.dim,
        args.threads_per_bag
            .unwrap_or_else(|| threads_per_bag(gpu, args.dim)),
    );
    let pieces = window.longest.div_ceil(piece_len).max(1);
    to_u32("index count", args.n)?;
    let mut params = Params {
        num_bags: to_u32("bag count", window.bags.len())?,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        n: to_u32("index count", window.positions.end)?,
        padding_idx: padding_word(args.padding_idx, args.num_embeddings)?,
        pos_base: to_u32("window first position", window.positions.start)?,
        piece_begin: 0,
        piece_len: piece_len as u32,
        pooled: pieces.saturating_mul(piece_len).min(u32::MAX as usize) as u32,
    };
    let vec4 = args.dim.is_multiple_of(4);
    let spec = if vec4 { &VEC4 } else { &SCALAR };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let constants = [
        ("THREADS_PER_BAG", tpb as f64),
        ("MODE", args.mode.code() as f64),
        ("WEIGHTED", flag(args.per_sample_weights.is_some())),
        ("HALF", flag(args.dtype == DType::F16)),
        ("INT8", flag(args.dtype == DType::Int8)),
        ("GATHERED", flag(gathered)),
    ];
    // Bindings the chosen variant never touches still need a buffer; one
    // buffer cannot be both read-only and read-write in one dispatch.
    let unused_read = gpu.storage("embedding_bag unused input", 4)?;
    let unused_write = gpu.storage("embedding_bag unused output", 4)?;
    let row_bytes = args.dim as u64 * 4;
    let (bags, positions) = (&window.bags, &window.positions);
    // Max's positions and mean's counts carry from piece to piece in max_pos.
    let caller_positions = match args.mode {
        BagMode::Max => args.max_positions,
        _ => None,
    };
    let carry_scratch = match args.mode {
        BagMode::Max | BagMode::Mean if pieces > 1 && caller_positions.is_none() => {
            Some(gpu.storage("embedding_bag piece carry", bags.len() as u64 * row_bytes)?)
        }
        _ => None,
    };
    let carry: Span = match (caller_positions, &carry_scratch) {
        (Some(m), _) => Span::items(m, bags, row_bytes),
        (None, Some(scratch)) => scratch.raw().into(),
        (None, None) => unused_write.raw().into(),
    };
    let offsets = Span {
        buffer: args.offsets,
        offset: bags.start as u64 * 4,
        size: (bags.len() as u64 + 1) * 4,
    };
    let work = Work::Invocations(bags.len() as u64 * tpb as u64);
    for piece in 0..pieces {
        params.piece_begin = to_u32("bag piece", piece * piece_len)?;
        rec.launch(
            spec,
            &constants,
            &params,
            &[
                (1, Span::items(args.indices, positions, 4)),
                (2, offsets),
                (
                    3,
                    match args.per_sample_weights {
                        Some(w) => Span::items(w, positions, 4),
                        None => unused_read.raw().into(),
                    },
                ),
                (4, args.status.into()),
                (5, carry),
                (6, args.table.into()),
                (7, Span::items(args.out, bags, row_bytes)),
            ],
            work,
        )?;
    }
    Ok(())
}
