// embedding_bag_backward: the bag-specific half of EmbeddingBag's backward.
//
// The table gradient is the embedding's deterministic one (row_histogram →
// exclusive_scan → radix_sort → segment_sum, see gradient.rs) applied to a
// per-position gradient `expanded` ([n, dim]): what each position of
// `indices` contributes to its row. This file builds `expanded` from the
// per-bag grad_out ([num_bags, dim]); segment_sum then adds each row's
// positions in ascending position order, so the result is deterministic and
// equal, bit for bit, to the CPU twin (src/cpu/embedding_bag_backward.rs).
//
// Position p belongs to bag b = the largest b with offsets[b] <= p (CSR
// offsets, num_bags + 1 of them; empty bags own no position). A padding
// entry contributes 0 in every mode. Otherwise, per column c:
//   MODE 0 (sum):  grad_out[b, c], or per_sample_weights[p] * grad_out[b, c]
//                  (the product rounded on its own, as the forward's);
//   MODE 1 (mean): grad_out[b, c] / f32(count[b]), count[b] = the bag's
//                  length less its padding entries (bag_padding counts
//                  those), the forward's divisor;
//   MODE 2 (max):  grad_out[b, c] if max_pos[b, c] == p (the forward's
//                  winner: ties went to the lowest position), else 0.
//
// psw_grad: the per_sample_weights gradient (sum mode),
//   d psw[p] = sum over c ascending of grad_out[b, c] * table[indices[p], c]
// (each product rounded on its own, then added), 0 for padding entries.
//
// Entry points (each binds only what it touches):
//   bag_padding  one invocation per position  bindings 0, 1, 2, 10
//   bag_expand   one invocation per (p, c)    bindings 0 - 7
//   psw_grad     one invocation per position  bindings 0, 1, 2, 5, 8, 9
// None loops over a bag or, past LOOP_BUDGET columns, over a row: Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`). So mean's padding entries are
// counted per position with integer atomics (exact in any order), and
// psw_grad sums columns col_begin .. col_end per dispatch, each dispatch
// carrying on from the last one's sum in psw_out (the same order of
// additions as one loop over the row). bag_of is a binary search: at most
// 32 steps.
// HALF: the table is f16 packed two per u32 (unpack2x16float, core WGSL).
//
// Past one storage binding, bag_expand and psw_grad run in windows of
// positions, one dispatch each: `indices`, `per_sample_weights`, `expanded`
// and `psw_out` are bound from position pos_base, and positions are those of
// the whole batch everywhere else (offsets, max_pos). psw_grad on a table in
// row-blocks runs once per chunk: `table` holds rows row_begin .. row_end and
// each dispatch fills the positions whose row it holds (padding and
// out-of-range positions get 0 from every dispatch).
// Every product and quotient is exact_arith's (rounded once, never fused into
// an add, on any compiler), so the results are the twin's bits everywhere:
// with: exact_arith/ops.wgsl

override MODE: u32 = 0u;
override WEIGHTED: bool = false;
override HALF: bool = false;

const MODE_SUM: u32 = 0u;
const MODE_MEAN: u32 = 1u;
const MODE_MAX: u32 = 2u;

struct Params {
    num_bags: u32,
    dim: u32,
    n: u32,              // number of indices (bag_expand, psw_grad: in this window)
    padding_idx: u32,    // 0xFFFFFFFF: none
    num_embeddings: u32,
    row_begin: u32,      // psw_grad: the table rows bound in `table`
    row_end: u32,
    pos_base: u32,       // bag_expand, psw_grad: the position at indices[0]
    col_begin: u32,      // psw_grad: the columns this dispatch adds
    col_end: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read> per_sample_weights: array<f32>;
@group(0) @binding(4) var<storage, read> max_pos: array<u32>;
@group(0) @binding(5) var<storage, read> grad_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> pads: array<u32>;
@group(0) @binding(7) var<storage, read_write> expanded: array<f32>;
@group(0) @binding(8) var<storage, read> table: array<u32>;
@group(0) @binding(9) var<storage, read_write> psw_out: array<f32>;
// bag_padding's view of `pads` (binding 6 in bag_expand).
@group(0) @binding(10) var<storage, read_write> pad_counts: array<atomic<u32>>;

// The bag owning position p: the largest b with offsets[b] <= p.
// Invariant: offsets[lo] <= p < offsets[hi] (offsets[num_bags] = n > p).
fn bag_of(p: u32) -> u32 {
    var lo = 0u;
    var hi = params.num_bags;
    while hi - lo > 1u {
        let mid = lo + (hi - lo) / 2u;
        if offsets[mid] <= p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// Whether `row` is the padding row. With none the word is 0xFFFFFFFF, which
// an id past the table may also be: such an id is not padding.
fn is_padding(row: u32) -> bool {
    return row == params.padding_idx && row < params.num_embeddings;
}

// pads[b] += 1 for each padding entry of bag b (the host clears `pads`).
@compute @workgroup_size(WORKGROUP_SIZE)
fn bag_padding(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let local = invocation(wid, nwg, lid);
    if local >= params.n || !is_padding(indices[local]) {
        return;
    }
    atomicAdd(&pad_counts[bag_of(params.pos_base + local)], 1u);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn bag_expand(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let e = invocation(wid, nwg, lid);
    if e >= params.n * params.dim {
        return;
    }
    let local = e / params.dim;
    let p = params.pos_base + local;
    let c = e % params.dim;
    if is_padding(indices[local]) {
        expanded[e] = 0.0;
        return;
    }
    let b = bag_of(p);
    let g = grad_out[b * params.dim + c];
    var v: f32;
    if MODE == MODE_MEAN {
        v = div_rn(g, f32_of_count(offsets[b + 1u] - offsets[b] - pads[b]));
    } else if MODE == MODE_MAX {
        v = select(0.0, g, max_pos[b * params.dim + c] == p);
    } else if WEIGHTED {
        v = mul_rn(per_sample_weights[local], g);
    } else {
        v = g;
    }
    expanded[e] = v;
}

fn load(e: u32) -> f32 {
    if HALF {
        let pair = unpack2x16float(table[e / 2u]);
        return select(pair.x, pair.y, e % 2u == 1u);
    }
    return bitcast<f32>(table[e]);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn psw_grad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let local = invocation(wid, nwg, lid);
    if local >= params.n {
        return;
    }
    let row = indices[local];
    if row == params.padding_idx || row >= params.num_embeddings {
        psw_out[local] = 0.0;
        return;
    }
    if row < params.row_begin || row >= params.row_end {
        return;
    }
    let b = bag_of(params.pos_base + local);
    var acc = 0.0;
    if params.col_begin > 0u {
        acc = psw_out[local];
    }
    for (var c = params.col_begin; c < min(params.col_end, params.dim); c++) {
        // mul_rn: rounded before the add on any compiler, as the twin's.
        acc = acc + mul_rn(grad_out[b * params.dim + c], load((row - params.row_begin) * params.dim + c));
    }
    psw_out[local] = acc;
}
