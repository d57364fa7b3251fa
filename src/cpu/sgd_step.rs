//! CPU twin of `shaders/sgd_step.wgsl`.

/// `w[i] = fma(-lr, g[i], w[i])`, rounded once as the shader does.
pub fn sgd_step(lr: f32, g: &[f32], w: &mut [f32]) {
    assert_eq!(
        g.len(),
        w.len(),
        "gradient and weights have the same length"
    );
    for (w, &g) in w.iter_mut().zip(g) {
        *w = (-lr).mul_add(g, *w);
    }
}
