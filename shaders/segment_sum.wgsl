// segment_sum: the reduction half of the deterministic embedding backward.
//
// Input: the positions sorted by row (radix_sort, stable, so each row's
// positions are ascending) with their keys, where a row's segment (its run)
// is found by binary search; segment_dense, which writes every row, also
// takes offsets[r] = where row r's segment starts in that order
// (exclusive_scan of row_histogram; offsets[r + 1] ends it).
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
// storage buffers, the WebGPU default), each in two variants of one body:
//   segment_partials  the pieces of multi-tile segments
//   segment_dense     the dense [num_embeddings, dim] gradient; untouched rows 0
//   segment_sparse    (unique rows ascending, one summed row each)
//   segment_sgd       fused: weight[r] -= lr * grad[r] for referenced rows
//   segment_adagrad   fused row-wise Adagrad (FBGEMM EXACT_ROWWISE_ADAGRAD),
//                     pass 1: state[r] += mean(grad[r]^2)
//   segment_adagrad_apply
//                     pass 2: weight[r] -= lr / (sqrt(state[r]) + eps) * grad[r]
//   segment_adam      fused Adam (torch.optim.SparseAdam): the row's weights
//                     and both moments through the update the host appends:
// with: adam_step/update.wgsl
// segment_dense runs one row per item (it writes every row); the others one
// sorted entry per item, the entry that starts a row's run handling the row
// (see segment_at), so a training step costs the batch, not the vocabulary.
// Every product that meets an add, every quotient and root is exact_arith's,
// rounded as the twin rounds it on any compiler:
// with: exact_arith/ops.wgsl
// F16 (the table is f16; not segment_adam): `out` is f16, packed two per
// u32, so segment_dense writes an f16 gradient and the fused updates an
// f16 table, each element's f32 result rounded once (to nearest, or
// stochastically for the updates when params.stochastic = 1):
// with: sgd_update/f16_round.wgsl
// with: uniform_init/philox.wgsl
// segment_dense, segment_sgd, segment_adagrad and segment_adam handle rows
// row_begin .. row_end, stored from row 0 of `out`: a table past one storage
// binding is updated one row-block per dispatch (the whole table is one chunk).
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
// partials). segment_dense's rows with no entries (zeros) belong to the
// window of tile 0. In one binding: presorted = 0, one window of every tile.
//
// THREADS_PER_ROW invocations share a row, striding over blocks of 8
// columns (1 on CPU adapters: each SIMD lane streams its own row). Per
// element the order of additions is the same for any value; segment_adagrad
// runs with 1 so the sum of squares runs over columns in ascending order.
//
// Loop budget. Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`). Per column
// block an invocation runs a segment of at most a tile, or a row's pieces,
// one per tile (SIMD lanes may run both): so the host caps the tiles at
// 16 384 (longer batches get longer tiles; the twin does the same), gives a
// row more invocations when its blocks would cost more than the budget, and
// runs segment_adagrad's serial sum of squares over columns col_begin ..
// col_end per dispatch, carrying the sum so far in `squares` (the same
// order of additions as one loop). Past what that bounds (n beyond about
// 2^28) CPU adapters refuse the batch.
//
// Words. Without defs a word is one f32 and a block 8 columns; with VEC4
// (dim % 4 == 0) a word is a vec4 and a block 16 columns, read and written
// as vec4s. A CPU rasterizer loops over its SIMD lanes for every storage
// access, once per scalar or once per vec4, so one vec4 access instead of
// four scalars, and one sorted_pos read per 16 columns instead of per 8, is
// most of the backward's time there. Every element is still the sum of the
// same values in the same order, so both variants give the same bits. Only
// the block helpers below differ between the two; the sums and the entry
// points are written once.

