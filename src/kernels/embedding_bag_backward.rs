//! `embedding_bag_backward`: each position's share of a bag's gradient
//! (`bag_padding` + `bag_expand`), which the embedding's sorted segment sum
//! then adds per row, and the per-sample-weight gradient (`psw_grad`).
//! Shader: `shaders/embedding_bag_backward.wgsl`; CPU twin:
//! `cpu::embedding_bag_backward`.

use crate::cpu::embedding_bag::BagMode;

use crate::binding::{self, RowBlock, Span};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{padding_word, to_u32, LOOP_BUDGET};
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Work};
use crate::tensor::DType;

const SOURCE: &str = concat!(
    include_str!("../../shaders/embedding_bag_backward.wgsl"),
    include_str!("../../shaders/exact_arith/ops.wgsl"),
);

const PADDING: KernelSpec = KernelSpec {
    name: "embedding_bag_backward",
    source: SOURCE,
    entry: "bag_padding",
    defs: &[],
};

/// Columns one `psw_grad` dispatch adds per position: a wider row takes
/// several dispatches, each carrying on from the last one's sums, because
/// Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`) (the binary search for the bag adds up to 32).
const PSW_COLUMNS: usize = LOOP_BUDGET - 64;

const EXPAND: KernelSpec = KernelSpec {
    name: "embedding_bag_backward",
    source: SOURCE,
    entry: "bag_expand",
    defs: &[],
};

const PSW_GRAD: KernelSpec = KernelSpec {
    name: "embedding_bag_backward",
    source: SOURCE,
    entry: "psw_grad",
    defs: &[],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    num_bags: u32,
    dim: u32,
    n: u32,
    padding_idx: u32,
    num_embeddings: u32,
    row_begin: u32,
    row_end: u32,
    pos_base: u32,
    col_begin: u32,
    col_end: u32,
    _pad: [u32; 2],
}

/// The bag layout both passes read.
pub struct BagLayout<'a> {
    /// Rows in the table; `psw_grad` gives 0 to a position whose index is
    /// at or past it.
    pub num_embeddings: usize,
    /// Elements per row of the table, `grad_out` and `expanded`.
    pub dim: usize,
    /// u32 row ids, `n` of them (already checked against the table).
    pub indices: &'a wgpu::Buffer,
    /// Number of indices (positions) in the batch, all bags together.
    pub n: usize,
    /// `num_bags + 1` CSR offsets (validated: ascending, the last `n`).
    pub offsets: &'a wgpu::Buffer,
    /// Number of bags, and so of rows in `grad_out`.
    pub num_bags: usize,
    /// Row id whose entries get a zero gradient and, in mean mode, are not
    /// counted in their bag's divisor (as in the forward). `None`: no
    /// padding row.
    pub padding_idx: Option<usize>,
    /// `[num_bags, dim]` f32.
    pub grad_out: &'a wgpu::Buffer,
}

/// What `bag_expand` needs beyond the layout.
pub struct ExpandArgs<'a> {
    /// The forward's reduction, which decides each position's share.
    pub mode: BagMode,
    /// `n` f32 weights (sum mode), or `None`.
    pub per_sample_weights: Option<&'a wgpu::Buffer>,
    /// Max mode: `[num_bags, dim]` u32 winning positions from the forward.
    pub max_positions: Option<&'a wgpu::Buffer>,
    /// `[n, dim]` f32, every element written.
    pub expanded: &'a wgpu::Buffer,
}

fn params(layout: &BagLayout) -> Result<Params> {
    to_u32(
        "per-position gradient elements",
        layout.n.saturating_mul(layout.dim),
    )?;
    to_u32(
        "grad_out elements",
        layout.num_bags.saturating_mul(layout.dim),
    )?;
    Ok(Params {
        num_bags: to_u32("bag count", layout.num_bags)?,
        dim: to_u32("embedding dim", layout.dim)?,
        n: to_u32("index count", layout.n)?,
        padding_idx: padding_word(layout.padding_idx, layout.num_embeddings)?,
        num_embeddings: to_u32("num_embeddings", layout.num_embeddings)?,
        row_begin: 0,
        row_end: to_u32("num_embeddings", layout.num_embeddings)?,
        pos_base: 0,
        col_begin: 0,
        col_end: to_u32("embedding dim", layout.dim)?,
        _pad: [0; 2],
    })
}

