//! `segment_sum`: each row's gradient as the sum of its sorted segment of
//! `grad_out`, in ascending position order, with long segments split into
//! tiles summed in parallel and combined in tile order; written as a dense
//! gradient, a sparse one, or fused into an SGD or row-wise Adagrad update.
//! Rows whose width is a multiple of 4 run the `*4` entry points, which read
//! and write vec4s (the same sums, the same bits).
//! Shader: `shaders/segment_sum.wgsl`; CPU twin: `cpu::segment_sum`.

use std::ops::Range;

use crate::binding::{self, RowBlock, Span};
use crate::cpu::Round16;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::embedding_gather::{self, GatherArgs, STATUS_OK};
use crate::kernels::sgd_update::round_fields;
use crate::kernels::{loop_limited, padding_word, to_u32, LOOP_BUDGET};
use crate::memory::GpuBuffer;
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};
use crate::tensor::DType;

mod rows;

use rows::{encode_rows, window_params};

/// The shader in two files: the sums and entry points, then the block
/// helpers that differ between the scalar and vec4 variants.
const SOURCE: &str = concat!(
    include_str!("../../shaders/segment_sum.wgsl"),
    include_str!("../../shaders/segment_sum/blocks.wgsl"),
    include_str!("../../shaders/adam_step/update.wgsl"),
    include_str!("../../shaders/exact_arith/ops.wgsl"),
    include_str!("../../shaders/sgd_update/f16_round.wgsl"),
    include_str!("../../shaders/uniform_init/philox.wgsl"),
);

/// An entry point of the one body, scalar (no defs) or vec4 (`VEC4`, for
/// dim % 4 == 0: the same sums read and written as vec4s; see the shader).
const fn spec(entry: &'static str, defs: &'static [&'static str]) -> KernelSpec {
    KernelSpec {
        name: "segment_sum",
        source: SOURCE,
        entry,
        defs,
    }
}

const PARTIALS: KernelSpec = spec("segment_partials", &[]);
const DENSE: KernelSpec = spec("segment_dense", &[]);
const SGD: KernelSpec = spec("segment_sgd", &[]);
const SPARSE: KernelSpec = spec("segment_sparse", &[]);
const ADAGRAD: KernelSpec = spec("segment_adagrad", &[]);
const ADAGRAD_APPLY: KernelSpec = spec("segment_adagrad_apply", &[]);
const ADAM: KernelSpec = spec("segment_adam", &[]);

const PARTIALS4: KernelSpec = spec("segment_partials", &["VEC4"]);
const DENSE4: KernelSpec = spec("segment_dense", &["VEC4"]);
const SGD4: KernelSpec = spec("segment_sgd", &["VEC4"]);
const SPARSE4: KernelSpec = spec("segment_sparse", &["VEC4"]);
const ADAGRAD4: KernelSpec = spec("segment_adagrad", &["VEC4"]);
const ADAGRAD_APPLY4: KernelSpec = spec("segment_adagrad_apply", &["VEC4"]);
const ADAM4: KernelSpec = spec("segment_adam", &["VEC4"]);

// An f16 table's: `out` is f16 (its gradient or the table), and every row's
// gradient is rounded to f16. The partials pass (pieces of sums, not
// gradients) is the f32 one.
const DENSE16: KernelSpec = spec("segment_dense", &["F16"]);
const SGD16: KernelSpec = spec("segment_sgd", &["F16"]);
const SPARSE16: KernelSpec = spec("segment_sparse", &["F16"]);
const ADAGRAD16: KernelSpec = spec("segment_adagrad", &["F16"]);
const ADAGRAD16_4: KernelSpec = spec("segment_adagrad", &["F16", "VEC4"]);
const ADAGRAD_APPLY16: KernelSpec = spec("segment_adagrad_apply", &["F16"]);
const DENSE16_4: KernelSpec = spec("segment_dense", &["F16", "VEC4"]);
const SGD16_4: KernelSpec = spec("segment_sgd", &["F16", "VEC4"]);
const SPARSE16_4: KernelSpec = spec("segment_sparse", &["F16", "VEC4"]);
const ADAGRAD_APPLY16_4: KernelSpec = spec("segment_adagrad_apply", &["F16", "VEC4"]);

/// Sorted entries per tile. A segment longer than this is summed as several
/// pieces in parallel; 256 keeps a row's serial work short (one hot row of
/// 2^18 × 30 % entries becomes 300 pieces) while the partials stay small
/// (2 × dim floats per tile).
pub const CHUNK: usize = 256;

/// The most tiles a batch is cut into: a longer batch gets longer tiles
/// (see [`tile_len`]).
pub const MAX_TILES: usize = LOOP_BUDGET / 2;

/// The tile length a batch of `n` entries is cut into when `requested` is
/// asked for: at least `n / MAX_TILES`, because the invocation that sums a
/// row adds its pieces one tile at a time, and Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`).
/// Up to 4 Mi entries the default stays [`CHUNK`]. The CPU twin uses the same.
pub fn tile_len(requested: usize, n: usize) -> usize {
    requested.max(1).max(n.div_ceil(MAX_TILES))
}

/// Loop iterations one block of columns can cost an invocation: a segment
/// of at most a tile, or a row's pieces in tile order (SIMD lanes may run
/// both), plus the block's own step and the partials pass's 8-column store.
fn block_cost(n: usize, chunk: usize, num_tiles: usize) -> usize {
    n.min(chunk) + num_tiles + 9
}

/// Columns per block: 16 on the vec4 path, 8 otherwise.
fn block_columns(args: &SegmentArgs) -> usize {
    if vec4_path(args) {
        16
    } else {
        8
    }
}

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
    tile_begin: u32,
    tile_end: u32,
    entry_base: u32,
    presorted: u32,
    slot_begin: u32,
    slot_end: u32,
    col_begin: u32,
    col_end: u32,
    beta1c: f32,
    beta2c: f32,
    bias2: f32,
    weight_decay: f32,
    seed: [u32; 2],
    step: [u32; 2],
    stochastic: u32,
    _pad2: u32,
}

