// exact_arith, the functions (shaders/exact_arith.wgsl is the element-wise
// kernel that tests them; other kernels take them with a
// `// with: exact_arith/ops.wgsl` line): f32 ×, ÷ and √ whose results are
// IEEE 754's, rounded to nearest even, subnormals included, on every device.
//
// Why not the operators: WGSL (like Vulkan and SPIR-V without NoContraction,
// which naga does not emit) lets a compiler turn `a * b + c` into one fused
// multiply-add, and NVIDIA's does, so `w - lr * g` rounds once there and
// twice on the CPU twin; and it allows 2.5 ulp for `/` and more for `sqrt`.
// So, in two layers, each exact on its own:
// - The general functions (mul_general, div_general, sqrt_general) take any
//   operands. mul_general forms the product in integers; div_general and
//   sqrt_general take a hardware estimate on the integer mantissas, then
//   settle it with exact integer remainders. Each estimate may be off by
//   tens of ulps (bounds below); the result is the same. ±0, ±∞ and NaN
//   follow IEEE's tables, built here, not by the hardware; every NaN is
//   0x7FC00000.
// - The checked common case (mul_checked, div_checked, sqrt_checked), for
//   normal operands and results: the hardware's own result, proven or
//   corrected by one exact integer residual; whatever it cannot prove goes
//   to the general function. EXACT_CHECKED says whether it is tried.
// Either way a result reaches the next `+` as integer arithmetic on bits,
// not as a product, so nothing is left to fuse.
// Integers meet floats through i32, never u32: every value converted here
// is below 2^31 (and below 2^24, or even, where it becomes an f32, so it
// converts exactly), and a CPU rasterizer has one vector instruction for
// i32 ↔ f32 but a sequence for u32 ↔ f32.
// No loops (Mesa's loop limit counts every iteration; kernels::LOOP_BUDGET),
// and the CPU twin of every function is Rust's own `*`, `/` and `sqrt`.

// Whether mul_rn, div_rn and sqrt_rn try the checked common case (below)
// before the general functions. The host sets it per adapter
// (pipeline.rs): off on a CPU rasterizer, which runs both sides of a branch
// that differs between lanes under a mask, so the check only adds work
// there; on for a GPU, where a branch no lane takes costs nothing. The
// results are the same bits either way (tests/exact_arith.rs runs both).
override EXACT_CHECKED: bool = true;

// Only the tests set this: it moves every hardware result and estimate
// (finite and nonzero) by this many ulps, to show that the integer checks
// and corrections, not the device's rounding, decide the result
// (tests/exact_arith.rs).
override EXACT_ESTIMATE_NUDGE: i32 = 0;

const EXACT_NAN: u32 = 0x7FC00000u;
const EXACT_INF: u32 = 0x7F800000u;

// A count (a bag's ids, a row's positions, a width) as f32, rounded to
// nearest even as the twin's `as f32` rounds it, on every device: WGSL lets
// a u32 past 2^24 convert to either neighbour. Both halves convert exactly
// (through i32), the product by 4096 is exact, and the one `+` rounds once
// (fused or not).
fn f32_of_count(u: u32) -> f32 {
    return f32(i32(u >> 12u)) * 4096.0 + f32(i32(u & 4095u));
}

// A finite nonzero magnitude (sign bit clear) as m · 2^(e − 150) with
// m in [2^23, 2^24): subnormals are normalised, so no flush-to-zero reaches
// them. (Zero, ∞ and NaN give garbage the callers select away.)
struct Finite {
    m: u32,
    e: i32,
}

fn finite_of(x: u32) -> Finite {
    let field = x >> 23u;
    let frac = x & 0x7FFFFFu;
    // A subnormal: frac · 2^-149 = (frac << s) · 2^(1 − s − 150), s the
    // shift that brings its leading bit to bit 23: 150 less the float
    // exponent of frac (exact, as every integer below 2^24 converts), which
    // a CPU rasterizer computes in a third of a vector countLeadingZeros.
    let sub = field == 0u;
    // (Masked: for a zero, 150 − 0, out of a shift's range.)
    let s = select(0u, (150u - (bitcast<u32>(f32(i32(frac))) >> 23u)) & 31u, sub);
    return Finite(select(frac | 0x800000u, frac << s, sub), select(i32(field), 1 - i32(s), sub));
}

