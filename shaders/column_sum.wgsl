// column_sum: out[n] = Σ_m x[m, n] (+ out[n] when accumulating), for x of
// shape [rows, cols]: the bias gradient of a Linear layer (Σ over the batch
// of dL/dy). One invocation per column walks the rows in order, so the sum is
// deterministic and the CPU twin matches it bit for bit; neighbouring
// invocations read neighbouring columns of a row.

override WORKGROUP_SIZE: u32 = 64u;
override ACCUMULATE: bool = false;

struct Params {
    rows: u32,
    cols: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn column_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let col = (wid.x + wid.y * nwg.x) * WORKGROUP_SIZE + lid;
    if col >= params.cols {
        return;
    }
    var sum = 0.0;
    for (var r = 0u; r < params.rows; r++) {
        sum += x[r * params.cols + col];
    }
    if ACCUMULATE {
        sum = out[col] + sum;
    }
    out[col] = sum;
}
