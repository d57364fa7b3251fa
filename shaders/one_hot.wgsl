// one_hot: out[p, c] = 1.0 if indices[p] == c else 0.0, an n × num_classes
// matrix. The baseline the benchmark holds gather against: it materialises
// exactly what an embedding avoids. Each invocation writes four neighbouring
// columns of one row. An out-of-range index gives an all-zero row and
// lowers status[0] to its position with atomicMin (the host initialises it
// to STATUS_OK), as the gather does: the smallest bad position wins.


struct Params {
    n: u32,
    num_classes: u32,
    quads_per_row: u32, // ceil(num_classes / 4)
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> status: array<atomic<u32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn one_hot(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let g = invocation(wid, nwg, lid);
    let pos = g / params.quads_per_row;
    if pos >= params.n {
        return;
    }
    let c0 = (g % params.quads_per_row) * 4u;
    let hot = indices[pos];
    if c0 == 0u && hot >= params.num_classes {
        atomicMin(&status[0], pos);
    }
    let base = pos * params.num_classes;
    for (var c = c0; c < min(c0 + 4u, params.num_classes); c++) {
        out[base + c] = select(0.0, 1.0, c == hot);
    }
}
