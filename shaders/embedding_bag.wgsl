// embedding_bag: out[b, :] = reduce over positions p in bag b of table[indices[p], :],
// with bag b = offsets[b] .. offsets[b + 1] (the host always passes the CSR
// form, num_bags + 1 offsets). Gather and reduction are fused: the gathered
// rows never reach memory.
//
// MODE 0 (sum):  acc = acc + v, or acc = acc + (w[p] * v) with per-sample weights.
// MODE 1 (mean): the sum divided by the number of non-padding entries.
// MODE 2 (max):  per column, the largest value; a tie keeps the lowest
//                position (strict >, scanning upwards). The winning position
//                (an index into `indices`) goes to max_pos for the backward
//                pass; an empty bag's is 0xFFFFFFFF.
// Positions are visited in ascending order, one accumulator per column, so
// each output equals the CPU twin's bit for bit on every adapter: + is
// IEEE's everywhere, and the weighted product, the int8 q · scale and the
// mean's quotient are exact_arith's (rounded once, never fused into the
// add after them, whatever the compiler):
// with: exact_arith/ops.wgsl
//
// Entries equal to params.padding_idx (0xFFFFFFFF: none) are skipped; a bag
// with no other entries, like an empty bag, gives zeros. An index past the
// table is skipped too and its first position recorded in status[0] with
// atomicMin (the host initialises it to 0xFFFFFFFF). So is a bag longer than
// all the dispatches pool together (the caller's max_bag_len was short; the
// offsets live on the GPU, so only the kernel can see it): the first
// position left out goes to status[0], and that bag's output is unspecified.
//
// THREADS_PER_BAG invocations share one bag and stride over its columns
// (1 on CPU adapters, where a lane streams a bag; up to 64 on GPUs, where
// neighbouring lanes read neighbouring words of a row).
//
// HALF selects the table's storage: f32, or f16 packed two per u32 and
// decoded with unpack2x16float (core WGSL, so no SHADER_F16 needed).
// INT8: int8 row-wise rows (codes padded to words, then scale and bias;
// cpu::int8_rowwise), each value q · scale + bias, as embedding_gather.
//
// GATHERED: the table is stored in row-blocks past one binding, so the host
// first gathers the batch's rows (embedding_gather over the chunks) into a
// scratch buffer, row k holding position pos_base + k's row, and the kernel
// reads that instead of the table: the same values in the same order, so
// the same sums.
//
// Windows: outputs and index lists past one binding are pooled in windows of
// bags, one dispatch each: `offsets`, `out` and `max_pos` bound from the
// window's first bag, `indices`, `per_sample_weights` (and the scratch) from
// position pos_base (at or before the window's first position). Offsets and
// the positions recorded in status and max_pos stay those of the whole batch.
//
// Long bags. Each dispatch reduces at most piece_len positions of every bag:
// positions piece_begin .. piece_begin + piece_len of it. Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`), and an invocation loops over its
// columns × its bag's positions, so one bag of 70 000 ids (or of 3 000 at
// dim 128) would be reduced short. A bag longer than a piece takes several
// dispatches, each carrying on from the last: the sum so far from the
// output, max's winning positions from max_pos (NONE: nothing seen yet),
// and mean's count of entries so far from max_pos too (a scratch the host
// binds there in mean mode), divided only by the piece that ends the bag.
// The positions are still visited in ascending order with one accumulator
// per column, so the result is the same, bit for bit, as in one dispatch.
//
// One entry point, `bag`, in two variants of one body: VEC4 (dim % 4 == 0)
// reads and writes a vec4 per word, the scalar variant one float. Only the
// word helpers below differ.

override THREADS_PER_BAG: u32 = 1u;
override MODE: u32 = 0u;
override WEIGHTED: bool = false;
override HALF: bool = false;
override INT8: bool = false;
override GATHERED: bool = false;

const MODE_SUM: u32 = 0u;
const MODE_MEAN: u32 = 1u;
const MODE_MAX: u32 = 2u;
const NONE: u32 = 0xFFFFFFFFu;

