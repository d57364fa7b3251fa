//! `embedding_renorm`: `max_norm`, as PyTorch's `embedding_renorm_`: each
//! referenced row whose norm exceeds `max_norm` is scaled in place by
//! `max_norm / (norm + 1e-7)`, once however often the batch repeats it: one
//! invocation per id, so a lookup with `max_norm` costs the batch, not the
//! table: each row's claim (one u32 per row) is this call's epoch, so a
//! claims buffer kept across calls ([`RenormClaims`]) is cleared once, not
//! per lookup.
//! Shader: `shaders/embedding_renorm.wgsl`; CPU twin: `cpu::embedding_renorm`.

use crate::binding::{self, RowBlock, Span};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{loop_limited, to_u32, LOOP_BUDGET};
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};

const SPEC: KernelSpec = KernelSpec {
    name: "embedding_renorm",
    source: concat!(
        include_str!("../../shaders/embedding_renorm.wgsl"),
        include_str!("../../shaders/exact_arith/ops.wgsl"),
    ),
    entry: "embedding_renorm",
    defs: &[],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    num_embeddings: u32,
    dim: u32,
    max_norm: f32,
    norm_type: f32,
    row_begin: u32,
    row_end: u32,
    n: u32,
    epoch: u32,
}

/// The buffers of one renormalisation.
pub struct RenormArgs<'a> {
    /// Rows in the whole table; ids and rows of a block at or past it are
    /// left alone.
    pub num_embeddings: usize,
    /// f32 elements per row; past [`MAX_DIM`] is refused on CPU adapters.
    pub dim: usize,
    /// A row whose norm exceeds this is scaled by `max_norm / (norm + 1e-7)`,
    /// as PyTorch's `embedding_renorm_`; finite and at least 0.
    pub max_norm: f32,
    /// The `p` of the p-norm: positive, finite or `f32::INFINITY` (the
    /// largest magnitude). 1, 2 and infinity match the CPU twin bit for bit,
    /// other values (`pow`) to a few ulps.
    pub norm_type: f32,
    /// Nothing is written unless this is `STATUS_OK` (the caller's
    /// `row_histogram` or `row_check` of the same ids).
    pub status: &'a wgpu::Buffer,
    /// The batch's u32 row ids, `n` of them: each row they name is
    /// renormalised once, however often it occurs.
    pub indices: &'a wgpu::Buffer,
    /// Number of ids.
    pub n: usize,
    /// The table's row-blocks (one for a table within one binding).
    pub blocks: &'a [RowBlock<'a>],
    /// Where the rows are claimed: a buffer the caller keeps across calls,
    /// or `None` for one made and cleared for this call (a write of 4 bytes
    /// per table row, which a kept buffer saves).
    pub claims: Option<RenormClaims<'a>>,
}

/// A claims buffer kept across calls, and this call's epoch on it: a row
/// whose u32 already holds the epoch counts as claimed, so every call on
/// one buffer needs an epoch that no earlier call since the buffer was
/// zeroed used (the layers count up from 1 and make a new buffer when the
/// count wraps).
#[derive(Clone, Copy)]
pub struct RenormClaims<'a> {
    /// One u32 per table row (at least `num_embeddings × 4` bytes), zeros
    /// when first used.
    pub buffer: &'a wgpu::Buffer,
    /// Nonzero (a zeroed buffer holds 0 in every row).
    pub epoch: u32,
}

/// The widest row one invocation renormalises: it loops over the row twice
/// (the norm, then the rescale), and Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`).
pub const MAX_DIM: usize = LOOP_BUDGET / 2;

/// `TooMany` for rows past [`MAX_DIM`] on CPU adapters, whose compiler may
/// cut the loops short; other adapters renormalise rows of any width.
pub fn check_dim(gpu: &Gpu, dim: usize) -> Result<()> {
    if dim > MAX_DIM && loop_limited(gpu) {
        return Err(Error::TooMany {
            what: "max_norm row (one invocation computes its norm and rescales it)",
            count: dim as u128,
            limit: MAX_DIM as u64,
            limit_name: "floats in a row one invocation loops over twice on this CPU adapter \
                         (Mesa's gallivm ends an invocation's loops after 65 535 iterations)",
        });
    }
    Ok(())
}

/// The name a claims buffer's errors give it.
const CLAIMS: &str = "embedding_renorm claims (one u32 per row)";

/// Bytes of a claims buffer: one u32 per table row (a binding takes at
/// least one word).
fn claims_bytes(num_embeddings: usize) -> u64 {
    (num_embeddings as u64 * 4).max(4)
}

/// [`claims_bytes`], or `TooLarge` where they pass one binding: checked
/// before a layer makes the buffer it keeps, and before every call.
pub(crate) fn claims_fit(gpu: &Gpu, num_embeddings: usize) -> Result<u64> {
    let bytes = claims_bytes(num_embeddings);
    binding::check_fits(gpu, CLAIMS, bytes)?;
    Ok(bytes)
}

