// exclusive_scan: out[i] = sum of in[0..i] for i in 0..=len (out[len] is the total).
//
// Reduce-then-scan in three dispatches, portable to every adapter: no
// workgroup ever waits on another (a single-pass decoupled look-back spins on
// its predecessors and can deadlock where workgroups have no forward-progress
// guarantee: Apple, ARM, software rasterizers).
//   scan_reduce      block b (BLOCK = 256 × 16 elements) -> block_sums[b]
//   scan_block_sums  one workgroup scans block_sums in place; writes out[len]
//   scan_apply       block b rescans its elements, offset by block_sums[b]
// Integer sums: the grouping cannot change the result.
//
// Input transforms (`mode`) serve the backward pass: 1 counts nonzero
// elements instead of summing them (the rank of each referenced row among the
// referenced rows, over row counts), and element `exclude` reads as zero (the
// padding row); 2 counts the elements that start a run of equal values
// (over sorted keys: the slot of each row's run among the runs, so a sparse
// gradient ranks its rows in O(batch), not O(rows)), a run of value
// `exclude` (the padding row) counting zero.

const WG: u32 = 256u;
const ITEMS: u32 = 16u;
const BLOCK: u32 = 4096u; // WG * ITEMS

struct Params {
    len: u32,        // elements of `input`
    num_blocks: u32, // ceil(len / BLOCK)
    exclude: u32,    // modes 0, 1: element read as zero; 2: value whose run
                     // counts zero; 0xFFFFFFFF for none
    mode: u32,       // 0: input, 1: input != 0, 2: input starts a run
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> block_sums: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

var<workgroup> shared_sums: array<u32, WG>;

fn element(i: u32) -> u32 {
    if i >= params.len {
        return 0u;
    }
    let v = input[i];
    if params.mode == 2u {
        let starts = i == 0u || input[i - 1u] != v;
        let excluded = v == params.exclude && params.exclude != 0xFFFFFFFFu;
        return select(0u, 1u, starts && !excluded);
    }
    if i == params.exclude {
        return 0u;
    }
    if params.mode == 1u {
        return select(0u, 1u, v != 0u);
    }
    return v;
}

// Exclusive prefix of `value` over the workgroup's invocations (Hillis–Steele).
// Call from uniform control flow.
fn workgroup_exclusive_scan(lid: u32, value: u32) -> u32 {
    shared_sums[lid] = value;
    workgroupBarrier();
    for (var offset = 1u; offset < WG; offset <<= 1u) {
        var add = 0u;
        if lid >= offset {
            add = shared_sums[lid - offset];
        }
        workgroupBarrier();
        shared_sums[lid] += add;
        workgroupBarrier();
    }
    return shared_sums[lid] - value;
}

@compute @workgroup_size(WG)
fn scan_reduce(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = workgroup_index(wid, nwg);
    let first = b * BLOCK + lid * ITEMS;
    var sum = 0u;
    for (var k = 0u; k < ITEMS; k++) {
        sum += element(first + k);
    }
    shared_sums[lid] = sum;
    workgroupBarrier();
    for (var half = WG / 2u; half > 0u; half >>= 1u) {
        if lid < half {
            shared_sums[lid] += shared_sums[lid + half];
        }
        workgroupBarrier();
    }
    if lid == 0u && b < params.num_blocks {
        block_sums[b] = shared_sums[0];
    }
}

@compute @workgroup_size(WG)
fn scan_block_sums(@builtin(local_invocation_index) lid: u32) {
    // Each invocation owns a contiguous run of block sums, so any count fits one workgroup.
    let per = (params.num_blocks + WG - 1u) / WG;
    let first = lid * per;
    let last = min(first + per, params.num_blocks);
    var sum = 0u;
    for (var i = first; i < last; i++) {
        sum += block_sums[i];
    }
    var running = workgroup_exclusive_scan(lid, sum);
    for (var i = first; i < last; i++) {
        let v = block_sums[i];
        block_sums[i] = running;
        running += v;
    }
    if lid == WG - 1u {
        out[params.len] = running;
    }
}

@compute @workgroup_size(WG)
fn scan_apply(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = workgroup_index(wid, nwg);
    let first = b * BLOCK + lid * ITEMS;
    var sum = 0u;
    for (var k = 0u; k < ITEMS; k++) {
        sum += element(first + k);
    }
    let prefix = workgroup_exclusive_scan(lid, sum);
    if b >= params.num_blocks {
        return;
    }
    var running = block_sums[b] + prefix;
    for (var k = 0u; k < ITEMS; k++) {
        let i = first + k;
        if i < params.len {
            out[i] = running;
            running += element(i);
        }
    }
}

// The whole scan in one dispatch of one workgroup, for short arrays (the
// host uses it up to SINGLE_MAX elements): each invocation owns a contiguous
// run, so no workgroup waits on another; on lavapipe one dispatch instead of
// three saves more than the serial runs cost.
@compute @workgroup_size(WG)
fn scan_single(@builtin(local_invocation_index) lid: u32) {
    let per = (params.len + WG - 1u) / WG;
    let first = lid * per;
    let last = min(first + per, params.len);
    var sum = 0u;
    for (var i = first; i < last; i++) {
        sum += element(i);
    }
    var running = workgroup_exclusive_scan(lid, sum);
    for (var i = first; i < last; i++) {
        out[i] = running;
        running += element(i);
    }
    if lid == WG - 1u {
        out[params.len] = running;
    }
}
