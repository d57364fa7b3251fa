//! `exclusive_scan`: `out[i] = input[0] + … + input[i - 1]` for `i` in `0..=len`
//! (so `out[len]` is the total), by reduce-then-scan: portable to adapters
//! without forward-progress guarantees between workgroups.
//! Shader: `shaders/exclusive_scan.wgsl`; CPU twin: `cpu::exclusive_scan`.

use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::to_u32;
use crate::pipeline::{Access, KernelSpec};

const SOURCE: &str = include_str!("../../shaders/exclusive_scan.wgsl");
const BINDINGS: &[(u32, Access)] = &[
    (0, Access::Uniform),
    (1, Access::Read),
    (2, Access::ReadWrite),
    (3, Access::ReadWrite),
];

const REDUCE: KernelSpec = KernelSpec {
    name: "exclusive_scan",
    source: SOURCE,
    entry: "scan_reduce",
    bindings: BINDINGS,
};
const BLOCK_SUMS: KernelSpec = KernelSpec {
    name: "exclusive_scan",
    source: SOURCE,
    entry: "scan_block_sums",
    bindings: BINDINGS,
};
const APPLY: KernelSpec = KernelSpec {
    name: "exclusive_scan",
    source: SOURCE,
    entry: "scan_apply",
    bindings: BINDINGS,
};

const SINGLE: KernelSpec = KernelSpec {
    name: "exclusive_scan",
    source: SOURCE,
    entry: "scan_single",
    bindings: BINDINGS,
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
    flags: u32,
}

/// One scan. `out` holds `len + 1` u32s and must not alias `input`.
pub struct ScanArgs<'a> {
    pub input: &'a wgpu::Buffer,
    pub len: usize,
    pub out: &'a wgpu::Buffer,
    /// This element reads as zero (the padding row when ranking rows).
    pub exclude: Option<usize>,
    /// Scan `input[i] != 0` (as 0/1) instead of `input[i]`.
    pub flags: bool,
}

/// Records the three dispatches into `encoder` (allocating the block sums).
pub fn encode(gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, args: &ScanArgs) -> Result<()> {
    let num_blocks = args.len.div_ceil(BLOCK);
    let params = Params {
        len: to_u32("scan length", args.len)?,
        num_blocks: to_u32("scan blocks", num_blocks)?,
        exclude: match args.exclude {
            Some(e) => to_u32("scan exclude", e)?,
            None => u32::MAX,
        },
        flags: args.flags as u32,
    };
    let uniform = gpu.uniform("exclusive_scan params", &params)?;
    let block_sums = gpu.storage("exclusive_scan block sums", num_blocks as u64 * 4)?;
    let buffers = [
        (0, uniform.raw()),
        (1, args.input),
        (2, block_sums.raw()),
        (3, args.out),
    ];
    if args.len <= SINGLE_MAX {
        let single = gpu.kernel(&SINGLE, &[])?;
        single.dispatch(gpu, encoder, &single.bind(gpu, &buffers)?, 1);
        return Ok(());
    }
    let reduce = gpu.kernel(&REDUCE, &[])?;
    reduce.dispatch(
        gpu,
        encoder,
        &reduce.bind(gpu, &buffers)?,
        num_blocks as u64,
    );
    let sums = gpu.kernel(&BLOCK_SUMS, &[])?;
    sums.dispatch(gpu, encoder, &sums.bind(gpu, &buffers)?, 1);
    let apply = gpu.kernel(&APPLY, &[])?;
    apply.dispatch(gpu, encoder, &apply.bind(gpu, &buffers)?, num_blocks as u64);
    Ok(())
}