/// Where the row sums go. Dense, SGD and Adagrad outputs are one row-block
/// of a table: the rows it holds are the rows written (one block per call,
/// one call per block of a large table).
pub enum SegmentOutput<'a> {
    /// Every row of the block written (untouched rows 0).
    Dense {
        /// The gradient's row-block, `[rows, dim]` row-major: f32, or f16
        /// packed two per u32 when [`SegmentArgs::half`] is set.
        grad: RowBlock<'a>,
    },
    /// Row `r`, whose run of sorted entries starts at `s`, with
    /// `rank = ranks[s]` writes `rows[rank] = r` and `values[rank, :]`.
    /// Not a scan of per-row counts (one slot per table row): such ranks
    /// pass the size check when `num_embeddings ≥ n` but name wrong slots.
    Sparse {
        /// `n + 1` u32s: each sorted entry's slot, from `exclusive_scan` of
        /// the sorted keys in `RunStarts` mode with the padding row
        /// excluded; the last is the number of slots.
        ranks: &'a wgpu::Buffer,
        /// One u32 per slot: the table row it holds (rows ascending).
        rows: &'a wgpu::Buffer,
        /// `[slots, dim]` row-major, f32 or f16 packed two per u32 (see
        /// [`SegmentArgs::half`]); only the slots that fit both `rows` and
        /// `values` are written.
        values: &'a wgpu::Buffer,
    },
    /// `weight[r] -= lr * grad[r]` for referenced rows.
    Sgd {
        /// The table's row-block, updated in place (f32, or f16 when
        /// [`SegmentArgs::half`] is set).
        weight: RowBlock<'a>,
        /// Learning rate.
        lr: f32,
    },
    /// FBGEMM EXACT_ROWWISE_ADAGRAD on referenced rows; `state` is one f32 per row.
    Adagrad {
        /// The table's row-block, updated in place (f32, or f16 when
        /// [`SegmentArgs::half`] is set).
        weight: RowBlock<'a>,
        /// `num_embeddings` f32s indexed by table row (not by block): each
        /// referenced row's mean squared gradient is added to its entry.
        state: &'a wgpu::Buffer,
        /// Learning rate.
        lr: f32,
        /// Added to `sqrt(state[r])` in the step's denominator.
        eps: f32,
    },
    /// Fused Adam on referenced rows (`shaders/adam_step/update.wgsl`);
    /// the moments are stored like the table, in the same row-blocks.
    Adam {
        /// The table's row-block, f32 (an f16 table is refused), updated in
        /// place.
        weight: RowBlock<'a>,
        /// First moment: f32, the same rows as `weight`, updated in place.
        exp_avg: RowBlock<'a>,
        /// Second moment: f32, the same rows as `weight`, updated in place.
        exp_avg_sq: RowBlock<'a>,
        /// This step's constants; the layer passes SparseAdam's
        /// ([`AdamArgs::for_step`](crate::cpu::AdamArgs::for_step) with
        /// `sparse: true`).
        adam: crate::cpu::AdamArgs,
    },
}

