// uniform_init, part 2 of 4 (after shaders/uniform_init.wgsl; host:
// src/kernels/uniform_init.rs): N(0, 1) from Philox words by Box–Muller in
// fixed point: log2 by repeated squaring (or its shortcut, where that
// settles the same bits), an exact integer square root,
// CORDIC for cos and sin, each result rounded to f32 once (round_pack, in
// uniform_init/fixed_point.wgsl). The CPU twin (src/cpu/uniform_init.rs)
// runs the same integer steps.

// ---- Box–Muller in fixed point -------------------------------------------

// log2_shortcut's table, from the twin's log2_table: entry i's words are
// w0[i] = c_i << 16 | λ_i's low 16 bits and w1[i] = λ_i >> 16 (four
// entries to a vec4: a uniform's array stride is 16 bytes). A uniform
// buffer: lavapipe reads a word at a lane's own index in about 27
// instructions (so two words, not three), a storage buffer in a loop over
// the lanes with a bounds check each (that made the whole fill 1.6x
// slower), a texel of a texture slower still.
struct Log2Table {
    w0: array<vec4<u32>, 64>,
    w1: array<vec4<u32>, 64>,
}
@group(0) @binding(2) var<uniform> log2_table: Log2Table;

// The slack around each step, in units of 2^-40 (the host passes the
// twin's LOG2_SLACK_BELOW and LOG2_SLACK_ABOVE, which its test checks).
override LOG2_SLACK_BELOW: u32;
override LOG2_SLACK_ABOVE: u32;

// log2's state per lane: the mantissa (Q1.31) and the fraction bits so far.
struct Log2 {
    m: vec2<u32>,
    frac: vec2<u32>,
}

// One fraction bit: square the mantissa (three 16-bit products; m² =
// p11 · 2^32 + p01 · 2^17 + p00); a square of 2 or more is a 1, and is
// halved. Only the square's top 33 bits are kept: c, the sum of its middle
// parts, gives the carry into the high word (c >> 15) and bit 31 of the low
// word (c's bit 14) without forming the low word, which keeps the chain of
// dependent steps short.
fn log2_step(s: Log2) -> Log2 {
    let m0 = s.m & vec2<u32>(0xFFFFu);
    let m1 = s.m >> vec2<u32>(16u);
    let p00 = m0 * m0;
    let p01 = m0 * m1;
    let p11 = m1 * m1;
    let c = (p01 & vec2<u32>(0x7FFFu)) + (p00 >> vec2<u32>(17u));
    let hi = p11 + (p01 >> vec2<u32>(15u)) + (c >> vec2<u32>(15u));
    let top = hi >> vec2<u32>(31u);
    let doubled = (hi << vec2<u32>(1u)) | ((c >> vec2<u32>(14u)) & vec2<u32>(1u));
    return Log2(select(doubled, hi, top == vec2<u32>(1u)), (s.frac << vec2<u32>(1u)) | top);
}

