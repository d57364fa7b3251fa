//! CPU twin of `shaders/adam_step.wgsl` and of the update it shares with
//! `segment_sum`'s `segment_adam` (`shaders/adam_step/update.wgsl`).

/// One Adam step's constants (see [`AdamArgs::for_step`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamArgs {
    /// What the step `m' / (sqrt(v') / bias2 + eps)` is multiplied by:
    /// `lr / (1 − β1^t)` for Adam, `lr · sqrt(1 − β2^t) / (1 − β1^t)` for
    /// SparseAdam.
    pub step_size: f32,
    /// The divisor of `sqrt(v')`: `sqrt(1 − β2^t)` for Adam, 1 for SparseAdam.
    pub bias2: f32,
    /// Added to the denominator after the square root.
    pub eps: f32,
    /// 1 − β1.
    pub beta1c: f32,
    /// 1 − β2.
    pub beta2c: f32,
    /// L2 penalty: the gradient becomes `g + weight_decay · w` before the
    /// moments; 0 leaves it unchanged.
    pub weight_decay: f32,
}

impl AdamArgs {
    /// The constants of step `t` (from 1), computed in f64 from f64
    /// hyper-parameters and rounded to f32 once, as PyTorch's Python floats
    /// are: `sparse` is
    /// `torch.optim.SparseAdam`'s bias correction (folded into the step
    /// size), else `torch.optim.Adam`'s (the second moment's under the
    /// square root).
    pub fn for_step(
        t: u64,
        lr: f64,
        betas: (f64, f64),
        eps: f64,
        weight_decay: f64,
        sparse: bool,
    ) -> AdamArgs {
        let (b1, b2) = betas;
        let t = t.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        let (step_size, bias2) = if sparse {
            (lr * bc2.sqrt() / bc1, 1.0)
        } else {
            (lr / bc1, bc2.sqrt())
        };
        AdamArgs {
            step_size: step_size as f32,
            bias2: bias2 as f32,
            eps: eps as f32,
            beta1c: (1.0 - b1) as f32,
            beta2c: (1.0 - b2) as f32,
            weight_decay: weight_decay as f32,
        }
    }
}

/// `adam4` of the shader, one element: `(w', m', v')`.
pub fn adam_update(a: &AdamArgs, w: f32, g: f32, m: f32, v: f32) -> (f32, f32, f32) {
    let g = if a.weight_decay != 0.0 {
        g + a.weight_decay * w
    } else {
        g
    };
    let m1 = m + (g - m) * a.beta1c;
    let v1 = v + (g * g - v) * a.beta2c;
    let denom = v1.sqrt() / a.bias2 + a.eps;
    (w - a.step_size * (m1 / denom), m1, v1)
}

/// The dense step: every element of `w`, `m`, `v` from `g`.
pub fn adam_step(a: &AdamArgs, g: &[f32], w: &mut [f32], m: &mut [f32], v: &mut [f32]) {
    assert!(
        g.len() == w.len() && w.len() == m.len() && m.len() == v.len(),
        "gradient, weights and moments have the same length"
    );
    for i in 0..g.len() {
        (w[i], m[i], v[i]) = adam_update(a, w[i], g[i], m[i], v[i]);
    }
}