/// The inputs of the segment reduction (see the shader's header).
pub struct SegmentArgs<'a> {
    /// Number of positions: rows of `grad_out`, entries of the sorted lists.
    pub n: usize,
    /// Elements per row of `grad_out` and of every output.
    pub dim: usize,
    /// Rows in the whole table.
    pub num_embeddings: usize,
    /// The row that gets no gradient: zero in a dense output, no slot in a
    /// sparse one, no update in a fused one. `None`: no padding row.
    pub padding_idx: Option<usize>,
    /// Divide each row's sum by its count (the row's number of positions),
    /// as PyTorch's `scale_grad_by_freq`.
    pub scale_by_freq: bool,
    /// Written by `row_histogram`; every entry point skips all writes unless it is `STATUS_OK`.
    pub status: &'a wgpu::Buffer,
    /// `num_embeddings + 1` u32s: where each row's segment starts
    /// (`exclusive_scan` of `row_histogram`'s counts). Only a `Dense` target
    /// reads them (it writes every row); the others find a row's segment in
    /// `sorted_keys`, so a fused update or a sparse gradient needs no
    /// vocabulary-sized scan. `None` beside a `Dense` target is refused.
    pub offsets: Option<&'a wgpu::Buffer>,
    /// `n` u32 row ids in ascending order (`radix_sort`'s `keys_out`).
    pub sorted_keys: &'a wgpu::Buffer,
    /// `n` u32s: the position in `grad_out` of each sorted entry, ascending
    /// within a row (`radix_sort`'s `positions_out`).
    pub sorted_positions: &'a wgpu::Buffer,
    /// `[n, dim]` f32; past one binding it is first gathered into sorted
    /// order (a second buffer of its size) and read in windows.
    pub grad_out: &'a wgpu::Buffer,
    /// Tile length; `None` uses [`CHUNK`]. Tests use small tiles to split
    /// often. Raised to [`tile_len`] for batches past `MAX_TILES` tiles.
    pub chunk: Option<usize>,
    /// `Some`: every output is f16 (the gradient, sparse values or table of
    /// an f16 table), each element rounded once; `None`: f32. A gradient
    /// (dense or sparse) rounds to nearest, as the table's gradient is stored
    /// (`Round16::Stochastic` beside one is refused); the fused updates round
    /// by this.
    pub half: Option<Round16>,
}

impl SegmentArgs<'_> {
    /// Bytes of one row of an output: f32s, or halves.
    fn out_row_bytes(&self) -> u64 {
        self.dim as u64 * if self.half.is_some() { 2 } else { 4 }
    }
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

/// Whether the vec4 entry points run: rows of whole vec4s (see the shader).
/// An empty batch's `grad_out` is a 4-byte placeholder, too short for a vec4.
fn vec4_path(args: &SegmentArgs) -> bool {
    args.dim.is_multiple_of(4) && args.n > 0
}

