// row_histogram: counts[r] = how many positions p have indices[p] == r.
//
// The first stage of the deterministic embedding backward: the counts give
// each row's segment length (and, scanned, its offset in the sorted order),
// the frequency that `scale_grad_by_freq` divides by, and the set of rows
// `max_norm` renormalises. Integer atomics: the order in which positions
// arrive changes nothing.
//
// An index outside the table is not counted; the first such position is
// recorded in status[0] with atomicMin (the host initialises it to
// 0xFFFFFFFF). The host clears `counts` before the dispatch.
//
// An index list past one storage binding is counted in windows, one dispatch
// each, `indices` bound at the window's offset; pos_base (the window's first
// position) makes the recorded position the one in the whole list.


struct Params {
    n: u32,              // number of indices
    num_embeddings: u32, // table rows
    pos_base: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read_write> counts: array<atomic<u32>>;

// Whether position p is in range, lowering status[0] when it is not.
fn checked(p: u32) -> bool {
    if indices[p] >= params.num_embeddings {
        atomicMin(&status[0], params.pos_base + p);
        return false;
    }
    return true;
}

// Only the check (no counts): what a fused update needs, in O(n) rather
// than a pass over the table's rows.
@compute @workgroup_size(WORKGROUP_SIZE)
fn row_check(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = invocation(wid, nwg, lid);
    if p < params.n {
        checked(p);
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn row_histogram(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let p = invocation(wid, nwg, lid);
    if p >= params.n {
        return;
    }
    if checked(p) {
        atomicAdd(&counts[indices[p]], 1u);
    }
}
