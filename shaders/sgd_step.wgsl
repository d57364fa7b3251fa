// sgd_step: w[i] = fma(-lr, g[i], w[i]), plain SGD in place. The fused
// multiply-add is written out so every adapter rounds once, as the CPU
// twin's mul_add does, and the two agree bit for bit.


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
    w[i] = fma(params.neg_lr, g[i], w[i]);
}
