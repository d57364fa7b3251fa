// adam_step: torch.optim.Adam's step on a dense gradient, in place, every
// element (rows the batch did not reference still decay their moments).
// Four elements per invocation; the update is shaders/adam_step/update.wgsl,
// which the host appends. CPU twin: cpu::adam_step.
// with: exact_arith/ops.wgsl

struct Params {
    len: u32,
    step_size: f32,
    bias2: f32,
    eps: f32,
    beta1c: f32,
    beta2c: f32,
    weight_decay: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read_write> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;


@compute @workgroup_size(WORKGROUP_SIZE)
fn adam_step(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i0 = invocation(wid, nwg, lid) * 4u;
    if i0 >= params.len {
        return;
    }
    var gg = vec4<f32>(0.0);
    var ww = vec4<f32>(0.0);
    var mm = vec4<f32>(0.0);
    var vv = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if i0 + k < params.len {
            gg[k] = g[i0 + k];
            ww[k] = w[i0 + k];
            mm[k] = m[i0 + k];
            vv[k] = v[i0 + k];
        }
    }
    let a = AdamParams(params.step_size, params.bias2, params.eps, params.beta1c,
                       params.beta2c, params.weight_decay);
    let r = adam4(a, ww, gg, mm, vv);
    for (var k = 0u; k < 4u; k++) {
        if i0 + k < params.len {
            w[i0 + k] = r.w[k];
            m[i0 + k] = r.m[k];
            v[i0 + k] = r.v[k];
        }
    }
}
