//! CPU twin of `shaders/scatter_add_atomic.wgsl`. The GPU adds in whatever
//! order its invocations arrive; this twin takes one of those orders
//! (ascending positions), and with `scale_by_freq` divides with IEEE's `/`
//! where the shader's WGSL `/` may be 2.5 ulp off, so comparisons against
//! it need a tolerance.

/// `grad[indices[p], :] += grad_out[p, :] / scale` over positions in order,
/// where `scale` is the row's count when `scale_by_freq`, else 1. The padding
/// row receives nothing; out-of-range positions lower `status` and are skipped.
#[allow(clippy::too_many_arguments)]
pub fn scatter_add_atomic(
    num_embeddings: usize,
    dim: usize,
    padding_idx: Option<usize>,
    scale_by_freq: bool,
    indices: &[u32],
    status: &mut u32,
    counts: &[u32],
    grad_out: &[f32],
    grad: &mut [f32],
) {
    assert_eq!(
        grad.len(),
        num_embeddings * dim,
        "grad is num_embeddings × dim"
    );
    grad.fill(0.0);
    for (p, &row) in indices.iter().enumerate() {
        let row = row as usize;
        if row >= num_embeddings {
            *status = (*status).min(p as u32);
            continue;
        }
        if Some(row) == padding_idx {
            continue;
        }
        let scale = if scale_by_freq {
            counts[row].max(1) as f32
        } else {
            1.0
        };
        for c in 0..dim {
            grad[row * dim + c] += grad_out[p * dim + c] / scale;
        }
    }
}
