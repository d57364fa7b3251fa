// matmul: C[M, N] = op(A) · op(B) (+ bias[n]) (+ C[m, n] when accumulating),
// where op(A) is A ([M, K]) or Aᵀ (A stored [K, M]) and op(B) is B ([K, N])
// or Bᵀ (B stored [N, K]). Row-major, any M, N, K ≥ 1, no padding.
//
// Tiling. A workgroup of WG_X × WG_Y invocations owns a BM × BN block of C.
// Each invocation owns a register tile of QUADS_M × QUADS_N quads of 4 × 4
// outputs: quad (g, h) covers rows 4·(ty + g·WG_Y) .. +4 and columns
// 4·(tx + h·WG_X) .. +4 of the block, so neighbouring invocations read
// neighbouring vec4s of workgroup memory; BM = 4·QUADS_M·WG_Y and
// BN = 4·QUADS_N·WG_X. K is walked in slabs of BK: the workgroup copies the
// BM × BK slab of op(A) and the BK × BN slab of op(B) into workgroup memory,
// both stored k-major as vec4s (a_tile[k][m/4], b_tile[k][n/4]); per k each
// invocation reads QUADS_M vec4s of A and QUADS_N of B and does 16 FMAs per
// pair of them.
//
// Two entry points, two register tiles:
// - matmul_8x8 (2 × 2 quads) for GPUs: 64 accumulators stay in registers.
// - matmul_16x16 (4 × 4 quads) for CPU rasterizers (lavapipe): there every
//   workgroup-memory read is a loop over the SIMD lanes costing tens of
//   cycles while accumulators that spill cost one cached vector load and
//   store, so FMAs per read decide the speed: 16 × 16 does 32 per vec4 read,
//   8 × 8 16, and measured about twice as fast on lavapipe.
// The FMAs are written out (no loops over quads) so every accumulator index
// is a constant and the accumulators can live in registers.
//
// Edges. Only the slab copy and the final store compare against M, N, K:
// elements outside the matrices are copied as 0.0, so the inner loop has no
// branches and runs the same code for interior and edge tiles. A zero adds
// fma(0, x, acc) = acc exactly, so padding never changes a result (the
// one-hot equivalence test relies on that: one product, every other term 0).
//
// Every storage index is guarded by those comparisons and every workgroup
// index is below its array's size by construction, which is why the host may
// build this module without wgpu's injected bounds checks.
//
// A third path, matmul_texture, is for CPU rasterizers and is described with
// it in shaders/matmul/texture.wgsl (composed after this file).

override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override BK: u32 = 16u;
// Bias and accumulation are compile-time in the products: the compiler
// unrolls the stores (64 or 1 024 per invocation), and as uniform flags each
// store kept a load of C and of the bias that Mesa's LLVM backend then spent
// minutes on (measured: the benchmark's first matmul did not finish
// compiling in five minutes on lavapipe, 84 s for the whole run with these
// as constants). GPUs fuse them so (four pipelines per tile shape, each
// compiled in milliseconds); CPU rasterizers, where each product pipeline
// takes most of a minute to compile, build only the plain product and add
// the bias and the old C in matmul_epilogue, a second small dispatch.
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;
// Quads per invocation along M and N: 2 for matmul_8x8, 4 for matmul_16x16.
override QUADS_M: u32 = 2u;
override QUADS_N: u32 = 2u;

override WG: u32 = WG_X * WG_Y;
override BM4: u32 = WG_Y * QUADS_M; // vec4s per k-row of the A tile (BM / 4)
override BN4: u32 = WG_X * QUADS_N; // vec4s per k-row of the B tile (BN / 4)

