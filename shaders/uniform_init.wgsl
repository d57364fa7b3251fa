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
// fixed point (log2 by repeated squaring, an exact integer square root
// whose float first guess is corrected until exact, CORDIC for cos/sin),
// the result is rounded to f32 once, and the affine step
// `a + b · x` is a software FMA on the float bits, correctly rounded
// (results below 2^-126 in magnitude flush to zero). The CPU twin
// (src/cpu/uniform_init.rs) runs the same integer steps and matches bit for bit.


struct Params {
    key: vec2<u32>,        // the seed, low word first
    first_block: vec2<u32>, // Philox block of the first element written, 64-bit
    skip: u32,             // elements of that block before the first written one (0..3)
    begin: u32,            // first output position written
    end: u32,              // one past the last output position written
    blocks: u32,           // invocations with work
    a: f32,                // uniform: lo;  normal: mean
    b: f32,                // uniform: hi - lo;  normal: std
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
#ifdef BITS
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
#else
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
#endif

// Philox4x32-10 itself (mulhilo, philox_round, philox4x32_10) is in
// shaders/uniform_init/philox.wgsl, which the host composes after this
// file; the f16 stochastic rounding of the updates draws from it too.

// ---- 64-bit integers as vec2<u32>(lo, hi) -------------------------------

fn mul64(a: u32, b: u32) -> vec2<u32> {
    let p = mulhilo(a, b);
    return vec2<u32>(p.y, p.x);
}

fn shl64(x: vec2<u32>, n: u32) -> vec2<u32> {
    if n == 0u {
        return x;
    }
    if n >= 64u {
        return vec2<u32>(0u, 0u);
    }
    if n >= 32u {
        return vec2<u32>(0u, x.x << (n - 32u));
    }
    return vec2<u32>(x.x << n, (x.y << n) | (x.x >> (32u - n)));
}

fn shr64(x: vec2<u32>, n: u32) -> vec2<u32> {
    if n == 0u {
        return x;
    }
    if n >= 64u {
        return vec2<u32>(0u, 0u);
    }
    if n >= 32u {
        return vec2<u32>(x.y >> (n - 32u), 0u);
    }
    return vec2<u32>((x.x >> n) | (x.y << (32u - n)), x.y >> n);
}

fn add64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    let lo = a.x + b.x;
    return vec2<u32>(lo, a.y + b.y + select(0u, 1u, lo < a.x));
}

fn sub64(a: vec2<u32>, b: vec2<u32>) -> vec2<u32> {
    return vec2<u32>(a.x - b.x, a.y - b.y - select(0u, 1u, a.x < b.x));
}

fn lt64(a: vec2<u32>, b: vec2<u32>) -> bool {
    return a.y < b.y || (a.y == b.y && a.x < b.x);
}

fn is_zero64(x: vec2<u32>) -> bool {
    return (x.x | x.y) == 0u;
}

// Number of significant bits (0 for zero).
fn bitlen64(x: vec2<u32>) -> u32 {
    if x.y != 0u {
        return 64u - countLeadingZeros(x.y);
    }
    return 32u - countLeadingZeros(x.x);
}

// x >> n, with every bit shifted out ORed into bit 0 (the sticky bit).
fn shr64_sticky(x: vec2<u32>, n: u32) -> vec2<u32> {
    let kept = shr64(x, n);
    let lost = !is_zero64(sub64(x, shl64(kept, n))) || (n >= 64u && !is_zero64(x));
    return vec2<u32>(kept.x | select(0u, 1u, lost), kept.y);
}

// ---- floats from integers, rounded once ----------------------------------

// x << n for n in 0 .. 63, without branches (a CPU rasterizer runs both
// sides of every branch; WGSL takes shift amounts modulo 32).
fn shl64_any(x: vec2<u32>, n: u32) -> vec2<u32> {
    let m = n & 31u;
    let carry = select(x.x >> (32u - m), 0u, m == 0u);
    let small = vec2<u32>(x.x << m, (x.y << m) | carry);
    return select(small, vec2<u32>(0u, x.x << m), n >= 32u);
}