// The bits of the f32 nearest (ties to even) to (x + ε) · 2^(e − 151),
// where x is in [2^24, 2^25) (24 bits and the rounding bit) and ε in [0, 1)
// is nonzero exactly when `sticky`: the one rounding of every function here.
fn pack_rn(x: u32, sticky: bool, e: i32) -> u32 {
    // Below the normal range (e ≤ 0) shift right by 1 − e first, every bit
    // shifted out joining the sticky bits; past 26 nothing is left of x.
    let t = u32(clamp(1 - e, 0, 26));
    let y = x >> t;
    let st = sticky | ((x & ((1u << t) - 1u)) != 0u);
    let up = ((y & 1u) != 0u) & (st | ((y & 2u) != 0u));
    let m = (y >> 1u) + select(0u, 1u, up);
    // m is in [2^23, 2^24] for a normal result: the implicit bit adds 1 to
    // the exponent field, and a carry to 2^24 one more (to ∞ from e = 254).
    let bits = (u32(max(e, 1) - 1) << 23u) + m;
    return select(bits, EXACT_INF, e >= 255);
}

// Every function is written without branches: the finite path runs on
// whatever it is given, and the special results are selected at the end.
// Conditions use `|` and `&`, never `||` and `&&`: naga turns each of those
// into a branch, and SwiftShader's compile time explodes with them (a
// probe kernel with eight mul_rn did not compile within a minute; with `|`
// and `&`, in a tenth of a second).

// a · b, rounded once, for any operands.
fn mul_general(a: f32, b: f32) -> f32 {
    let ua = bitcast<u32>(a);
    let ub = bitcast<u32>(b);
    let sign = (ua ^ ub) & 0x80000000u;
    let xa = ua & 0x7FFFFFFFu;
    let xb = ub & 0x7FFFFFFFu;
    let fa = finite_of(xa);
    let fb = finite_of(xb);
    // P = ma · mb in [2^46, 2^48) as hi · 2^32 + lo, from 16-bit pieces
    // (ma = a1 · 2^16 + a0 with a1 < 2^8).
    let a0 = fa.m & 0xFFFFu;
    let a1 = fa.m >> 16u;
    let b0 = fb.m & 0xFFFFu;
    let b1 = fb.m >> 16u;
    let low = a0 * b0;
    let mid = a1 * b0 + a0 * b1; // < 2^25
    let lo = low + (mid << 16u);
    let hi = a1 * b1 + (mid >> 16u) + select(0u, 1u, lo < low);
    // x: P's top 25 bits (P ≈ x · 2^sh); the bits below are sticky.
    let sh = select(22u, 23u, hi >= 0x8000u);
    let x = (hi << (32u - sh)) | (lo >> sh);
    // a · b = P · 2^(ea + eb − 300) = x · 2^(ea + eb + sh − 300)
    let finite = pack_rn(x, (lo << (32u - sh)) != 0u, fa.e + fb.e + i32(sh) - 149);
    // IEEE's table: NaN in, or 0 · ∞, gives NaN; else ∞ in gives ∞, 0 in gives 0.
    let nan = (xa > EXACT_INF) | (xb > EXACT_INF) | ((xa == EXACT_INF) & (xb == 0u)) | ((xb == EXACT_INF) & (xa == 0u));
    var mag = select(finite, EXACT_INF, (xa == EXACT_INF) | (xb == EXACT_INF));
    mag = select(mag, 0u, (xa == 0u) | (xb == 0u));
    return bitcast<f32>(select(sign | mag, EXACT_NAN, nan));
}

// 2^n as an f32, for n below 128.
fn pow2(n: u32) -> f32 {
    return bitcast<f32>((127u + n) << 23u);
}

// A hardware estimate, moved by the tests' nudge (0 in every kernel, where
// this folds away). Zero, ∞ and NaN stay: a candidate within a few ulps of
// an infinite result is no model of a device.
fn nudged(estimate: f32) -> f32 {
    let bits = bitcast<u32>(estimate);
    let moved = bitcast<u32>(bitcast<i32>(bits) + EXACT_ESTIMATE_NUDGE);
    let finite = ((bits << 1u) != 0u) & ((bits & 0x7FFFFFFFu) < EXACT_INF);
    return bitcast<f32>(select(bits, moved, finite));
}

