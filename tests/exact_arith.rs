//! `exact_arith` (the ×, ÷ and √ the other kernels use where a compiler
//! could fuse or round its own way) against Rust's IEEE 754 operations, bit
//! for bit, on every adapter: random bit patterns (every class of f32),
//! operands whose results land at the edges of the subnormal and overflow
//! ranges, exact ties, subnormal operands, and every pair of special values.
//! Then the same with the hardware estimates inside ÷ and √ pushed many
//! ulps off: the integer correction, not the device, decides the results.

mod common;

use common::{each_gpu, Rng};
use wgpu_embed::cpu;
use wgpu_embed::kernels::exact_arith::{self, ExactOp, Variant};
use wgpu_embed::{Gpu, Tensor};

/// Runs `op` on the GPU (estimates nudged by `ulps`) and on the twin, and
/// asserts the same bits (any NaN matches any NaN: the shader's is 0x7FC00000).
fn check(gpu: &Gpu, what: &str, op: ExactOp, a: &[f32], b: &[f32], ulps: i32) {
    let ta = Tensor::from_slice(gpu, a, &[a.len()]).unwrap();
    let tb = Tensor::from_slice(gpu, b, &[b.len()]).unwrap();
    let mut want = vec![0.0; a.len()];
    cpu::exact_arith(op, a, b, &mut want);
    // The scalar functions and the four-lane forms the vec4 kernels use,
    // each with the checked common case and without (pipeline.rs chooses
    // per adapter; the bits must not depend on it).
    let variants = [false, true].map(|vec4| [false, true].map(|checked| (vec4, checked)));
    for (vec4, checked) in variants.into_iter().flatten() {
        let variant = Variant {
            nudge: ulps,
            vec4,
            checked: Some(checked),
        };
        let out = Tensor::zeros(gpu, &[a.len()]).unwrap();
        let mut encoder = gpu.encoder("exact_arith test");
        exact_arith::encode_variant(
            gpu,
            &mut encoder,
            op,
            a.len(),
            ta.buffer(),
            tb.buffer(),
            out.buffer(),
            &variant,
        )
        .unwrap();
        gpu.submit_and_wait(encoder).unwrap();
        let got = out.to_vec().unwrap();
        for i in 0..a.len() {
            let (g, w) = (got[i], want[i]);
            let same = g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan());
            assert!(
                same,
                "{what} {op:?} ({variant:?}) of {:e} ({:#010x}) and {:e} \
                 ({:#010x}): got {g:e} ({:#010x}) want {w:e} ({:#010x})",
                a[i],
                a[i].to_bits(),
                b[i],
                b[i].to_bits(),
                g.to_bits(),
                w.to_bits()
            );
        }
    }
}

/// A float with a random mantissa of `bits` significant bits (1..=24), a
/// random sign, and unbiased exponent `e` (below -126 the value is
/// subnormal and keeps only the mantissa bits that fit, rounded by `as f32`).
fn float_with(rng: &mut Rng, bits: u32, e: i32) -> f32 {
    let m = (1u64 << 23) | (rng.next() & ((1u64 << 23) - 1));
    let m = m >> (24 - bits) << (24 - bits); // keep the top `bits` bits
    let sign = if rng.next() & 1 == 0 { 1.0 } else { -1.0 };
    // m · 2^(e − 23), exact in f64 for every e the tests use (−149 ..= 127).
    sign * (m as f64 * 2f64.powi(e - 23)) as f32
}

/// [`float_with`] with an exponent drawn from `lo .. lo + span`.
fn float_in(rng: &mut Rng, bits: u32, lo: i32, span: usize) -> f32 {
    let e = lo + rng.below(span) as i32;
    float_with(rng, bits, e)
}

/// Random bit patterns: every class of f32 (about 1/256 subnormal, 1/256
/// infinite or NaN).
fn random_bits(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| f32::from_bits(rng.next() as u32)).collect()
}

/// Subnormal operands, and small-exponent normals, with random signs.
fn subnormals(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let bits = if i % 2 == 0 {
                1 + (rng.next() as u32 % 0x7F_FFFF) // exponent field 0
            } else {
                (rng.next() as u32 % (4 << 23)) | 0x80_0000 // exponent field 1..=4
            };
            f32::from_bits(bits | ((rng.next() as u32) & 0x8000_0000))
        })
        .collect()
}

