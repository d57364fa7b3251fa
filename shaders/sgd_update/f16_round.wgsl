// sgd_update, part 2 of 2: rounding an f32 result into an f16 table. Also
// composed into segment_sum (its `// with:` line), whose dense gradient and
// fused updates write f16 tables too. Needs Philox (uniform_init/philox.wgsl).
//
// Integer code, not pack2x16float: WGSL leaves that builtin's rounding to
// the implementation, and these bits must be the same on every adapter and
// in the CPU twin (src/cpu/sgd_update.rs, `f16_bits`).
//
// To nearest (ties to even), or stochastic (FBGEMM's option for training
// f16 tables): x is rounded up with probability (x - down) / (up - down),
// by adding d random bits below the f16's last kept bit and truncating, so
// values an f16 holds exactly never move. The random bits of element e of
// the table at update `step` are lane e % 4 of Philox4x32-10 with
// counter (e / 4 as 64 bits, step as 64 bits with its top bit set) and
// key = seed: the top bit keeps them apart from uniform_init's streams
// (counter words 2 and 3 zero), and nothing depends on the dispatch.

// The f16 bits of x: NaN stays NaN (quiet), f16 subnormals are kept;
// overflow gives ±inf to nearest (as `.half()`), and ±65504 stochastically
// (as FBGEMM, whose stochastic rounding converts toward zero: a finite
// weight never becomes inf). `random` is only read when `stochastic`.
fn f16_bits(x: f32, random: u32, stochastic: bool) -> u32 {
    let b = bitcast<u32>(x);
    let sign = (b >> 16u) & 0x8000u;
    let a = b & 0x7FFFFFFFu;
    if a >= 0x7F800000u {
        return sign | select(0x7C00u, 0x7E00u, a > 0x7F800000u);
    }
    let biased = a >> 23u;
    // x = m · 2^(e - 23), with the implicit bit unless x is an f32 subnormal.
    var m = (a & 0x7FFFFFu) | select(0x800000u, 0u, biased == 0u);
    let e = i32(max(biased, 1u)) - 127;
    // Bits of m below the f16's last bit: 13 for a normal f16, more below
    // 2^-14. Past 31 only the top bits matter (m < 2^24, so to nearest it
    // is 0 either way): they are kept, as 31.
    var d = u32(max(13, -1 - e));
    if d > 31u {
        m = select(m >> (d - 31u), 0u, d - 31u >= 24u);
        d = 31u;
    }
    var q = m >> d;
    if stochastic {
        q = (m + (random >> (32u - d))) >> d;
    } else {
        let rem = m & ((1u << d) - 1u);
        let half = 1u << (d - 1u);
        if rem > half || (rem == half && (q & 1u) == 1u) {
            q = q + 1u;
        }
    }
    // q counts f16 ulps from the binade's start (the implicit bit included,
    // so a carry moves into the exponent); past 65504 it reaches inf, or
    // stays at 65504 stochastically.
    let bits = q + (u32(max(e + 14, 0)) << 10u);
    return sign | min(bits, select(0x7C00u, 0x7BFFu, stochastic));
}

// Element `row · dim + col` of a table as a 64-bit (lo, hi) pair.
fn element64(row: u32, dim: u32, col: u32) -> vec2<u32> {
    let p = mulhilo(row, dim); // (hi, lo)
    let lo = p.y + col;
    return vec2<u32>(lo, p.x + select(0u, 1u, lo < col));
}

// The random bits of elements 4k .. 4k + 3 for update `step` (see above);
// `e` is any of them.
fn f16_random4(seed: vec2<u32>, step: vec2<u32>, e: vec2<u32>) -> vec4<u32> {
    let quad = vec2<u32>((e.x >> 2u) | (e.y << 30u), e.y >> 2u);
    return philox4x32_10(vec4<u32>(quad.x, quad.y, step.x, step.y | 0x80000000u), seed);
}

// The random bits of element e for update `step`.
fn f16_random(seed: vec2<u32>, step: vec2<u32>, e: vec2<u32>) -> u32 {
    return f16_random4(seed, step, e)[e.x & 3u];
}
