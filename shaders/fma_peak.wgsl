// fma_peak: the adapter's fused-multiply-add throughput, the roof the matmul
// is measured against. Every invocation runs ITERATIONS rounds of FMAs on
// eight independent vec4 chains held in registers: no memory traffic in the
// loop, and enough independent chains to cover the FMA latency of a CPU
// rasterizer's SIMD lanes (lavapipe turns each vec4 into four 8-wide
// vectors: 32 chains) as well as a GPU's. The sum is stored so the compiler
// cannot drop the work. FLOPs = invocations · ITERATIONS · 8 · 4 · 2.

override ITERATIONS: u32 = 1024u;

@group(0) @binding(0) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn fma_peak(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = invocation(wid, nwg, lid);
    let seed = f32(g & 255u) * 1e-3;
    // x · 0.9999 + 1e-4 stays finite and never denormal however long it runs.
    let mul = vec4<f32>(0.9999);
    let add = vec4<f32>(1e-4);
    var c0 = vec4<f32>(seed, seed + 0.1, seed + 0.2, seed + 0.3);
    var c1 = c0 + 1.0;
    var c2 = c0 + 2.0;
    var c3 = c0 + 3.0;
    var c4 = c0 + 4.0;
    var c5 = c0 + 5.0;
    var c6 = c0 + 6.0;
    var c7 = c0 + 7.0;
    for (var i = 0u; i < ITERATIONS; i++) {
        c0 = fma(c0, mul, add);
        c1 = fma(c1, mul, add);
        c2 = fma(c2, mul, add);
        c3 = fma(c3, mul, add);
        c4 = fma(c4, mul, add);
        c5 = fma(c5, mul, add);
        c6 = fma(c6, mul, add);
        c7 = fma(c7, mul, add);
    }
    let s = (c0 + c1) + (c2 + c3) + (c4 + c5) + (c6 + c7);
    out[g] = s.x + s.y + s.z + s.w;
}