/// The buffers every bag backward kernel reads, against the layout's sizes.
fn check_layout(layout: &BagLayout) -> Result<()> {
    let (n, bags) = (layout.n as u64, layout.num_bags as u64);
    // CSR offsets end at n: positions with no bag would each find bag 0 and
    // read a `grad_out` row that is not there.
    if bags == 0 && n > 0 {
        return Err(Error::InvalidArgument {
            name: "num_bags",
            reason: format!("{n} positions need at least one bag to belong to; num_bags is 0"),
        });
    }
    binding::check_holds("bag backward indices (n u32)", layout.indices.size(), n)?;
    binding::check_holds(
        "bag backward offsets (num_bags + 1)",
        layout.offsets.size(),
        bags + 1,
    )?;
    let grad_out = bags.saturating_mul(layout.dim as u64);
    binding::check_holds(
        "bag backward grad_out (num_bags × dim)",
        layout.grad_out.size(),
        grad_out,
    )
}

/// Records `bag_padding` (mean mode, with a padding row) and `bag_expand` into `encoder`: the
/// per-position gradient that `segment_sum` reduces per row. Submits nothing.
pub fn encode_expand(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    layout: &BagLayout,
    args: &ExpandArgs,
) -> Result<()> {
    recorder::record(gpu, encoder, |rec| {
        check_layout(layout)?;
        let words = (layout.n as u64).saturating_mul(layout.dim as u64);
        binding::check_holds("bag_expand expanded (n × dim)", args.expanded.size(), words)?;
        if let Some(w) = args.per_sample_weights {
            binding::check_holds(
                "bag_expand per_sample_weights (n f32)",
                w.size(),
                layout.n as u64,
            )?;
            crate::kernels::embedding_bag::check_weighted_mode(args.mode)?;
        }
        match (args.mode, args.max_positions) {
            (_, Some(p)) => {
                let out = (layout.num_bags as u64).saturating_mul(layout.dim as u64);
                binding::check_holds("bag_expand max_positions (num_bags × dim)", p.size(), out)?;
            }
            // Without them each gradient element would read a placeholder's
            // clamped word: a wrong gradient, not an error, so refuse.
            (BagMode::Max, None) => {
                return Err(Error::InvalidArgument {
                    name: "max_positions",
                    reason: "max mode routes each gradient element to the position that won it: \
                         pass the forward's winning positions ([num_bags, dim] u32)"
                        .into(),
                })
            }
            _ => {}
        }
        if layout.n == 0 || layout.dim == 0 {
            return Ok(());
        }
        // What can fail, before the clear below is recorded.
        params(layout)?;
        let mut reads = vec![layout.indices, layout.offsets, layout.grad_out];
        reads.extend(args.per_sample_weights);
        reads.extend(args.max_positions);
        binding::check_no_alias("bag_expand", &reads, &[args.expanded])?;
        let row_bytes = layout.dim as u64 * 4;
        let windows = binding::windows(
            gpu,
            layout.n,
            &[4, 4, row_bytes],
            "bag_expand window (indices, weights and per-position gradient rows)",
        )?;
        let pads = gpu.storage(
            "embedding_bag_backward padding counts",
            (layout.num_bags as u64 * 4).max(4),
        )?;
        rec.clear_buffer(pads.raw(), 0, None);
        // Bindings the chosen mode never reads still need a buffer.
        let unused_weights = gpu.storage("embedding_bag_backward unused weights", 4)?;
        let unused_positions = gpu.storage("embedding_bag_backward unused positions", 4)?;
        let constants = [
            ("MODE", args.mode.code() as f64),
            (
                "WEIGHTED",
                if args.per_sample_weights.is_some() {
                    1.0
                } else {
                    0.0
                },
            ),
        ];
        if args.mode == BagMode::Mean && layout.padding_idx.is_some() {
            for w in &windows {
                let mut p = params(layout)?;
                p.n = to_u32("index count", w.len())?;
                p.pos_base = to_u32("window first position", w.start)?;
                rec.launch(
                    &PADDING,
                    &constants,
                    &p,
                    &[
                        (1, Span::items(layout.indices, w, 4)),
                        (2, layout.offsets.into()),
                        (10, pads.raw().into()),
                    ],
                    Work::Invocations(w.len() as u64),
                )?;
            }
        }
        for w in windows {
            let mut p = params(layout)?;
            p.n = to_u32("index count", w.len())?;
            p.pos_base = to_u32("window first position", w.start)?;
            rec.launch(
                &EXPAND,
                &constants,
                &p,
                &[
                    (1, Span::items(layout.indices, &w, 4)),
                    (2, layout.offsets.into()),
                    (
                        3,
                        match args.per_sample_weights {
                            Some(weights) => Span::items(weights, &w, 4),
                            None => unused_weights.raw().into(),
                        },
                    ),
                    (
                        4,
                        args.max_positions.unwrap_or(unused_positions.raw()).into(),
                    ),
                    (5, layout.grad_out.into()),
                    (6, pads.raw().into()),
                    (7, Span::items(args.expanded, &w, row_bytes)),
                ],
                Work::Invocations(w.len() as u64 * layout.dim as u64),
            )?;
        }
        Ok(())
    })
}