/// `grad_out` in sorted order: `out[i] = grad_out[sorted_positions[i]]`, an
/// `embedding_gather` that reads `grad_out` as a table in windows.
fn record_presort(rec: &mut Recorder, args: &SegmentArgs) -> Result<GpuBuffer> {
    let gpu = rec.gpu();
    let row_bytes = args.dim as u64 * 4;
    // Every row is gathered into it (the positions are a permutation).
    let sorted = gpu.storage_uninit(
        "segment_sum grad_out in sorted order",
        args.n as u64 * row_bytes,
    )?;
    // The positions are a permutation of 0 .. n: nothing for this status to catch.
    let status = gpu.storage_from("segment_sum presort status", &[STATUS_OK])?;
    let blocks: Vec<RowBlock> = binding::windows(gpu, args.n, &[row_bytes], "grad_out rows")?
        .into_iter()
        .map(|w| RowBlock {
            span: Span::items(args.grad_out, &w, row_bytes),
            rows: w,
        })
        .collect();
    let gather = GatherArgs {
        table: &blocks,
        dtype: DType::F32,
        num_embeddings: args.n,
        dim: args.dim,
        indices: args.sorted_positions,
        n: args.n,
        status: status.raw(),
        out: sorted.raw(),
        threads_per_row: None,
        workgroup_size: None,
        const_dim: false,
    };
    embedding_gather::record(rec, &gather)?;
    Ok(sorted)
}

