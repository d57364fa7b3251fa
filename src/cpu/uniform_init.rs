//! CPU twin of `shaders/uniform_init.wgsl`: Philox4x32-10, fixed-point
//! Box–Muller and the software FMA, step for step.
//!
//! Element `e` of a tensor is lane `e % 4` of `philox4x32_10([e/4 as u64], seed)`.
//! `counter_base` is the element index of `out[0]`, so a tensor filled in
//! pieces (or in row-blocks) equals one filled in a single call.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;
const TWO_POW_M24: f32 = 1.0 / 16_777_216.0;

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// The Philox4x32 bijection with 10 rounds (Random123's `philox4x32_10`).
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for _round in 0..10 {
        let (hi0, lo0) = mulhilo(M0, c[0]);
        let (hi1, lo1) = mulhilo(M1, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(W0), k[1].wrapping_add(W1)];
    }
    c
}

fn key(seed: u64) -> [u32; 2] {
    [seed as u32, (seed >> 32) as u32]
}

fn block_bits(seed: u64, block: u64) -> [u32; 4] {
    philox4x32_10([block as u32, (block >> 32) as u32, 0, 0], key(seed))
}

/// Visits elements `counter_base .. counter_base + len` block by block, as the
/// shader's invocations do, handing each lane's output position and the block.
fn for_each_block(counter_base: u64, len: usize, mut f: impl FnMut(u64, usize, usize)) {
    let first = counter_base;
    // The kernel's host refuses a fill past the 64-bit counter; the twin
    // states the same precondition instead of overflowing.
    let last = counter_base
        .checked_add(len as u64)
        .expect("counter_base + len must fit the 64-bit element counter");
    let mut block = first / 4;
    while block < last.div_ceil(4) {
        for lane in 0..4 {
            let e = block * 4 + lane as u64;
            if e >= first && e < last {
                f(block, lane, (e - first) as usize);
            }
        }
        block += 1;
    }
}

/// The raw 32-bit stream: `out[p]` = word of element `counter_base + p`.
pub fn bits_fill(seed: u64, counter_base: u64, out: &mut [u32]) {
    for_each_block(counter_base, out.len(), |block, lane, p| {
        out[p] = block_bits(seed, block)[lane];
    });
}

/// The f32 nearest to `(-1)^neg · mag · 2^e` (ties to even); zero gives +0,
/// overflow ±inf, results below 2^-126 in magnitude ±0.
pub(crate) fn round_pack(neg: bool, mag: u64, e: i32) -> f32 {
    if mag == 0 {
        return 0.0;
    }
    let top = 63 - mag.leading_zeros();
    let mut exp = top as i32 + e;
    let mut keep: u32;
    if top > 23 {
        let shift = top - 23;
        keep = (mag >> shift) as u32;
        let rest = mag - ((keep as u64) << shift);
        let half = 1u64 << (shift - 1);
        if rest > half || (rest == half && keep & 1 == 1) {
            keep += 1;
            if keep == 0x100_0000 {
                keep = 0x80_0000;
                exp += 1;
            }
        }
    } else {
        keep = (mag as u32) << (23 - top);
    }
    let sign = if neg { 0x8000_0000 } else { 0 };
    if exp > 127 {
        return f32::from_bits(sign | 0x7F80_0000);
    }
    if exp < -126 {
        return f32::from_bits(sign);
    }
    f32::from_bits(sign | (((exp + 127) as u32) << 23) | (keep & 0x7F_FFFF))
}

/// A finite f32 as `(-1)^neg · m · 2^q`.
fn unpack(x: f32) -> (bool, u32, i32) {
    let bits = x.to_bits();
    let field = (bits >> 23) & 0xFF;
    let frac = bits & 0x7F_FFFF;
    if field == 0 {
        return (bits >= 0x8000_0000, frac, -149);
    }
    (bits >= 0x8000_0000, frac | 0x80_0000, field as i32 - 150)
}

/// `x >> n` with every bit shifted out ORed into bit 0.
fn shr_sticky(x: u64, n: u32) -> u64 {
    if n >= 64 {
        return (x != 0) as u64;
    }
    let kept = x >> n;
    kept | ((x != kept << n) as u64)
}

