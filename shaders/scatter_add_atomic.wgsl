// scatter_add_atomic: grad[indices[p], :] += grad_out[p, :] with one float
// atomicAdd per element: the opt-in fast path for adapters with
// SHADER_FLOAT32_ATOMIC (Vulkan with VK_EXT_shader_atomic_float, Metal on
// Apple7+; not DX12, GL or WebGPU).
//
// NOT deterministic: invocations reach a row in a different order every run,
// and float addition is not associative, so the last bits of a row that
// several positions share vary from run to run. Use the sorted path
// (segment_sum) when results must repeat.
//
// The host clears `grad` first. The padding row receives nothing; with
// scale_by_freq each term is divided by its row's count before it is added.
// Out-of-range indices are skipped and the first one's position recorded.
//
// Past one storage binding: `grad` holds only table rows row_begin .. row_end
// from its start (a row-block of a chunked gradient, or a window of one past
// a binding), and the batch runs in windows of positions with `indices` and
// `grad_out` bound at the window's offsets; pos_base makes the recorded
// position the one in the whole list. One dispatch per (rows, positions)
// window; each adds only the rows it holds.
//
// Each invocation adds at most col_block columns of its position's row
// (invocation g: position g / blocks, columns from (g % blocks) · col_block):
// Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`), so a whole row of a
// very wide table per invocation would be added short.


struct Params {
    n: u32,
    dim: u32,
    num_embeddings: u32,
    padding_idx: u32, // 0xFFFFFFFF for none
    scale_by_freq: u32,
    row_begin: u32,
    row_end: u32,
    pos_base: u32,
    col_block: u32, // columns per invocation
    blocks: u32,    // invocations per position: ceil(dim / col_block)
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> counts: array<u32>;
@group(0) @binding(4) var<storage, read> grad_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> grad: array<atomic<f32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn scatter_add_atomic(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = invocation(wid, nwg, lid);
    let p = g / params.blocks;
    if p >= params.n {
        return;
    }
    let row = indices[p];
    if row >= params.num_embeddings {
        atomicMin(&status[0], params.pos_base + p);
        return;
    }
    if row == params.padding_idx || row < params.row_begin || row >= params.row_end {
        return;
    }
    var scale = 1.0;
    if params.scale_by_freq != 0u {
        scale = f32(max(counts[row], 1u));
    }
    let src = p * params.dim;
    let dst = (row - params.row_begin) * params.dim;
    let c0 = (g % params.blocks) * params.col_block;
    let c1 = min(c0 + params.col_block, params.dim);
    for (var c = c0; c < c1; c++) {
        atomicAdd(&grad[dst + c], grad_out[src + c] / scale);
    }
}