fn check_sizes(gpu: &Gpu, args: &SegmentArgs, targets: &[SegmentOutput]) -> Result<()> {
    let (n, dim, rows) = (args.n as u64, args.dim as u64, args.num_embeddings as u64);
    binding::check_holds("segment_sum status (one u32)", args.status.size(), 1)?;
    if let Some(offsets) = args.offsets {
        binding::check_holds(
            "segment_sum offsets (num_embeddings + 1)",
            offsets.size(),
            rows + 1,
        )?;
    } else if targets
        .iter()
        .any(|t| matches!(t, SegmentOutput::Dense { .. }))
    {
        return Err(Error::InvalidArgument {
            name: "offsets",
            reason: "a dense gradient writes every row, so it reads each row's \
                     segment from the offsets: pass them"
                .into(),
        });
    }
    binding::check_holds(
        "segment_sum sorted_keys (n u32)",
        args.sorted_keys.size(),
        n,
    )?;
    binding::check_holds(
        "segment_sum sorted_positions (n)",
        args.sorted_positions.size(),
        n,
    )?;
    let grad_out = n.saturating_mul(dim);
    binding::check_holds(
        "segment_sum grad_out (n × dim)",
        args.grad_out.size(),
        grad_out,
    )?;
    // The inputs every pass reads, against every target's outputs (and the
    // sparse ranks they read), up front: the partials pass and earlier
    // targets would be recorded before a later target's dispatch found it.
    let mut reads = vec![
        args.status,
        args.sorted_keys,
        args.sorted_positions,
        args.grad_out,
    ];
    reads.extend(args.offsets);
    let mut writes = Vec::new();
    let mut spans = Vec::new();
    let mut states = Vec::new();
    let gradient = |t: &SegmentOutput| {
        matches!(
            t,
            SegmentOutput::Dense { .. } | SegmentOutput::Sparse { .. }
        )
    };
    if matches!(args.half, Some(Round16::Stochastic { .. })) && targets.iter().any(gradient) {
        // The shader rounds a gradient to nearest whatever `stochastic`
        // says; taking the request would write other bits than asked.
        return Err(Error::InvalidArgument {
            name: "half",
            reason: "a dense or sparse gradient rounds to nearest; stochastic \
                     rounding is for the fused updates (Sgd, Adagrad)"
                .into(),
        });
    }
    for target in targets {
        match target {
            SegmentOutput::Adagrad { state, .. } => {
                writes.push(*state);
                states.push(Span::whole(state));
            }
            SegmentOutput::Sparse {
                ranks,
                rows: r,
                values,
            } => {
                reads.push(ranks);
                writes.extend([*r, *values]);
                spans.extend([Span::whole(r), Span::whole(values)]);
            }
            _ => {}
        }
        let blocks = match target {
            SegmentOutput::Dense { grad } => vec![grad],
            SegmentOutput::Sgd { weight, .. } | SegmentOutput::Adagrad { weight, .. } => {
                vec![weight]
            }
            SegmentOutput::Adam {
                weight,
                exp_avg,
                exp_avg_sq,
                ..
            } => vec![weight, exp_avg, exp_avg_sq],
            SegmentOutput::Sparse { .. } => vec![],
        };
        for block in blocks {
            binding::check_span(gpu, "segment_sum output block", &block.span)?;
            writes.push(block.span.buffer);
            // The bytes its rows are written to (an empty block writes none).
            let bytes = (block.rows.len() as u64).saturating_mul(args.out_row_bytes());
            if bytes > 0 {
                let written = bytes.saturating_add(3) / 4 * 4;
                spans.push(Span {
                    size: block.span.size.min(written),
                    ..block.span
                });
            }
        }
        if let SegmentOutput::Dense { grad: block }
        | SegmentOutput::Sgd { weight: block, .. }
        | SegmentOutput::Adagrad { weight: block, .. }
        | SegmentOutput::Adam { weight: block, .. } = target
        {
            let bytes = (block.rows.len() as u64).saturating_mul(args.out_row_bytes());
            binding::check_holds(
                "segment_sum output (its rows × dim)",
                block.span.size,
                bytes.div_ceil(4),
            )?;
        }
        if let SegmentOutput::Adam {
            weight,
            exp_avg,
            exp_avg_sq,
            ..
        } = target
        {
            // Here, with the other checks: before the sort's partials and
            // the earlier targets are recorded and their buffers made.
            if args.half.is_some() {
                return Err(Error::InvalidArgument {
                    name: "dtype",
                    reason: "the fused Adam update needs an f32 table".into(),
                });
            }
            for m in [exp_avg, exp_avg_sq] {
                if m.rows != weight.rows || m.span.size < weight.span.size {
                    return Err(Error::ShapeMismatch {
                        what: "segment_sum adam moments (the weight block's rows)",
                        expected: vec![weight.rows.len(), args.dim],
                        found: vec![m.rows.len(), args.dim],
                    });
                }
            }
        }
        if let SegmentOutput::Adagrad { state, .. } = target {
            binding::check_holds(
                "segment_sum adagrad state (one f32 per row)",
                state.size(),
                rows,
            )?;
        }
        if let SegmentOutput::Sparse { ranks, .. } = target {
            binding::check_holds("segment_sum ranks (n + 1)", ranks.size(), n + 1)?;
        }
    }
    binding::check_inputs_apart("segment_sum", &reads, &writes)?;
    // Outputs may be disjoint spans of one buffer (the row-blocks of a
    // table), never overlapping ones, within a target or across them. The
    // Adagrad state is indexed by table row, so every row-block's target
    // shares the one state buffer (each writes its own rows' entries); it
    // must only stay apart from the other outputs.
    // One check per distinct state buffer, however many blocks share it.
    states.sort_by(|a, b| a.buffer.cmp(b.buffer));
    states.dedup_by(|a, b| a.buffer == b.buffer);
    spans.extend(states);
    binding::check_spans_apart("segment_sum", &spans)
}