fn place(x: u64, q: i32, unit: i32) -> u64 {
    if q >= unit {
        x << (q - unit)
    } else {
        shr_sticky(x, (unit - q) as u32)
    }
}

/// `a + b · x` for finite a, b, x, rounded once: the shader's software FMA.
/// Equals `b.mul_add(x, a)` whenever the result is a normal float.
pub fn soft_fma(b: f32, x: f32, a: f32) -> f32 {
    let (nb, mb, qb) = unpack(b);
    let (nx, mx, qx) = unpack(x);
    let (na, ma, qa) = unpack(a);
    let p = mb as u64 * mx as u64;
    let qp = qb + qx;
    let negp = nb != nx;
    if p == 0 {
        return a;
    }
    if ma == 0 {
        return round_pack(negp, p, qp);
    }
    let am = ma as u64;
    // Place the larger operand's top bit at bit 61 of a 64-bit window.
    let tp = qp + (64 - p.leading_zeros()) as i32 - 1;
    let ta = qa + (64 - am.leading_zeros()) as i32 - 1;
    let unit = tp.max(ta) - 61;
    let pw = place(p, qp, unit);
    let aw = place(am, qa, unit);
    if negp == na {
        return round_pack(na, pw + aw, unit);
    }
    if pw < aw {
        return round_pack(na, aw - pw, unit);
    }
    round_pack(negp, pw - aw, unit)
}

/// log2(u) for 1 <= u <= 2^24 with 24 fraction bits, by repeated squaring.
fn log2_q24(u: u32) -> u32 {
    let n = 31 - u.leading_zeros();
    let mut m = u << (31 - n);
    let mut frac = 0u32;
    for _ in 0..24 {
        (m, frac) = log2_step(m, frac);
    }
    (n << 24) | frac
}

/// One fraction bit of log2 by squaring the mantissa m (Q1.31, in [1, 2)):
/// a square of 2 or more is a 1, and is halved; the square is truncated to
/// 31 fraction bits.
fn log2_step(m: u32, frac: u32) -> (u32, u32) {
    let sq = m as u64 * m as u64;
    match sq >> 63 {
        1 => ((sq >> 32) as u32, (frac << 1) | 1),
        _ => ((sq >> 31) as u32, frac << 1),
    }
}

/// Entries of the shader's log2 table ([`log2_table`]).
pub const LOG2_TABLE_LEN: usize = 256;

/// round(2^31 / ln 2): r / ln 2 in units of 2^-40 is R · LOG2_E_Q31 / 2^30
/// for r = R · 2^-39.
#[cfg(test)]
const LOG2_E_Q31: u32 = 3_098_164_009;

/// Where log2's shortcut can't tell which side of a 2^-24 step the
/// repeated squaring lands, in units of 2^-40 (see [`log2_q24_shortcut`]):
/// the shader takes these as override constants. The squaring's first
/// LOG2_SQUARINGS_FIRST steps run before the shortcut (the shader writes
/// its three out).
pub(crate) const LOG2_SLACK_BELOW: u32 = 755;
pub(crate) const LOG2_SLACK_ABOVE: u32 = 16;
#[cfg(test)]
const LOG2_SQUARINGS_FIRST: u32 = 3;

/// The shader's log2 table, entry i for mantissas 1 + i/256 ..: c_i =
/// ceil(2^15 · 256 / (256 + i)) (a reciprocal in Q1.15, rounded up so that
/// m · c_i >= 1) and λ_i = log2(2^15 / c_i) · 2^40 rounded (under 2^40), as
/// two words: (c_i << 16 | λ_i's low 16 bits, λ_i >> 16). Two words, not
/// three: a CPU rasterizer reads each word at a lane's own index with a
/// bounds-checked load per lane, and c_i's 16 bits cost the shortcut nothing
/// (r < 2^-8 + 2^-14 instead of 2^-8 + 2^-30).
pub fn log2_table() -> Vec<[u32; 2]> {
    (0..LOG2_TABLE_LEN as u64)
        .map(|i| {
            let c = ((1u64 << 23) + 255 + i) / (256 + i);
            let lambda = ((15.0 - (c as f64).log2()) * (1u64 << 40) as f64).round() as u64;
            [
                ((c << 16) | (lambda & 0xFFFF)) as u32,
                (lambda >> 16) as u32,
            ]
        })
        .collect()
}

