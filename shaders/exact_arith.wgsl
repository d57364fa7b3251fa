// exact_arith: out[i] = a[i] × b[i], a[i] ÷ b[i] or √a[i], each rounded
// once to nearest even as IEEE 754 says, on every device. The functions are
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

struct Params {
    len: u32,
    op: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read> b: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn exact_arith(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = invocation(wid, nwg, lid);
    if i >= params.len {
        return;
    }
    let x = bitcast<f32>(a[i]);
    var r: f32;
    if params.op == OP_MUL {
        r = mul_rn(x, bitcast<f32>(b[i]));
    } else if params.op == OP_DIV {
        r = div_rn(x, bitcast<f32>(b[i]));
    } else {
        r = sqrt_rn(x);
    }
    out[i] = bitcast<u32>(r);
}
