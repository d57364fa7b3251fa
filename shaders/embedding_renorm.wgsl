// embedding_renorm: max_norm, as PyTorch's embedding_renorm_. Every row the
// batch references whose norm_type-norm exceeds max_norm is scaled in place
// by max_norm / (norm + 1e-7). Runs before the gather, in the same encoder.
//
// One invocation per id of the batch, not per table row, so a lookup costs
// the batch: the invocation that claims a row first renormalises it, so a
// row the batch repeats is scaled once, by one invocation, whichever it is.
// A claim writes this call's epoch into the row's u32 of `claims`; the row is
// taken if it held the epoch already. The host gives each call on a buffer
// a new nonzero epoch, so the buffer is cleared once, when it is made, and
// not on every lookup (which would cost the table, not the batch).
//
// A table past one storage binding is renormalised one row-block per
// dispatch: `weight` holds table rows row_begin .. row_end from its start
// (the whole table is one chunk), and ids of other rows are skipped before
// they claim anything; an id list past one binding is read in windows.
//
// One invocation loops over its row twice, so on CPU adapters the host
// refuses rows past 16 384 floats: Mesa's gallivm cuts an invocation's loops
// short (`kernels::LOOP_BUDGET`), which would leave a wider row half scaled.
//
// norm_type 1 and 2 use only additions and exact_arith's ×, ÷ and √
// (rounded once, never fused, on every compiler), and infinity (the largest
// magnitude) only comparisons, so their rows match the CPU twin bit for bit
// everywhere; other values use pow, whose precision varies by adapter, so
// those rows match it to a few ulps.
// with: exact_arith/ops.wgsl



struct Params {
    num_embeddings: u32,
    dim: u32,
    max_norm: f32,
    norm_type: f32,
    row_begin: u32,
    row_end: u32,
    n: u32,        // ids in this window of `indices`
    epoch: u32,    // this call's claim mark: nonzero, new to `claims`
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> status: array<u32>;
@group(0) @binding(2) var<storage, read> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> weight: array<f32>;
@group(0) @binding(4) var<storage, read_write> claims: array<atomic<u32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn embedding_renorm(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = invocation(wid, nwg, lid);
    if i >= params.n || status[0] != STATUS_OK {
        return;
    }
    let r = indices[i];
    if r < params.row_begin || r >= params.row_end || r >= params.num_embeddings {
        return;
    }
    if atomicExchange(&claims[r], params.epoch) == params.epoch {
        return; // another id of the batch has this row
    }
    let base = (r - params.row_begin) * params.dim;
    let p = params.norm_type;
    // Infinities, NaNs and subnormals are told apart on the bits: a compiler
    // may assume float comparisons see none, and a device may flush
    // subnormals. For magnitudes (sign bit clear) the bits order as the
    // values, and every NaN sorts above +inf.
    let p_inf = bitcast<u32>(p) == 0x7f800000u;
    var acc = 0.0;
    for (var c = 0u; c < params.dim; c++) {
        let x = abs(weight[base + c]);
        if p == 1.0 {
            acc = acc + x;
        } else if p == 2.0 {
            acc = acc + mul_rn(x, x);
        } else if p_inf {
            // The largest |x|; a NaN stays, as torch.norm's would.
            let bits = bitcast<u32>(weight[base + c]) & 0x7fffffffu;
            acc = bitcast<f32>(max(bitcast<u32>(acc), bits));
        } else if x > 0.0 {
            acc = acc + pow(x, p);
        }
    }
    var norm = acc;
    if p == 2.0 {
        norm = sqrt_rn(acc);
    } else if p != 1.0 && !p_inf && acc > 0.0 {
        norm = pow(acc, 1.0 / p);
    }
    // norm > max_norm, both non-negative: false for a NaN norm.
    let norm_bits = bitcast<u32>(norm);
    if norm_bits <= 0x7f800000u && norm_bits > bitcast<u32>(params.max_norm) {
        let scale = div_rn(params.max_norm, norm + 1e-7);
        for (var c = 0u; c < params.dim; c++) {
            weight[base + c] = mul_rn(weight[base + c], scale);
        }
    }
}