/// The table as the shader's uniform holds it: every entry's first word,
/// then every entry's second.
pub(crate) fn log2_table_words() -> Vec<u32> {
    let table = log2_table();
    table
        .iter()
        .map(|e| e[0])
        .chain(table.iter().map(|e| e[1]))
        .collect()
}

/// The shader's shortcut to [`log2_q24`]'s 24 fraction bits, mirrored here
/// so a test can hold it to the repeated squaring for every u: the first
/// K = [`LOG2_SQUARINGS_FIRST`] squarings, then the other 24 - K bits from
/// the mantissa m they leave, or None where that cannot tell (about 0.15 %
/// of inputs), and the shader squares on.
///
/// Those bits are the repeated squaring's 24 - K bits of log2(m) (m is a
/// mantissa in [1, 2) like any other). log2(m) = λ_i + log2(1 + r), with
/// m · c_i = 1 + r, 0 <= r < 2^-8 + 2^-14, and log2(1 + r) =
/// (r - r²/2 + r³/3 - r⁴/4) / ln 2 (the rest is under 2^-40): r / ln 2 in
/// integers, the small rest in f32. The sum A is L · 2^40 to within 16
/// (λ's rounding 0.5, r's truncation 2.9, the Q31 constant 1, the f32 rest
/// 5.5). Squaring truncates m to 31 fraction bits at each step and so finds
/// the bits of some L' in [L - 739 · 2^-40, L] (each truncation lowers
/// log2 m by at most 1.45 · 2^-31, and step j's weighs 2^-j). So floor(L' · 2^(24 - K))
/// is A >> (16 + K) unless A's low 16 + K bits are within 755 above or 16
/// below a step. (With K = 0 that is 1.2 % of inputs; each squaring first
/// halves it.)
#[cfg(test)]
pub(crate) fn log2_q24_shortcut(u: u32, table: &[[u32; 2]]) -> Option<u32> {
    const K: u32 = LOG2_SQUARINGS_FIRST;
    let n = 31 - u.leading_zeros();
    let (mut m, mut head) = (u << (31 - n), 0);
    for _ in 0..K {
        (m, head) = log2_step(m, head);
    }
    let [w0, w1] = table[((m >> 23) & 0xFF) as usize];
    // c_i in Q1.31; m · c_i in Q2.62 is 1 + r; r · 2^39, which is under 2^31 + 2^25.
    let c = w0 & 0xFFFF_0000;
    let r = ((m as u64 * c as u64 - (1 << 62)) >> 23) as u32;
    let first = (r as u64 * LOG2_E_Q31 as u64) >> 30;
    let rf = (r >> 1) as i32 as f32 / (1u64 << 38) as f32; // · 2^-38, exactly
    let rest = rf * rf * (-0.5 + rf * (0.333_333_34 - rf * 0.25)) * 1.586_26e12; // 2^40 / ln 2
    let lambda = ((w1 as u64) << 16) | (w0 & 0xFFFF) as u64;
    let a = (lambda + first).wrapping_sub((-rest) as i32 as u64);
    let below = (1u32 << (16 + K)) - 1;
    let low = a as u32 & below;
    if !(LOG2_SLACK_BELOW..=below - LOG2_SLACK_ABOVE).contains(&low) {
        return None;
    }
    let last = (a >> (16 + K)) as u32 & ((1 << (24 - K)) - 1);
    Some((n << 24) | (head << (24 - K)) | last)
}

/// floor(sqrt(x)), two bits at a time.
fn isqrt64(x: u64) -> u32 {
    let mut num = x;
    let mut rem = 0u64;
    let mut root = 0u32;
    for _ in 0..32 {
        rem = (rem << 2) | (num >> 62);
        num <<= 2;
        root <<= 1;
        let trial = ((root as u64) << 1) + 1;
        if rem >= trial {
            rem -= trial;
            root |= 1;
        }
    }
    root
}