// a / b, rounded once, for any operands.
fn div_general(a: f32, b: f32) -> f32 {
    let ua = bitcast<u32>(a);
    let ub = bitcast<u32>(b);
    let sign = (ua ^ ub) & 0x80000000u;
    let xa = ua & 0x7FFFFFFFu;
    let xb = ub & 0x7FFFFFFFu;
    let fa = finite_of(xa);
    // A zero, ∞ or NaN divisor takes 1's mantissa: no 0 or garbage to divide by.
    let fb = finite_of(select(xb, 0x3F800000u, (xb == 0u) | (xb >= EXACT_INF)));
    // Q = floor(ma · 2^s / mb) in [2^24, 2^25): s = 25 when ma < mb.
    let s = select(24u, 25u, fa.m < fb.m);
    // The estimate (ma, mb < 2^24 convert exactly) is within 2.5 ulp, so
    // q within 6 of Q. R = ma · 2^s − q · mb is below 2^31 in magnitude
    // for q up to 127 away, so its low 32 bits are all of it.
    var q = u32(i32(nudged(f32(i32(fa.m)) / f32(i32(fb.m))) * pow2(s)));
    var r = bitcast<i32>((fa.m << s) - q * fb.m);
    // q += floor(R / mb): the float quotient is within 1 of it, and the two
    // exact steps after it finish the job (0 ≤ R < mb).
    let d = i32(floor(f32(r) / f32(i32(fb.m))));
    q = u32(i32(q) + d);
    r = r - d * i32(fb.m);
    let low = r < 0;
    q = q - select(0u, 1u, low);
    r = r + select(0, i32(fb.m), low);
    let high = r >= i32(fb.m);
    q = q + select(0u, 1u, high);
    r = r - select(0, i32(fb.m), high);
    // a / b = (Q + R / mb) · 2^(ea − eb − s)
    let finite = pack_rn(q, r != 0, fa.e - fb.e - i32(s) + 151);
    // IEEE's table: NaN in, 0 / 0 or ∞ / ∞ gives NaN; else ∞ / b and a / 0
    // give ∞, 0 / b and a / ∞ give 0.
    let nan = (xa > EXACT_INF) | (xb > EXACT_INF) | ((xa == 0u) & (xb == 0u)) | ((xa == EXACT_INF) & (xb == EXACT_INF));
    var mag = select(finite, EXACT_INF, (xa == EXACT_INF) | (xb == 0u));
    mag = select(mag, 0u, (xa == 0u) | (xb == EXACT_INF));
    return bitcast<f32>(select(sign | mag, EXACT_NAN, nan));
}

// √a, rounded once (−0 for −0; NaN below zero), for any operand.
fn sqrt_general(a: f32) -> f32 {
    let ua = bitcast<u32>(a);
    // Zero, ∞ and below zero take 1's mantissa on the finite path.
    let f = finite_of(select(ua, 0x3F800000u, (ua >= EXACT_INF) | ((ua & 0x7FFFFFFFu) == 0u)));
    // An even power of two: a = m · 2^p, m in [2^23, 2^25), p even.
    let odd = ((f.e - 150) & 1) != 0;
    let m = f.m << select(0u, 1u, odd);
    let p = f.e - 150 - select(0, 1, odd);
    // M = m · 2^k in [2^48, 2^50), k even; r = floor(√M) in [2^24, 2^25).
    let k = select(24u, 26u, m < 0x1000000u);
    // The estimate (m converts exactly: below 2^24, or even) is within
    // about 5 ulp, r within 11 of the root; D = M − r² is below 2^31 in
    // magnitude for r up to 32 away, so its low 32 bits are all of it.
    var r = u32(i32(nudged(sqrt(f32(i32(m)))) * pow2(k / 2u)));
    var d = bitcast<i32>((m << k) - r * r);
    // One Newton step, r += D / 2r, leaves r within 1 of the root; then
    // exact steps until 0 ≤ D ≤ 2r, i.e. r² ≤ M < (r + 1)².
    r = u32(i32(r) + i32(round(f32(d) / (2.0 * f32(i32(r))))));
    d = bitcast<i32>((m << k) - r * r);
    let low = d < 0;
    r = r - select(0u, 1u, low);
    d = d + select(0, 2 * i32(r) + 1, low);
    let high = d > 2 * i32(r);
    d = d - select(0, 2 * i32(r) + 1, high);
    r = r + select(0u, 1u, high);
    // √a = (r + ε) · 2^((p − k) / 2), ε > 0 exactly when D > 0.
    let finite = pack_rn(r, d != 0, (p - i32(k)) / 2 + 151);
    // ±0 and +∞ are their own roots; NaN and everything below zero give NaN.
    let same = ((ua & 0x7FFFFFFFu) == 0u) | (ua == EXACT_INF);
    return bitcast<f32>(select(select(finite, EXACT_NAN, ua > EXACT_INF), ua, same));
}

