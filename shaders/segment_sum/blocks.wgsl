// segment_sum, part 2 of 2 (after shaders/segment_sum.wgsl, which the host
// puts in front of it): the block helpers, the only part that differs
// between the scalar and VEC4 variants (see "Words" in the first part).
#ifdef VEC4
alias Word = vec4<f32>;
const COLS_PER_WORD: u32 = 4u;
const BLOCK_WORDS: u32 = 4u; // 16 columns

struct Block {
    a: vec4<f32>,
    b: vec4<f32>,
    c: vec4<f32>,
    d: vec4<f32>,
}

fn zero_block() -> Block {
    return Block(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
}

fn add_block(x: Block, y: Block) -> Block {
    return Block(x.a + y.a, x.b + y.b, x.c + y.c, x.d + y.d);
}

fn div_block(x: Block, f: f32) -> Block {
    let d = vec4<f32>(f);
    return Block(div_rn4(x.a, d), div_rn4(x.b, d), div_rn4(x.c, d), div_rn4(x.d, d));
}

fn stored_block(x: Block) -> Block {
    return Block(stored4(x.a), stored4(x.b), stored4(x.c), stored4(x.d));
}

// w - m · g, element by element (the product rounded on its own, as the
// twin's: exact_arith/ops.wgsl).
fn step_block(w: Block, m: f32, g: Block) -> Block {
    let v = vec4<f32>(m);
    return Block(w.a - mul_rn4(v, g.a), w.b - mul_rn4(v, g.b), w.c - mul_rn4(v, g.c), w.d - mul_rn4(v, g.d));
}

// Whether word w of a row exists (the last block of a row may be short).
fn has_word(w: u32) -> bool {
    return w < params.dim / 4u;
}

// Words w0 .. w0 + 4 of row `row` of grad_out, partials or out (zero past
// dim). One function per buffer: core WGSL takes no pointers to storage as
// arguments.
fn grad_block(row: u32, w0: u32) -> Block {
    let base = row * (params.dim / 4u) + w0;
    var v = zero_block();
    v.a = grad_out[base];
    if has_word(w0 + 1u) { v.b = grad_out[base + 1u]; }
    if has_word(w0 + 2u) { v.c = grad_out[base + 2u]; }
    if has_word(w0 + 3u) { v.d = grad_out[base + 3u]; }
    return v;
}

fn partial_block(slot: u32, w0: u32) -> Block {
    let base = slot * (params.dim / 4u) + w0;
    var v = zero_block();
    v.a = partials[base];
    if has_word(w0 + 1u) { v.b = partials[base + 1u]; }
    if has_word(w0 + 2u) { v.c = partials[base + 2u]; }
    if has_word(w0 + 3u) { v.d = partials[base + 3u]; }
    return v;
}

#ifdef F16
// Four halves of `out` as f32 (exactly).
fn out_word(k: u32) -> vec4<f32> {
    let w = out[k];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
}

// x rounded to four halves: columns c .. c + 3 of block-local row `row`.
fn round_word(x: vec4<f32>, row: u32, c: u32) -> vec2<u32> {
    let r = update_random4(row, c);
    let s = params.stochastic != 0u;
    return vec2<u32>(f16_bits(x.x, r.x, s) | (f16_bits(x.y, r.y, s) << 16u),
                     f16_bits(x.z, r.z, s) | (f16_bits(x.w, r.w, s) << 16u));
}
#else
fn out_word(k: u32) -> vec4<f32> {
    return out[k];
}

fn round_word(x: vec4<f32>, row: u32, c: u32) -> vec4<f32> {
    return x;
}
#endif

fn out_block(row: u32, w0: u32) -> Block {
    let base = row * (params.dim / 4u) + w0;
    var v = zero_block();
    v.a = out_word(base);
    if has_word(w0 + 1u) { v.b = out_word(base + 1u); }
    if has_word(w0 + 2u) { v.c = out_word(base + 2u); }
    if has_word(w0 + 3u) { v.d = out_word(base + 3u); }
    return v;
}

fn store_partial_block(slot: u32, w0: u32, v: Block) {
    let base = slot * (params.dim / 4u) + w0;
    partials[base] = v.a;
    if has_word(w0 + 1u) { partials[base + 1u] = v.b; }
    if has_word(w0 + 2u) { partials[base + 2u] = v.c; }
    if has_word(w0 + 3u) { partials[base + 3u] = v.d; }
}

fn store_out_block(row: u32, w0: u32, v: Block) {
    let base = row * (params.dim / 4u) + w0;
    out[base] = round_word(v.a, row, w0 * 4u);
    if has_word(w0 + 1u) { out[base + 1u] = round_word(v.b, row, w0 * 4u + 4u); }
    if has_word(w0 + 2u) { out[base + 2u] = round_word(v.c, row, w0 * 4u + 8u); }
    if has_word(w0 + 3u) { out[base + 3u] = round_word(v.d, row, w0 * 4u + 12u); }
}

// The squares of the block's columns (from column c) added to acc in order.
fn sum_squares_block(acc: f32, v: Block, c: u32) -> f32 {
    var s = sum_squares4(acc, v.a, c);
    s = sum_squares4(s, v.b, c + 4u);
    s = sum_squares4(s, v.c, c + 8u);
    return sum_squares4(s, v.d, c + 12u);
}
#ifndef F16
// segment_adam: the block's weights and moments through adam4, four words
// at a time (a vec4 each), written back where they exist.
fn adam_block(a: AdamParams, row: u32, w0: u32, g: Block) {
    let base = row * (params.dim / 4u) + w0;
    let gs = array<vec4<f32>, 4>(g.a, g.b, g.c, g.d);
    for (var k = 0u; k < 4u; k++) {
        if k == 0u || has_word(w0 + k) {
            let r = adam4(a, out[base + k], gs[k], exp_avg[base + k], exp_avg_sq[base + k]);
            out[base + k] = r.w;
            exp_avg[base + k] = r.m;
            exp_avg_sq[base + k] = r.v;
        }
    }
}
#endif
#else
alias Word = f32;
const COLS_PER_WORD: u32 = 1u;
const BLOCK_WORDS: u32 = 8u; // 8 columns

struct Block {
    a: vec4<f32>,
    b: vec4<f32>,
}

fn zero_block() -> Block {
    return Block(vec4<f32>(0.0), vec4<f32>(0.0));
}

fn add_block(x: Block, y: Block) -> Block {
    return Block(x.a + y.a, x.b + y.b);
}

fn div_block(x: Block, f: f32) -> Block {
    let d = vec4<f32>(f);
    return Block(div_rn4(x.a, d), div_rn4(x.b, d));
}

fn stored_block(x: Block) -> Block {
    return Block(stored4(x.a), stored4(x.b));
}

// w - m · g, element by element (the product rounded on its own, as the
// twin's: exact_arith/ops.wgsl).
fn step_block(w: Block, m: f32, g: Block) -> Block {
    let v = vec4<f32>(m);
    return Block(w.a - mul_rn4(v, g.a), w.b - mul_rn4(v, g.b));
}

fn has_word(w: u32) -> bool {
    return w < params.dim;
}

fn grad_at(i: u32, c: u32) -> f32 {
    if has_word(c) {
        return grad_out[i + c];
    }
    return 0.0;
}

fn partial_at(i: u32, c: u32) -> f32 {
    if has_word(c) {
        return partials[i + c];
    }
    return 0.0;
}

#ifdef F16
fn out_at(i: u32, c: u32) -> f32 {
    if has_word(c) {
        let e = i + c;
        return unpack2x16float(atomicLoad(&out[e >> 1u]))[e & 1u];
    }
    return 0.0;
}

// Element c of block-local row `row` (starting at element i) set to x,
// rounded; only its half of the word changes.
fn store_out_at(i: u32, row: u32, c: u32, x: f32) {
    let e = i + c;
    var random = 0u;
    if params.stochastic != 0u {
        random = update_random4(row, c)[(i + c + params.row_begin * params.dim) & 3u];
    }
    let shift = (e & 1u) * 16u;
    let old = (atomicLoad(&out[e >> 1u]) >> shift) & 0xFFFFu;
    let fresh = f16_bits(x, random, params.stochastic != 0u);
    atomicXor(&out[e >> 1u], (old ^ fresh) << shift);
}
#else
fn out_at(i: u32, c: u32) -> f32 {
    if has_word(c) {
        return out[i + c];
    }
    return 0.0;
}

fn store_out_at(i: u32, row: u32, c: u32, x: f32) {
    out[i + c] = x;
}
#endif

// Columns w0 .. w0 + 8 of row `row` of grad_out, partials or out (zero past
// dim). One function per buffer: core WGSL takes no pointers to storage as
// arguments.
fn grad_block(row: u32, w0: u32) -> Block {
    let i = row * params.dim;
    return Block(
        vec4<f32>(grad_at(i, w0), grad_at(i, w0 + 1u), grad_at(i, w0 + 2u), grad_at(i, w0 + 3u)),
        vec4<f32>(grad_at(i, w0 + 4u), grad_at(i, w0 + 5u), grad_at(i, w0 + 6u), grad_at(i, w0 + 7u)),
    );
}

fn partial_block(slot: u32, w0: u32) -> Block {
    let i = slot * params.dim;
    return Block(
        vec4<f32>(partial_at(i, w0), partial_at(i, w0 + 1u), partial_at(i, w0 + 2u), partial_at(i, w0 + 3u)),
        vec4<f32>(partial_at(i, w0 + 4u), partial_at(i, w0 + 5u), partial_at(i, w0 + 6u), partial_at(i, w0 + 7u)),
    );
}

fn out_block(row: u32, w0: u32) -> Block {
    let i = row * params.dim;
    return Block(
        vec4<f32>(out_at(i, w0), out_at(i, w0 + 1u), out_at(i, w0 + 2u), out_at(i, w0 + 3u)),
        vec4<f32>(out_at(i, w0 + 4u), out_at(i, w0 + 5u), out_at(i, w0 + 6u), out_at(i, w0 + 7u)),
    );
}

fn store_partial_block(slot: u32, w0: u32, v: Block) {
    let i = slot * params.dim;
    let vals = array<f32, 8>(v.a.x, v.a.y, v.a.z, v.a.w, v.b.x, v.b.y, v.b.z, v.b.w);
    for (var k = 0u; k < 8u; k++) {
        if has_word(w0 + k) {
            partials[i + w0 + k] = vals[k];
        }
    }
}

fn store_out_block(row: u32, w0: u32, v: Block) {
    let i = row * params.dim;
    let vals = array<f32, 8>(v.a.x, v.a.y, v.a.z, v.a.w, v.b.x, v.b.y, v.b.z, v.b.w);
    for (var k = 0u; k < 8u; k++) {
        if has_word(w0 + k) {
            store_out_at(i, row, w0 + k, vals[k]);
        }
    }
}

fn sum_squares_block(acc: f32, v: Block, c: u32) -> f32 {
    let s = sum_squares4(acc, v.a, c);
    return sum_squares4(s, v.b, c + 4u);
}
#ifndef F16
// segment_adam: the block's weights and moments through adam4, four
// columns at a time, written back where they exist.
fn adam_block(a: AdamParams, row: u32, w0: u32, g: Block) {
    let i = row * params.dim;
    let gs = array<vec4<f32>, 2>(g.a, g.b);
    for (var q = 0u; q < 2u; q++) {
        let c0 = w0 + q * 4u;
        var w = vec4<f32>(0.0);
        var m = vec4<f32>(0.0);
        var v = vec4<f32>(0.0);
        for (var k = 0u; k < 4u; k++) {
            if has_word(c0 + k) {
                w[k] = out[i + c0 + k];
                m[k] = exp_avg[i + c0 + k];
                v[k] = exp_avg_sq[i + c0 + k];
            }
        }
        let r = adam4(a, w, gs[q], m, v);
        for (var k = 0u; k < 4u; k++) {
            if has_word(c0 + k) {
                out[i + c0 + k] = r.w[k];
                exp_avg[i + c0 + k] = r.m[k];
                exp_avg_sq[i + c0 + k] = r.v[k];
            }
        }
    }
}
#endif
#endif

// A gradient as it is stored: f16 rounded to nearest (exact when widened
// back), or f32 as it is.
#ifdef F16
fn stored4(x: vec4<f32>) -> vec4<f32> {
    let lo = f16_bits(x.x, 0u, false) | (f16_bits(x.y, 0u, false) << 16u);
    let hi = f16_bits(x.z, 0u, false) | (f16_bits(x.w, 0u, false) << 16u);
    return vec4<f32>(unpack2x16float(lo), unpack2x16float(hi));
}
#else
fn stored4(x: vec4<f32>) -> vec4<f32> {
    return x;
}
#endif

#ifdef F16
// The random bits of an update's stochastic rounding for columns c .. c + 3
// of block-local row `row` (c a multiple of 4 on the vec4 path, so the four
// are one Philox block); zeros when rounding to nearest.
fn update_random4(row: u32, c: u32) -> vec4<u32> {
    if params.stochastic == 0u {
        return vec4<u32>(0u);
    }
    return f16_random4(params.seed, params.step, element64(row + params.row_begin, params.dim, c));
}
#endif
