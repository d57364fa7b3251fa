// matmul, part 2 of 2 (after shaders/matmul.wgsl, which the host puts in
// front of it; host side: src/kernels/matmul/texture.rs).
//
// The texture path: matmul_pack_a, matmul_pack_b or matmul_pack_bt,
// matmul_texture.
//
// Why. A CPU rasterizer (lavapipe, Mesa 22.3 here) compiles every storage-
// and workgroup-memory access into a loop over its SIMD lanes, one scalar
// load per lane behind a branch, so the workgroup tiles of shaders/matmul.wgsl spend most of
// their time loading, not multiplying (about a quarter of the FMA peak at
// best). A texel fetch compiles to a vectorised gather of whole 16-byte
// texels instead. So the two operands are first packed into rgba32float
// textures, four consecutive k of op(A) or four consecutive n of op(B) per
// texel, and the product reads only textures: no workgroup memory, no
// barriers. Each invocation owns a 32 × 32 block of C whose 1 024
// accumulators live in spilled registers; the loops run the four k of one
// texel on one accumulator back to back, so each spilled accumulator is
// loaded and stored once per four FMAs.
//
// Edges. The packed textures are zero outside the matrices and padded to
// whole 32 × 32 blocks of the dispatch, so the main loop reads in range with
// no comparisons; store_row drops the outputs past M and N.

const TEX_ROWS: u32 = 32u;  // rows of C per invocation
const TEX_QUADS: u32 = 8u;  // vec4s of columns of C per invocation (32 columns)

@group(0) @binding(5) var packed: texture_storage_2d<rgba32float, write>;
@group(0) @binding(6) var a_tex: texture_2d<f32>;
@group(0) @binding(7) var b_tex: texture_2d<f32>;

// Texel (k4, m) = op(A)[m, 4·k4 .. 4·k4 + 4].
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_pack_a(@builtin(global_invocation_id) g: vec3<u32>) {
    let size = textureDimensions(packed);
    if g.x >= size.x || g.y >= size.y {
        return;
    }
    let k = g.x * 4u;
    textureStore(packed, g.xy, vec4<f32>(load_a(g.y, k), load_a(g.y, k + 1u), load_a(g.y, k + 2u), load_a(g.y, k + 3u)));
}

// Texel (n4, k) = op(B)[k, 4·n4 .. 4·n4 + 4]: B as the product reads it
// when not transposed.
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_pack_b(@builtin(global_invocation_id) g: vec3<u32>) {
    let size = textureDimensions(packed);
    if g.x >= size.x || g.y >= size.y {
        return;
    }
    let n = g.x * 4u;
    textureStore(packed, g.xy, vec4<f32>(load_b(g.y, n), load_b(g.y, n + 1u), load_b(g.y, n + 2u), load_b(g.y, n + 3u)));
}

// Texel (k4, n) = op(B)[4·k4 .. 4·k4 + 4, n]: B transposed (a Linear
// layer's W, [N, K]) packed along its own rows, like A, so that when those
// rows are whole texel rows the packing is a copy of W, not a transpose.
@compute @workgroup_size(WG_X, WG_Y)
fn matmul_pack_bt(@builtin(global_invocation_id) g: vec3<u32>) {
    let size = textureDimensions(packed);
    if g.x >= size.x || g.y >= size.y {
        return;
    }
    let k = g.x * 4u;
    textureStore(packed, g.xy, vec4<f32>(load_b(k, g.y), load_b(k + 1u, g.y), load_b(k + 2u, g.y), load_b(k + 3u, g.y)));
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_texture(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let row0 = (wid.y * WG_Y + lid.y) * TEX_ROWS;
    let quad0 = (wid.x * WG_X + lid.x) * TEX_QUADS;
    var acc: array<array<vec4<f32>, TEX_QUADS>, TEX_ROWS>;
    let k4_end = min(textureDimensions(a_tex).x, (params.k_end + 3u) / 4u);
    for (var k4 = params.k_begin / 4u; k4 < k4_end; k4++) {
        // a[i] = op(A)[row0 + i, 4·k4 .. +4]; b[kk][h] = op(B)[4·k4 + kk, 4·(quad0 + h) .. +4].
        var a: array<vec4<f32>, TEX_ROWS>;
        var b: array<array<vec4<f32>, TEX_QUADS>, 4>;
        for (var i = 0u; i < TEX_ROWS; i++) {
            a[i] = textureLoad(a_tex, vec2<u32>(k4, row0 + i), 0);
        }
        if params.trans_b != 0u {
            // B packed by matmul_pack_bt: four texels, one per column n,
            // hold a 4 × 4 block of op(B) to transpose (free on a CPU
            // rasterizer, whose vec4 components are separate registers).
            // A uniform branch once per four k: the same cost either way.
            for (var h = 0u; h < TEX_QUADS; h++) {
                let n = (quad0 + h) * 4u;
                let c0 = textureLoad(b_tex, vec2<u32>(k4, n), 0);
                let c1 = textureLoad(b_tex, vec2<u32>(k4, n + 1u), 0);
                let c2 = textureLoad(b_tex, vec2<u32>(k4, n + 2u), 0);
                let c3 = textureLoad(b_tex, vec2<u32>(k4, n + 3u), 0);
                b[0][h] = vec4<f32>(c0.x, c1.x, c2.x, c3.x);
                b[1][h] = vec4<f32>(c0.y, c1.y, c2.y, c3.y);
                b[2][h] = vec4<f32>(c0.z, c1.z, c2.z, c3.z);
                b[3][h] = vec4<f32>(c0.w, c1.w, c2.w, c3.w);
            }
        } else {
            for (var kk = 0u; kk < 4u; kk++) {
                for (var h = 0u; h < TEX_QUADS; h++) {
                    b[kk][h] = textureLoad(b_tex, vec2<u32>(quad0 + h, k4 * 4u + kk), 0);
                }
            }
        }
        for (var i = 0u; i < TEX_ROWS; i++) {
            for (var h = 0u; h < TEX_QUADS; h++) {
                var s = acc[i][h];
                s = fma(vec4<f32>(a[i].x), b[0][h], s);
                s = fma(vec4<f32>(a[i].y), b[1][h], s);
                s = fma(vec4<f32>(a[i].z), b[2][h], s);
                s = fma(vec4<f32>(a[i].w), b[3][h], s);
                acc[i][h] = s;
            }
        }
    }
    for (var i = 0u; i < TEX_ROWS; i++) {
        for (var h = 0u; h < TEX_QUADS; h++) {
            store_row(row0 + i, (quad0 + h) * 4u, acc[i][h]);
        }
    }
}