const SPECIALS: [f32; 14] = [
    0.0,
    -0.0,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
    1.0,
    -1.0,
    f32::MIN_POSITIVE,
    -f32::MIN_POSITIVE,
    f32::MAX,
    -f32::MAX,
    1.0e-45,       // the smallest subnormal
    1.1754942e-38, // the largest subnormal
    3.0,
];

/// Every pair of special values.
fn special_pairs() -> (Vec<f32>, Vec<f32>) {
    let mut a = Vec::new();
    let mut b = Vec::new();
    for &x in &SPECIALS {
        for &y in &SPECIALS {
            a.push(x);
            b.push(y);
        }
    }
    (a, b)
}

/// Counts as f32 (a mean bag's ids, a row's positions): `as f32`'s bits on
/// every adapter, where WGSL's own conversion may take either neighbour
/// past 2^24. Small counts, every tie class near 2^24, 2^25 and 2^31, the
/// top of u32, and random words.
#[test]
fn counts_convert_as_rust_converts_them() {
    let mut rng = Rng(0x0063_6f75_6e74);
    let mut counts: Vec<u32> = (0..64).collect();
    for base in [1u32 << 24, 1 << 25, 1 << 31, u32::MAX - 64] {
        counts.extend((0..64).map(|k| base.wrapping_sub(32).wrapping_add(k)));
    }
    counts.extend((0..512).map(|_| rng.next() as u32));
    counts.push(u32::MAX);
    let a: Vec<f32> = counts.iter().map(|&c| f32::from_bits(c)).collect();
    each_gpu(|gpu| check(gpu, "counts", ExactOp::Count, &a, &a, 0));
}

#[test]
fn products_are_ieee_products_on_every_adapter() {
    let mut rng = Rng(0x6d75_6c5f_726e);
    let n = 1 << 16;
    let (a, b) = (random_bits(&mut rng, n), random_bits(&mut rng, n));
    // Exponents summing to the subnormal range, past the top, and between.
    let mut edge = (Vec::new(), Vec::new());
    for i in 0..n {
        let ea = -60 - (rng.below(80) as i32);
        let eb = match i % 3 {
            0 => -126 - ea + rng.below(30) as i32 - 25, // a · b near and below 2^-126
            1 => 127 - ea - (rng.below(4) as i32),      // near the largest finite
            _ => -ea + rng.below(40) as i32 - 20,       // ordinary
        };
        edge.0.push(float_with(&mut rng, 24, ea));
        edge.1.push(float_with(&mut rng, 24, eb.clamp(-149, 127)));
    }
    // Short mantissas: products of 13-bit mantissas have 25 or 26 bits, so
    // many are exact ties; 12-bit ones are exact.
    let mut ties = (Vec::new(), Vec::new());
    for i in 0..n {
        let bits = 12 + (i % 3) as u32;
        ties.0.push(float_in(&mut rng, bits, -20, 40));
        ties.1.push(float_in(&mut rng, bits, -20, 40));
    }
    // Subnormal results that are exact ties: an odd multiple of 2^-149 halved.
    for _ in 0..1024 {
        let k = 1 + 2 * (rng.below(1 << 22) as u32);
        ties.0.push(f32::from_bits(k));
        ties.1.push([0.5, -0.5, 0.25, 0.125][rng.below(4)]);
    }
    let sub = (subnormals(&mut rng, n), {
        let mut r = Rng(7);
        (0..n)
            .map(|_| float_in(&mut r, 24, -10, 160))
            .collect::<Vec<_>>()
    });
    let (sa, sb) = special_pairs();
    each_gpu(|gpu| {
        check(gpu, "random bits", ExactOp::Mul, &a, &b, 0);
        check(gpu, "range edges", ExactOp::Mul, &edge.0, &edge.1, 0);
        check(gpu, "ties", ExactOp::Mul, &ties.0, &ties.1, 0);
        check(gpu, "subnormal operands", ExactOp::Mul, &sub.0, &sub.1, 0);
        check(gpu, "specials", ExactOp::Mul, &sa, &sb, 0);
    });
}