// floor(sqrt(x)) for a 64-bit x of 63 or 64 significant bits (its root has
// 32), or 0: a float estimate r0, one Newton step on the exact integer
// residual, then one exact correction. WGSL allows sqrt about 4.5 ulp and
// division 2.5, so |r0 - sqrt(x)| < 2^11 (the estimate reads only x's high
// word), and the Newton step lands within 0.5 + 2^-7 of sqrt(x): its
// overshoot (r0 - sqrt(x))² / 2 r0 is under 2^-9, the float quotient's
// error under 2^-9, the residual's dropped low bits under 2^-16, and the
// rounding 0.5. So r1 is the root or the root + 1, and r1² > x tells which.
// The root is unique, so however the device rounds, the result is the same
// (the twin takes it digit by digit; its isqrt_newton mirrors this one).
// Every conversion is between f32 and i32, which a CPU has one instruction
// for (u32 takes about six). No loops: a CPU rasterizer pays for a loop's
// bookkeeping and the values kept live across it.
fn isqrt64(x: vec2<u32>) -> u32 {
    let xf = f32(i32(x.y >> 1u)) * 8589934592.0; // 2^33
    // r0 in [2^31, 2^32) as an i32 offset by 2^31 (and 0 for x = 0).
    let r0 = bitcast<u32>(i32(min(sqrt(xf), 4294967040.0) - 2147483648.0)) + 0x80000000u;
    // The residual x - r0², two's complement, under 2^45 in magnitude: its
    // bits from 2^16 up fit an i32.
    let e = sub64(x, mul64(r0, r0));
    let eh = bitcast<i32>((e.y << 16u) | (e.x >> 16u));
    let step = i32(round(f32(eh) * 65536.0 / max(f32(i32(r0 >> 1u)) * 4.0, 1.0)));
    let sum = r0 + bitcast<u32>(step);
    let r1 = select(sum, 0xFFFFFFFFu, step > 0 && sum < r0);
    return r1 - select(0u, 1u, lt64(x, mul64(r1, r1)));
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

// One CORDIC rotation from step 10 on, where z is no longer kept: `w` (z
// after step 9, plus 2^21) has bit 31 - i set exactly where step i turns
// up (see `cordic`).
fn cordic_tail_step(v: Cordic, i: u32, w: vec2<u32>) -> Cordic {
    let s = vec2<u32>(i);
    let xs = v.x >> s;
    let ys = v.y >> s;
    let up = bitcast<vec2<i32>>(w << s) < vec2<i32>(0);
    return Cordic(select(v.x + ys, v.x - ys, up), select(v.y - xs, v.y + xs, up), v.z);
}

// (cos, sin) of angle · 2^-30 radians, angle in [0, π/2 · 2^30), each times
// 2^30: CORDIC, x starting at the CORDIC gain K = 0.60725… (times 2^30),
// with atan(2^-i) · 2^30 as literals (a constant array indexed in a loop
// costs software rasterizers a local copy of the whole table per step), all
// 30 steps written out (a loop's bookkeeping costs a CPU rasterizer about
// as much as a step). From step 10 on atan(2^-i) · 2^30 is 2^(30 - i)
// exactly and z after step 9 lies within ±2^21, so z's walk is
// non-restoring binary: step i turns up where bit 31 - i of z + 2^21 is
// set, and z need not be kept (the twin's test holds this for every z).
fn cordic(angle: vec2<i32>) -> Cordic {
    // Step 0 turns up for every angle in [0, π/2): (K, 0) becomes (K, K).
    var v = Cordic(vec2<i32>(652032874), vec2<i32>(652032874), angle - vec2<i32>(843314857));
    v = cordic_step(v, 1u, 497837829);
    v = cordic_step(v, 2u, 263043837);
    v = cordic_step(v, 3u, 133525159);
    v = cordic_step(v, 4u, 67021687);
    v = cordic_step(v, 5u, 33543516);
    v = cordic_step(v, 6u, 16775851);
    v = cordic_step(v, 7u, 8388437);
    v = cordic_step(v, 8u, 4194283);
    v = cordic_step(v, 9u, 2097149);
    let w = bitcast<vec2<u32>>(v.z + vec2<i32>(2097152));
    v = cordic_tail_step(v, 10u, w);
    v = cordic_tail_step(v, 11u, w);
    v = cordic_tail_step(v, 12u, w);
    v = cordic_tail_step(v, 13u, w);
    v = cordic_tail_step(v, 14u, w);
    v = cordic_tail_step(v, 15u, w);
    v = cordic_tail_step(v, 16u, w);
    v = cordic_tail_step(v, 17u, w);
    v = cordic_tail_step(v, 18u, w);
    v = cordic_tail_step(v, 19u, w);
    v = cordic_tail_step(v, 20u, w);
    v = cordic_tail_step(v, 21u, w);
    v = cordic_tail_step(v, 22u, w);
    v = cordic_tail_step(v, 23u, w);
    v = cordic_tail_step(v, 24u, w);
    v = cordic_tail_step(v, 25u, w);
    v = cordic_tail_step(v, 26u, w);
    v = cordic_tail_step(v, 27u, w);
    v = cordic_tail_step(v, 28u, w);
    return cordic_tail_step(v, 29u, w);
}

// log2's shortcut (the host uploads the twin's log2_table; the twin's
// log2_q24_shortcut mirrors this and a test holds it to the squaring for
// every input): the last 21 fraction bits of log2 for the mantissa m (Q1.31)
// that the first three squarings leave. Entry i = m's 8 bits after the
// leading one gives c_i ≈ 256 / (256 + i) in Q1.15 and λ_i = -log2(c_i) ·
// 2^40; m · c_i = 1 + r with r < 2^-8 + 2^-14, and log2(m) = λ_i + (r -
// r²/2 + r³/3 - r⁴/4) / ln 2: r / ln 2 in integers, the small rest in f32
// (its error is within the slack whatever the device's rounding). Returns
// (the 21 bits, 1) where the sum lies far enough from a step of 2^-21 that
// the squaring's truncations (they lower the result by at most 739 ·
// 2^-40) cannot cross it, else (_, 0) and the caller squares on.
fn log2_shortcut(m: u32) -> vec2<u32> {
    let i = (m >> 23u) & 0xFFu;
    let w0 = log2_table.w0[i >> 2u][i & 3u];
    let w1 = log2_table.w1[i >> 2u][i & 3u];
    // m · c_i = 1 + r in Q2.62 from m · (c_i in Q1.15), two 16-bit
    // products: v · 2^16 + (p0's low 16 bits), v = p1 + (p0 >> 16).
    let c = w0 >> 16u;
    let p0 = (m & 0xFFFFu) * c;
    let v = (m >> 16u) * c + (p0 >> 16u);
    let r = ((v - 0x40000000u) << 9u) | ((p0 & 0xFFFFu) >> 7u); // r · 2^39
    let first = mul64(r, 3098164009u); // round(2^31 / ln 2)
    let rf = f32(i32(r >> 1u)) * 3.6379788e-12; // 2^-38 (an i32 converts in one instruction)
    let rest = rf * rf * (-0.5 + rf * (0.33333334 - rf * 0.25)) * 1.58626e12; // 2^40 / ln 2
    let lambda = vec2<u32>((w1 << 16u) | (w0 & 0xFFFFu), w1 >> 16u);
    let sum = add64(lambda, vec2<u32>((first.x >> 30u) | (first.y << 2u), first.y >> 30u));
    let a = sub64(sum, vec2<u32>(u32(i32(-rest)), 0u));
    let low = a.x & 0x7FFFFu;
    let sure = low >= LOG2_SLACK_BELOW && low <= 0x7FFFFu - LOG2_SLACK_ABOVE;
    return vec2<u32>(((a.x >> 19u) | (a.y << 13u)) & 0x1FFFFFu, select(0u, 1u, sure));
}

// N(0, 1) from two 32-bit words, per pair of x: r = sqrt(-2 ln u0) with
// u0 = ((x0 >> 8) + 1) · 2^-24 in (0, 1], angle 2π · x1 · 2^-32; the
// block's two pairs, (x.x, x.y) and (x.z, x.w), side by side.
fn box_muller(x: vec4<u32>) -> vec4<f32> {
    // -2 ln u0 = 2 ln 2 · (24 - log2((x0 >> 8) + 1)), in units of 2^-54.
    // The top two bits pick the quadrant; the other 30 the angle inside it.
    let t0 = mul64(x.y & 0x3FFFFFFFu, 3373259426u); // round(π/2 · 2^31)
    let t1 = mul64(x.w & 0x3FFFFFFFu, 3373259426u);
    let cs = cordic(vec2<i32>(
        i32((t0.y << 1u) | (t0.x >> 31u)),
        i32((t1.y << 1u) | (t1.x >> 31u)),
    ));
    // log2(u) for u = (x0 >> 8) + 1 in 1 ..= 2^24, with 24 fraction bits:
    // the integer part from the leading bit, the fraction by repeated
    // squaring of the mantissa (Q1.31), halving it when it reaches 2: three
    // steps, then, mostly, the shortcut's same bits for the other 21
    // (each step first halves how often it cannot tell: 0.15 % of inputs).
    // A loop, not an if, around the rest of the squaring: a CPU rasterizer
    // runs a loop's body only while some lane needs it (once, masked, when
    // none does), but both sides of an if.
    let u = (x.xz >> vec2<u32>(8u)) + vec2<u32>(1u);
    let n = vec2<u32>(31u) - vec2<u32>(clz32(u.x), clz32(u.y)); // firstLeadingBit(u), u >= 1
    var s = Log2(u << (vec2<u32>(31u) - n), vec2<u32>(0u));
    s = log2_step(log2_step(log2_step(s)));
    let head = s.frac;
    let g0 = log2_shortcut(s.m.x);
    let g1 = log2_shortcut(s.m.y);
    let sure = vec2<u32>(g0.y, g1.y) == vec2<u32>(1u);
    var steps = select(21u, 0u, all(sure));
    loop {
        if steps == 0u {
            break;
        }
        s = log2_step(s);
        steps = steps - 1u;
    }
    let frac = select(s.frac, (head << vec2<u32>(21u)) | vec2<u32>(g0.x, g1.x), sure);
    let d = vec2<u32>(24u << 24u) - ((n << vec2<u32>(24u)) | frac);
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
// log2, in units of 2^-24; rx, ry from CORDIC, in units of 2^-30).
fn polar(d: u32, rx: i32, ry: i32) -> vec2<f32> {
    // y = d · round(2 ln 2 · 2^30), shifted up by an even 2k so that the
    // root keeps 32 bits (y · 4^k has 63 or 64): d by the even part of its
    // leading zeros first (a 32-bit shift), then y by 2 more where that
    // leaves it under 2^62.
    let j = clz32(d) >> 1u;
    let y = mul64(d << (2u * j), 1488522236u);
    let short = y.y < 0x40000000u;
    let k = j + select(0u, 1u, short);
    let r = isqrt64(select(y, vec2<u32>(y.x << 2u, (y.y << 2u) | (y.x >> 30u)), short)); // sqrt(-2 ln u0) · 2^(27 + k)
    let e = -57 - i32(k);
    // |r · rx| · 2^e lies in [2^-89, 2^5] or is 0: no overflow, no subnormals.
    return vec2<f32>(
        round_pack_normal(rx < 0, mul64(r, u32(abs(rx))), e),
        round_pack_normal(ry < 0, mul64(r, u32(abs(ry))), e),
    );
}
