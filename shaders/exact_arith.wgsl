// exact_arith: out[i] = a[i] × b[i], a[i] ÷ b[i] or √a[i], each rounded
// once to nearest even as IEEE 754 says, on every device (or a[i]'s bits, a
// u32 count, as f32 rounded the same way). The functions are
// in exact_arith/ops.wgsl, which the kernels that need them (the updates,
// mean bags, per-sample weights, frequency scaling, max_norm, the int8
// load) take with a `// with:` line; this entry point runs them on whole
// buffers so the tests can hold them to Rust's `*`, `/` and `sqrt`
// (the CPU twin, src/cpu/exact_arith.rs) on every adapter.
// Operands are read and written as bits, so no load or store can flush a
// subnormal or quiet a NaN.

const OP_MUL: u32 = 0u;
const OP_DIV: u32 = 1u;
const OP_SQRT: u32 = 2u;
const OP_COUNT: u32 = 3u;

struct Params {
    len: u32,
    op: u32,
    vec4: u32,  // 1: four elements an invocation, through the vec4 forms
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

fn one(x: f32, y: f32) -> f32 {
    if params.op == OP_MUL {
        return mul_rn(x, y);
    } else if params.op == OP_DIV {
        return div_rn(x, y);
    }
    return sqrt_rn(x);
}

fn four(x: vec4<f32>, y: vec4<f32>) -> vec4<f32> {
    if params.op == OP_MUL {
        return mul_rn4(x, y);
    } else if params.op == OP_DIV {
        return div_rn4(x, y);
    }
    return sqrt_rn4(x);
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn exact_arith(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = invocation(wid, nwg, lid);
    if params.op == OP_COUNT {
        // a's bits as a u32 count; one element at a time either way (the
        // conversion has no vec4 form).
        let lanes = select(1u, 4u, params.vec4 != 0u);
        for (var k = 0u; k < lanes; k++) {
            let j = i * lanes + k;
            if j < params.len {
                out[j] = bitcast<u32>(f32_of_count(a[j]));
            }
        }
        return;
    }
    if params.vec4 == 0u {
        if i < params.len {
            out[i] = bitcast<u32>(one(bitcast<f32>(a[i]), bitcast<f32>(b[i])));
        }
        return;
    }
    let i0 = 4u * i;
    if i0 >= params.len {
        return;
    }
    // Lanes past len compute on zeros and are not stored.
    var x = vec4<f32>(0.0);
    var y = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if i0 + k < params.len {
            x[k] = bitcast<f32>(a[i0 + k]);
            y[k] = bitcast<f32>(b[i0 + k]);
        }
    }
    let r = four(x, y);
    for (var k = 0u; k < 4u; k++) {
        if i0 + k < params.len {
            out[i0 + k] = bitcast<u32>(r[k]);
        }
    }
}