/// round(atan(2^-i) · 2^30)
const ATAN_Q30: [i32; 30] = [
    843314857, 497837829, 263043837, 133525159, 67021687, 33543516, 16775851, 8388437, 4194283,
    2097149, 1048576, 524288, 262144, 131072, 65536, 32768, 16384, 8192, 4096, 2048, 1024, 512,
    256, 128, 64, 32, 16, 8, 4, 2,
];

/// (cos, sin) · 2^30 of `angle` · 2^-30 radians in [0, π/2): CORDIC.
fn cordic_q30(angle: i32) -> (i32, i32) {
    let mut x: i32 = 652_032_874; // the CORDIC gain K = 0.60725…, times 2^30
    let mut y: i32 = 0;
    let mut z = angle;
    for (i, &atan) in ATAN_Q30.iter().enumerate() {
        let (xs, ys) = (x >> i, y >> i);
        if z >= 0 {
            x -= ys;
            y += xs;
            z -= atan;
        } else {
            x += ys;
            y -= xs;
            z += atan;
        }
    }
    (x, y)
}

/// Two N(0, 1) from two words, in fixed point (see the shader).
fn box_muller(x0: u32, x1: u32) -> (f32, f32) {
    let d = (24u32 << 24) - log2_q24((x0 >> 8) + 1);
    let y = d as u64 * 1_488_522_236; // round(2 ln 2 · 2^30)
    let k = (64 - (64 - y.leading_zeros())) / 2;
    let r = isqrt64(y.checked_shl(2 * k).unwrap_or(0)); // y = 0, k = 32 where u0 = 1
    let quadrant = x1 >> 30;
    let t = (x1 & 0x3FFF_FFFF) as u64 * 3_373_259_426; // round(π/2 · 2^31)
    let (c, s) = cordic_q30((t >> 31) as u32 as i32);
    let (rc, rs) = match quadrant {
        0 => (c, s),
        1 => (-s, c),
        2 => (-c, -s),
        _ => (s, -c),
    };
    let e = -57 - k as i32;
    let z0 = round_pack(rc < 0, r as u64 * rc.unsigned_abs() as u64, e);
    let z1 = round_pack(rs < 0, r as u64 * rs.unsigned_abs() as u64, e);
    (z0, z1)
}

fn unit_open(x: u32) -> f32 {
    (x >> 8) as f32 * TWO_POW_M24
}

/// `out[p] = lo + (hi − lo) · U[0, 1)` for element `counter_base + p`.
pub fn uniform_fill(seed: u64, counter_base: u64, lo: f32, hi: f32, out: &mut [f32]) {
    let (a, b) = (lo, hi - lo);
    for_each_block(counter_base, out.len(), |block, lane, p| {
        let x = block_bits(seed, block);
        out[p] = soft_fma(b, unit_open(x[lane]), a);
    });
}

/// `out[p] = mean + std · N(0, 1)` for element `counter_base + p` (Box–Muller:
/// lanes 0, 1 from words 0, 1 and lanes 2, 3 from words 2, 3 of the block).
pub fn normal_fill(seed: u64, counter_base: u64, mean: f32, std: f32, out: &mut [f32]) {
    for_each_block(counter_base, out.len(), |block, lane, p| {
        let x = block_bits(seed, block);
        let (z0, z1) = box_muller(x[0], x[1]);
        let (z2, z3) = box_muller(x[2], x[3]);
        let z = [z0, z1, z2, z3];
        out[p] = soft_fma(std, z[lane], mean);
    });
}

/// Rows × columns of the table [`digest`] hashes: 4096 × 64.
pub const DIGEST_SHAPE: [usize; 2] = [4096, 64];

