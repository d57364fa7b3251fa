//! `row_histogram`: `counts[r]` = how many positions hold index `r`; the
//! first out-of-range position in `status` (`row_check`: only that).
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

/// The same pass without `counts`: only the index check (`row_check`).
const CHECK: KernelSpec = KernelSpec {
    entry: "row_check",
    ..SPEC
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
    /// `num_embeddings` u32s; cleared here before counting. `None`: only
    /// the check of the indices, without a pass over the table's rows (a
    /// fused update finds each row's segment in the sorted keys instead).
    pub counts: Option<&'a wgpu::Buffer>,
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
    if let Some(counts) = args.counts {
        binding::check_holds(
            "row_histogram counts (num_embeddings u32)",
            counts.size(),
            rows,
        )?;
        binding::check_fits(gpu, "row_histogram counts (bound whole)", counts.size())?;
    }
    // What can fail, before the clear: `counts` is bound whole.
    let mut writes = vec![args.status];
    writes.extend(args.counts);
    binding::check_no_alias("row_histogram", &[args.indices], &writes)?;
    to_u32("num_embeddings", args.num_embeddings)?;
    let windows = binding::windows(gpu, args.n, &[4], "row_histogram indices")?;
    if let Some(counts) = args.counts {
        rec.clear_buffer(counts, 0, None);
    }
    for window in windows {
        let params = Params {
            n: to_u32("index count", window.len())?,
            num_embeddings: to_u32("num_embeddings", args.num_embeddings)?,
            pos_base: to_u32("window first position", window.start)?,
            _pad1: 0,
        };
        let mut spans = vec![
            (1, Span::items(args.indices, &window, 4)),
            (2, args.status.into()),
        ];
        spans.extend(args.counts.map(|c| (3, c.into())));
        let spec = if args.counts.is_some() { &SPEC } else { &CHECK };
        rec.launch(
            spec,
            &[],
            &params,
            &spans,
            Work::Invocations(window.len() as u64),
        )?;
    }
    Ok(())
}