/// `max_norm` finite and at least +0 (0, as PyTorch allows, zeroes every
/// referenced row with a norm; a negative one would flip signs), and
/// `norm_type` positive, finite or `+∞` (the largest magnitude; a norm of
/// order 0 or below is not one).
pub(crate) fn check_norms(max_norm: f32, norm_type: f32) -> Result<()> {
    // -0 too: its scale would flip every element's sign.
    if !max_norm.is_finite() || max_norm.is_sign_negative() {
        return Err(Error::InvalidArgument {
            name: "max_norm",
            reason: format!("must be finite and at least +0, got {max_norm}"),
        });
    }
    if norm_type.is_nan() || norm_type <= 0.0 {
        return Err(Error::InvalidArgument {
            name: "norm_type",
            reason: format!("must be positive (finite, or infinity), got {norm_type}"),
        });
    }
    Ok(())
}

/// Records the renormalisation into `encoder`; `TooMany` from [`check_dim`],
/// `InvalidArgument` for a `max_norm` that is not finite and at least 0, a
/// `norm_type` that is not positive (`+∞` is the largest magnitude), blocks
/// that are not consecutive rows of the table or share a buffer with the
/// ids, the status or the claims, and an epoch of 0; `LengthMismatch` for a
/// buffer shorter than its role; `TooLarge` for a table whose claims (one
/// u32 per row) pass one binding.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &RenormArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| record(rec, args))
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(rec: &mut Recorder, args: &RenormArgs) -> Result<()> {
    let gpu = rec.gpu();
    check_dim(gpu, args.dim)?;
    check_norms(args.max_norm, args.norm_type)?;
    binding::check_holds("embedding_renorm status (one u32)", args.status.size(), 1)?;
    binding::check_holds(
        "embedding_renorm indices (n u32)",
        args.indices.size(),
        args.n as u64,
    )?;
    let num_embeddings = to_u32("num_embeddings", args.num_embeddings)?;
    let dim = to_u32("embedding dim", args.dim)?;
    // Consecutive rows, as a table's blocks hold them: every block of a
    // call claims with one epoch, so a row in two blocks would be scaled in
    // only one.
    binding::check_consecutive_rows(args.blocks, args.num_embeddings)?;
    let mut outputs: Vec<&wgpu::Buffer> = args.blocks.iter().map(|b| b.span.buffer).collect();
    let mut spans: Vec<_> = args.blocks.iter().map(|b| b.span).collect();
    if let Some(claims) = args.claims {
        if claims.epoch == 0 {
            return Err(Error::InvalidArgument {
                name: "epoch",
                reason: "must be nonzero: a zeroed claims buffer holds 0 for every row, \
                         which would count as claimed"
                    .into(),
            });
        }
        let words = claims_bytes(args.num_embeddings) / 4;
        binding::check_holds(CLAIMS, claims.buffer.size(), words)?;
        outputs.push(claims.buffer);
        spans.push(claims.buffer.into());
    }
    binding::check_inputs_apart("embedding_renorm", &[args.indices, args.status], &outputs)?;
    binding::check_spans_apart("embedding_renorm", &spans)?;
    let mut blocks = Vec::with_capacity(args.blocks.len());
    for block in args.blocks {
        binding::check_span(gpu, "embedding_renorm weight", &block.span)?;
        let rows =
            block.rows.start.min(args.num_embeddings)..block.rows.end.min(args.num_embeddings);
        let words = (rows.len() as u64).saturating_mul(args.dim as u64);
        binding::check_holds(
            "embedding_renorm weight (its rows × dim)",
            block.span.size,
            words,
        )?;
        to_u32("table chunk elements", rows.len().saturating_mul(args.dim))?;
        blocks.push((
            to_u32("chunk first row", rows.start)?,
            to_u32("chunk end row", rows.end)?,
            block.span,
        ));
    }
    let windows = binding::windows(gpu, args.n, &[4], "embedding_renorm indices")?;
    if args.n == 0 || args.blocks.is_empty() {
        return Ok(()); // no id, or no row: nothing to claim
    }
    // One claim per table row, bound whole for every block.
    let claim_bytes = claims_fit(gpu, args.num_embeddings)?;
    // Without a kept buffer, a zeroed one of this call's own and epoch 1.
    let own;
    let (claims, epoch) = match args.claims {
        Some(c) => (c.buffer, c.epoch),
        None => {
            own = gpu.storage(CLAIMS, claim_bytes)?;
            (own.raw(), 1)
        }
    };
    for (row_begin, row_end, span) in blocks {
        for window in &windows {
            let params = Params {
                num_embeddings,
                dim,
                max_norm: args.max_norm,
                norm_type: args.norm_type,
                row_begin,
                row_end,
                n: to_u32("index count", window.len())?,
                epoch,
            };
            rec.launch(
                &SPEC,
                &[],
                &params,
                &[
                    (1, args.status.into()),
                    (2, Span::items(args.indices, window, 4)),
                    (3, span),
                    (
                        4,
                        Span {
                            buffer: claims,
                            offset: 0,
                            size: claim_bytes,
                        },
                    ),
                ],
                Work::Invocations(window.len() as u64),
            )?;
        }
    }
    Ok(())
}