override THREADS_PER_ROW: u32 = 1u;


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
    row_end: u32,        // one past its last row (a row-block of a large table)
    tile_begin: u32,     // the tiles this dispatch handles
    tile_end: u32,
    entry_base: u32,     // presorted: the sorted entry at grad_out[0]
    presorted: u32,      // 1: grad_out is in sorted order (see above)
    slot_begin: u32,     // sparse: the slots `out` holds from its start
    slot_end: u32,
    col_begin: u32,      // segment_adagrad: the columns this dispatch squares
    col_end: u32,
    beta1c: f32,         // segment_adam (lr holds its step size, eps its eps)
    beta2c: f32,
    bias2: f32,
    weight_decay: f32,
    seed: vec2<u32>,     // F16 stochastic rounding: the table's seed
    step: vec2<u32>,     // and this update's number
    stochastic: u32,     // F16: 1 rounds the updates stochastically
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> status: array<u32>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read> sorted_keys: array<u32>;
@group(0) @binding(4) var<storage, read> sorted_pos: array<u32>;
@group(0) @binding(5) var<storage, read> grad_out: array<Word>;
@group(0) @binding(6) var<storage, read_write> partials: array<Word>;
#ifdef F16
// Halves: a vec2<u32> (four) per vec4 word, whole words per row; scalar, a
// u32 (two) per word, written half by half with atomicXor because with an
// odd dim two rows (and two invocations) share a word.
#ifdef VEC4
@group(0) @binding(7) var<storage, read_write> out: array<vec2<u32>>;
#else
@group(0) @binding(7) var<storage, read_write> out: array<atomic<u32>>;
#endif
#else
@group(0) @binding(7) var<storage, read_write> out: array<Word>;
#endif
@group(0) @binding(8) var<storage, read> ranks: array<u32>;
@group(0) @binding(9) var<storage, read_write> rows_out: array<u32>;
@group(0) @binding(10) var<storage, read_write> state: array<f32>;
// segment_adam: the moments, stored like the table (rows from row_begin).
@group(0) @binding(11) var<storage, read_write> exp_avg: array<Word>;
@group(0) @binding(12) var<storage, read_write> exp_avg_sq: array<Word>;
// segment_adagrad: the sum of squares so far of rows whose columns take
// several dispatches (see the header's loop budget), by the sorted entry
// (of the dispatch's tile window) that starts the row's run.
@group(0) @binding(14) var<storage, read_write> squares: array<f32>;

// The block helpers (zero_block, grad_block, store_out_block, …), the only
// part that differs between the variants, are in shaders/segment_sum/blocks.wgsl,
// which the host composes after this file.

// Whether column c of a row exists.
fn col(c: u32) -> bool {
    return c < params.dim;
}

fn sum_squares4(acc: f32, v: vec4<f32>, c: u32) -> f32 {
    var s = acc;
    let sq = mul_rn4(v, v);
    if col(c) { s = s + sq.x; }
    if col(c + 1u) { s = s + sq.y; }
    if col(c + 2u) { s = s + sq.z; }
    if col(c + 3u) { s = s + sq.w; }
    return s;
}

// Words of a row.
fn row_words() -> u32 {
    return params.dim / COLS_PER_WORD;
}

// The row of grad_out that sorted entry i reads (see the header's presorted).
fn grad_row(i: u32) -> u32 {
    if params.presorted != 0u {
        return i - params.entry_base;
    }
    return sorted_pos[i];
}

// Sorted entries s .. e, words w0 .. w0 + BLOCK_WORDS, added in ascending order from 0.
fn run_sum(s: u32, e: u32, w0: u32) -> Block {
    var acc = zero_block();
    for (var i = s; i < e; i++) {
        acc = add_block(acc, grad_block(grad_row(i), w0));
    }
    return acc;
}

// Row r's run of sorted entries s .. e (e == s: the batch has none).
struct Segment {
    r: u32,
    s: u32,
    e: u32,
}

// segment_dense's rows: row r's run, from the row offsets.
fn segment_of_row(r: u32) -> Segment {
    return Segment(r, offsets[r], offsets[r + 1u]);
}

// Sorted entries of this dispatch's tiles (all of them in one binding).
fn window_entries() -> u32 {
    let begin = params.tile_begin * params.chunk;
    if params.tile_end < params.num_tiles {
        return (params.tile_end - params.tile_begin) * params.chunk;
    }
    return params.n - min(begin, params.n);
}

