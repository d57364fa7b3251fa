//! CPU twin of `shaders/embedding_renorm.wgsl`.

/// Scales each row `indices` names (once, however often; ids past the table
/// are skipped) whose `norm_type`-norm exceeds `max_norm` by
/// `max_norm / (norm + 1e-7)`, as PyTorch's `embedding_renorm_` (in f32,
/// summing the row's columns in ascending order; `norm_type` infinite: the
/// largest magnitude). The shader's invocation per id claims its row first;
/// here, the id that names it first.
pub fn embedding_renorm(
    num_embeddings: usize,
    dim: usize,
    max_norm: f32,
    norm_type: f32,
    status: u32,
    indices: &[u32],
    weight: &mut [f32],
) {
    if status != u32::MAX {
        return;
    }
    let p = norm_type;
    let mut claims = vec![false; num_embeddings];
    for &r in indices {
        let r = r as usize;
        if r >= num_embeddings || std::mem::replace(&mut claims[r], true) {
            continue;
        }
        let row = &mut weight[r * dim..(r + 1) * dim];
        let mut acc = 0.0f32;
        for &w in row.iter() {
            let x = w.abs();
            if p == 1.0 {
                acc += x;
            } else if p == 2.0 {
                acc += x * x;
            } else if p == f32::INFINITY {
                // The largest |x| on the bits, as the shader: a NaN stays,
                // as torch.norm's would.
                acc = f32::from_bits(acc.to_bits().max(x.to_bits()));
            } else if x > 0.0 {
                acc += x.powf(p);
            }
        }
        let norm = if p == 2.0 {
            acc.sqrt()
        } else if p != 1.0 && p != f32::INFINITY && acc > 0.0 {
            acc.powf(1.0 / p)
        } else {
            acc
        };
        if norm > max_norm {
            let scale = max_norm / (norm + 1e-7);
            for w in row.iter_mut() {
                *w *= scale;
            }
        }
    }
}
