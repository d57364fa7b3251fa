//! Host side of each WGSL kernel: its pipeline (built once per device, see
//! `pipeline.rs`), an `encode` that records into the caller's
//! `wgpu::CommandEncoder` without submitting, and a convenience call that
//! submits and waits. File names match `shaders/` and `src/cpu/`.

pub mod adam_step;
pub mod buffer_copy;
pub mod column_sum;
pub mod embedding_bag;
pub mod embedding_bag_backward;
pub mod embedding_gather;
pub mod embedding_renorm;
pub mod exact_arith;
pub mod exclusive_scan;
pub mod fma_peak;
pub mod matmul;
pub mod one_hot;
pub mod radix_sort;
pub mod row_histogram;
pub mod scatter_add_atomic;
pub mod segment_sum;
pub mod sgd_update;
pub mod uniform_init;

/// Workgroup size of every 1-D kernel: a multiple of every subgroup size
/// wgpu reports (8 on lavapipe, 32 on NVIDIA, 64 on AMD) and within the
/// 256-invocation default limit.
pub(crate) const WORKGROUP_SIZE: u32 = 256;

/// The most loop iterations one invocation of any kernel may run, all its
/// loops together: half of Mesa's loop limit, so a count that is only
/// approximate stays safe.
///
/// # Mesa's loop limit
///
/// Mesa's LLVM backend, gallivm (behind lavapipe and llvmpipe GL, the CPU
/// adapters the tests and CI run on), silently ends a shader invocation's
/// loops after 65 535 iterations in all:
///
/// - one counter for every loop the invocation runs, nested iterations
///   included, shared by the SIMD lanes run together;
/// - once it is spent, every later loop runs at most once;
/// - no error: the invocation returns whatever it had computed by then.
///
/// Measured on Mesa 22.3: a 200 000-step loop returns after 65 535
/// iterations on both lavapipe and llvmpipe GL; a 1 × 1 × 40 000 matmul
/// summed 30 833 of its terms on the texture path; before this budget, a
/// bias gradient over 70 000 rows was summed short and a 70 001-float row
/// copied short.
///
/// So every kernel bounds each invocation's loops by this budget, on every
/// adapter, with more invocations or more dispatches (each carrying on from
/// the last) in an order that keeps the results' bits (where the order
/// changed, the CPU twin changed with it); only `matmul`'s split of K is
/// for CPU adapters alone. Where a size cannot be bounded it is a typed
/// error on CPU adapters ([`loop_limited`]), checked before any work. The
/// README's "Mesa's loop limit" lists what each kernel does;
/// `tests/loop_limit.rs` runs each one past the limit against its CPU twin.
pub(crate) const LOOP_BUDGET: usize = 1 << 15;

/// Whether the adapter is a CPU rasterizer that may end long loops early
/// (see [`LOOP_BUDGET`]): sizes past what the kernels can bound are refused
/// there and run elsewhere.
pub(crate) fn loop_limited(gpu: &crate::gpu::Gpu) -> bool {
    gpu.adapter_info().device_type == wgpu::DeviceType::Cpu
}

/// `InvalidArgument` unless a caller's 1-D workgroup size is one the adapter
/// runs: checked before recording, not left to pipeline creation (which a
/// page, whose calls run without error scopes, would let fail silently).
pub(crate) fn check_workgroup_size(gpu: &crate::gpu::Gpu, wg: u32) -> crate::Result<()> {
    let l = gpu.limits();
    let max = l
        .max_compute_invocations_per_workgroup
        .min(l.max_compute_workgroup_size_x);
    if wg == 0 || wg > max {
        return Err(crate::Error::InvalidArgument {
            name: "workgroup_size",
            reason: format!("{wg} is outside 1..={max} for this adapter"),
        });
    }
    Ok(())
}

/// The shaders' padding word: a row of the table, or `u32::MAX` for none.
/// An id of `0xFFFFFFFF` is past every table (`num_embeddings` is a u32),
/// and the shaders test an id's range before comparing it with the padding
/// row, so that id is reported out of range, never taken for padding.
pub(crate) fn padding_word(
    padding_idx: Option<usize>,
    num_embeddings: usize,
) -> crate::Result<u32> {
    let Some(p) = padding_idx else {
        return Ok(u32::MAX);
    };
    let word = to_u32("padding_idx", p)?;
    if p >= num_embeddings {
        return Err(crate::Error::InvalidArgument {
            name: "padding_idx",
            reason: format!("{p} is not a row of the {num_embeddings}-row table"),
        });
    }
    Ok(word)
}

/// Fails with `TooMany` when a count does not fit the u32 arithmetic of the shaders.
pub(crate) fn to_u32(what: &'static str, value: usize) -> crate::Result<u32> {
    u32::try_from(value).map_err(|_| crate::Error::TooMany {
        what,
        count: value as u128,
        limit: u32::MAX as u64,
        limit_name: "the shaders' u32 arithmetic",
    })
}
