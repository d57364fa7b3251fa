// segment_sum: the reduction half of the deterministic embedding backward.
//
// Input: the positions sorted by row (radix_sort, stable, so each row's
// positions are ascending) and offsets[r] = where row r's segment starts in
// that order (exclusive_scan of row_histogram; offsets[r + 1] ends it).
// Each row's gradient is the sum of grad_out over its segment, added in
// ascending position order, so every adapter and the CPU twin
// (src/cpu/segment_sum.rs) produce the same bits.
//
// Hot rows. A row holding 30 % of the batch would be one long serial loop, so
// the sorted order is cut into tiles of `chunk` entries. A segment that fits
// in one tile is summed directly by its row's invocation. A segment that
// crosses tiles is cut at the tile edges into pieces, which segment_partials
// sums in parallel (piece = 0..chunk entries, ascending); the row's
// invocation then adds its pieces in tile order, starting from 0.0:
//   ((0 + piece[t0]) + piece[t0 + 1]) + ... + piece[t1].
// A tile holds at most two such pieces: a head (the row at its first entry
// began in an earlier tile) and a tail (the row at its last entry continues
// into the next tile and began inside this one), so `partials` is
// [num_tiles][2][dim].
//
// Entry points, one per output (each binds only what it touches; at most 8
// storage buffers, the WebGPU default):
//   segment_partials  the pieces of multi-tile segments
//   segment_dense     the dense [num_embeddings, dim] gradient; untouched rows 0
//   segment_sparse    (unique rows ascending, one summed row each)
//   segment_sgd       fused: weight[r] -= lr * grad[r] for referenced rows
//   segment_adagrad   fused row-wise Adagrad (FBGEMM EXACT_ROWWISE_ADAGRAD):
//                     state[r] += mean(grad[r]^2);
//                     weight[r] -= lr / (sqrt(state[r]) + eps) * grad[r]
// segment_dense, segment_sgd and segment_adagrad handle rows
// row_begin .. row_end, stored from row 0 of `out`: a table past one storage
// binding is updated one row-chunk per dispatch (the whole table is one chunk).
// The padding row gets no gradient; with scale_by_freq each row's sum is
// divided by its count. Every entry does nothing when status[0] reports an
// out-of-range index, so a bad index leaves the weights untouched.
//
// Past one storage binding. Outputs: dense/sgd/adagrad outputs are written
// in windows of rows (row_begin .. row_end), sparse values in windows of
// slots (slot_begin .. slot_end, stored from the window's start), one
// dispatch each. grad_out: the host first gathers it into sorted order
// (presorted = 1: entry i of `grad_out` is grad_out[sorted_pos[i]] — the
// same values, so the same sums), and binds it in windows of whole tiles,
// entries entry_base .. ; each dispatch then handles the tiles tile_begin ..
// tile_end, and each row pass the rows whose segment starts in those tiles
// (a single-tile segment lies inside its tile; a longer one reads only
// partials). Rows with no entries belong to the window of tile 0. In one
// binding: presorted = 0, one window of every tile.
//
// THREADS_PER_ROW invocations share a row, striding over blocks of 8
// columns (1 on CPU adapters: each SIMD lane streams its own row). Per
// element the order of additions is the same for any value; segment_adagrad
// runs with 1 so the sum of squares runs over columns in ascending order.

override WORKGROUP_SIZE: u32 = 256u;
override THREADS_PER_ROW: u32 = 1u;

const STATUS_OK: u32 = 0xFFFFFFFFu;