// The f32 nearest to (-1)^neg · mag · 2^e (ties to even); zero gives +0,
// overflow ±inf, results below 2^-126 in magnitude ±0. mag is shifted up
// until its top bit is bit 63: the top 24 bits are kept, bit 39 is the
// rounding bit and everything below it the sticky bits.
fn round_pack(neg: bool, mag: vec2<u32>, e: i32) -> f32 {
    if is_zero64(mag) {
        return 0.0;
    }
    let top = bitlen64(mag) - 1u;
    let norm = shl64_any(mag, 63u - top);
    var keep = norm.y >> 8u;
    let half = (norm.y & 0x80u) != 0u;
    let sticky = (norm.y & 0x7Fu) != 0u || norm.x != 0u;
    var exp = i32(top) + e;
    if half && (sticky || (keep & 1u) == 1u) {
        keep = keep + 1u;
    }
    if keep == 0x1000000u {
        keep = 0x800000u;
        exp = exp + 1;
    }
    let sign = select(0u, 0x80000000u, neg);
    if exp > 127 {
        return bitcast<f32>(sign | 0x7F800000u);
    }
    if exp < -126 {
        return bitcast<f32>(sign);
    }
    return bitcast<f32>(sign | (u32(exp + 127) << 23u) | (keep & 0x7FFFFFu));
}

// A finite f32 as (-1)^neg · m · 2^q.
struct Unpacked {
    neg: bool,
    m: u32,
    q: i32,
}

fn unpack(x: f32) -> Unpacked {
    let bits = bitcast<u32>(x);
    let field = (bits >> 23u) & 0xFFu;
    let frac = bits & 0x7FFFFFu;
    if field == 0u {
        return Unpacked(bits >= 0x80000000u, frac, -149);
    }
    return Unpacked(bits >= 0x80000000u, frac | 0x800000u, i32(field) - 150);
}

// a + b · x for finite a, b, x, rounded once: a software FMA on integers.
fn soft_fma(b: f32, x: f32, a: f32) -> f32 {
    let ub = unpack(b);
    let ux = unpack(x);
    let ua = unpack(a);
    let p = mul64(ub.m, ux.m);
    let qp = ub.q + ux.q;
    let negp = ub.neg != ux.neg;
    if is_zero64(p) {
        return a;
    }
    let am = vec2<u32>(ua.m, 0u);
    if ua.m == 0u {
        return round_pack(negp, p, qp);
    }
    // Place the larger operand's top bit at bit 61 of a 64-bit window.
    let tp = qp + i32(bitlen64(p)) - 1;
    let ta = ua.q + i32(bitlen64(am)) - 1;
    let unit = max(tp, ta) - 61;
    var pw: vec2<u32>;
    if qp >= unit {
        pw = shl64(p, u32(qp - unit));
    } else {
        pw = shr64_sticky(p, u32(unit - qp));
    }
    var aw: vec2<u32>;
    if ua.q >= unit {
        aw = shl64(am, u32(ua.q - unit));
    } else {
        aw = shr64_sticky(am, u32(unit - ua.q));
    }
    if negp == ua.neg {
        return round_pack(ua.neg, add64(pw, aw), unit);
    }
    if lt64(pw, aw) {
        return round_pack(ua.neg, sub64(aw, pw), unit);
    }
    return round_pack(negp, sub64(pw, aw), unit);
}

// ---- Box–Muller in fixed point -------------------------------------------

// Two 64-bit integers, one per lane (the two Box–Muller pairs of a block
// run side by side: two independent chains a CPU rasterizer overlaps).
struct Wide2 {
    lo: vec2<u32>,
    hi: vec2<u32>,
}

