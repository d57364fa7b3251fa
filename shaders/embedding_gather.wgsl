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
// A table larger than one storage binding is stored as row-chunks and
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
// Four entry points: gather_vec4 (dim % 4 == 0, bindings 0-4) and
// gather_scalar (any dim, bindings 0-2, 5, 6) read f32 tables;
// gather_f16_vec4 (bindings 0-2, 7, 4) and gather_f16_scalar (bindings 0-2,
// 8, 6) read f16 tables packed two halves per u32 and write f32. They decode
// with unpack2x16float, which is core WGSL: no `enable f16`, so the module
// compiles on adapters without SHADER_F16 too. Each pipeline's layout names
// only its own bindings.

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
    chunk_rows: u32,     // gather_vec4_chunks4: rows in each bound chunk (the last may hold fewer)
    pos_base: u32,       // position of this window's first index in the whole list
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> status: array<atomic<u32>>;
@group(0) @binding(3) var<storage, read> table4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> table: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
// f16 tables: four halves per vec2<u32> (vec4 path), two per u32 (scalar path).
@group(0) @binding(7) var<storage, read> table_h4: array<vec2<u32>>;
@group(0) @binding(8) var<storage, read> table_h: array<u32>;
// gather_vec4_chunks4: up to four row-chunks of a table past one binding,
// bound at once (bindings 0-2, 4, 9-12), the chunk picked per row.
@group(0) @binding(9) var<storage, read> chunk0: array<vec4<f32>>;
@group(0) @binding(10) var<storage, read> chunk1: array<vec4<f32>>;
@group(0) @binding(11) var<storage, read> chunk2: array<vec4<f32>>;
@group(0) @binding(12) var<storage, read> chunk3: array<vec4<f32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_vec4(
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
    let dim4 = select(params.dim / 4u, DIM4, DIM4 != 0u);
    let dst = pos * dim4;
    let row = indices[pos];
    if row >= params.num_embeddings {
        if lane == 0u {
            atomicMin(&status[0], params.pos_base + pos);
        }
        for (var c = lane; c < dim4; c += THREADS_PER_ROW) {
            out4[dst + c] = vec4<f32>(0.0);
        }
        return;
    }
    if row < params.row_begin || row >= params.row_end {
        return;
    }
    let src = (row - params.row_begin) * dim4;
    for (var c = lane; c < dim4; c += THREADS_PER_ROW) {
        out4[dst + c] = table4[src + c];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_scalar(
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
    let dst = pos * params.dim;
    let row = indices[pos];
    if row >= params.num_embeddings {
        if lane == 0u {
            atomicMin(&status[0], params.pos_base + pos);
        }
        for (var c = lane; c < params.dim; c += THREADS_PER_ROW) {
            out[dst + c] = 0.0;
        }
        return;
    }
    if row < params.row_begin || row >= params.row_end {
        return;
    }
    let src = (row - params.row_begin) * params.dim;
    for (var c = lane; c < params.dim; c += THREADS_PER_ROW) {
        out[dst + c] = table[src + c];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_f16_vec4(
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
    let dim4 = select(params.dim / 4u, DIM4, DIM4 != 0u);
    let dst = pos * dim4;
    let row = indices[pos];
    if row >= params.num_embeddings {
        if lane == 0u {
            atomicMin(&status[0], params.pos_base + pos);
        }
        for (var c = lane; c < dim4; c += THREADS_PER_ROW) {
            out4[dst + c] = vec4<f32>(0.0);
        }
        return;
    }
    if row < params.row_begin || row >= params.row_end {
        return;
    }
    let src = (row - params.row_begin) * dim4;
    for (var c = lane; c < dim4; c += THREADS_PER_ROW) {
        let w = table_h4[src + c];
        out4[dst + c] = vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_f16_scalar(
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
    let dst = pos * params.dim;
    let row = indices[pos];
    if row >= params.num_embeddings {
        if lane == 0u {
            atomicMin(&status[0], params.pos_base + pos);
        }
        for (var c = lane; c < params.dim; c += THREADS_PER_ROW) {
            out[dst + c] = 0.0;
        }
        return;
    }
    if row < params.row_begin || row >= params.row_end {
        return;
    }
    let src = (row - params.row_begin) * params.dim;
    for (var c = lane; c < params.dim; c += THREADS_PER_ROW) {
        let e = src + c;
        out[dst + c] = unpack2x16float(table_h[e >> 1u])[e & 1u];
    }
}

// vec4 k of chunk `which` (WGSL has no arrays of bindings in core).
fn chunk_load(which: u32, k: u32) -> vec4<f32> {
    switch which {
        case 0u: { return chunk0[k]; }
        case 1u: { return chunk1[k]; }
        case 2u: { return chunk2[k]; }
        default: { return chunk3[k]; }
    }
}

// gather_vec4 over rows row_begin .. row_end stored in up to four bound
// chunks of chunk_rows rows each: one dispatch for up to four chunks instead
// of one dispatch per chunk that reads every index.
@compute @workgroup_size(WORKGROUP_SIZE)
fn gather_vec4_chunks4(
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
    let dim4 = params.dim / 4u;
    let dst = pos * dim4;
    let row = indices[pos];
    if row >= params.num_embeddings {
        if lane == 0u {
            atomicMin(&status[0], params.pos_base + pos);
        }
        for (var c = lane; c < dim4; c += THREADS_PER_ROW) {
            out4[dst + c] = vec4<f32>(0.0);
        }
        return;
    }
    if row < params.row_begin || row >= params.row_end {
        return;
    }
    let local = row - params.row_begin;
    let which = local / params.chunk_rows;
    let src = (local - which * params.chunk_rows) * dim4;
    for (var c = lane; c < dim4; c += THREADS_PER_ROW) {
        out4[dst + c] = chunk_load(which, src + c);
    }
}
