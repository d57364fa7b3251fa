// matmul: C[M, N] = op(A) · op(B) (+ bias[n]) (+ C[m, n] when accumulating),
// where op(A) is A ([M, K]) or Aᵀ (A stored [K, M]) and op(B) is B ([K, N])
// or Bᵀ (B stored [N, K]). Row-major, any M, N, K ≥ 1, no padding.
//
// Tiling. A workgroup of WG_X × WG_Y invocations owns a BM × BN block of C,
// BM = 8 · WG_Y rows and BN = 8 · WG_X columns. Each invocation owns an
// 8 × 8 register tile made of 2 × 2 quads of 4 × 4: rows 4·ty + 4·WG_Y·g + i
// and columns 4·tx + 4·WG_X·h + j (g, h in 0..2, i, j in 0..4), so that
// neighbouring invocations read neighbouring vec4s of workgroup memory. K is
// walked in slabs of BK: the workgroup copies the BM × BK slab of op(A) and
// the BK × BN slab of op(B) into workgroup memory, both stored k-major as
// vec4s (a_tile[k][m/4], b_tile[k][n/4]), and per k each invocation reads two
// vec4s of A and two of B and does 64 FMAs with them.
//
// Why 8 × 8: on a CPU rasterizer (lavapipe) every workgroup-memory read is a
// per-lane loop costing tens of cycles, so FMAs per read decide the speed;
// 8 × 8 does 16 FMAs per vec4 read, twice 4 × 4's, and more accumulators
// spill. On GPUs 8 × 8 with 16 × 16 invocations is the classic 128 × 128 tile.
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

override WG_X: u32 = 16u;
override WG_Y: u32 = 16u;
override BK: u32 = 16u;
override TRANS_A: bool = false;
override TRANS_B: bool = false;
override HAS_BIAS: bool = false;
override ACCUMULATE: bool = false;

override WG: u32 = WG_X * WG_Y;
override BM4: u32 = WG_Y * 2u; // vec4s per k-row of the A tile (BM / 4)
override BN4: u32 = WG_X * 2u; // vec4s per k-row of the B tile (BN / 4)

struct Params {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
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
    if TRANS_A {
        return a[col * params.m + row];
    }
    return a[row * params.k + col];
}

// op(B)[row, col], or 0.0 outside the matrix.
fn load_b(row: u32, col: u32) -> f32 {
    if row >= params.k || col >= params.n {
        return 0.0;
    }
    if TRANS_B {
        return b[col * params.k + row];
    }
    return b[row * params.n + col];
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let tx = lid.x;
    let ty = lid.y;
    let row0 = wid.y * BM4 * 4u;
    let col0 = wid.x * BN4 * 4u;

    // acc[8h + 4g + i]: row quad g, column quad h, row i of the quad.
    var acc: array<vec4<f32>, 16>;

    for (var k0 = 0u; k0 < params.k; k0 += BK) {
        // Copy the slabs: one vec4 (four rows of op(A), or four columns of
        // op(B), at one k) per step. When the operand's memory runs along k
        // (A not transposed, B transposed) neighbouring invocations take
        // neighbouring k, so their global reads are adjacent.
        for (var s = li; s < BK * BM4; s += WG) {
            var kk: u32;
            var m4: u32;
            if TRANS_A {
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
            if TRANS_B {
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
        workgroupBarrier();

        for (var kk = 0u; kk < BK; kk++) {
            let a0 = a_tile[kk * BM4 + ty];
            let a1 = a_tile[kk * BM4 + ty + WG_Y];
            let b0 = b_tile[kk * BN4 + tx];
            let b1 = b_tile[kk * BN4 + tx + WG_X];
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

    for (var h = 0u; h < 2u; h++) {
        for (var g = 0u; g < 2u; g++) {
            let r = row0 + (ty + g * WG_Y) * 4u;
            let cc = col0 + (tx + h * WG_X) * 4u;
            for (var i = 0u; i < 4u; i++) {
                store_row(r + i, cc, acc[h * 8u + g * 4u + i]);
            }
        }
    }
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
