//! Host side of each WGSL kernel: its pipeline (built once per device, see
//! `pipeline.rs`), an `encode` that records into the caller's
//! `wgpu::CommandEncoder` without submitting, and a convenience call that
//! submits and waits. File names match `shaders/` and `src/cpu/`.

pub mod buffer_copy;
pub mod column_sum;
pub mod embedding_bag;
pub mod embedding_bag_backward;
pub mod embedding_gather;
pub mod embedding_renorm;
pub mod exclusive_scan;
pub mod fma_peak;
pub mod matmul;
pub mod one_hot;
pub mod radix_sort;
pub mod row_histogram;
pub mod scatter_add_atomic;
pub mod segment_sum;
pub mod sgd_step;
pub mod sgd_update;
pub mod uniform_init;

/// Workgroup size of every 1-D kernel: a multiple of every subgroup size
/// wgpu reports (8 on lavapipe, 32 on NVIDIA, 64 on AMD) and within the
/// 256-invocation default limit.
pub(crate) const WORKGROUP_SIZE: u32 = 256;

/// The most loop iterations one invocation of any kernel may run, all its
/// loops together. Mesa's LLVM backend (gallivm: lavapipe, llvmpipe GL; the
/// CPU adapters CI runs on) silently ends an invocation's loops after 65 535
/// iterations in all — one counter for every loop the invocation runs,
/// nested iterations included, shared by the SIMD lanes run together; once
/// spent, later loops run at most once — and returns whatever was computed
/// by then. Every kernel bounds each invocation's work by this, on every
/// adapter (more invocations or more dispatches; results unchanged), and
/// where a size cannot be bounded it is a `TooLarge` error on CPU adapters.
/// Half the hardware limit, so an approximate count stays safe.
pub(crate) const LOOP_BUDGET: usize = 1 << 15;

/// Whether the adapter is a CPU rasterizer that may end long loops early
/// (see [`LOOP_BUDGET`]): sizes past what the kernels can bound are refused
/// there and run elsewhere.
pub(crate) fn loop_limited(gpu: &crate::gpu::Gpu) -> bool {
    gpu.adapter_info().device_type == wgpu::DeviceType::Cpu
}

/// Fails with `TooLarge` when a count does not fit the u32 arithmetic of the shaders.
pub(crate) fn to_u32(what: &'static str, value: usize) -> crate::Result<u32> {
    u32::try_from(value).map_err(|_| crate::Error::TooLarge {
        what,
        bytes: value as u64,
        limit: u32::MAX as u64,
        limit_name: "u32 element count",
    })
}
