//! `radix_sort`: a stable LSD sort of (key, position) pairs by key, 4 bits a
//! pass, only as many passes as the largest key needs.
//! Shader: `shaders/radix_sort.wgsl`; CPU twin: `cpu::radix_sort`.

use crate::binding;
use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::exclusive_scan::{self, ScanArgs, ScanMode};
use crate::kernels::to_u32;
use crate::pipeline::KernelSpec;
use crate::recorder::{self, Recorder, Work};

const SOURCE: &str = include_str!("../../shaders/radix_sort.wgsl");

const COUNT: KernelSpec = KernelSpec {
    name: "radix_sort",
    source: SOURCE,
    entry: "radix_count",
    defs: &[],
};
const SCATTER: KernelSpec = KernelSpec {
    name: "radix_sort",
    source: SOURCE,
    entry: "radix_scatter",
    defs: &[],
};

/// Elements per workgroup (64 invocations × 16 elements).
pub const BLOCK: usize = 1024;
/// Bits of the key sorted per pass.
pub const DIGIT_BITS: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    shift: u32,
    num_blocks: u32,
    first_pass: u32,
}

/// Passes needed for keys below `key_bound` (at least one, so the positions are always written).
pub fn passes(key_bound: usize) -> u32 {
    // Keys are u32: never more passes than their 32 bits need (a larger
    // bound would shift by 32 or more, which WGSL takes modulo 32).
    let bits = (usize::BITS - key_bound.saturating_sub(1).leading_zeros()).min(u32::BITS);
    bits.div_ceil(DIGIT_BITS).max(1)
}

/// One sort. Keys at or above `key_bound` are sorted only by their low bits
/// (callers reject them through the histogram's status word).
pub struct SortArgs<'a> {
    /// `n` u32 keys (the indices); read, never written.
    pub keys: &'a wgpu::Buffer,
    /// Number of (key, position) pairs sorted.
    pub n: usize,
    /// One past the largest key (the table's `num_embeddings` when sorting
    /// row ids): it sets the number of 4-bit passes ([`passes`]).
    pub key_bound: usize,
    /// `n` u32s each: the keys ascending, and the positions they came from.
    pub keys_out: &'a wgpu::Buffer,
    /// `n` u32s: for each sorted key, its position in `keys` (equal keys in
    /// ascending position order: the sort is stable).
    pub positions_out: &'a wgpu::Buffer,
}

/// Records every pass into `encoder` (allocating ping-pong and histogram scratch).
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &SortArgs) -> Result<()> {
    recorder::record(gpu, encoder, |rec| record(rec, args))
}

/// [`encode`] into a recorder other kernels of the same call share.
pub(crate) fn record(rec: &mut Recorder, args: &SortArgs) -> Result<()> {
    let gpu = rec.gpu();
    for (what, buffer) in [
        ("radix_sort keys (n u32)", args.keys),
        ("radix_sort keys_out (n u32)", args.keys_out),
        ("radix_sort positions_out (n u32)", args.positions_out),
    ] {
        binding::check_holds(what, buffer.size(), args.n as u64)?;
    }
    let outputs = [args.keys_out, args.positions_out];
    binding::check_no_alias("radix_sort", &[args.keys], &outputs)?;
    if args.n == 0 {
        return Ok(());
    }
    let n = to_u32("index count", args.n)?;
    let num_blocks = args.n.div_ceil(BLOCK);
    let hist_len = num_blocks * (1 << DIGIT_BITS);
    let hist = gpu.storage("radix_sort histogram", hist_len as u64 * 4)?;
    let hist_scan = gpu.storage("radix_sort histogram scan", (hist_len as u64 + 1) * 4)?;
    let passes = passes(args.key_bound);
    let (tmp_keys, tmp_positions) = if passes > 1 {
        (
            Some(gpu.storage("radix_sort keys", args.n as u64 * 4)?),
            Some(gpu.storage("radix_sort positions", args.n as u64 * 4)?),
        )
    } else {
        (None, None)
    };
    let mut src: (&wgpu::Buffer, &wgpu::Buffer) = (args.keys, args.keys);
    for pass in 0..passes {
        // The last pass must land in the outputs; alternate backwards from there.
        let dst = if (passes - 1 - pass).is_multiple_of(2) {
            (args.keys_out, args.positions_out)
        } else {
            match (&tmp_keys, &tmp_positions) {
                (Some(k), Some(p)) => (k.raw(), p.raw()),
                _ => unreachable!("scratch exists whenever there is more than one pass"),
            }
        };
        let params = Params {
            n,
            shift: pass * DIGIT_BITS,
            num_blocks: to_u32("radix blocks", num_blocks)?,
            first_pass: (pass == 0) as u32,
        };
        let blocks = Work::Workgroups(num_blocks as u64);
        rec.launch(
            &COUNT,
            &[],
            &params,
            &[(1, src.0.into()), (3, hist.raw().into())],
            blocks,
        )?;
        exclusive_scan::record(
            rec,
            &ScanArgs {
                input: hist.raw(),
                len: hist_len,
                out: hist_scan.raw(),
                exclude: None,
                mode: ScanMode::Sum,
            },
        )?;
        rec.launch(
            &SCATTER,
            &[],
            &params,
            &[
                (1, src.0.into()),
                (2, src.1.into()),
                (3, hist_scan.raw().into()),
                (4, dst.0.into()),
                (5, dst.1.into()),
            ],
            blocks,
        )?;
        src = dst;
    }
    Ok(())
}
