// sgd_update: weight -= lr * grad, for a dense gradient (sgd_dense, one
// invocation per element) or a sparse one (sgd_sparse, one invocation per
// (row, column) of `values`; `rows` must be unique, as the backward pass
// makes them, and rows outside the table are skipped).


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
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> weight: array<f32>;
@group(0) @binding(3) var<storage, read> rows: array<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn sgd_dense(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = invocation(wid, nwg, lid);
    if i >= params.len {
        return;
    }
    weight[i] = weight[i] - params.lr * grad[params.grad_offset + i];
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
    weight[w] = weight[w] - params.lr * grad[i * params.dim + c];
}
