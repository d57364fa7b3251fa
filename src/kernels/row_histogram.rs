//! `row_histogram`: `counts[r]` = how many positions hold index `r`.
//! Shader: `shaders/row_histogram.wgsl`; CPU twin: `cpu::row_histogram`.

use crate::binding::{self, Span};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::to_u32;
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};

const SPEC: KernelSpec = KernelSpec {
    name: "row_histogram",
    source: include_str!("../../shaders/row_histogram.wgsl"),
    entry: "row_histogram",
    defs: &[],
};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    num_embeddings: u32,
    pos_base: u32,
    _pad1: u32,
}

/// The buffers of one histogram. `status` is one u32 the caller set to
/// `STATUS_OK`; the kernel lowers it to the first out-of-range position.
pub struct HistogramArgs<'a> {
    /// u32 row ids, `n` of them.
    pub indices: &'a wgpu::Buffer,
    /// Number of indices (positions) counted.
    pub n: usize,
    /// Rows in the table: an index at or past it is not counted but
    /// reported in `status`.
    pub num_embeddings: usize,
    /// One u32, set by the caller to `STATUS_OK`; lowered (atomic min) to
    /// the first out-of-range position.
    pub status: &'a wgpu::Buffer,
    /// `num_embeddings` u32s; cleared here before counting.
    pub counts: &'a wgpu::Buffer,
}

/// Records the clear of `counts` and the histogram into `encoder`; an index
/// list past one binding is counted in windows.
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &HistogramArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| record(rec, args))
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(rec: &mut Recorder, args: &HistogramArgs) -> Result<()> {
    let gpu = rec.gpu();
    to_u32("index count", args.n)?;
    binding::check_holds(
        "row_histogram indices (n u32)",
        args.indices.size(),
        args.n as u64,
    )?;
    binding::check_holds("row_histogram status (one u32)", args.status.size(), 1)?;
    let rows = args.num_embeddings as u64;
    binding::check_holds(
        "row_histogram counts (num_embeddings u32)",
        args.counts.size(),
        rows,
    )?;
    // What can fail, before the clear: `counts` is bound whole.
    binding::check_no_alias(
        "row_histogram",
        &[args.indices],
        &[args.status, args.counts],
    )?;
    binding::check_fits(
        gpu,
        "row_histogram counts (bound whole)",
        args.counts.size(),
    )?;
    to_u32("num_embeddings", args.num_embeddings)?;
    let windows = binding::windows(gpu, args.n, &[4], "row_histogram indices")?;
    rec.clear_buffer(args.counts, 0, None);
    for window in windows {
        let params = Params {
            n: to_u32("index count", window.len())?,
            num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
            pos_base: to_u32("window first position", window.start)?,
            _pad1: 0,
        };
        rec.launch(
            &SPEC,
            &[],
            &params,
            &[
                (1, Span::items(args.indices, &window, 4)),
                (2, args.status.into()),
                (3, args.counts.into()),
            ],
            Work::Invocations(window.len() as u64),
        )?;
    }
    Ok(())
}
