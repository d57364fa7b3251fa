// column_sum: out[n] = Σ_m x[m, n] (+ out[n] when accumulating), for x of
// shape [rows, cols]: the bias gradient of a Linear layer (Σ over the batch
// of dL/dy). One invocation per column walks the rows in order, so the sum is
// deterministic and the CPU twin matches it bit for bit; neighbouring
// invocations read neighbouring columns of a row.
//
// Tall inputs. One invocation sums at most block_rows rows: Mesa's gallivm cuts an invocation's loops short (`kernels::LOOP_BUDGET`), so a batch of 70 000 rows would be
// summed short. Past block_rows the host runs this kernel on blocks of rows
// (invocation (b, n) writes block b's sum to out[b, n]), then again on the
// [blocks, cols] block sums, until one block is left; the sums are added in
// block order on every adapter, and the twin does the same.

override ACCUMULATE: bool = false;

struct Params {
    rows: u32,
    cols: u32,
    block_rows: u32, // rows per invocation (the host's BLOCK_ROWS)
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
    let g = invocation(wid, nwg, lid);
    let block = g / params.cols;
    let col = g % params.cols;
    let first = block * params.block_rows;
    if first >= params.rows && block > 0u {
        return;
    }
    let end = first + min(params.rows - min(first, params.rows), params.block_rows);
    var sum = 0.0;
    for (var r = first; r < end; r++) {
        sum += x[r * params.cols + col];
    }
    if ACCUMULATE {
        sum = out[col] + sum;
    }
    out[block * params.cols + col] = sum;
}