// m · m per lane: three 16-bit products, not mulhilo's four.
fn square64x2(m: vec2<u32>) -> Wide2 {
    let m0 = m & vec2<u32>(0xFFFFu);
    let m1 = m >> vec2<u32>(16u);
    let p00 = m0 * m0;
    let p01 = m0 * m1;
    let p11 = m1 * m1;
    // m² = p11 · 2^32 + p01 · 2^17 + p00
    let lo = (p01 << vec2<u32>(17u)) + p00;
    let carry = select(vec2<u32>(0u), vec2<u32>(1u), lo < p00);
    return Wide2(lo, p11 + (p01 >> vec2<u32>(15u)) + carry);
}

// log2(u) per lane for 1 <= u <= 2^24, as a fixed-point number with 24
// fraction bits: the integer part from the leading bit, each fraction bit
// by squaring the mantissa (Q1.31) and halving when it reaches 2.
fn log2_q24(u: vec2<u32>) -> vec2<u32> {
    let n = firstLeadingBit(u);
    var s = Log2(u << (vec2<u32>(31u) - n), vec2<u32>(0u));
    // 24 steps written out: a loop's bookkeeping costs a CPU rasterizer
    // about as much as the step.
    s = log2_step(log2_step(log2_step(log2_step(log2_step(log2_step(s))))));
    s = log2_step(log2_step(log2_step(log2_step(log2_step(log2_step(s))))));
    s = log2_step(log2_step(log2_step(log2_step(log2_step(log2_step(s))))));
    s = log2_step(log2_step(log2_step(log2_step(log2_step(log2_step(s))))));
    return (n << vec2<u32>(24u)) | s.frac;
}

// log2_q24's state per lane: the mantissa (Q1.31) and the bits so far.
struct Log2 {
    m: vec2<u32>,
    frac: vec2<u32>,
}

// One fraction bit: square the mantissa; a square of 2 or more is a 1,
// and is halved.
fn log2_step(s: Log2) -> Log2 {
    let sq = square64x2(s.m);
    let top = sq.hi >= vec2<u32>(0x80000000u);
    return Log2(
        select((sq.hi << vec2<u32>(1u)) | (sq.lo >> vec2<u32>(31u)), sq.hi, top),
        (s.frac << vec2<u32>(1u)) | select(vec2<u32>(0u), vec2<u32>(1u), top),
    );
}

// floor(sqrt(x)) for a 64-bit x of 63 or 64 significant bits (its root has
// 32): a float estimate, one Newton step on the exact integer residual,
// then exact corrections until r² <= x < (r + 1)². The root is unique, so
// however the device rounds its float sqrt and division, the result is the
// same (the twin takes it digit by digit); the float steps only make the
// corrections few (at most one or two here).
fn isqrt64(x: vec2<u32>) -> u32 {
    let xf = f32(x.y) * 4294967296.0 + f32(x.x);
    var r = max(u32(min(sqrt(xf), 4294967040.0)), 1u);
    let sq0 = mul64(r, r);
    let above = lt64(x, sq0);
    let e = select(sub64(x, sq0), sub64(sq0, x), above);
    let step = u32(round((f32(e.y) * 4294967296.0 + f32(e.x)) / (2.0 * f32(r))));
    if above {
        r = max(r - min(step, r - 1u), 1u);
    } else {
        r = r + min(step, 0xFFFFFFFFu - r);
    }
    // sq tracks r² exactly: (r ± 1)² = r² ± 2r + 1.
    var sq = mul64(r, r);
    loop {
        if !lt64(x, sq) {
            break;
        }
        sq = sub64(sq, sub64(vec2<u32>(r << 1u, r >> 31u), vec2<u32>(1u, 0u)));
        r = r - 1u;
    }
    loop {
        let next = add64(sq, add64(vec2<u32>(r << 1u, r >> 31u), vec2<u32>(1u, 0u)));
        if r == 0xFFFFFFFFu || lt64(x, next) {
            break;
        }
        sq = next;
        r = r + 1u;
    }
    return r;
}

// CORDIC's state per lane: the vector (x, y) and z, the angle left to turn.
struct Cordic {
    x: vec2<i32>,
    y: vec2<i32>,
    z: vec2<i32>,
}

