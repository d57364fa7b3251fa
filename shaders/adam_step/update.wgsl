// adam_step, the update itself: one Adam step on four elements, shared by
// the dense step (shaders/adam_step.wgsl) and the fused sparse step
// (segment_sum's segment_adam). The order of operations is
// torch.optim.SparseAdam's; the CPU twin is cpu::adam_step::adam_update:
//   g' = g + weight_decay · w
//   m' = m + (g' − m) · (1 − β1)
//   v' = v + (g'·g' − v) · (1 − β2)
//   w' = w − step_size · (m' / (sqrt(v') / bias2 + eps))
// with step_size and bias2 from the step count, on the host:
// SparseAdam: step_size = lr · sqrt(1 − β2^t) / (1 − β1^t), bias2 = 1;
// Adam:       step_size = lr / (1 − β1^t),  bias2 = sqrt(1 − β2^t).

struct AdamParams {
    step_size: f32,
    bias2: f32,
    eps: f32,
    beta1c: f32,       // 1 − β1
    beta2c: f32,       // 1 − β2
    weight_decay: f32,
}

struct Adam4 {
    w: vec4<f32>,
    m: vec4<f32>,
    v: vec4<f32>,
}

fn adam4(a: AdamParams, w: vec4<f32>, g0: vec4<f32>, m: vec4<f32>, v: vec4<f32>) -> Adam4 {
    // Each ×, ÷ and √ is exact_arith's (exact_arith/ops.wgsl, which every
    // host of this file composes with it): rounded once, and never fused
    // into the add after it, as the twin's.
    var g = g0;
    if a.weight_decay != 0.0 {
        g = g + mul_rn4(vec4<f32>(a.weight_decay), w);
    }
    let m1 = m + mul_rn4(g - m, vec4<f32>(a.beta1c));
    let v1 = v + mul_rn4(mul_rn4(g, g) - v, vec4<f32>(a.beta2c));
    // SparseAdam folds its bias correction into step_size (bias2 = 1), and
    // x / 1 is x: a uniform branch skips a quotient per element there.
    var root = sqrt_rn4(v1);
    if a.bias2 != 1.0 {
        root = div_rn4(root, vec4<f32>(a.bias2));
    }
    let denom = root + a.eps;
    return Adam4(w - mul_rn4(vec4<f32>(a.step_size), div_rn4(m1, denom)), m1, v1);
}