// An edge of row r's run in the ascending keys, by binary search (at most
// 32 steps): the first entry of lo .. hi (hi if none) whose key is r when
// `in_run`, is not r otherwise, every entry before it answering the other
// way. So from inside the run, `in_run` false finds the first entry past
// it; from before it, `in_run` true finds its first entry.
fn run_edge(r: u32, lo_in: u32, hi_in: u32, in_run: bool) -> u32 {
    var lo = lo_in;
    var hi = hi_in;
    while lo < hi {
        let mid = lo + (hi - lo) / 2u;
        if (sorted_keys[mid] == r) != in_run {
            lo = mid + 1u;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// The update entries (sparse, sgd, adagrad, adam) run over sorted entries,
// not table rows, so a step costs the batch, not the vocabulary: item k is
// entry i of this dispatch's tiles, and the entry that starts its row's run
// handles the row (every other entry of the run returns). So each
// referenced row is handled once, by the dispatch whose tiles hold its
// start, as `owns` decides for segment_dense. The run ends at the first
// entry past i with another key, found by binary search: these entries bind
// the keys, not the row offsets (their storage buffers are at the limit of
// 8, and a fused update needs no vocabulary-sized scan at all).
fn segment_at(item: u32) -> Segment {
    let none = Segment(0u, 0u, 0u);
    if item >= window_entries() || status[0] != STATUS_OK {
        return none;
    }
    let i = params.tile_begin * params.chunk + item;
    let r = sorted_keys[i];
    if i > 0u && sorted_keys[i - 1u] == r {
        return none;
    }
    return Segment(r, i, run_edge(r, i + 1u, params.n, false));
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

// A run's gradient (before scaling), one block.
fn row_sum(seg: Segment, w0: u32) -> Block {
    let s = seg.s;
    let e = seg.e;
    if e == s {
        return zero_block();
    }
    let t0 = s / params.chunk;
    let t1 = (e - 1u) / params.chunk;
    if t0 == t1 {
        return run_sum(s, e, w0);
    }
    var acc = add_block(zero_block(), partial_block(t0 * 2u + 1u, w0));
    for (var t = t0 + 1u; t <= t1; t++) {
        acc = add_block(acc, partial_block(t * 2u, w0));
    }
    return acc;
}

// The gradient of a run's row (scaled by 1 / count when asked), one block.
// F16: rounded to f16 (to nearest) and widened back, exactly, because an
// f16 table's gradient is f16: the fused updates step by the gradient
// `backward` would return, so fused and unfused give the same bits.
fn row_grad(seg: Segment, w0: u32) -> Block {
    if seg.r == params.padding_idx {
        return zero_block();
    }
    let v = row_sum(seg, w0);
    let count = seg.e - seg.s;
    if params.scale_by_freq != 0u && count > 1u {
        return stored_block(div_block(v, f32_of_count(count)));
    }
    return stored_block(v);
}

struct Lane {
    item: u32, // row, sorted entry or tile piece
    lane: u32, // which of THREADS_PER_ROW
}

fn lane_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> Lane {
    let g = invocation(wid, nwg, lid);
    return Lane(g / THREADS_PER_ROW, g % THREADS_PER_ROW);
}

// The tiles this dispatch of segment_partials handles (all of them when
// grad_out fits one binding).
fn window_tiles() -> u32 {
    return min(params.tile_end, params.num_tiles) - params.tile_begin;
}

// Which piece an invocation of segment_partials sums: the heads of the
// dispatch's tiles first, then the tails. Under a skewed batch most tiles are
// the middle of a hot row (a head covering the whole tile, no tail), so this
// keeps neighbouring SIMD lanes busy together instead of every other lane
// idle. The result goes to partials slot tile * 2 + piece either way. Only
// called with item < 2 · window_tiles().
fn slot_of(item: u32) -> u32 {
    let count = window_tiles();
    return (params.tile_begin + item % count) * 2u + item / count;
}

// The piece in partials slot `slot` (tile slot / 2, head 0 or tail 1):
// (row, begin, end), or end == begin when there is none.
struct Piece {
    r: u32,
    s: u32,
    e: u32,
}

fn piece_of(slot: u32) -> Piece {
    let none = Piece(0u, 0u, 0u);
    let t = slot / 2u;
    let begin = t * params.chunk;
    let end = min(begin + params.chunk, params.n);
    if slot % 2u == 0u {
        // Head: the row at `begin` started in an earlier tile; its piece
        // ends at the tile's end or the first entry with another key.
        if begin == 0u {
            return none;
        }
        let r = sorted_keys[begin];
        if sorted_keys[begin - 1u] != r {
            return none;
        }
        return Piece(r, begin, run_edge(r, begin, end, false));
    }
    // Tail: the row at `end - 1` continues past the tile and started inside it.
    if end >= params.n {
        return none;
    }
    let r = sorted_keys[end - 1u];
    if sorted_keys[end] != r {
        return none;
    }
    let s = run_edge(r, begin, end - 1u, true);
    if s == begin && begin > 0u && sorted_keys[begin - 1u] == r {
        return none; // the head piece covers the whole tile
    }
    return Piece(r, s, end);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn segment_partials(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = lane_of(wid, nwg, lid);
    if at.item >= 2u * window_tiles() || status[0] != STATUS_OK {
        return;
    }
    let slot = slot_of(at.item);
    let piece = piece_of(slot);
    if piece.e == piece.s || piece.r == params.padding_idx {
        return;
    }
    for (var w0 = at.lane * BLOCK_WORDS; w0 < row_words(); w0 += THREADS_PER_ROW * BLOCK_WORDS) {
        store_partial_block(slot, w0, run_sum(piece.s, piece.e, w0));
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
    let seg = segment_of_row(r);
    for (var w0 = at.lane * BLOCK_WORDS; w0 < row_words(); w0 += THREADS_PER_ROW * BLOCK_WORDS) {
        store_out_block(r - params.row_begin, w0, row_grad(seg, w0));
    }
}

// Whether a run's row gets a sparse slot and that slot is in this dispatch's window.
fn in_sparse_window(seg: Segment) -> bool {
    if seg.e == seg.s || seg.r >= params.num_embeddings || seg.r == params.padding_idx {
        return false;
    }
    let slot = ranks[seg.s];
    return slot >= params.slot_begin && slot < params.slot_end;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn segment_sparse(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = lane_of(wid, nwg, lid);
    let seg = segment_at(at.item);
    if !in_sparse_window(seg) {
        return;
    }
    let slot = ranks[seg.s];
    if at.lane == 0u {
        rows_out[slot] = seg.r;
    }
    for (var w0 = at.lane * BLOCK_WORDS; w0 < row_words(); w0 += THREADS_PER_ROW * BLOCK_WORDS) {
        store_out_block(slot - params.slot_begin, w0, row_grad(seg, w0));
    }
}

// Whether a run's row gets an update from this dispatch (segment_sgd, both
// Adagrad passes, segment_adam): a row of this dispatch's row-block.
fn updates(seg: Segment) -> bool {
    return seg.e != seg.s && seg.r >= params.row_begin && seg.r < params.row_end
        && seg.r != params.padding_idx;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn segment_sgd(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = lane_of(wid, nwg, lid);
    let seg = segment_at(at.item);
    if !updates(seg) {
        return;
    }
    let row = seg.r - params.row_begin;
    for (var w0 = at.lane * BLOCK_WORDS; w0 < row_words(); w0 += THREADS_PER_ROW * BLOCK_WORDS) {
        let g = row_grad(seg, w0);
        let w = out_block(row, w0);
        store_out_block(row, w0, step_block(w, params.lr, g));
    }
}

// Row-wise Adagrad, pass 1 (one invocation per row: the sum is serial): the
// squared gradient over columns col_begin .. col_end, ascending, added to
// the sum so far; the dispatch that ends the row adds its mean to state[r].
@compute @workgroup_size(WORKGROUP_SIZE)
fn segment_adagrad(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = lane_of(wid, nwg, lid);
    let seg = segment_at(at.item);
    if at.lane != 0u || !updates(seg) {
        return;
    }
    // The sum so far is kept by the run's first entry (in this tile window).
    var sum = 0.0;
    if params.col_begin > 0u {
        sum = squares[at.item];
    }
    let end = min(params.col_end, params.dim) / COLS_PER_WORD;
    for (var w0 = params.col_begin / COLS_PER_WORD; w0 < end; w0 += BLOCK_WORDS) {
        sum = sum_squares_block(sum, row_grad(seg, w0), w0 * COLS_PER_WORD);
    }
    if end < row_words() {
        squares[at.item] = sum;
        return;
    }
    state[seg.r] = state[seg.r] + div_rn(sum, f32_of_count(params.dim));
}

// Pass 2, THREADS_PER_ROW invocations per row: the update, with the state
// pass 1 stored (the gradient is recomputed rather than stored).
@compute @workgroup_size(WORKGROUP_SIZE)
fn segment_adagrad_apply(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = lane_of(wid, nwg, lid);
    let seg = segment_at(at.item);
    if !updates(seg) {
        return;
    }
    let multiplier = div_rn(params.lr, sqrt_rn(state[seg.r]) + params.eps);
    let row = seg.r - params.row_begin;
    for (var w0 = at.lane * BLOCK_WORDS; w0 < row_words(); w0 += THREADS_PER_ROW * BLOCK_WORDS) {
        let g = row_grad(seg, w0);
        let w = out_block(row, w0);
        store_out_block(row, w0, step_block(w, multiplier, g));
    }
}

#ifndef F16
// Fused Adam, THREADS_PER_ROW invocations per row: the row's gradient, then
// weights and both moments updated element by element.
@compute @workgroup_size(WORKGROUP_SIZE)
fn segment_adam(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let at = lane_of(wid, nwg, lid);
    let seg = segment_at(at.item);
    if !updates(seg) {
        return;
    }
    let a = AdamParams(params.lr, params.bias2, params.eps, params.beta1c, params.beta2c,
                       params.weight_decay);
    let row = seg.r - params.row_begin;
    for (var w0 = at.lane * BLOCK_WORDS; w0 < row_words(); w0 += THREADS_PER_ROW * BLOCK_WORDS) {
        adam_block(a, row, w0, row_grad(seg, w0));
    }
}
#endif
