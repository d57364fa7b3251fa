//! CPU twin of `shaders/sgd_update.wgsl` and of its f16 rounding
//! (`shaders/sgd_update/f16_round.wgsl`, which segment_sum shares).

use half::f16;

/// How an f32 result is rounded into an f16 table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Round16 {
    /// To nearest, ties to even.
    Nearest,
    /// Up with probability (x − down) / (up − down), from Philox bits keyed
    /// by `seed`, this update's `step` and the element (see [`f16_random`]).
    Stochastic {
        /// The Philox key.
        seed: u64,
        /// The update's number, in the counter's upper 64 bits (top bit set).
        step: u64,
    },
}

impl Round16 {
    /// Element `element` of the table (row · dim + col) rounded to f16.
    pub fn round(self, x: f32, element: u64) -> f16 {
        let bits = match self {
            Round16::Nearest => f16_bits(x, 0, false),
            Round16::Stochastic { seed, step } => {
                f16_bits(x, f16_random(seed, step, element), true)
            }
        };
        f16::from_bits(bits)
    }
}

/// The f16 bits of `x`, as the shader's `f16_bits`: to nearest (ties to
/// even) or, when `stochastic`, up when the dropped bits plus the top bits
/// of `random` carry. NaN gives a quiet NaN; overflow ±inf to nearest, and
/// ±65504 stochastically (FBGEMM converts toward zero there: a finite weight
/// never becomes inf).
pub fn f16_bits(x: f32, random: u32, stochastic: bool) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let a = b & 0x7FFF_FFFF;
    if a >= 0x7F80_0000 {
        return sign | if a > 0x7F80_0000 { 0x7E00 } else { 0x7C00 };
    }
    let biased = a >> 23;
    let mut m = (a & 0x7F_FFFF) | if biased == 0 { 0 } else { 0x80_0000 };
    let e = biased.max(1) as i32 - 127;
    let mut d = 13.max(-1 - e) as u32;
    if d > 31 {
        m = if d - 31 >= 24 { 0 } else { m >> (d - 31) };
        d = 31;
    }
    let mut q = m >> d;
    if stochastic {
        q = (m + (random >> (32 - d))) >> d;
    } else {
        let rem = m & ((1 << d) - 1);
        let half = 1 << (d - 1);
        if rem > half || (rem == half && q & 1 == 1) {
            q += 1;
        }
    }
    let bits = q + (((e + 14).max(0) as u32) << 10);
    sign | bits.min(if stochastic { 0x7BFF } else { 0x7C00 }) as u16
}

/// The random bits of table element `element` at update `step`: lane
/// `element % 4` of Philox4x32-10 with counter `(element / 4, step | 2^63)`
/// (64 bits each, low word first) and key `seed`. The top bit keeps these
/// streams apart from `uniform_init`'s, whose counter's upper words are 0.
pub fn f16_random(seed: u64, step: u64, element: u64) -> u32 {
    let quad = element / 4;
    let step = step | 1 << 63;
    let counter = [
        quad as u32,
        (quad >> 32) as u32,
        step as u32,
        (step >> 32) as u32,
    ];
    let key = [seed as u32, (seed >> 32) as u32];
    crate::cpu::philox4x32_10(counter, key)[(element % 4) as usize]
}

/// A table the update twins write: f32 as it is, or f16 through a rounding.
pub trait Weights {
    /// Element `i`, as f32.
    fn load(&self, i: usize) -> f32;
    /// Element `i` set to `x` (an f16 table rounds it once).
    fn store(&mut self, i: usize, x: f32);
    /// A gradient of this table as it is stored: f32 as it is; for an f16
    /// table rounded to nearest (and widened back, exactly).
    fn as_gradient(&self, g: f32) -> f32 {
        g
    }
}

impl Weights for [f32] {
    fn load(&self, i: usize) -> f32 {
        self[i]
    }
    fn store(&mut self, i: usize, x: f32) {
        self[i] = x;
    }
}

impl Weights for Vec<f32> {
    fn load(&self, i: usize) -> f32 {
        self[i]
    }
    fn store(&mut self, i: usize, x: f32) {
        self[i] = x;
    }
}

/// An f16 table (or rows of one) as the f16 kernels write it: element `i`
/// of `data` is table element `first + i`, the element the stochastic
/// rounding keys on.
pub struct Half<'a> {
    /// The elements, row-major.
    pub data: &'a mut [f16],
    /// How each stored result is rounded.
    pub round: Round16,
    /// Table element (row · dim + col) of `data[0]`.
    pub first: u64,
}

impl Weights for Half<'_> {
    fn load(&self, i: usize) -> f32 {
        self.data[i].to_f32()
    }
    fn store(&mut self, i: usize, x: f32) {
        self.data[i] = self.round.round(x, self.first + i as u64);
    }
    fn as_gradient(&self, g: f32) -> f32 {
        f16::from_bits(f16_bits(g, 0, false)).to_f32()
    }
}

