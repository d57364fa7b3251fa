// sgd_update: weight -= lr * grad for an embedding table (or Linear's weight
// and bias, tables of one row per output), for a dense gradient (sgd_dense,
// one invocation per element) or a sparse one (sgd_sparse, one invocation
// per (row, column) of `values`; `rows` must be unique, as the backward
// pass makes them, and rows outside the table are skipped).
//
// F16: the weight and the gradient are f16, packed two per u32 (an f16
// table and a gradient stored like it; see src/tensor/half.rs). The update
// is computed in f32 and rounded once, to nearest or stochastically
// (sgd_update/f16_round.wgsl). sgd_dense then runs one invocation per word
// (two elements); sgd_sparse one per element, writing its half of a word
// with atomicXor, because with an odd dim two rows share a word.
// with: uniform_init/philox.wgsl
// lr · g is exact_arith's mul_rn, rounded on its own before the subtraction
// (as the twin does) on a compiler that would fuse the two:
// with: exact_arith/ops.wgsl


// `weight` may hold only table rows row_begin .. row_end (one row-block of a
// table past one storage binding, updated one dispatch per chunk). A dense
// `grad` element i of the bound weight is grad[grad_offset + i]: the host
// binds the matching rows of the gradient (a whole gradient, a window of one
// past a binding, or a row-block of a chunked one) and says where they start.
// A sparse gradient past one binding is applied in windows of its rows.
struct Params {
    len: u32,            // dense: elements of the chunk; sparse: rows of `values`
    dim: u32,
    num_embeddings: u32,
    lr: f32,
    row_begin: u32,
    row_end: u32,
    grad_offset: u32,    // dense: the element of `grad` that matches weight[0]
    stochastic: u32,     // F16: 1 rounds stochastically, 0 to nearest
    seed: vec2<u32>,     // F16 stochastic: the table's seed (lo, hi)
    step: vec2<u32>,     // and this update's number (lo, hi)
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(3) var<storage, read> rows: array<u32>;
#ifdef F16
@group(0) @binding(1) var<storage, read> grad: array<u32>;
@group(0) @binding(2) var<storage, read_write> weight: array<atomic<u32>>;

// Element i of the packed gradient.
fn grad_at(i: u32) -> f32 {
    return unpack2x16float(grad[i >> 1u])[i & 1u];
}

// The new f16 bits of bound weight element i (table row
// params.row_begin + i / dim) holding `old`, after subtracting lr · g.
fn step_bits(old: f32, g: f32, i: u32) -> u32 {
    let x = old - mul_rn(params.lr, g);
    var random = 0u;
    if params.stochastic != 0u {
        let e = element64(params.row_begin + i / params.dim, params.dim, i % params.dim);
        random = f16_random(params.seed, params.step, e);
    }
    return f16_bits(x, random, params.stochastic != 0u);
}
#else
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> weight: array<f32>;
#endif

@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd_dense(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
#ifdef F16
    // Word k: elements 2k and 2k + 1 (the second may be the padding past len).
    let k = invocation(wid, nwg, lid);
    let i = 2u * k;
    if i >= params.len {
        return;
    }
    let word = atomicLoad(&weight[k]);
    let old = unpack2x16float(word);
    var bits = word & 0xFFFF0000u;
    bits = bits | step_bits(old.x, grad_at(params.grad_offset + i), i);
    if i + 1u < params.len {
        bits = (bits & 0xFFFFu) | (step_bits(old.y, grad_at(params.grad_offset + i + 1u), i + 1u) << 16u);
    }
    atomicStore(&weight[k], bits);
#else
    let i = invocation(wid, nwg, lid);
    if i >= params.len {
        return;
    }
    weight[i] = weight[i] - mul_rn(params.lr, grad[params.grad_offset + i]);
#endif
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd_sparse(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = invocation(wid, nwg, lid);
    let i = g / params.dim;
    let c = g % params.dim;
    if i >= params.len {
        return;
    }
    let row = rows[i];
    if row >= params.num_embeddings || row < params.row_begin || row >= params.row_end {
        return;
    }
    let w = (row - params.row_begin) * params.dim + c;
#ifdef F16
    let shift = (w & 1u) * 16u;
    let word = atomicLoad(&weight[w >> 1u]);
    let old = (word >> shift) & 0xFFFFu;
    let fresh = step_bits(unpack2x16float(old).x, grad_at(i * params.dim + c), w);
    // Only this half changes: the other may be another row's, written at once.
    atomicXor(&weight[w >> 1u], (old ^ fresh) << shift);
#else
    weight[w] = weight[w] - mul_rn(params.lr, grad[i * params.dim + c]);
#endif
}