struct Params {
    n: u32,              // positions
    dim: u32,
    num_embeddings: u32,
    chunk: u32,          // tile length in sorted entries
    num_tiles: u32,      // ceil(n / chunk)
    padding_idx: u32,    // 0xFFFFFFFF for none
    scale_by_freq: u32,
    _pad: u32,
    lr: f32,
    eps: f32,
    row_begin: u32,      // dense/sgd/adagrad: first table row in `out`
    row_end: u32,        // one past its last row (a row-chunk of a large table)
    tile_begin: u32,     // the tiles this dispatch handles
    tile_end: u32,
    entry_base: u32,     // presorted: the sorted entry at grad_out[0]
    presorted: u32,      // 1: grad_out is in sorted order (see above)
    slot_begin: u32,     // sparse: the slots `out` holds from its start
    slot_end: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> status: array<u32>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read> sorted_keys: array<u32>;
@group(0) @binding(4) var<storage, read> sorted_pos: array<u32>;
@group(0) @binding(5) var<storage, read> grad_out: array<f32>;
@group(0) @binding(6) var<storage, read_write> partials: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read> ranks: array<u32>;
@group(0) @binding(9) var<storage, read_write> rows_out: array<u32>;
@group(0) @binding(10) var<storage, read_write> state: array<f32>;

struct Sum8 {
    a: vec4<f32>,
    b: vec4<f32>,
}

fn zero8() -> Sum8 {
    return Sum8(vec4<f32>(0.0), vec4<f32>(0.0));
}

fn add8(x: Sum8, y: Sum8) -> Sum8 {
    return Sum8(x.a + y.a, x.b + y.b);
}

fn col(c: u32) -> bool {
    return c < params.dim;
}

fn grad_at(i: u32, c: u32) -> f32 {
    if col(c) {
        return grad_out[i + c];
    }
    return 0.0;
}

fn partial_at(i: u32, c: u32) -> f32 {
    if col(c) {
        return partials[i + c];
    }
    return 0.0;
}

// grad_out[p, c0 .. c0 + 8], zero past dim.
fn grad8(p: u32, c0: u32) -> Sum8 {
    let base = p * params.dim;
    return Sum8(
        vec4<f32>(grad_at(base, c0), grad_at(base, c0 + 1u), grad_at(base, c0 + 2u), grad_at(base, c0 + 3u)),
        vec4<f32>(grad_at(base, c0 + 4u), grad_at(base, c0 + 5u), grad_at(base, c0 + 6u), grad_at(base, c0 + 7u)),
    );
}

fn partial8(slot: u32, c0: u32) -> Sum8 {
    let base = slot * params.dim;
    return Sum8(
        vec4<f32>(partial_at(base, c0), partial_at(base, c0 + 1u), partial_at(base, c0 + 2u), partial_at(base, c0 + 3u)),
        vec4<f32>(partial_at(base, c0 + 4u), partial_at(base, c0 + 5u), partial_at(base, c0 + 6u), partial_at(base, c0 + 7u)),
    );
}

// Sorted entries s .. e, columns c0 .. c0 + 8, added in ascending order from 0.
fn run_sum8(s: u32, e: u32, c0: u32) -> Sum8 {
    var acc = zero8();
    for (var i = s; i < e; i++) {
        var p: u32;
        if params.presorted != 0u {
            p = i - params.entry_base;
        } else {
            p = sorted_pos[i];
        }
        acc = add8(acc, grad8(p, c0));
    }
    return acc;
}

// Whether this dispatch's tiles hold row r's segment start (see the header).
fn owns(r: u32) -> bool {
    let s = offsets[r];
    if offsets[r + 1u] == s {
        return params.tile_begin == 0u;
    }
    let t0 = s / params.chunk;
    return t0 >= params.tile_begin && t0 < params.tile_end;
}

// Row r's gradient (before scaling), columns c0 .. c0 + 8.
fn row_sum8(r: u32, c0: u32) -> Sum8 {
    let s = offsets[r];
    let e = offsets[r + 1u];
    if e == s {
        return zero8();
    }
    let t0 = s / params.chunk;
    let t1 = (e - 1u) / params.chunk;
    if t0 == t1 {
        return run_sum8(s, e, c0);
    }
    var acc = add8(zero8(), partial8(t0 * 2u + 1u, c0));
    for (var t = t0 + 1u; t <= t1; t++) {
        acc = add8(acc, partial8(t * 2u, c0));
    }
    return acc;
}

// The gradient of row r (scaled by 1 / count when asked), columns c0 .. c0 + 8.
fn row_grad8(r: u32, c0: u32) -> Sum8 {
    if r == params.padding_idx {
        return zero8();
    }
    let v = row_sum8(r, c0);
    let count = offsets[r + 1u] - offsets[r];
    if params.scale_by_freq != 0u && count > 1u {
        let f = f32(count);
        return Sum8(v.a / f, v.b / f);
    }
    return v;
}

fn store_out(i: u32, c: u32, v: f32) {
    if col(c) {
        out[i + c] = v;
    }
}

fn store_out8(row: u32, c0: u32, v: Sum8) {
    let base = row * params.dim;
    store_out(base, c0, v.a.x);
    store_out(base, c0 + 1u, v.a.y);
    store_out(base, c0 + 2u, v.a.z);
    store_out(base, c0 + 3u, v.a.w);
    store_out(base, c0 + 4u, v.b.x);
    store_out(base, c0 + 5u, v.b.y);
    store_out(base, c0 + 6u, v.b.z);
    store_out(base, c0 + 7u, v.b.w);
}

fn out8(row: u32, c0: u32) -> Sum8 {
    let base = row * params.dim;
    var w = zero8();
    if col(c0) { w.a.x = out[base + c0]; }
    if col(c0 + 1u) { w.a.y = out[base + c0 + 1u]; }
    if col(c0 + 2u) { w.a.z = out[base + c0 + 2u]; }
    if col(c0 + 3u) { w.a.w = out[base + c0 + 3u]; }
    if col(c0 + 4u) { w.b.x = out[base + c0 + 4u]; }
    if col(c0 + 5u) { w.b.y = out[base + c0 + 5u]; }
    if col(c0 + 6u) { w.b.z = out[base + c0 + 6u]; }
    if col(c0 + 7u) { w.b.w = out[base + c0 + 7u]; }
    return w;
}

struct Lane {
    item: u32, // row (or tile piece)
    lane: u32, // which of THREADS_PER_ROW
}

fn lane_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> Lane {
    let g = (wid.x + wid.y * nwg.x) * WORKGROUP_SIZE + lid;
    return Lane(g / THREADS_PER_ROW, g % THREADS_PER_ROW);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn segment_partials(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = lane_of(wid, nwg, lid);
    let t = params.tile_begin + at.item / 2u;
    let piece = at.item % 2u;
    if t >= params.tile_end || t >= params.num_tiles || status[0] != STATUS_OK {
        return;
    }
    let begin = t * params.chunk;
    let end = min(begin + params.chunk, params.n);
    var r: u32;
    var s: u32;
    var e: u32;
    if piece == 0u {
        // Head: the row at `begin` started in an earlier tile.
        if begin == 0u {
            return;
        }
        r = sorted_keys[begin];
        if sorted_keys[begin - 1u] != r {
            return;
        }
        s = begin;
        e = min(end, offsets[r + 1u]);
    } else {
        // Tail: the row at `end - 1` continues past the tile and started inside it.
        if end >= params.n {
            return;
        }
        r = sorted_keys[end - 1u];
        if sorted_keys[end] != r {
            return;
        }
        s = offsets[r];
        if s < begin {
            return; // the head piece covers the whole tile
        }
        e = end;
    }
    if r == params.padding_idx {
        return;
    }
    let base = (t * 2u + piece) * params.dim;
    for (var c0 = at.lane * 8u; c0 < params.dim; c0 += THREADS_PER_ROW * 8u) {
        let v = run_sum8(s, e, c0);
        var vals = array<f32, 8>(v.a.x, v.a.y, v.a.z, v.a.w, v.b.x, v.b.y, v.b.z, v.b.w);
        for (var k = 0u; k < 8u; k++) {
            if col(c0 + k) {
                partials[base + c0 + k] = vals[k];
            }
        }
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn segment_dense(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = lane_of(wid, nwg, lid);
    let r = at.item + params.row_begin;
    if r >= params.row_end || status[0] != STATUS_OK || !owns(r) {
        return;
    }
    for (var c0 = at.lane * 8u; c0 < params.dim; c0 += THREADS_PER_ROW * 8u) {
        store_out8(r - params.row_begin, c0, row_grad8(r, c0));
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn segment_sparse(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = lane_of(wid, nwg, lid);
    let r = at.item;
    if r >= params.num_embeddings || status[0] != STATUS_OK {
        return;
    }
    if offsets[r + 1u] == offsets[r] || r == params.padding_idx || !owns(r) {
        return;
    }
    let slot = ranks[r];
    if slot < params.slot_begin || slot >= params.slot_end {
        return;
    }
    if at.lane == 0u {
        rows_out[slot] = r;
    }
    for (var c0 = at.lane * 8u; c0 < params.dim; c0 += THREADS_PER_ROW * 8u) {
        store_out8(slot - params.slot_begin, c0, row_grad8(r, c0));
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn segment_sgd(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = lane_of(wid, nwg, lid);
    let r = at.item + params.row_begin;
    if r >= params.row_end || status[0] != STATUS_OK {
        return;
    }
    if offsets[r + 1u] == offsets[r] || r == params.padding_idx || !owns(r) {
        return;
    }
    for (var c0 = at.lane * 8u; c0 < params.dim; c0 += THREADS_PER_ROW * 8u) {
        let g = row_grad8(r, c0);
        let w = out8(r - params.row_begin, c0);
        store_out8(r - params.row_begin, c0, Sum8(w.a - params.lr * g.a, w.b - params.lr * g.b));
    }
}

fn sum_squares4(acc: f32, v: vec4<f32>, c: u32) -> f32 {
    var s = acc;
    if col(c) { s = s + v.x * v.x; }
    if col(c + 1u) { s = s + v.y * v.y; }
    if col(c + 2u) { s = s + v.z * v.z; }
    if col(c + 3u) { s = s + v.w * v.w; }
    return s;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn segment_adagrad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = lane_of(wid, nwg, lid);
    let r = at.item + params.row_begin;
    if r >= params.row_end || status[0] != STATUS_OK || at.lane != 0u {
        return;
    }
    if offsets[r + 1u] == offsets[r] || r == params.padding_idx || !owns(r) {
        return;
    }
    // Pass 1: mean of the squared gradient over the row, columns ascending.
    // Pass 2 recomputes the gradient rather than storing a row of unknown length.
    var squares = 0.0;
    for (var c0 = 0u; c0 < params.dim; c0 += 8u) {
        let g = row_grad8(r, c0);
        squares = sum_squares4(squares, g.a, c0);
        squares = sum_squares4(squares, g.b, c0 + 4u);
    }
    let h = state[r] + squares / f32(params.dim);
    state[r] = h;
    let multiplier = params.lr / (sqrt(h) + params.eps);
    for (var c0 = 0u; c0 < params.dim; c0 += 8u) {
        let g = row_grad8(r, c0);
        let w = out8(r - params.row_begin, c0);
        store_out8(r - params.row_begin, c0, Sum8(w.a - multiplier * g.a, w.b - multiplier * g.b));
    }
}