/// `weight[i] -= lr * grad[i]` for every element (`grad` as the kernel
/// reads it: f32, or the f16 gradient of an f16 table widened).
pub fn sgd_dense<W: Weights + ?Sized>(lr: f32, grad: &[f32], weight: &mut W) {
    for (i, &g) in grad.iter().enumerate() {
        let w = weight.load(i);
        weight.store(i, w - lr * g);
    }
}

/// `weight[rows[i], :] -= lr * values[i, :]`; rows outside the table are skipped.
pub fn sgd_sparse<W: Weights + ?Sized>(
    num_embeddings: usize,
    dim: usize,
    lr: f32,
    values: &[f32],
    weight: &mut W,
    rows: &[u32],
) {
    for (i, &row) in rows.iter().enumerate() {
        let row = row as usize;
        if row >= num_embeddings {
            continue;
        }
        for c in 0..dim {
            let w = weight.load(row * dim + c);
            weight.store(row * dim + c, w - lr * values[i * dim + c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// To nearest, the integer rounding is IEEE's: the same bits as the
    /// `half` crate's conversion for every f32 on a stride through all
    /// 2^32 patterns and around every f16 boundary (NaNs: both NaN).
    #[test]
    fn nearest_is_ieee_round_to_nearest_even() {
        let check = |b: u32| {
            let x = f32::from_bits(b);
            let ours = f16_bits(x, 0, false);
            let theirs = f16::from_f32(x).to_bits();
            if x.is_nan() {
                assert!(f16::from_bits(ours).is_nan(), "{b:#x}");
            } else {
                assert_eq!(ours, theirs, "x = {x:e} ({b:#010x})");
            }
        };
        for b in (0..=u32::MAX).step_by(251) {
            check(b);
        }
        // Every f16, and the f32s just around it and halfway to the next.
        for h in 0..=u16::MAX {
            let x = f16::from_bits(h).to_f32();
            let next = f16::from_bits(h.wrapping_add(1)).to_f32();
            if !x.is_finite() || !next.is_finite() {
                continue;
            }
            let mid = ((x as f64 + next as f64) / 2.0) as f32;
            for b in [x, mid, next] {
                for d in [-2i64, -1, 0, 1, 2] {
                    check((b.to_bits() as i64 + d).clamp(0, u32::MAX as i64) as u32);
                }
            }
        }
    }

    /// Stochastic rounding lands on one of the two f16 neighbours of x,
    /// never moves an f16 value, and on average is x (within sampling error).
    #[test]
    fn stochastic_is_unbiased_and_stays_between_neighbours() {
        for &x in &[
            1.0f32 + 1.0 / 4096.0,
            -2.71,
            1.0e-6,
            6.0e-8,
            -6.1e-5,
            0.3,
            60000.5,
        ] {
            // The neighbours of |x| (rounding acts on the magnitude).
            let n = f16::from_f32(x.abs());
            let (lo, hi) = if n.to_f32() > x.abs() {
                (f16::from_bits(n.to_bits() - 1), n)
            } else {
                (n, f16::from_bits(n.to_bits() + 1))
            };
            let draws = 20_000u64;
            let mut sum = 0.0f64;
            for e in 0..draws {
                let r = Round16::Stochastic { seed: 7, step: 3 }.round(x, e);
                assert_eq!(r.is_sign_negative(), x < 0.0);
                let m = r.to_f32().abs();
                assert!(m == lo.to_f32() || m == hi.to_f32(), "{x} -> {r}");
                sum += m as f64;
            }
            let mean = sum / draws as f64;
            let ulp = (hi.to_f32() - lo.to_f32()) as f64;
            // Each draw is one of two values an ulp apart: sd ≤ ulp / (2 √n).
            let bound = 5.0 * ulp / (2.0 * (draws as f64).sqrt());
            assert!((mean - x.abs() as f64).abs() < bound, "{x}: mean {mean}");
        }
        // Past the largest f16, stochastic rounding saturates (FBGEMM
        // converts toward zero) where rounding to nearest overflows.
        for (i, x) in [65504.5f32, 65519.0, -65530.0, 1.0e9, f32::MAX]
            .into_iter()
            .enumerate()
        {
            let r = Round16::Stochastic { seed: 7, step: 3 }.round(x, i as u64);
            assert_eq!(
                r.to_bits(),
                0x7BFF | if x < 0.0 { 0x8000 } else { 0 },
                "{x}"
            );
        }
        assert_eq!(Round16::Nearest.round(65530.0, 0).to_bits(), 0x7C00);
        assert_eq!(
            Round16::Stochastic { seed: 7, step: 3 }
                .round(f32::INFINITY, 0)
                .to_bits(),
            0x7C00
        );
        for h in [0x3C00u16, 0x0001, 0x7BFF, 0x8400, 0x0000] {
            let x = f16::from_bits(h).to_f32();
            for e in 0..100 {
                assert_eq!(
                    Round16::Stochastic { seed: 1, step: e }
                        .round(x, e)
                        .to_bits(),
                    h
                );
            }
        }
    }
}