// One CORDIC rotation by ±atan(2^-i) in both lanes.
fn cordic_step(v: Cordic, i: u32, atan_q30: i32) -> Cordic {
    let s = vec2<u32>(i);
    let xs = v.x >> s;
    let ys = v.y >> s;
    let up = v.z >= vec2<i32>(0);
    let a = vec2<i32>(atan_q30);
    return Cordic(
        select(v.x + ys, v.x - ys, up),
        select(v.y - xs, v.y + xs, up),
        select(v.z + a, v.z - a, up),
    );
}

// (cos, sin) of z · 2^-30 radians per lane, z in [0, π/2 · 2^30), each
// times 2^30: CORDIC, written out step by step with atan(2^-i) · 2^30 as
// literals (a constant array indexed in a loop costs software rasterizers a
// local copy of the whole table per step).
fn cordic_q30(angle: vec2<i32>) -> Cordic {
    // x starts at the CORDIC gain K = 0.60725…, times 2^30.
    var v = Cordic(vec2<i32>(652032874), vec2<i32>(0), angle);
    v = cordic_step(v, 0u, 843314857);
    v = cordic_step(v, 1u, 497837829);
    v = cordic_step(v, 2u, 263043837);
    v = cordic_step(v, 3u, 133525159);
    v = cordic_step(v, 4u, 67021687);
    v = cordic_step(v, 5u, 33543516);
    v = cordic_step(v, 6u, 16775851);
    v = cordic_step(v, 7u, 8388437);
    v = cordic_step(v, 8u, 4194283);
    v = cordic_step(v, 9u, 2097149);
    v = cordic_step(v, 10u, 1048576);
    v = cordic_step(v, 11u, 524288);
    v = cordic_step(v, 12u, 262144);
    v = cordic_step(v, 13u, 131072);
    v = cordic_step(v, 14u, 65536);
    v = cordic_step(v, 15u, 32768);
    v = cordic_step(v, 16u, 16384);
    v = cordic_step(v, 17u, 8192);
    v = cordic_step(v, 18u, 4096);
    v = cordic_step(v, 19u, 2048);
    v = cordic_step(v, 20u, 1024);
    v = cordic_step(v, 21u, 512);
    v = cordic_step(v, 22u, 256);
    v = cordic_step(v, 23u, 128);
    v = cordic_step(v, 24u, 64);
    v = cordic_step(v, 25u, 32);
    v = cordic_step(v, 26u, 16);
    v = cordic_step(v, 27u, 8);
    v = cordic_step(v, 28u, 4);
    v = cordic_step(v, 29u, 2);
    return v;
}

// N(0, 1) from two 32-bit words, per pair of x: r = sqrt(-2 ln u0) with
// u0 = ((x0 >> 8) + 1) · 2^-24 in (0, 1], angle 2π · x1 · 2^-32; the
// block's two pairs, (x.x, x.y) and (x.z, x.w), side by side.
fn box_muller(x: vec4<u32>) -> vec4<f32> {
    // -2 ln u0 = 2 ln 2 · (24 - log2((x0 >> 8) + 1)), in units of 2^-54.
    let d = vec2<u32>(24u << 24u) - log2_q24((x.xz >> vec2<u32>(8u)) + vec2<u32>(1u));
    // The top two bits pick the quadrant; the other 30 the angle inside it.
    let t0 = mul64(x.y & 0x3FFFFFFFu, 3373259426u); // round(π/2 · 2^31)
    let t1 = mul64(x.w & 0x3FFFFFFFu, 3373259426u);
    let cs = cordic_q30(vec2<i32>(
        i32((t0.y << 1u) | (t0.x >> 31u)),
        i32((t1.y << 1u) | (t1.x >> 31u)),
    ));
    let q = x.yw >> vec2<u32>(30u);
    let q1 = q == vec2<u32>(1u);
    let q2 = q == vec2<u32>(2u);
    let q3 = q == vec2<u32>(3u);
    // Quadrant q turns (cos, sin) by q · π/2.
    let rx = select(select(select(cs.x, -cs.y, q1), -cs.x, q2), cs.y, q3);
    let ry = select(select(select(cs.y, cs.x, q1), -cs.y, q2), -cs.x, q3);
    let z01 = polar(d.x, rx.x, ry.x);
    let z23 = polar(d.y, rx.y, ry.y);
    return vec4<f32>(z01, z23);
}