/// Records `psw_grad` into `encoder`: `out[p]` (`n` f32) = the gradient of
/// per-sample weight `p`. `table` is the table's row-blocks, f32 or f16
/// packed two per u32: one dispatch per block and window of positions, each
/// writing the positions whose row the block holds (padding and
/// out-of-range ones get 0).
pub fn encode_psw_grad(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    layout: &BagLayout,
    table: &[RowBlock],
    dtype: DType,
    out: &wgpu::Buffer,
) -> Result<()> {
    recorder::record(gpu, encoder, |rec| {
        check_layout(layout)?;
        binding::check_holds("psw_grad out (n f32)", out.size(), layout.n as u64)?;
        // The shader reads f32 or f16 words; int8 rows would be read as f32.
        if dtype == DType::Int8 {
            return Err(Error::InvalidArgument {
                name: "dtype",
                reason: "psw_grad reads f32 or f16 tables, not int8 row-wise ones".into(),
            });
        }
        if table.is_empty() && layout.n > 0 {
            return Err(Error::InvalidArgument {
                name: "table",
                reason: format!("no row-blocks given for {} positions", layout.n),
            });
        }
        // Each dispatch writes only the positions whose row its block holds,
        // and `out` is not cleared: blocks that left rows out would leave
        // those positions' old contents where the twin writes a product.
        let all = Some(0..layout.num_embeddings);
        if binding::consecutive_rows(table) != all && layout.n > 0 {
            return Err(Error::InvalidArgument {
                name: "table blocks",
                reason: format!(
                    "psw_grad needs blocks of consecutive rows covering all {} rows; they \
                     hold {:?}",
                    layout.num_embeddings,
                    table.iter().map(|b| b.rows.clone()).collect::<Vec<_>>()
                ),
            });
        }
        let mut reads = vec![layout.indices, layout.offsets, layout.grad_out];
        reads.extend(table.iter().map(|b| b.span.buffer));
        binding::check_no_alias("psw_grad", &reads, &[out])?;
        for block in table {
            binding::check_span(gpu, "psw_grad table block", &block.span)?;
            let elements = (block.rows.len() as u64).saturating_mul(layout.dim as u64);
            let words = match dtype {
                DType::F16 => elements.div_ceil(2),
                _ => elements,
            };
            binding::check_holds(
                "psw_grad table block (its rows × dim)",
                block.span.size,
                words,
            )?;
            // Bound whole, block after block: check them all before recording.
            binding::check_fits(gpu, "psw_grad table block (bound whole)", block.span.size)?;
        }
        let constants = [("HALF", if dtype == DType::F16 { 1.0 } else { 0.0 })];
        let windows = binding::windows(
            gpu,
            layout.n,
            &[4, 4],
            "psw_grad window (indices and weight gradients)",
        )?;
        for (block, w) in table
            .iter()
            .flat_map(|b| windows.iter().map(move |w| (b, w)))
        {
            let rows = &block.rows;
            for c0 in (0..layout.dim.max(1)).step_by(PSW_COLUMNS) {
                let mut p = params(layout)?;
                p.n = to_u32("index count", w.len())?;
                p.pos_base = to_u32("window first position", w.start)?;
                p.row_begin = to_u32("chunk first row", rows.start)?;
                p.row_end = to_u32("chunk end row", rows.end)?;
                p.col_begin = to_u32("embedding dim", c0)?;
                p.col_end = to_u32("embedding dim", (c0 + PSW_COLUMNS).min(layout.dim))?;
                rec.launch(
                    &PSW_GRAD,
                    &constants,
                    &p,
                    &[
                        (1, Span::items(layout.indices, w, 4)),
                        (2, layout.offsets.into()),
                        (5, layout.grad_out.into()),
                        (8, block.span),
                        (9, Span::items(out, w, 4)),
                    ],
                    Work::Invocations(w.len() as u64),
                )?;
            }
        }
        Ok(())
    })
}