/// Records the partials pass (when any segment crosses a tile) once, then the
/// row pass for each target. Outputs past one binding are written in
/// windows, and a `grad_out` past one binding is presorted (see the shader).
pub fn encode(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    args: &SegmentArgs,
    targets: &[SegmentOutput],
) -> Result<()> {
    recorder::record(gpu, encoder, |rec| record(rec, args, targets))
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(
    rec: &mut Recorder,
    args: &SegmentArgs,
    targets: &[SegmentOutput],
) -> Result<()> {
    let gpu = rec.gpu();
    check_sizes(gpu, args, targets)?;
    let chunk = tile_len(args.chunk.unwrap_or(CHUNK), args.n);
    let num_tiles = args.n.div_ceil(chunk);
    let row_bytes = args.dim as u64 * 4;
    // Column blocks one invocation may take within LOOP_BUDGET.
    let cost = block_cost(args.n, chunk, num_tiles);
    if cost > LOOP_BUDGET && loop_limited(gpu) {
        return Err(Error::TooMany {
            what: "segment_sum's serial sum of a row (a tile, or one piece per tile)",
            count: cost as u128,
            limit: LOOP_BUDGET as u64,
            limit_name: "loop iterations one invocation runs reliably on this CPU adapter \
                         (Mesa's gallivm ends an invocation's loops after 65 535)",
        });
    }
    let blocks_per_invocation = (LOOP_BUDGET / cost).max(1);
    let blocks = args.dim.div_ceil(block_columns(args)).max(1);
    let min_tpr = blocks.div_ceil(blocks_per_invocation) as u32;
    let mut params = Params {
        n: to_u32("index count", args.n)?,
        dim: to_u32("embedding dim", args.dim)?,
        num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
        chunk: to_u32("segment chunk", chunk)?,
        num_tiles: to_u32("segment tiles", num_tiles)?,
        padding_idx: padding_word(args.padding_idx, args.num_embeddings)?,
        scale_by_freq: args.scale_by_freq as u32,
        _pad: 0,
        lr: 0.0,
        eps: 0.0,
        row_begin: 0,
        row_end: 0,
        tile_begin: 0,
        tile_end: 0,
        entry_base: 0,
        presorted: 0,
        slot_begin: 0,
        slot_end: u32::MAX,
        col_begin: 0,
        col_end: to_u32("embedding dim", args.dim)?,
        beta1c: 0.0,
        beta2c: 0.0,
        bias2: 1.0,
        weight_decay: 0.0,
        seed: [0; 2],
        step: [0; 2],
        stochastic: 0,
        _pad2: 0,
    };
    (params.stochastic, params.seed, params.step) = round_fields(args.half);
    to_u32("grad_out elements", args.n.saturating_mul(args.dim))?;
    let presorted = (args.n as u64).saturating_mul(row_bytes) > gpu.max_binding_bytes();
    let sorted = if presorted {
        Some(record_presort(rec, args)?)
    } else {
        None
    };
    // Windows of whole tiles over the (sorted) grad_out: one covering every
    // tile when it fits one binding.
    let tile_windows: Vec<(Range<usize>, Span)> = match &sorted {
        Some(sorted) => binding::windows(
            gpu,
            num_tiles,
            &[chunk as u64 * row_bytes],
            "segment_sum tile of grad_out",
        )?
        .into_iter()
        .map(|tiles| {
            let entries = tiles.start * chunk..(tiles.end * chunk).min(args.n);
            (tiles, Span::items(sorted.raw(), &entries, row_bytes))
        })
        .collect(),
        None => vec![(0..num_tiles, Span::whole(args.grad_out))],
    };
    params.presorted = presorted as u32;
    let partials_bytes = (num_tiles as u64 * 2 * row_bytes).max(16);
    let partials = gpu.storage("segment_sum partials", partials_bytes)?;
    let tpr = threads_per_row(gpu, args.dim).max(min_tpr);
    if args.n > chunk {
        let constants = [("THREADS_PER_ROW", tpr as f64)];
        let spec = if vec4_path(args) {
            &PARTIALS4
        } else {
            &PARTIALS
        };
        for (tiles, grad) in &tile_windows {
            let p = window_params(params, tiles, chunk, presorted);
            rec.launch(
                spec,
                &constants,
                &p,
                &[
                    (1, args.status.into()),
                    (3, args.sorted_keys.into()),
                    (4, args.sorted_positions.into()),
                    (5, *grad),
                    (6, partials.raw().into()),
                ],
                Work::Invocations(tiles.len() as u64 * 2 * tpr as u64),
            )?;
        }
    }
    for target in targets {
        encode_rows(
            rec,
            args,
            target,
            params,
            &tile_windows,
            partials.raw(),
            chunk,
            presorted,
            (tpr, blocks_per_invocation),
        )?;
    }
    Ok(())
}
