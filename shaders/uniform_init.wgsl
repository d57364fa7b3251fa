// uniform_init: counter-based random fill (Philox4x32-10, Salmon et al. 2011).
//
// Element e of a tensor is lane e % 4 of philox(counter = (e / 4) as 64 bits,
// key = seed as 64 bits): its value depends only on (seed, e), never on the
// workgroup size, the dispatch shape, the adapter, or how the tensor was split
// into calls. Each invocation computes ROUNDS Philox blocks (four elements each).
//
// Identical floats on every device. Vulkan, Metal and GL compilers may fuse
// a * b + c into an FMA and may refactor float expressions (Mesa does:
// a*b + a*c -> a*(b + c)), and their log/sqrt/sin differ by several ulps. So
// no float result depends on float arithmetic here: Box–Muller runs in
// fixed point (log2 by repeated squaring — or a table and a short series
// where those settle the same bits —, an exact integer square root whose
// float first guess is corrected to exact, CORDIC for cos/sin),
// the result is rounded to f32 once, and the affine step
// `a + b · x` is a software FMA on the float bits, correctly rounded
// (results below 2^-126 in magnitude flush to zero). The CPU twin
// (src/cpu/uniform_init.rs) runs the same integer steps and matches bit for bit.
//
// In four parts, composed by the host in this order: this file (the fill),
// uniform_init/box_muller.wgsl, uniform_init/fixed_point.wgsl (64-bit
// integers, rounding, the software FMA) and uniform_init/philox.wgsl (the
// generator, which the f16 stochastic rounding of the updates draws from too).

struct Params {
    key: vec2<u32>,        // the seed, low word first
    first_block: vec2<u32>, // Philox block of the first element written, 64-bit
    skip: u32,             // elements of that block before the first written one (0..3)
    begin: u32,            // first output position written
    end: u32,              // one past the last output position written
    blocks: u32,           // Philox blocks with positions in begin .. end
    a: f32,                // uniform: lo;  normal: mean
    b: f32,                // uniform: hi - lo;  normal: std
    invocations: u32,      // invocations of this dispatch with work
    first_t: u32,          // run of invocation 0 (see `fill`)
    head: u32,             // invocations before the jump
    jump: u32,             // runs skipped from invocation `head` on
    first_q: u32,          // RUNS: the vec4 of `out` run `first_t` starts at
    _pad0: u32,
}

#ifdef BITS
alias Word = u32;
#else
alias Word = f32;
#endif

@group(0) @binding(0) var<uniform> params: Params;
#ifdef RUNS
@group(0) @binding(1) var<storage, read_write> out: array<vec4<Word>>;
#else
@group(0) @binding(1) var<storage, read_write> out: array<Word>;
#endif

// [0, 1) with 24 random bits; exact.
fn unit_open(x: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(x >> vec4<u32>(8u)) * 5.960464477539063e-08; // 2^-24
}

// Philox block `i` of this fill.
fn block_bits(i: u32) -> vec4<u32> {
    let lo = params.first_block.x + i;
    let hi = params.first_block.y + select(0u, 1u, lo < i);
    return philox4x32_10(vec4<u32>(lo, hi, 0u, 0u), params.key);
}

// Whether to apply a + b · x (the software FMA); false for the default
// N(0, 1) and U(0, 1), where 0 + 1 · x is x itself, so their pipelines
// carry none of its code (a CPU rasterizer pays for every branch it
// compiles, taken or not).
override AFFINE: bool = true;

// The four values of Philox block `i`, as bits.
fn block_values(i: u32) -> vec4<u32> {
    let x = block_bits(i);
#ifdef BITS
    return x;
#else
#ifdef NORMAL
    var u = box_muller(x);
#else
    var u = unit_open(x);
#endif
    if AFFINE {
        u = vec4<f32>(
            soft_fma(params.b, u.x, params.a),
            soft_fma(params.b, u.y, params.a),
            soft_fma(params.b, u.z, params.a),
            soft_fma(params.b, u.w, params.a),
        );
    }
    return bitcast<vec4<u32>>(u);
#endif
}

// Philox blocks per invocation, a run of 16 positions (`fill` writes them
// out): fewer, longer invocations cost a CPU rasterizer less to launch.
// 8 made the N(0, 1) fill about 5 % faster on lavapipe but the shader
// twice as long to compile (the rng tests on three adapters took 490 s, not
// 195); a loop over the blocks, even four at a time, made the fill slower.
const ROUNDS: u32 = 4u;

#ifdef RUNS
// Block `i`'s values at vec4 `q` of `out`: the RUNS variant writes whole
// runs only, in range and 16-byte aligned (the host checks both), so its
// stores need no guard. A CPU rasterizer turns each guarded store into a
// branch per SIMD lane: the guards cost a third of the N(0, 1) fill's time
// on lavapipe, scalar stores another tenth.
fn put_run(q: u32, i: u32) {
    out[q] = bitcast<vec4<Word>>(block_values(i));
}
#else
// Block `i`'s values at their positions, each if inside begin .. end: the
// runs at the ends of a fill, and all of one the host cannot align.
fn put_block(i: u32) {
    let v = block_values(i);
    put(position(i, 0u), v.x);
    put(position(i, 1u), v.y);
    put(position(i, 2u), v.z);
    put(position(i, 3u), v.w);
}

// Output position of lane `lane` of block `i`, or none if outside begin .. end.
fn position(i: u32, lane: u32) -> u32 {
    let k = i * 4u + lane;
    if i >= params.blocks || k < params.skip {
        return 0xFFFFFFFFu;
    }
    let p = params.begin + (k - params.skip);
    return select(0xFFFFFFFFu, p, p < params.end);
}

fn put(p: u32, bits: u32) {
    if p != 0xFFFFFFFFu {
        out[p] = bitcast<Word>(bits);
    }
}
#endif

// One body, three variants (defs): BITS writes the raw Philox words to a
// u32 buffer (for testing the stream); NORMAL writes mean + std · N(0, 1);
// neither writes lo + (hi - lo) · U[0, 1). (a, b) are (lo, hi - lo) or
// (mean, std). With RUNS, the whole-run stores above.
//
// Invocation t computes blocks t · ROUNDS .. (t + 1) · ROUNDS, which land at
// positions begin - skip + 16 t .. + 16. Invocation j of a dispatch is
// t = first_t + j, plus jump from j = head on: one dispatch (RUNS, no
// jump, run first_t at vec4 first_q) covers the whole runs, another the
// run at each end (see the host).
@compute @workgroup_size(WORKGROUP_SIZE)
fn fill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let j = invocation(wid, nwg, lid);
    if j >= params.invocations {
        return;
    }
#ifdef RUNS
    // One range of runs, so no jump: each parameter read costs a CPU
    // rasterizer a load per lane.
    let i = (params.first_t + j) * ROUNDS;
    let q = params.first_q + 4u * j;
    put_run(q, i);
    put_run(q + 1u, i + 1u);
    put_run(q + 2u, i + 2u);
    put_run(q + 3u, i + 3u);
#else
    let t = params.first_t + j + select(0u, params.jump, j >= params.head);
    let i = t * ROUNDS;
    put_block(i);
    put_block(i + 1u);
    put_block(i + 2u);
    put_block(i + 3u);
#endif
}