#[test]
fn quotients_are_ieee_quotients_on_every_adapter() {
    let mut rng = Rng(0x6469_765f_726e);
    let n = 1 << 16;
    let (a, b) = (random_bits(&mut rng, n), random_bits(&mut rng, n));
    let mut edge = (Vec::new(), Vec::new());
    for i in 0..n {
        let ea = rng.below(200) as i32 - 100;
        let eb = match i % 3 {
            0 => ea + 126 + rng.below(30) as i32 - 5, // a / b near and below 2^-126
            1 => ea - 127 + (rng.below(4) as i32),    // near the largest finite
            _ => ea + rng.below(40) as i32 - 20,
        };
        edge.0.push(float_with(&mut rng, 24, ea));
        edge.1.push(float_with(&mut rng, 24, eb.clamp(-149, 127)));
    }
    // Exact quotients (a = b · q, short b and q) and quotients by counts,
    // as the mean bags and frequency scaling divide.
    let mut exact = (Vec::new(), Vec::new());
    for i in 0..n {
        let (b, q) = (float_with(&mut rng, 12, 0), float_with(&mut rng, 12, 3));
        if i % 2 == 0 {
            exact.0.push(b * q);
            exact.1.push(b);
        } else {
            exact.0.push(rng.float() * 100.0);
            exact.1.push((1 + rng.below(1000)) as f32);
        }
    }
    // Subnormal results that are exact ties: an odd multiple of 2^-149 halved.
    for _ in 0..1024 {
        let k = 1 + 2 * (rng.below(1 << 22) as u32);
        exact
            .0
            .push(f32::from_bits(k) * if rng.below(2) == 0 { 1.0 } else { -1.0 });
        exact.1.push([2.0, -2.0, 4.0, 8.0][rng.below(4)]);
    }
    let sub = subnormals(&mut rng, n);
    let sub_b: Vec<f32> = (0..n).map(|_| float_in(&mut rng, 24, -30, 40)).collect();
    let (sa, sb) = special_pairs();
    each_gpu(|gpu| {
        check(gpu, "random bits", ExactOp::Div, &a, &b, 0);
        check(gpu, "range edges", ExactOp::Div, &edge.0, &edge.1, 0);
        check(
            gpu,
            "exact and by counts",
            ExactOp::Div,
            &exact.0,
            &exact.1,
            0,
        );
        check(gpu, "subnormal dividends", ExactOp::Div, &sub, &sub_b, 0);
        check(gpu, "subnormal divisors", ExactOp::Div, &sub_b, &sub, 0);
        check(gpu, "specials", ExactOp::Div, &sa, &sb, 0);
    });
}

#[test]
fn square_roots_are_ieee_square_roots_on_every_adapter() {
    let mut rng = Rng(0x7371_7274_5f72);
    let n = 1 << 16;
    let a = random_bits(&mut rng, n);
    // Squares of short mantissas (exact roots), their neighbours, and subnormals.
    let mut near = Vec::new();
    for i in 0..n {
        let r = float_in(&mut rng, 12, -60, 120).abs();
        let s = r * r;
        near.push(match i % 3 {
            0 => s,
            1 => f32::from_bits(s.to_bits() + 1),
            _ => f32::from_bits(s.to_bits() - 1),
        });
    }
    let sub = subnormals(&mut rng, n);
    each_gpu(|gpu| {
        check(gpu, "random bits", ExactOp::Sqrt, &a, &a, 0);
        check(
            gpu,
            "squares and neighbours",
            ExactOp::Sqrt,
            &near,
            &near,
            0,
        );
        check(gpu, "subnormals", ExactOp::Sqrt, &sub, &sub, 0);
        check(gpu, "specials", ExactOp::Sqrt, &SPECIALS, &SPECIALS, 0);
    });
}

