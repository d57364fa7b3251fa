//! CPU twin of `shaders/sgd_step.wgsl`.

/// `w[i] = w[i] + (-lr) · g[i]`, the product rounded on its own, as the
/// shader (and `sgd_update`) round it.
pub fn sgd_step(lr: f32, g: &[f32], w: &mut [f32]) {
    assert_eq!(
        g.len(),
        w.len(),
        "gradient and weights have the same length"
    );
    for (w, &g) in w.iter_mut().zip(g) {
        *w += -lr * g;
    }
}