// r · (rx, ry) rounded to f32, r = sqrt(d · 2 ln 2) in fixed point (d from
// log2_q24, in units of 2^-24; rx, ry from CORDIC, in units of 2^-30).
fn polar(d: u32, rx: i32, ry: i32) -> vec2<f32> {
    let y = mul64(d, 1488522236u); // round(2 ln 2 · 2^30)
    // sqrt with the input shifted up by an even amount so the root keeps 32 bits.
    let k = (64u - bitlen64(y)) / 2u;
    let r = isqrt64(shl64(y, 2u * k)); // sqrt(-2 ln u0) · 2^(27 + k)
    let e = -57 - i32(k);
    return vec2<f32>(
        round_pack(rx < 0, mul64(r, u32(abs(rx))), e),
        round_pack(ry < 0, mul64(r, u32(abs(ry))), e),
    );
}

// [0, 1) with 24 random bits; exact.
fn unit_open(x: u32) -> f32 {
    return f32(x >> 8u) * 5.960464477539063e-08; // 2^-24
}

// The Philox block of invocation `i` and where its first lane lands in `out`.
fn block_bits(i: u32) -> vec4<u32> {
    let lo = params.first_block.x + i;
    let hi = params.first_block.y + select(0u, 1u, lo < i);
    return philox4x32_10(vec4<u32>(lo, hi, 0u, 0u), params.key);
}

// Output position of lane `lane` of invocation `i`, or none if outside [begin, end).
fn position(i: u32, lane: u32) -> u32 {
    let k = i * 4u + lane;
    if k < params.skip {
        return 0xFFFFFFFFu;
    }
    let p = params.begin + (k - params.skip);
    return select(0xFFFFFFFFu, p, p < params.end);
}

// Whether to apply a + b · x (the software FMA); false for the default
// N(0, 1) and U(0, 1), where 0 + 1 · x is x itself, so their pipelines
// carry none of its code (a CPU rasterizer pays for every branch it
// compiles, taken or not).
override AFFINE: bool = true;

// Philox blocks per invocation (`fill` writes them out): fewer, longer
// invocations cost a CPU rasterizer less to launch.
const ROUNDS: u32 = 4u;

// Block `i`'s four values at their positions, if it has work.
fn put_block(i: u32) {
    if i >= params.blocks {
        return;
    }
    let v = block_values(i);
    put(position(i, 0u), v.x);
    put(position(i, 1u), v.y);
    put(position(i, 2u), v.z);
    put(position(i, 3u), v.w);
}

fn put(p: u32, bits: u32) {
    if p != 0xFFFFFFFFu {
#ifdef BITS
        out[p] = bits;
#else
        out[p] = bitcast<f32>(bits);
#endif
    }
}

// The four values of Philox block `i`, as bits.
fn block_values(i: u32) -> vec4<u32> {
    let x = block_bits(i);
#ifdef BITS
    return x;
#else
#ifdef NORMAL
    var u = box_muller(x);
#else
    var u = vec4<f32>(unit_open(x.x), unit_open(x.y), unit_open(x.z), unit_open(x.w));
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

// One body, three variants (defs): BITS writes the raw Philox words to a
// u32 buffer (for testing the stream); NORMAL writes mean + std · N(0, 1);
// neither writes lo + (hi - lo) · U[0, 1). (a, b) are (lo, hi - lo) or
// (mean, std). Invocation t computes blocks t · ROUNDS .. (t + 1) · ROUNDS.
@compute @workgroup_size(WORKGROUP_SIZE)
fn fill(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = invocation(wid, nwg, lid);
    put_block(t * ROUNDS);
    put_block(t * ROUNDS + 1u);
    put_block(t * ROUNDS + 2u);
    put_block(t * ROUNDS + 3u);
}