/// WGSL allows 2.5 ulp for `/` and more for `sqrt`, and a compiler may
/// fuse a product; the hardware's products, quotients and roots (the
/// candidates mul_rn, div_rn and sqrt_rn check) and the estimates inside
/// the general functions are pushed off, both ways, and the results must
/// not move. One ulp off is corrected on the checked path; further off goes
/// to the general functions (ops.wgsl: up to 60 ulp for × and ÷, 12 for √).
#[test]
fn results_do_not_depend_on_the_hardware_estimates() {
    let mut rng = Rng(0x006e_7564_6765);
    let n = 1 << 14;
    let (a, b) = (random_bits(&mut rng, n), random_bits(&mut rng, n));
    // Ordinary operands, whose results are all normal (the checked path),
    // and short mantissas, whose products and quotients are often exact or
    // ties, where a one-ulp correction must round to even.
    let ordinary: (Vec<f32>, Vec<f32>) = (0..n)
        .map(|_| {
            (
                float_in(&mut rng, 24, -20, 40),
                float_in(&mut rng, 24, -20, 40),
            )
        })
        .unzip();
    let short: (Vec<f32>, Vec<f32>) = (0..n)
        .map(|i| {
            let bits = 12 + (i % 3) as u32;
            (
                float_in(&mut rng, bits, -20, 40),
                float_in(&mut rng, bits, -20, 40),
            )
        })
        .unzip();
    let roots: Vec<f32> = (0..n)
        .map(|i| {
            let r = float_in(&mut rng, 12 + (i % 13) as u32, -30, 60).abs();
            r * r
        })
        .collect();
    // Results just below a power of two, where a candidate nudged up to the
    // power has a residual in the wrong binade's ulps: the checked path must
    // leave them to the general functions. a = 1 − r·2^-24 and
    // b = 1 + s·2^-23, scaled by powers of two: a · b and a / b fall just
    // below one (often exactly representable), and √a (a also just below
    // 4) just below 1 or 2.
    let mut below: (Vec<f32>, Vec<f32>) = (0..n)
        .map(|i| {
            let scale = |x: f32, e: i32| x * 2f32.powi(e);
            let a = f32::from_bits(0x3F80_0000 - 1 - rng.below(64) as u32);
            let b = f32::from_bits(0x3F80_0000 + rng.below(32) as u32);
            let (ea, eb) = (rng.below(40) as i32 - 20, rng.below(40) as i32 - 20);
            let a = if i % 4 == 3 {
                f32::from_bits(a.to_bits() + (1 << 24))
            } else {
                a
            };
            (scale(a, 2 * ea), scale(b, eb))
        })
        .unzip();
    // Products just under 2 from factors near √2 (0x3FB504F3² is
    // 0x3FFFFFFF): nudged up by two, the candidate is one ulp above 2,
    // still under it in truth.
    for j in 0..1024u32 {
        let (a, b) = (0x3FB5_04F3 - j % 32, 0x3FB5_04F3 + j % 32 - j / 32 % 4);
        let e = 2f32.powi(rng.below(40) as i32 - 20);
        below.0.push(f32::from_bits(a) * e);
        below.1.push(f32::from_bits(b) / e);
    }
    each_gpu(|gpu| {
        for ulps in [-40, -20, -12, -5, -3, -2, -1, 1, 2, 3, 5, 12, 20, 40] {
            for op in [ExactOp::Mul, ExactOp::Div] {
                check(gpu, "nudged random bits", op, &a, &b, ulps);
                check(gpu, "nudged ordinary", op, &ordinary.0, &ordinary.1, ulps);
                check(gpu, "nudged short", op, &short.0, &short.1, ulps);
                check(
                    gpu,
                    "nudged below powers of two",
                    op,
                    &below.0,
                    &below.1,
                    ulps,
                );
            }
            if ulps.abs() <= 12 {
                check(gpu, "nudged", ExactOp::Sqrt, &a, &a, ulps);
                let pos: Vec<f32> = ordinary.0.iter().map(|x| x.abs()).collect();
                check(gpu, "nudged ordinary", ExactOp::Sqrt, &pos, &pos, ulps);
                check(gpu, "nudged squares", ExactOp::Sqrt, &roots, &roots, ulps);
                // Just below a power of four, a nudge up carries sqrt_general's
                // estimate past a power of two, where its ulp doubles: 12
                // would put it 44 from the root, past the 32 that the
                // residual's 32 bits allow (ops.wgsl).
                if ulps.abs() <= 5 {
                    check(gpu, "nudged below", ExactOp::Sqrt, &below.0, &below.0, ulps);
                }
            }
        }
    });
}

#[test]
fn wrong_lengths_are_errors() {
    each_gpu(|gpu| {
        let small = Tensor::zeros(gpu, &[4]).unwrap();
        let big = Tensor::zeros(gpu, &[8]).unwrap();
        let mut encoder = gpu.encoder("exact_arith lengths");
        let r = exact_arith::encode(
            gpu,
            &mut encoder,
            ExactOp::Mul,
            8,
            big.buffer(),
            small.buffer(),
            big.buffer(),
        );
        assert!(r.is_err(), "an operand shorter than len is refused");
    });
}