// ---- The common case, checked -------------------------------------------
//
// Where the operands and the result are normal (or the result is zero), the
// hardware's own ×, ÷ or √ is taken and then proven: one exact integer
// residual (its low 32 bits, all of it while the hardware is within 60
// ulp) says whether it is the IEEE result, one ulp off (then corrected),
// or further (then the general function above decides). Vulkan already
// rounds a lone × correctly; the check is what keeps the product from
// being fused into the next add, since what leaves here is integer
// arithmetic on its bits, and what makes ÷ and √ exact. Anything else
// (a subnormal, ∞, NaN, a result past the normal range, a result next to
// a power of two) is left to the general functions, on every device alike.

// Shift amounts computed from garbage (an operand the result does not take)
// are masked, as WGSL defines them, whatever the target does past 31.
struct Checked {
    bits: u32,
    ok: bool,
}

// The biased exponent field and the 24-bit mantissa of a normal x.
fn field_of(x: u32) -> u32 {
    return (x >> 23u) & 0xFFu;
}

fn mantissa_of(x: u32) -> u32 {
    return (x & 0x7FFFFFu) | 0x800000u;
}

// Whether an exponent field is a normal number's (1 to 254).
fn normal_field(e: u32) -> bool {
    return e - 1u < 254u;
}

// The IEEE result from a candidate's bits c (normal, mantissa m) and the
// exact residual of the true value against it, in units where m's ulp is
// `ulp` and a tie is `2 · res == ulp`: c, or c one ulp up or down (to the
// nearest, ties to even), ok when that is surely right: within 1.5 ulp and
// not below a power of two, where the ulp halves. That takes m one above
// the power too: with res below −1 ulp, the truth is under the power (e.g.
// 0x3FB504F3², a candidate 0x40000001 for a true 0x3FFFFFFF).
fn settle(c: u32, m: u32, res: i32, ulp: i32) -> Checked {
    let odd = (m & 1u) != 0u;
    let up = (2 * res > ulp) | ((2 * res == ulp) & odd);
    let down = (2 * res < -ulp) | ((2 * res == -ulp) & odd);
    let near = (2 * res < 3 * ulp) & (2 * res > -3 * ulp);
    let ok = near & !((m - 0x800000u < 2u) & (res < 0));
    return Checked(c + select(0u, 1u, up) - select(0u, 1u, down), ok);
}

// a · b: a = ma · 2^(ea − 150), b likewise, the hardware's p = mp · 2^(ep − 150),
// so P = ma · mb = mp · 2^sh + R with sh = ep + 150 − ea − eb (23 or 24).
fn mul_checked(a: f32, b: f32) -> Checked {
    let ua = bitcast<u32>(a);
    let ub = bitcast<u32>(b);
    let up = bitcast<u32>(nudged(a * b));
    let ea = field_of(ua);
    let eb = field_of(ub);
    let ep = field_of(up);
    let mp = mantissa_of(up);
    let sh = ep + 150u - ea - eb;
    let res = bitcast<i32>(mantissa_of(ua) * mantissa_of(ub) - (mp << (sh & 31u)));
    let c = settle(up, mp, res, 1 << (sh & 31u));
    let normal = normal_field(ea) & normal_field(eb) & normal_field(ep) & (sh - 23u < 2u);
    // An operand zero, the other finite: a signed zero.
    let zero = (((ua << 1u) == 0u) | ((ub << 1u) == 0u)) & (ea < 255u) & (eb < 255u);
    return Checked(select(c.bits, (ua ^ ub) & 0x80000000u, zero), (normal & c.ok) | zero);
}

// a / b: the hardware's q = mq · 2^(eq − 150), so ma · 2^s = mq · mb + R
// with s = ea + 150 − eb − eq (23 or 24), and a half ulp is R = mb / 2.
fn div_checked(a: f32, b: f32) -> Checked {
    let ua = bitcast<u32>(a);
    let ub = bitcast<u32>(b);
    let uq = bitcast<u32>(nudged(a / b));
    let ea = field_of(ua);
    let eb = field_of(ub);
    let eq = field_of(uq);
    let mq = mantissa_of(uq);
    let mb = mantissa_of(ub);
    let s = ea + 150u - eb - eq;
    let res = bitcast<i32>((mantissa_of(ua) << (s & 31u)) - mq * mb);
    let c = settle(uq, mq, res, i32(mb));
    let normal = normal_field(ea) & normal_field(eb) & normal_field(eq) & (s - 23u < 2u);
    // Zero over a finite nonzero: a signed zero.
    let zero = ((ua << 1u) == 0u) & (eb < 255u) & ((ub << 1u) != 0u);
    return Checked(select(c.bits, (ua ^ ub) & 0x80000000u, zero), (normal & c.ok) | zero);
}