/// 64-bit FNV-1a (offset 0xcbf29ce484222325, prime 0x100000001b3) of `bytes`.
pub fn fnv1a(bytes: impl IntoIterator<Item = u8>) -> u64 {
    bytes.into_iter().fold(0xcbf2_9ce4_8422_2325, |h, byte| {
        (h ^ byte as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// [`fnv1a`] of the little-endian bytes of `values`, in order.
pub fn fnv1a_f32(values: &[f32]) -> u64 {
    fnv1a(values.iter().flat_map(|v| v.to_le_bytes()))
}

/// The RNG's fingerprint: [`fnv1a`] of a 4096 × 64 table after
/// `uniform_(-1.0, 1.0, 42)`, row-major. Every adapter, and a browser's
/// WebGPU, must print the same (`wgpu-embed adapters --digest`).
pub fn digest() -> u64 {
    let mut t = vec![0.0f32; DIGEST_SHAPE[0] * DIGEST_SHAPE[1]];
    uniform_fill(42, 0, -1.0, 1.0, &mut t);
    fnv1a_f32(&t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shader's log2 shortcut, held to the repeated squaring for every
    /// input the fill can give it (u = (x >> 8) + 1 for all 2^24 values of
    /// x >> 8): where it answers, it answers the same bits, and it declines
    /// rarely enough to be worth taking.
    #[test]
    fn log2_shortcut_agrees_with_squaring_for_every_input() {
        let table = log2_table();
        let mut declined = 0u32;
        for u in 1..=1u32 << 24 {
            match log2_q24_shortcut(u, &table) {
                Some(bits) => assert_eq!(bits, log2_q24(u), "u = {u}"),
                None => declined += 1,
            }
        }
        let rate = declined as f64 / (1u32 << 24) as f64;
        assert!(
            rate < 0.0016,
            "the shortcut declined {declined} inputs ({rate:.4})"
        );
    }

    /// The shader's CORDIC reads the turns of steps 10 to 29 from the bits
    /// of w = z + 2^21 (z after step 9) instead of walking z: for every z
    /// that step 9 can leave (the bound follows from the angles), step i
    /// turns up exactly where bit 31 - i of w is set, so (cos, sin) are the
    /// same.
    #[test]
    fn cordic_tail_turns_where_the_bits_say() {
        // The largest angle: (2^30 - 1) · round(π/2 · 2^31) >> 31. After a
        // step by ±atan, |z| <= max(atan, bound - atan).
        let mut bound = ((((1u64 << 30) - 1) * 3_373_259_426) >> 31) as i64;
        for &atan in &ATAN_Q30[..10] {
            bound = (atan as i64).max(bound - atan as i64);
        }
        assert!(bound < 1 << 21, "z after step 9 reaches {bound}");
        for z10 in -bound..=bound {
            let w = (z10 + (1 << 21)) as u32;
            let mut z = z10 as i32;
            for (i, &atan) in ATAN_Q30.iter().enumerate().skip(10) {
                assert_eq!(atan, 1 << (30 - i), "step {i}'s angle is not 2^(30 - i)");
                let up = z >= 0;
                assert_eq!(up, ((w << i) as i32) < 0, "z = {z10}, step {i}");
                z = if up { z - atan } else { z + atan };
            }
        }
    }

    /// The shader's clz32: the leading zeros from the f32 exponent of x's
    /// upper half, or of x below 2^16 (both convert exactly).
    fn clz32_by_exponent(x: u32) -> u32 {
        let upper = x >> 16;
        let high = upper != 0;
        let e = ((if high { upper } else { x }) as i32 as f32).to_bits() >> 23;
        match (x, high) {
            (0, _) => 32,
            (_, true) => 142 - e,
            (_, false) => 158 - e,
        }
    }

    /// Every x below 2^16 and every upper half (with the low halves at the
    /// edges): all the inputs clz32 tells apart.
    #[test]
    fn clz32_by_exponent_counts_leading_zeros() {
        let below = 0..1u32 << 16;
        let above = (1..1u32 << 16)
            .flat_map(|upper| [0, 1, 0x7FFF, 0x8000, 0xFFFF].map(|low| (upper << 16) | low));
        for x in below.chain(above) {
            assert_eq!(clz32_by_exponent(x), x.leading_zeros(), "x = {x:#x}");
        }
    }

    /// u0 = 1 (x0 >= 0xFFFF_FF00) gives radius 0: two zeros, not a shift
    /// past 64 bits.
    #[test]
    fn the_largest_word_gives_zeros() {
        assert_eq!(box_muller(0xFFFF_FFFF, 0x1234_5678), (0.0, 0.0));
        assert_eq!(box_muller(0xFFFF_FF00, 0xC000_0000), (0.0, 0.0));
    }

    /// The shader's isqrt64 (a float estimate, one Newton step on the exact
    /// residual, one correction down), mirrored with its float results
    /// pushed by `sqrt_ulps` and `div_ulps` (the error WGSL allows sqrt and
    /// the quotient, conversions included, is under 5 and 4 ulp).
    fn isqrt_newton(x: u64, sqrt_ulps: i32, div_ulps: i32) -> u32 {
        // (0 stays 0: sqrt(0) and 0 / y are exact on every device.)
        let nudge = |f: f32, ulps: i32| match f {
            0.0 => f,
            _ => f32::from_bits((f.to_bits() as i32 + ulps) as u32),
        };
        let xf = ((x >> 33) as i32 as f32) * 8_589_934_592.0; // 2^33
        let s = nudge(xf.sqrt(), sqrt_ulps).min(4_294_967_040.0);
        let r0 = ((s - 2_147_483_648.0) as i32 as u32).wrapping_add(0x8000_0000);
        let e = x.wrapping_sub(r0 as u64 * r0 as u64);
        let eh = (e >> 16) as u32 as i32;
        let q = (eh as f32 * 65536.0) / (((r0 >> 1) as i32 as f32) * 4.0).max(1.0);
        let step = nudge(q, div_ulps).round_ties_even() as i32;
        let sum = r0.wrapping_add(step as u32);
        let r1 = if step > 0 && sum < r0 { u32::MAX } else { sum };
        r1 - (x < r1 as u64 * r1 as u64) as u32
    }

    /// One Newton step and one correction give the exact root for every
    /// input polar gives isqrt64 (0 or 63 to 64 bits), on any device WGSL
    /// allows: roots at both ends, squares and their neighbours, and
    /// scattered x, with the float results pushed either way.
    #[test]
    fn isqrt_by_one_newton_step_is_exact() {
        let mut xs = vec![0u64, 1 << 62, (1 << 62) + 1, u64::MAX, u64::MAX - 1];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..40_000 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let n = (state >> 32) | 0x8000_0000; // a root of 32 bits
            let sq = n * n;
            xs.extend([sq, sq - 1, sq + 1, sq + 2 * n, state | (1 << 62)]);
        }
        for &x in &xs {
            for (sqrt_ulps, div_ulps) in [(0, 0), (5, 4), (5, -4), (-5, 4), (-5, -4)] {
                assert_eq!(
                    isqrt_newton(x, sqrt_ulps, div_ulps),
                    isqrt64(x),
                    "x = {x:#x}, sqrt {sqrt_ulps:+} ulp, quotient {div_ulps:+} ulp"
                );
            }
        }
    }

    /// The shader's polar shifts d by the even part of its leading zeros,
    /// multiplies, then shifts by 2 more where the product is under 2^62:
    /// the same y · 4^k as the twin's shift by bit length, for every d that
    /// log2 can give (0 ..= 24 · 2^24; at 0 only the zero matters).
    #[test]
    fn polar_normalises_like_the_twin() {
        for d in 0..=24u32 << 24 {
            let j = d.leading_zeros() / 2;
            let y = d.wrapping_shl(2 * j) as u64 * 1_488_522_236;
            let short = y < 1 << 62;
            let (big, k) = (if short { y << 2 } else { y }, j + short as u32);
            let y0 = d as u64 * 1_488_522_236;
            let k0 = (64 - (64 - y0.leading_zeros())) / 2;
            let big0 = y0.checked_shl(2 * k0).unwrap_or(0);
            assert_eq!(big, big0, "d = {d}");
            assert!(d == 0 || k == k0, "d = {d}: k {k}, the twin's {k0}");
        }
    }
}