struct Params {
    num_bags: u32,
    dim: u32,            // floats per row
    num_embeddings: u32, // table rows
    n: u32,              // one past the last position bound (all: the number of indices)
    padding_idx: u32,    // NONE: no padding row
    pos_base: u32,       // the position at indices[0] (see Windows above)
    piece_begin: u32,    // this dispatch's positions of each bag (see Long bags)
    piece_len: u32,
    pooled: u32,         // the positions of each bag all the pieces pool (≥ piece_len)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read> offsets: array<u32>;
@group(0) @binding(3) var<storage, read> per_sample_weights: array<f32>;
@group(0) @binding(4) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> max_pos: array<u32>;
// vec4 path: f32 rows as pairs of vec2<u32> per 4 floats; f16 rows as one vec2<u32> per 4 halves.
#ifdef VEC4
alias Word = vec4<f32>;
alias Arg = vec4<u32>;
alias Mask = vec4<bool>;
const COLS_PER_WORD: u32 = 4u;
fn mul_word(a: f32, x: Word) -> Word { return mul_rn4(vec4<f32>(a), x); }
fn div_word(x: Word, d: f32) -> Word { return div_rn4(x, vec4<f32>(d)); }
// f32 rows as pairs of vec2<u32> per 4 floats; f16 rows as one vec2<u32> per 4 halves.
@group(0) @binding(6) var<storage, read> table: array<vec2<u32>>;
#else
alias Word = f32;
alias Arg = u32;
alias Mask = bool;
const COLS_PER_WORD: u32 = 1u;
fn mul_word(a: f32, x: Word) -> Word { return mul_rn(a, x); }
fn div_word(x: Word, d: f32) -> Word { return div_rn(x, d); }
// f32 as one u32 per float; f16 as one u32 per 2 halves.
@group(0) @binding(6) var<storage, read> table: array<u32>;
#endif
@group(0) @binding(7) var<storage, read_write> out: array<Word>;

#ifdef VEC4
// Word e of the table (elements 4·e .. 4·e + 3).
fn load_word(e: u32) -> Word {
    if HALF {
        let w = table[e];
        return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
    }
    let a = table[2u * e];
    let b = table[2u * e + 1u];
    return bitcast<vec4<f32>>(vec4<u32>(a, b));
}

// The winning positions of the word's columns, from max_pos[m ..].
fn load_arg(m: u32) -> Arg {
    return vec4<u32>(max_pos[m], max_pos[m + 1u], max_pos[m + 2u], max_pos[m + 3u]);
}

fn store_arg(m: u32, arg: Arg) {
    max_pos[m] = arg.x;
    max_pos[m + 1u] = arg.y;
    max_pos[m + 2u] = arg.z;
    max_pos[m + 3u] = arg.w;
}

// Whether the first column has a winner (all four do or none does).
fn has_arg(arg: Arg) -> bool {
    return arg.x != NONE;
}
#else
fn load_word(e: u32) -> Word {
    if HALF {
        return unpack2x16float(table[e >> 1u])[e & 1u];
    }
    return bitcast<f32>(table[e]);
}

fn load_arg(m: u32) -> Arg {
    return max_pos[m];
}

fn store_arg(m: u32, arg: Arg) {
    max_pos[m] = arg;
}

fn has_arg(arg: Arg) -> bool {
    return arg != NONE;
}
#endif

// u32 word k of the table, whichever way it is bound.
fn table_u32(k: u32) -> u32 {
#ifdef VEC4
    return table[k >> 1u][k & 1u];
#else
    return table[k];
#endif
}

// Word c of row r of an int8 row-wise table.
fn load_int8(r: u32, c: u32) -> Word {
    let stride = (params.dim + 3u) / 4u + 2u;
    let base = r * stride;
    let scale = bitcast<f32>(table_u32(base + stride - 2u));
    let bias = bitcast<f32>(table_u32(base + stride - 1u));
#ifdef VEC4
    let w = table_u32(base + c);
    let q = vec4<f32>(vec4<u32>(w & 0xffu, (w >> 8u) & 0xffu, (w >> 16u) & 0xffu, w >> 24u));
    return mul_rn4(q, vec4<f32>(scale)) + bias;
#else
    let w = table_u32(base + c / 4u);
    return mul_rn(f32((w >> (8u * (c % 4u))) & 0xffu), scale) + bias;
#endif
}

// Word c of row r of the bound table (or scratch).
fn load_cell(r: u32, c: u32, words: u32) -> Word {
    if INT8 {
        return load_int8(r, c);
    }
    return load_word(r * words + c);
}

// The row of the bound table (or scratch) that position p reads.
fn source_row(row: u32, p: u32) -> u32 {
    if GATHERED {
        return p - params.pos_base;
    }
    return row;
}

// The bag's positions, clamped to the bound part of the index list,
// pos_base .. n (the host validates offsets; this keeps hand-built ones from
// reading past it).
fn bag_range(b: u32) -> vec2<u32> {
    let start = clamp(offsets[b], params.pos_base, params.n);
    let end = clamp(offsets[b + 1u], start, params.n);
    return vec2<u32>(start, end);
}

// The positions s .. e of bag b this dispatch reduces, and whether they are
// the bag's first and last; skip when the bag ended in an earlier piece.
struct Piece {
    s: u32,
    e: u32,
    first: bool,
    last: bool,
    skip: bool,
}

fn piece(b: u32) -> Piece {
    let r = bag_range(b);
    let len = r.y - r.x;
    let first = params.piece_begin == 0u;
    if !first && params.piece_begin >= len {
        return Piece(0u, 0u, false, false, true);
    }
    let s = r.x + params.piece_begin;
    let e = s + min(len - params.piece_begin, params.piece_len);
    return Piece(s, e, first, e == r.y, false);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn bag(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = invocation(wid, nwg, lid);
    let b = g / THREADS_PER_BAG;
    let lane = g % THREADS_PER_BAG;
    if b >= params.num_bags {
        return;
    }
    // The last piece reports a bag it leaves unfinished (pooled - piece_len,
    // not piece_begin + piece_len: no wrap near 2^32).
    if lane == 0u && params.piece_begin >= params.pooled - params.piece_len {
        let all = bag_range(b);
        if all.y - all.x > params.pooled {
            atomicMin(&status[0], all.x + params.pooled);
        }
    }
    let words = params.dim / COLS_PER_WORD;
    let r = piece(b);
    if r.skip {
        return;
    }
    for (var c = lane; c < words; c += THREADS_PER_BAG) {
        // max_pos holds one u32 per column: the winner (max) or the count so far (mean).
        let m = b * params.dim + COLS_PER_WORD * c;
        var acc = Word(0.0);
        var arg = Arg(NONE);
        var count = 0u;
        if !r.first {
            acc = out[b * words + c];
            if MODE == MODE_MAX {
                arg = load_arg(m);
                count = select(0u, 1u, has_arg(arg));
            } else if MODE == MODE_MEAN {
                count = max_pos[m];
            }
        }
        for (var p = r.s; p < r.e; p++) {
            let row = indices[p - params.pos_base];
            // The range first: the padding word is 0xFFFFFFFF for none, an
            // id that must be reported, not skipped.
            if row >= params.num_embeddings {
                if c == lane {
                    atomicMin(&status[0], p);
                }
                continue;
            }
            if row == params.padding_idx {
                continue;
            }
            let v = load_cell(source_row(row, p), c, words);
            if MODE == MODE_MAX {
                let better = (v > acc) | Mask(count == 0u);
                acc = select(acc, v, better);
                arg = select(arg, Arg(p), better);
            } else if WEIGHTED {
                acc = acc + mul_word(per_sample_weights[p - params.pos_base], v);
            } else {
                acc = acc + v;
            }
            count += 1u;
        }
        if MODE == MODE_MEAN && r.last && count > 0u {
            acc = div_word(acc, f32_of_count(count));
        }
        out[b * words + c] = acc;
        if MODE == MODE_MAX {
            store_arg(m, arg);
        } else if MODE == MODE_MEAN && !r.last {
            max_pos[m] = count;
        }
    }
}
