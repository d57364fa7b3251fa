// embedding_gather: out[p, :] = table[indices[p], :].
//
// THREADS_PER_ROW invocations share one output row and stride over its
// columns. On a real GPU that makes neighbouring invocations read
// neighbouring vec4s (coalesced); on a CPU rasterizer (lavapipe) one
// invocation per row is faster because each SIMD lane streams its own row.
// The host picks the value from the adapter type, and never so few that an
// invocation loops over more than 16 384 words: Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`), so one invocation per very wide row would copy
// it short.
//
// A table larger than one storage binding is stored as row-blocks and
// gathered with one dispatch per chunk: the bound buffer holds rows
// row_begin .. row_end, and an index outside that range (but inside the table)
// is left to another chunk's dispatch. A table in one binding is one chunk.
//
// Rows whose index is out of range are zero-filled and the first bad position
// is recorded in status[0] with atomicMin (the host initialises it to
// 0xFFFFFFFF), so indices that only exist on the GPU are still checked.
//
// An index list or output past one storage binding is gathered in windows of
// positions, one dispatch each: `indices` and `out` are bound at the window's
// offsets, `pos` counts from the window's start, and pos_base (the window's
// first position) makes the recorded position the one in the whole list.
//
// One entry point, `gather`, in seven variants composed from this one body
// (src/pipeline.rs resolves the #ifdef blocks):
// - no defs: f32 table, one float per word (any dim);
// - VEC4: f32 table, a vec4 per word (dim % 4 == 0);
// - F16, F16 + VEC4: f16 table packed two halves per u32, written as f32,
//   decoded with unpack2x16float, which is core WGSL: no `enable f16`, so it
//   compiles on adapters without SHADER_F16 too;
// - INT8, INT8 + VEC4: int8 row-wise table (FBGEMM's fused 8-bit
//   row-wise, padded to words: cpu::int8_rowwise), dequantized on the fly
//   as q · scale + bias (two roundings, as FBGEMM's reference) and written as f32;
// - CHUNKS4 + VEC4: up to four row-blocks of an f32 table past one binding,
//   bound at once, the chunk picked per row (one dispatch for four chunks
//   instead of one per chunk that reads every index).
// Every variant binds the table (or chunk 0) at 3 and the output at 4.
// The int8 load's product is exact_arith's mul_rn:
// with: exact_arith/ops.wgsl

override THREADS_PER_ROW: u32 = 1u;
// The row width in vec4s when the host knows it at pipeline creation (0: read
// params.dim). A constant trip count lets the compiler unroll the row copy.
override DIM4: u32 = 0u;

struct Params {
    n: u32,              // number of indices (output rows)
    dim: u32,            // floats per row
    num_embeddings: u32, // table rows
    row_begin: u32,      // first table row in the bound buffer
    row_end: u32,        // one past its last row
    chunk_rows: u32,     // CHUNKS4: rows in each bound chunk (the last may hold fewer)
    pos_base: u32,       // position of this window's first index in the whole list
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> status: array<atomic<u32>>;

// The word one invocation copies at a time.
#ifdef VEC4
alias Word = vec4<f32>;
#else
alias Word = f32;
#endif

@group(0) @binding(4) var<storage, read_write> out: array<Word>;

#ifdef INT8
// Int8 row-wise: u32 words, four codes each, then scale and bias per row.
@group(0) @binding(3) var<storage, read> table: array<u32>;
#else
#ifdef F16
// Four halves per vec2<u32> (VEC4), two per u32 (scalar).
#ifdef VEC4
@group(0) @binding(3) var<storage, read> table: array<vec2<u32>>;
#else
@group(0) @binding(3) var<storage, read> table: array<u32>;
#endif
#else
#ifndef CHUNKS4
@group(0) @binding(3) var<storage, read> table: array<Word>;
#else
// CHUNKS4 (with VEC4; alone it changes nothing): the table's chunks.
#ifdef VEC4
@group(0) @binding(3) var<storage, read> chunk0: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> chunk1: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> chunk2: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> chunk3: array<vec4<f32>>;
#else
@group(0) @binding(3) var<storage, read> table: array<Word>;
#endif
#endif
#endif
#endif

// Words per row.
fn row_words() -> u32 {
#ifdef VEC4
    return select(params.dim / 4u, DIM4, DIM4 != 0u);
#else
    return params.dim;
#endif
}

// Word c of row `local` of the bound rows (counted from params.row_begin).
fn load(local: u32, c: u32, words: u32) -> Word {
#ifdef INT8
    // A row: its codes padded to whole words, then the scale's and the
    // bias's bits (cpu::int8_rowwise); value = q · scale + bias, the
    // product exact_arith's mul_rn (rounded before the add on any compiler,
    // as the twin rounds it).
    let stride = (params.dim + 3u) / 4u + 2u;
    let base = local * stride;
    let scale = bitcast<f32>(table[base + stride - 2u]);
    let bias = bitcast<f32>(table[base + stride - 1u]);
#ifdef VEC4
    let w = table[base + c];
    let q = vec4<f32>(vec4<u32>(w & 0xffu, (w >> 8u) & 0xffu, (w >> 16u) & 0xffu, w >> 24u));
    return mul_rn4(q, vec4<f32>(scale)) + bias;
#else
    let w = table[base + c / 4u];
    return mul_rn(f32((w >> (8u * (c % 4u))) & 0xffu), scale) + bias;
#endif
#else
#ifdef F16
    let e = local * words + c;
#ifdef VEC4
    let w = table[e];
    return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
#else
    return unpack2x16float(table[e >> 1u])[e & 1u];
#endif
#else
#ifdef CHUNKS4
#ifdef VEC4
    // WGSL has no arrays of bindings in core: one case per chunk.
    let which = local / params.chunk_rows;
    let k = (local - which * params.chunk_rows) * words + c;
    switch which {
        case 0u: { return chunk0[k]; }
        case 1u: { return chunk1[k]; }
        case 2u: { return chunk2[k]; }
        default: { return chunk3[k]; }
    }
#else
    return table[local * words + c];
#endif
#else
    return table[local * words + c];
#endif
#endif
#endif
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gather(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = invocation(wid, nwg, lid);
    let pos = g / THREADS_PER_ROW;
    let lane = g % THREADS_PER_ROW;
    if pos >= params.n {
        return;
    }
    let words = row_words();
    let dst = pos * words;
    let row = indices[pos];
    if row >= params.num_embeddings {
        if lane == 0u {
            atomicMin(&status[0], params.pos_base + pos);
        }
        for (var c = lane; c < words; c += THREADS_PER_ROW) {
            out[dst + c] = Word(0.0);
        }
        return;
    }
    if row < params.row_begin || row >= params.row_end {
        return;
    }
    let local = row - params.row_begin;
    for (var c = lane; c < words; c += THREADS_PER_ROW) {
        out[dst + c] = load(local, c, words);
    }
}