// √a for a ≥ 0: the hardware's r = mr · 2^(er − 150), so ma · 2^k = mr² + D
// with k = ea + 150 − 2 er (23 or 24). M = ma · 2^k is an integer and
// (mr ± 1/2)² is not, so there are no ties: mr is √M rounded when
// −mr < D ≤ mr, mr + 1 when mr < D ≤ 2 mr, mr − 1 when −2 mr < D ≤ −mr
// (each bound well inside the next one's, (mr ± 3/2)² = mr² ± 3 mr + 9/4).
fn sqrt_checked(a: f32) -> Checked {
    let ua = bitcast<u32>(a);
    let ur = bitcast<u32>(nudged(sqrt(a)));
    let ea = field_of(ua);
    let er = field_of(ur);
    let mr = mantissa_of(ur);
    let k = ea + 150u - 2u * er;
    let d = bitcast<i32>((mantissa_of(ua) << (k & 31u)) - mr * mr);
    let r = i32(mr);
    let bits = ur + select(0u, 1u, d > r) - select(0u, 1u, d <= -r);
    // Unlike × and ÷, no guard below a power of two: k's parity follows
    // ea's, so k in {23, 24} holds only for a candidate in the root's own
    // binade (one a binade up gives k = 21 or 22), and from mr = 2^23 the
    // root is never below it.
    let near = (d <= 2 * r) & (d > -2 * r);
    // Positive and normal (the sign bit makes the field test fail).
    let normal = ((ua >> 23u) - 1u < 254u) & normal_field(er) & (k - 23u < 2u);
    let zero = (ua << 1u) == 0u; // ±0 is its own root
    return Checked(select(bits, ua, zero), (normal & near) | zero);
}

fn mul_rn(a: f32, b: f32) -> f32 {
    if EXACT_CHECKED {
        let c = mul_checked(a, b);
        if c.ok {
            return bitcast<f32>(c.bits);
        }
    }
    return mul_general(a, b);
}

fn div_rn(a: f32, b: f32) -> f32 {
    if EXACT_CHECKED {
        let c = div_checked(a, b);
        if c.ok {
            return bitcast<f32>(c.bits);
        }
    }
    return div_general(a, b);
}

fn sqrt_rn(a: f32) -> f32 {
    if EXACT_CHECKED {
        let c = sqrt_checked(a);
        if c.ok {
            return bitcast<f32>(c.bits);
        }
    }
    return sqrt_general(a);
}

// Element-wise forms for the vec4 kernels: one branch for all four lanes.
fn mul_rn4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    if EXACT_CHECKED {
        let c = array<Checked, 4>(mul_checked(a.x, b.x), mul_checked(a.y, b.y),
                                  mul_checked(a.z, b.z), mul_checked(a.w, b.w));
        if all(checked_ok4(c)) {
            return checked_values4(c);
        }
        return select(mul_general4(a, b), checked_values4(c), checked_ok4(c));
    }
    return mul_general4(a, b);
}

fn div_rn4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    if EXACT_CHECKED {
        let c = array<Checked, 4>(div_checked(a.x, b.x), div_checked(a.y, b.y),
                                  div_checked(a.z, b.z), div_checked(a.w, b.w));
        if all(checked_ok4(c)) {
            return checked_values4(c);
        }
        return select(div_general4(a, b), checked_values4(c), checked_ok4(c));
    }
    return div_general4(a, b);
}

fn sqrt_rn4(a: vec4<f32>) -> vec4<f32> {
    if EXACT_CHECKED {
        let c = array<Checked, 4>(sqrt_checked(a.x), sqrt_checked(a.y),
                                  sqrt_checked(a.z), sqrt_checked(a.w));
        if all(checked_ok4(c)) {
            return checked_values4(c);
        }
        return select(sqrt_general4(a), checked_values4(c), checked_ok4(c));
    }
    return sqrt_general4(a);
}

fn checked_values4(c: array<Checked, 4>) -> vec4<f32> {
    return bitcast<vec4<f32>>(vec4<u32>(c[0].bits, c[1].bits, c[2].bits, c[3].bits));
}

fn checked_ok4(c: array<Checked, 4>) -> vec4<bool> {
    return vec4<bool>(c[0].ok, c[1].ok, c[2].ok, c[3].ok);
}

fn mul_general4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(mul_general(a.x, b.x), mul_general(a.y, b.y),
                     mul_general(a.z, b.z), mul_general(a.w, b.w));
}

fn div_general4(a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(div_general(a.x, b.x), div_general(a.y, b.y),
                     div_general(a.z, b.z), div_general(a.w, b.w));
}

fn sqrt_general4(a: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(sqrt_general(a.x), sqrt_general(a.y), sqrt_general(a.z), sqrt_general(a.w));
}
