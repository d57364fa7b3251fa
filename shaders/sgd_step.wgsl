// sgd_step: w[i] = w[i] + (-lr) · g[i], plain SGD in place, the product
// rounded on its own as in sgd_update and the twin. WGSL's fma may round
// once or twice (lavapipe's rounds twice); exact_arith's mul_rn rounds once
// and cannot be fused into the add, so every adapter agrees bit for bit:
// with: exact_arith/ops.wgsl


struct Params {
    len: u32,
    neg_lr: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd_step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = invocation(wid, nwg, lid);
    if i >= params.len {
        return;
    }
    w[i] = w[i] + mul_rn(params.neg_lr, g[i]);
}
