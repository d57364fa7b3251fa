//! `exclusive_scan`: `out[i] = input[0] + … + input[i - 1]` for `i` in `0..=len`
//! (so `out[len]` is the total), by reduce-then-scan: portable to adapters
//! without forward-progress guarantees between workgroups.
//! Shader: `shaders/exclusive_scan.wgsl`; CPU twin: `cpu::exclusive_scan`.

use crate::binding;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::to_u32;
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};

const SOURCE: &str = include_str!("../../shaders/exclusive_scan.wgsl");
const REDUCE: KernelSpec = KernelSpec {
    name: "exclusive_scan",
    source: SOURCE,
    entry: "scan_reduce",
    defs: &[],
};
const BLOCK_SUMS: KernelSpec = KernelSpec {
    name: "exclusive_scan",
    source: SOURCE,
    entry: "scan_block_sums",
    defs: &[],
};
const APPLY: KernelSpec = KernelSpec {
    name: "exclusive_scan",
    source: SOURCE,
    entry: "scan_apply",
    defs: &[],
};

const SINGLE: KernelSpec = KernelSpec {
    name: "exclusive_scan",
    source: SOURCE,
    entry: "scan_single",
    defs: &[],
};

/// Up to this many elements the scan is one dispatch of one workgroup
/// (`scan_single`): dispatches cost far more than 256 serial elements per
/// invocation on CPU adapters, and little on GPUs at this size.
pub const SINGLE_MAX: usize = 1 << 16;

/// Elements per workgroup block (256 invocations × 16 elements).
pub const BLOCK: usize = 4096;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    len: u32,
    num_blocks: u32,
    exclude: u32,
    mode: u32,
}

/// What each element adds to the running sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScanMode {
    /// Its value.
    #[default]
    Sum,
    /// 1 when it is nonzero: over row counts, each referenced row's rank
    /// among the referenced rows.
    Nonzero,
    /// 1 when it starts a run of equal values (the first element, or one
    /// unlike the element before it): over sorted keys, each run's slot
    /// among the runs, in O(elements) rather than O(rows).
    RunStarts,
}

/// One scan. `out` holds `len + 1` u32s and must not alias `input`.
pub struct ScanArgs<'a> {
    /// The u32 elements to scan, `len` of them from the buffer's start.
    pub input: &'a wgpu::Buffer,
    /// Number of elements scanned; up to [`SINGLE_MAX`] takes one dispatch,
    /// more take three.
    pub len: usize,
    /// `len + 1` u32s: `out[i]` is the sum of elements `0..i` (wrapping, as
    /// u32 arithmetic does), `out[len]` the total.
    pub out: &'a wgpu::Buffer,
    /// The padding row when ranking rows: with `Sum` and `Nonzero` the
    /// element at this index reads as zero (one at or past `len` excludes
    /// nothing); with `RunStarts` a run of this value counts zero.
    pub exclude: Option<usize>,
    /// What each element adds (its value by default).
    pub mode: ScanMode,
}

/// Records the scan's dispatches into `encoder` (allocating the block sums).
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &ScanArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| record(rec, args))
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(rec: &mut Recorder, args: &ScanArgs) -> Result<()> {
    let len = args.len as u64;
    binding::check_holds("exclusive_scan input (len u32)", args.input.size(), len)?;
    binding::check_holds("exclusive_scan out (len + 1 u32)", args.out.size(), len + 1)?;
    binding::check_no_alias("exclusive_scan", &[args.input], &[args.out])?;
    let num_blocks = args.len.div_ceil(BLOCK);
    let params = Params {
        len: to_u32("scan length", args.len)?,
        num_blocks: to_u32("scan blocks", num_blocks)?,
        // An element past `len` excludes nothing, as in the twin (and may
        // be past u32: the padding row of a table past 2^32 rows).
        exclude: match (args.mode, args.exclude) {
            // A value; u32::MAX (no key reaches it) stands for none.
            (ScanMode::RunStarts, Some(e)) => u32::try_from(e).unwrap_or(u32::MAX),
            (_, Some(e)) if e < args.len => e as u32,
            _ => u32::MAX,
        },
        mode: match args.mode {
            ScanMode::Sum => 0,
            ScanMode::Nonzero => 1,
            ScanMode::RunStarts => 2,
        },
    };
    let block_sums = rec
        .gpu()
        .storage("exclusive_scan block sums", num_blocks as u64 * 4)?;
    let spans = [
        (1, args.input.into()),
        (2, block_sums.raw().into()),
        (3, args.out.into()),
    ];
    if args.len <= SINGLE_MAX {
        return rec.launch(&SINGLE, &[], &params, &spans, Work::Workgroups(1));
    }
    let blocks = Work::Workgroups(num_blocks as u64);
    rec.launch(&REDUCE, &[], &params, &spans, blocks)?;
    rec.launch(&BLOCK_SUMS, &[], &params, &spans, Work::Workgroups(1))?;
    rec.launch(&APPLY, &[], &params, &spans, blocks)
}
