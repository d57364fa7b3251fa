// uniform_init, part 3 of 4 (after shaders/uniform_init.wgsl and
// uniform_init/box_muller.wgsl; host: src/kernels/uniform_init.rs): the
// integer arithmetic that keeps every float result independent of the
// device's float rounding. 64-bit integers as vec2<u32>(lo, hi); round_pack
// rounds one to f32 once; soft_fma is `a + b · x` rounded once.

// ---- 64-bit integers as vec2<u32>(lo, hi) -------------------------------

fn mul64(a: u32, b: u32) -> vec2<u32> {
    let p = mulhilo(a, b);
    return vec2<u32>(p.y, p.x);
}

// x << n and x >> n for any n (0 from 64 on), without branches: a CPU
// rasterizer runs both sides of every branch, and WGSL takes shift amounts
// modulo 32, hence the selects.
fn shl64(x: vec2<u32>, n: u32) -> vec2<u32> {
    let m = n & 31u;
    let carry = select(x.x >> (32u - m), 0u, m == 0u);
    let small = vec2<u32>(x.x << m, (x.y << m) | carry);
    let big = vec2<u32>(0u, select(x.x << m, 0u, n >= 64u));
    return select(small, big, n >= 32u);
}

fn shr64(x: vec2<u32>, n: u32) -> vec2<u32> {
    let m = n & 31u;
    let carry = select(x.y << (32u - m), 0u, m == 0u);
    let small = vec2<u32>((x.x >> m) | carry, x.y >> m);
    let big = vec2<u32>(select(x.y >> m, 0u, n >= 64u), 0u);
    return select(small, big, n >= 32u);
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

// countLeadingZeros(x), from the float exponent of x's upper half (or of
// x itself, below 2^16): a CPU rasterizer expands the vector count into
// about 19 instructions, this into 9. Integers below 2^16 convert to f32
// exactly on every device, so the result does not depend on its rounding.
fn clz32(x: u32) -> u32 {
    let upper = x >> 16u;
    let high = upper != 0u;
    let e = bitcast<u32>(f32(i32(select(x, upper, high)))) >> 23u; // 127 + floor(log2), 0 for 0
    return select(select(158u, 142u, high) - e, 32u, x == 0u);
}

// Number of significant bits (0 for zero).
fn bitlen64(x: vec2<u32>) -> u32 {
    let high = x.y != 0u;
    return select(32u, 64u, high) - clz32(select(x.x, x.y, high));
}

// x >> n, with every bit shifted out ORed into bit 0 (the sticky bit).
fn shr64_sticky(x: vec2<u32>, n: u32) -> vec2<u32> {
    let kept = shr64(x, n);
    let lost = !is_zero64(sub64(x, shl64(kept, n))) || (n >= 64u && !is_zero64(x));
    return vec2<u32>(kept.x | select(0u, 1u, lost), kept.y);
}

// ---- floats from integers, rounded once ----------------------------------

// The f32 nearest to (-1)^neg · mag · 2^e (ties to even); zero gives +0,
// overflow ±inf, results below 2^-126 in magnitude ±0.
fn round_pack(neg: bool, mag: vec2<u32>, e: i32) -> f32 {
    let r = rounded(mag, e);
    let sign = select(0u, 0x80000000u, neg);
    // Selects, not early returns: a CPU rasterizer runs every branch.
    let ranged = select(select(sign | r.x, sign, i32(r.y) < -126), sign | 0x7F800000u, i32(r.y) > 127);
    return bitcast<f32>(select(ranged, 0u, is_zero64(mag)));
}

// round_pack where the result is 0 or known to lie in [2^-126, 2^128).
fn round_pack_normal(neg: bool, mag: vec2<u32>, e: i32) -> f32 {
    let bits = select(0u, 0x80000000u, neg) | rounded(mag, e).x;
    return bitcast<f32>(select(bits, 0u, is_zero64(mag)));
}

// round_pack's magnitude bits for a nonzero mag in range, and the result's
// exponent. mag is shifted up until its top bit is bit 63: the top 24 bits
// are kept, bit 39 is the rounding bit and everything below it the sticky
// bits.
fn rounded(mag: vec2<u32>, e: i32) -> vec2<u32> {
    // The top bit to bit 63: a word up where the high word is empty, then
    // by the high word's leading zeros (one count, no 64-bit shift).
    let high = mag.y != 0u;
    let w = select(vec2<u32>(0u, mag.x), mag, high);
    let c = clz32(w.y);
    let top = select(31u, 63u, high) - c;
    let norm = vec2<u32>(w.x << c, (w.y << c) | select(w.x >> (32u - c), 0u, c == 0u));
    let half = (norm.y & 0x80u) != 0u;
    let sticky = (norm.y & 0x7Fu) != 0u || norm.x != 0u;
    // keep is in 2^23 ..= 2^24 after rounding; 2^24 (a carry) is 2^23 at
    // the next exponent, which the sum below gives for free.
    let keep = (norm.y >> 8u) + select(0u, 1u, half && (sticky || (norm.y & 0x100u) != 0u));
    let exp = i32(top) + e + i32(keep >> 24u);
    let bits = (u32(exp - i32(keep >> 24u) + 126) << 23u) + keep;
    return vec2<u32>(bits, bitcast<u32>(exp));
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
