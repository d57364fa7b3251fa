// radix_sort: one stable LSD pass of a (key, value) sort on the 4-bit digit
// (key >> shift) & 15. The backward pass sorts (row, position) pairs by row;
// the vocabulary bounds the key, so ceil(log2(num_embeddings) / 4) passes
// suffice. Stability carries the ascending position order of the input into
// every row's segment, which is what makes the gradient's sums deterministic.
//
// Block b holds BLOCK = 64 × 16 consecutive elements; invocation t owns the
// 16 consecutive elements t*16 .. t*16+15 of its block and visits them in
// order. Stable placement then needs only counts, never a comparison:
//   radix_count    per-block digit counts -> hist[digit * num_blocks + b]
//   (exclusive_scan of hist: where block b's digit-d elements start globally)
//   radix_scatter  the block's digit counts per invocation, scanned in
//                  (digit, invocation) order, place each element at
//                  global start + earlier invocations' count + running count.
// Why 4-bit digits and 64 invocations: the per-(digit, invocation) table is
// 16 × 64 u32 = 4 KiB of workgroup memory, far inside the 16 KiB minimum.
//
// On the first pass the values are the positions themselves (first_pass = 1;
// `values_in` is bound but not read).

const WG: u32 = 64u;
const ITEMS: u32 = 16u;
const BLOCK: u32 = 1024u; // WG * ITEMS
const RADIX: u32 = 16u;

struct Params {
    n: u32,
    shift: u32,
    num_blocks: u32,
    first_pass: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> keys_in: array<u32>;
@group(0) @binding(2) var<storage, read> values_in: array<u32>;
@group(0) @binding(3) var<storage, read_write> hist: array<u32>;
@group(0) @binding(4) var<storage, read_write> keys_out: array<u32>;
@group(0) @binding(5) var<storage, read_write> values_out: array<u32>;

var<workgroup> digit_counts: array<atomic<u32>, RADIX>;
var<workgroup> table: array<u32, BLOCK>; // [digit][invocation], then scanned
var<workgroup> scan_tmp: array<u32, WG>;
var<workgroup> global_base: array<u32, RADIX>;

fn digit(key: u32) -> u32 {
    return (key >> params.shift) & (RADIX - 1u);
}

@compute @workgroup_size(WG)
fn radix_count(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = workgroup_index(wid, nwg);
    let first = b * BLOCK + lid * ITEMS;
    for (var k = 0u; k < ITEMS; k++) {
        let i = first + k;
        if i < params.n {
            atomicAdd(&digit_counts[digit(keys_in[i])], 1u);
        }
    }
    workgroupBarrier();
    if lid < RADIX && b < params.num_blocks {
        hist[lid * params.num_blocks + b] = atomicLoad(&digit_counts[lid]);
    }
}

@compute @workgroup_size(WG)
fn radix_scatter(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let b = workgroup_index(wid, nwg);
    let first = b * BLOCK + lid * ITEMS;
    // 1. Each invocation counts its own elements' digits in its column.
    for (var k = 0u; k < ITEMS; k++) {
        let i = first + k;
        if i < params.n {
            let d = digit(keys_in[i]);
            table[d * WG + lid] += 1u;
        }
    }
    workgroupBarrier();
    // 2. Exclusive scan of the table in (digit, invocation) order: invocation
    //    t scans the flat entries t*16 .. t*16+15, then the run totals.
    var run = 0u;
    for (var j = 0u; j < ITEMS; j++) {
        run += table[lid * ITEMS + j];
    }
    scan_tmp[lid] = run;
    workgroupBarrier();
    for (var offset = 1u; offset < WG; offset <<= 1u) {
        var add = 0u;
        if lid >= offset {
            add = scan_tmp[lid - offset];
        }
        workgroupBarrier();
        scan_tmp[lid] += add;
        workgroupBarrier();
    }
    var running = scan_tmp[lid] - run;
    for (var j = 0u; j < ITEMS; j++) {
        let f = lid * ITEMS + j;
        let c = table[f];
        table[f] = running;
        running += c;
    }
    workgroupBarrier();
    // 3. table[d * WG] is where digit d starts inside the block; hist (scanned)
    //    says where it starts globally. Wrapping u32 arithmetic is exact here.
    if lid < RADIX && b < params.num_blocks {
        global_base[lid] = hist[lid * params.num_blocks + b] - table[lid * WG];
    }
    workgroupBarrier();
    if b >= params.num_blocks {
        return;
    }
    // 4. Place the elements in order; each invocation owns its column again.
    for (var k = 0u; k < ITEMS; k++) {
        let i = first + k;
        if i < params.n {
            let key = keys_in[i];
            let d = digit(key);
            var value = i;
            if params.first_pass == 0u {
                value = values_in[i];
            }
            let slot = d * WG + lid;
            let dst = global_base[d] + table[slot];
            table[slot] += 1u;
            keys_out[dst] = key;
            values_out[dst] = value;
        }
    }
}