// One dispatch sums k_begin .. k_end of the K products (all of K on GPUs).
// CPU rasterizers split K: Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`), silently, so a long K
// would be cut short; the host keeps each dispatch well under that and
// accumulates the pieces in C.
//
// The transposes are uniform flags, not override constants: each branch on
// them is uniform across the dispatch and sits in the slab copy or the
// packing kernels, outside the FMA loop, so it costs nothing measurable,
// while as constants they made four times the pipelines, each compiled cold
// by every driver.
struct Params {
    m: u32,
    n: u32,
    k: u32,
    k_begin: u32,
    k_end: u32,
    trans_a: u32,
    trans_b: u32,
    has_bias: u32,   // matmul_epilogue only
    accumulate: u32, // matmul_epilogue only
    // The first row-block of this dispatch: a grid past the per-dimension
    // workgroup limit is cut into dispatches over row ranges.
    block_row0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

var<workgroup> a_tile: array<vec4<f32>, BK * BM4>;
var<workgroup> b_tile: array<vec4<f32>, BK * BN4>;

// op(A)[row, col], or 0.0 outside the matrix.
fn load_a(row: u32, col: u32) -> f32 {
    if row >= params.m || col >= params.k {
        return 0.0;
    }
    if params.trans_a != 0u {
        return a[col * params.m + row];
    }
    return a[row * params.k + col];
}

// op(B)[row, col], or 0.0 outside the matrix.
fn load_b(row: u32, col: u32) -> f32 {
    if row >= params.k || col >= params.n {
        return 0.0;
    }
    if params.trans_b != 0u {
        return b[col * params.k + row];
    }
    return b[row * params.n + col];
}

// Copies the K slab starting at k0 of op(A) (rows row0 ..) and op(B)
// (columns col0 ..) into workgroup memory, zero outside the matrices.
fn copy_slabs(k0: u32, li: u32, row0: u32, col0: u32) {
    // One vec4 (four rows of op(A), or four columns of op(B), at one k)
    // per step. When the operand's memory runs along k
    // (A not transposed, B transposed) neighbouring invocations take
    // neighbouring k, so their global reads are adjacent.
    for (var s = li; s < BK * BM4; s += WG) {
        var kk: u32;
        var m4: u32;
        if params.trans_a != 0u {
            kk = s / BM4;
            m4 = s % BM4;
        } else {
            kk = s % BK;
            m4 = s / BK;
        }
        let r = row0 + m4 * 4u;
        let kg = k0 + kk;
        a_tile[kk * BM4 + m4] = vec4<f32>(load_a(r, kg), load_a(r + 1u, kg), load_a(r + 2u, kg), load_a(r + 3u, kg));
    }
    for (var s = li; s < BK * BN4; s += WG) {
        var kk: u32;
        var n4: u32;
        if params.trans_b != 0u {
            kk = s % BK;
            n4 = s / BK;
        } else {
            kk = s / BN4;
            n4 = s % BN4;
        }
        let cg = col0 + n4 * 4u;
        let kg = k0 + kk;
        b_tile[kk * BN4 + n4] = vec4<f32>(load_b(kg, cg), load_b(kg, cg + 1u), load_b(kg, cg + 2u), load_b(kg, cg + 3u));
    }
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_8x8(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = (params.block_row0 + wid.y) * BM4 * 4u;
    let col0 = wid.x * BN4 * 4u;
    // acc[8·h + 4·g + i]: row i of quad (g, h).
    var acc: array<vec4<f32>, 16>;
    for (var k0 = params.k_begin; k0 < params.k_end; k0 += BK) {
        copy_slabs(k0, li, row0, col0);
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = a_tile[kk * BM4 + lid.y];
            let a1 = a_tile[kk * BM4 + lid.y + 1u * WG_Y];
            let b0 = b_tile[kk * BN4 + lid.x];
            let b1 = b_tile[kk * BN4 + lid.x + 1u * WG_X];
            acc[0] = fma(vec4<f32>(a0.x), b0, acc[0]);
            acc[1] = fma(vec4<f32>(a0.y), b0, acc[1]);
            acc[2] = fma(vec4<f32>(a0.z), b0, acc[2]);
            acc[3] = fma(vec4<f32>(a0.w), b0, acc[3]);
            acc[4] = fma(vec4<f32>(a1.x), b0, acc[4]);
            acc[5] = fma(vec4<f32>(a1.y), b0, acc[5]);
            acc[6] = fma(vec4<f32>(a1.z), b0, acc[6]);
            acc[7] = fma(vec4<f32>(a1.w), b0, acc[7]);
            acc[8] = fma(vec4<f32>(a0.x), b1, acc[8]);
            acc[9] = fma(vec4<f32>(a0.y), b1, acc[9]);
            acc[10] = fma(vec4<f32>(a0.z), b1, acc[10]);
            acc[11] = fma(vec4<f32>(a0.w), b1, acc[11]);
            acc[12] = fma(vec4<f32>(a1.x), b1, acc[12]);
            acc[13] = fma(vec4<f32>(a1.y), b1, acc[13]);
            acc[14] = fma(vec4<f32>(a1.z), b1, acc[14]);
            acc[15] = fma(vec4<f32>(a1.w), b1, acc[15]);
        }
        workgroupBarrier();
    }
    // Loops here, written out in matmul_16x16: Mesa's GLSL compiler (wgpu's
    // GL backend) slows to minutes over 64 inlined stores; 16 iterations
    // unroll to constant indices either way.
    for (var h = 0u; h < 2u; h++) {
        for (var g = 0u; g < 2u; g++) {
            for (var i = 0u; i < 4u; i++) {
                store_row(row0 + (lid.y + g * WG_Y) * 4u + i, col0 + (lid.x + h * WG_X) * 4u, acc[8u * h + 4u * g + i]);
            }
        }
    }
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_16x16(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let row0 = (params.block_row0 + wid.y) * BM4 * 4u;
    let col0 = wid.x * BN4 * 4u;
    // acc[16·h + 4·g + i]: row i of quad (g, h).
    var acc: array<vec4<f32>, 64>;
    for (var k0 = params.k_begin; k0 < params.k_end; k0 += BK) {
        copy_slabs(k0, li, row0, col0);
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = a_tile[kk * BM4 + lid.y];
            let a1 = a_tile[kk * BM4 + lid.y + 1u * WG_Y];
            let a2 = a_tile[kk * BM4 + lid.y + 2u * WG_Y];
            let a3 = a_tile[kk * BM4 + lid.y + 3u * WG_Y];
            let b0 = b_tile[kk * BN4 + lid.x];
            let b1 = b_tile[kk * BN4 + lid.x + 1u * WG_X];
            let b2 = b_tile[kk * BN4 + lid.x + 2u * WG_X];
            let b3 = b_tile[kk * BN4 + lid.x + 3u * WG_X];
            acc[0] = fma(vec4<f32>(a0.x), b0, acc[0]);
            acc[1] = fma(vec4<f32>(a0.y), b0, acc[1]);
            acc[2] = fma(vec4<f32>(a0.z), b0, acc[2]);
            acc[3] = fma(vec4<f32>(a0.w), b0, acc[3]);
            acc[4] = fma(vec4<f32>(a1.x), b0, acc[4]);
            acc[5] = fma(vec4<f32>(a1.y), b0, acc[5]);
            acc[6] = fma(vec4<f32>(a1.z), b0, acc[6]);
            acc[7] = fma(vec4<f32>(a1.w), b0, acc[7]);
            acc[8] = fma(vec4<f32>(a2.x), b0, acc[8]);
            acc[9] = fma(vec4<f32>(a2.y), b0, acc[9]);
            acc[10] = fma(vec4<f32>(a2.z), b0, acc[10]);
            acc[11] = fma(vec4<f32>(a2.w), b0, acc[11]);
            acc[12] = fma(vec4<f32>(a3.x), b0, acc[12]);
            acc[13] = fma(vec4<f32>(a3.y), b0, acc[13]);
            acc[14] = fma(vec4<f32>(a3.z), b0, acc[14]);
            acc[15] = fma(vec4<f32>(a3.w), b0, acc[15]);
            acc[16] = fma(vec4<f32>(a0.x), b1, acc[16]);
            acc[17] = fma(vec4<f32>(a0.y), b1, acc[17]);
            acc[18] = fma(vec4<f32>(a0.z), b1, acc[18]);
            acc[19] = fma(vec4<f32>(a0.w), b1, acc[19]);
            acc[20] = fma(vec4<f32>(a1.x), b1, acc[20]);
            acc[21] = fma(vec4<f32>(a1.y), b1, acc[21]);
            acc[22] = fma(vec4<f32>(a1.z), b1, acc[22]);
            acc[23] = fma(vec4<f32>(a1.w), b1, acc[23]);
            acc[24] = fma(vec4<f32>(a2.x), b1, acc[24]);
            acc[25] = fma(vec4<f32>(a2.y), b1, acc[25]);
            acc[26] = fma(vec4<f32>(a2.z), b1, acc[26]);
            acc[27] = fma(vec4<f32>(a2.w), b1, acc[27]);
            acc[28] = fma(vec4<f32>(a3.x), b1, acc[28]);
            acc[29] = fma(vec4<f32>(a3.y), b1, acc[29]);
            acc[30] = fma(vec4<f32>(a3.z), b1, acc[30]);
            acc[31] = fma(vec4<f32>(a3.w), b1, acc[31]);
            acc[32] = fma(vec4<f32>(a0.x), b2, acc[32]);
            acc[33] = fma(vec4<f32>(a0.y), b2, acc[33]);
            acc[34] = fma(vec4<f32>(a0.z), b2, acc[34]);
            acc[35] = fma(vec4<f32>(a0.w), b2, acc[35]);
            acc[36] = fma(vec4<f32>(a1.x), b2, acc[36]);
            acc[37] = fma(vec4<f32>(a1.y), b2, acc[37]);
            acc[38] = fma(vec4<f32>(a1.z), b2, acc[38]);
            acc[39] = fma(vec4<f32>(a1.w), b2, acc[39]);
            acc[40] = fma(vec4<f32>(a2.x), b2, acc[40]);
            acc[41] = fma(vec4<f32>(a2.y), b2, acc[41]);
            acc[42] = fma(vec4<f32>(a2.z), b2, acc[42]);
            acc[43] = fma(vec4<f32>(a2.w), b2, acc[43]);
            acc[44] = fma(vec4<f32>(a3.x), b2, acc[44]);
            acc[45] = fma(vec4<f32>(a3.y), b2, acc[45]);
            acc[46] = fma(vec4<f32>(a3.z), b2, acc[46]);
            acc[47] = fma(vec4<f32>(a3.w), b2, acc[47]);
            acc[48] = fma(vec4<f32>(a0.x), b3, acc[48]);
            acc[49] = fma(vec4<f32>(a0.y), b3, acc[49]);
            acc[50] = fma(vec4<f32>(a0.z), b3, acc[50]);
            acc[51] = fma(vec4<f32>(a0.w), b3, acc[51]);
            acc[52] = fma(vec4<f32>(a1.x), b3, acc[52]);
            acc[53] = fma(vec4<f32>(a1.y), b3, acc[53]);
            acc[54] = fma(vec4<f32>(a1.z), b3, acc[54]);
            acc[55] = fma(vec4<f32>(a1.w), b3, acc[55]);
            acc[56] = fma(vec4<f32>(a2.x), b3, acc[56]);
            acc[57] = fma(vec4<f32>(a2.y), b3, acc[57]);
            acc[58] = fma(vec4<f32>(a2.z), b3, acc[58]);
            acc[59] = fma(vec4<f32>(a2.w), b3, acc[59]);
            acc[60] = fma(vec4<f32>(a3.x), b3, acc[60]);
            acc[61] = fma(vec4<f32>(a3.y), b3, acc[61]);
            acc[62] = fma(vec4<f32>(a3.z), b3, acc[62]);
            acc[63] = fma(vec4<f32>(a3.w), b3, acc[63]);
        }
        workgroupBarrier();
    }
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 0u, col0 + (lid.x + 0u * WG_X) * 4u, acc[0]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 1u, col0 + (lid.x + 0u * WG_X) * 4u, acc[1]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 2u, col0 + (lid.x + 0u * WG_X) * 4u, acc[2]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 3u, col0 + (lid.x + 0u * WG_X) * 4u, acc[3]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 0u, col0 + (lid.x + 0u * WG_X) * 4u, acc[4]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 1u, col0 + (lid.x + 0u * WG_X) * 4u, acc[5]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 2u, col0 + (lid.x + 0u * WG_X) * 4u, acc[6]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 3u, col0 + (lid.x + 0u * WG_X) * 4u, acc[7]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 0u, col0 + (lid.x + 0u * WG_X) * 4u, acc[8]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 1u, col0 + (lid.x + 0u * WG_X) * 4u, acc[9]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 2u, col0 + (lid.x + 0u * WG_X) * 4u, acc[10]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 3u, col0 + (lid.x + 0u * WG_X) * 4u, acc[11]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 0u, col0 + (lid.x + 0u * WG_X) * 4u, acc[12]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 1u, col0 + (lid.x + 0u * WG_X) * 4u, acc[13]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 2u, col0 + (lid.x + 0u * WG_X) * 4u, acc[14]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 3u, col0 + (lid.x + 0u * WG_X) * 4u, acc[15]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 0u, col0 + (lid.x + 1u * WG_X) * 4u, acc[16]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 1u, col0 + (lid.x + 1u * WG_X) * 4u, acc[17]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 2u, col0 + (lid.x + 1u * WG_X) * 4u, acc[18]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 3u, col0 + (lid.x + 1u * WG_X) * 4u, acc[19]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 0u, col0 + (lid.x + 1u * WG_X) * 4u, acc[20]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 1u, col0 + (lid.x + 1u * WG_X) * 4u, acc[21]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 2u, col0 + (lid.x + 1u * WG_X) * 4u, acc[22]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 3u, col0 + (lid.x + 1u * WG_X) * 4u, acc[23]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 0u, col0 + (lid.x + 1u * WG_X) * 4u, acc[24]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 1u, col0 + (lid.x + 1u * WG_X) * 4u, acc[25]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 2u, col0 + (lid.x + 1u * WG_X) * 4u, acc[26]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 3u, col0 + (lid.x + 1u * WG_X) * 4u, acc[27]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 0u, col0 + (lid.x + 1u * WG_X) * 4u, acc[28]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 1u, col0 + (lid.x + 1u * WG_X) * 4u, acc[29]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 2u, col0 + (lid.x + 1u * WG_X) * 4u, acc[30]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 3u, col0 + (lid.x + 1u * WG_X) * 4u, acc[31]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 0u, col0 + (lid.x + 2u * WG_X) * 4u, acc[32]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 1u, col0 + (lid.x + 2u * WG_X) * 4u, acc[33]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 2u, col0 + (lid.x + 2u * WG_X) * 4u, acc[34]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 3u, col0 + (lid.x + 2u * WG_X) * 4u, acc[35]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 0u, col0 + (lid.x + 2u * WG_X) * 4u, acc[36]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 1u, col0 + (lid.x + 2u * WG_X) * 4u, acc[37]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 2u, col0 + (lid.x + 2u * WG_X) * 4u, acc[38]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 3u, col0 + (lid.x + 2u * WG_X) * 4u, acc[39]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 0u, col0 + (lid.x + 2u * WG_X) * 4u, acc[40]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 1u, col0 + (lid.x + 2u * WG_X) * 4u, acc[41]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 2u, col0 + (lid.x + 2u * WG_X) * 4u, acc[42]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 3u, col0 + (lid.x + 2u * WG_X) * 4u, acc[43]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 0u, col0 + (lid.x + 2u * WG_X) * 4u, acc[44]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 1u, col0 + (lid.x + 2u * WG_X) * 4u, acc[45]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 2u, col0 + (lid.x + 2u * WG_X) * 4u, acc[46]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 3u, col0 + (lid.x + 2u * WG_X) * 4u, acc[47]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 0u, col0 + (lid.x + 3u * WG_X) * 4u, acc[48]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 1u, col0 + (lid.x + 3u * WG_X) * 4u, acc[49]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 2u, col0 + (lid.x + 3u * WG_X) * 4u, acc[50]);
    store_row(row0 + (lid.y + 0u * WG_Y) * 4u + 3u, col0 + (lid.x + 3u * WG_X) * 4u, acc[51]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 0u, col0 + (lid.x + 3u * WG_X) * 4u, acc[52]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 1u, col0 + (lid.x + 3u * WG_X) * 4u, acc[53]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 2u, col0 + (lid.x + 3u * WG_X) * 4u, acc[54]);
    store_row(row0 + (lid.y + 1u * WG_Y) * 4u + 3u, col0 + (lid.x + 3u * WG_X) * 4u, acc[55]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 0u, col0 + (lid.x + 3u * WG_X) * 4u, acc[56]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 1u, col0 + (lid.x + 3u * WG_X) * 4u, acc[57]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 2u, col0 + (lid.x + 3u * WG_X) * 4u, acc[58]);
    store_row(row0 + (lid.y + 2u * WG_Y) * 4u + 3u, col0 + (lid.x + 3u * WG_X) * 4u, acc[59]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 0u, col0 + (lid.x + 3u * WG_X) * 4u, acc[60]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 1u, col0 + (lid.x + 3u * WG_X) * 4u, acc[61]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 2u, col0 + (lid.x + 3u * WG_X) * 4u, acc[62]);
    store_row(row0 + (lid.y + 3u * WG_Y) * 4u + 3u, col0 + (lid.x + 3u * WG_X) * 4u, acc[63]);
}

// Writes the in-range part of four neighbouring outputs of one row, adding
// the bias and the previous contents of C where asked.
fn store_row(row: u32, col: u32, v: vec4<f32>) {
    if row >= params.m {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let n = col + j;
        if n < params.n {
            var x = v[j];
            if HAS_BIAS {
                x += bias[n];
            }
            let i = row * params.n + n;
            if ACCUMULATE {
                x += c[i];
            }
            c[i] = x;
        }
    }
}

// ---- matmul_epilogue: c = product (+ bias[n]) (+ c), element by element,
// in the fused store's order, so the bits are the same as the fused path's.
@group(0) @binding(8) var<storage, read> product: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn matmul_epilogue(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = invocation(wid, nwg, lid);
    if i >= params.m * params.n {
        return;
    }
    var x = product[i];
    if params.has_bias != 0u {
        x += bias[i % params.n];
    }
    if params.accumulate != 0u {
        x += c[i];
    }
    c[i] = x;
}

// The texture path (matmul_pack_a, matmul_pack_b, matmul_texture) is in
// shaders/matmul/texture.wgsl, which the host composes after this file.
