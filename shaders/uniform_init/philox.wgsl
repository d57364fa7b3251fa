// uniform_init, part 4 of 4: Philox4x32-10 (Salmon et al. 2011), the
// counter-based generator. Also composed into sgd_update and segment_sum
// (their `// with:` lines), whose f16 stochastic rounding draws from it.

// 32 × 32 → 64-bit product as (hi, lo); WGSL has no 64-bit integers.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a0 = a & 0xFFFFu;
    let a1 = a >> 16u;
    let b0 = b & 0xFFFFu;
    let b1 = b >> 16u;
    let p00 = a0 * b0;
    let p01 = a0 * b1;
    let p10 = a1 * b0;
    let p11 = a1 * b1;
    // a · b = p11 · 2^32 + (p01 + p10) · 2^16 + p00; t and u cannot overflow.
    let t = p01 + (p00 >> 16u);
    let u = p10 + (t & 0xFFFFu);
    let hi = p11 + (t >> 16u) + (u >> 16u);
    return vec2<u32>(hi, a * b);
}

// One Philox round with round key k.
fn philox_round(c: vec4<u32>, k: vec2<u32>) -> vec4<u32> {
    let p0 = mulhilo(0xD2511F53u, c.x);
    let p1 = mulhilo(0xCD9E8D57u, c.z);
    return vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
}

// Ten rounds written out (a loop's bookkeeping costs a CPU rasterizer
// about as much as a round); round r's key is key + r · (the Weyl constants).
fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    let w = vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    var c = philox_round(counter, key);
    c = philox_round(c, key + w);
    c = philox_round(c, key + 2u * w);
    c = philox_round(c, key + 3u * w);
    c = philox_round(c, key + 4u * w);
    c = philox_round(c, key + 5u * w);
    c = philox_round(c, key + 6u * w);
    c = philox_round(c, key + 7u * w);
    c = philox_round(c, key + 8u * w);
    return philox_round(c, key + 9u * w);
}
