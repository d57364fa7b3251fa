// buffer_copy: dst[i] = src[i] over vec4s, one invocation each. Not a kernel
// the layers use: it is the roofline's "compute-shader copy" ceiling, the best
// a plain shader moves bytes on this adapter, which gather is measured against.

// Consecutive vec4s each invocation copies: 1 on GPUs (neighbouring
// invocations touch neighbouring addresses), more on CPU rasterizers, where
// each SIMD lane streaming its own run is faster (as in embedding_gather).
override VEC4_PER_INVOCATION: u32 = 1u;

struct Params {
    len4: u32, // vec4s to copy
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn buffer_copy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let first = (invocation(wid, nwg, lid)) * VEC4_PER_INVOCATION;
    let end = min(first + VEC4_PER_INVOCATION, params.len4);
    for (var i = first; i < end; i++) {
        dst[i] = src[i];
    }
}
