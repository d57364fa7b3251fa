//! CPU twin of `shaders/matmul.wgsl`.

/// `c[m, n] = (Σ_k op(a)[m, k] · op(b)[k, n]) (+ bias[n]) (+ c[m, n])`, the
/// plain triple loop with the sum in f64: the reference the tiled kernel is
/// measured against. `op(a)` is `a` (`[m, k]`) or, with `trans_a`, `aᵀ` of
/// `a` stored `[k, m]`; `op(b)` is `b` (`[k, n]`) or, with `trans_b`, `bᵀ` of
/// `b` stored `[n, k]`. Extras are added in the shader's order: bias, then C
/// (on CPU adapters a K past one dispatch adds them after the first range's
/// sum and the later ranges after them). Not bit-exact, by design: the f64
/// sum is the exact-ish answer an f32 kernel is measured against, and it
/// does not overflow where an f32 running sum would.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    c: &mut [f32],
) {
    assert_eq!(a.len(), m * k, "a holds m × k values");
    assert_eq!(b.len(), k * n, "b holds k × n values");
    assert_eq!(c.len(), m * n, "c holds m × n values");
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "bias holds n values");
    }
    for row in 0..m {
        for col in 0..n {
            let mut sum = 0.0f64;
            for i in 0..k {
                let x = if trans_a {
                    a[i * m + row]
                } else {
                    a[row * k + i]
                };
                let y = if trans_b {
                    b[col * k + i]
                } else {
                    b[i * n + col]
                };
                sum += x as f64 * y as f64;
            }
            let mut v = sum as f32;
            if let Some(bias) = bias {
                v += bias[col];
            }
            if accumulate {
                v += c[row * n + col];
            }
            c[row * n + col] = v;
        }
    }
}
