//! CPU twin of `shaders/sgd_update.wgsl`.

/// `weight[i] -= lr * grad[i]` for every element.
pub fn sgd_dense(lr: f32, grad: &[f32], weight: &mut [f32]) {
    assert_eq!(
        grad.len(),
        weight.len(),
        "a dense gradient has the table's shape"
    );
    for i in 0..weight.len() {
        weight[i] -= lr * grad[i];
    }
}

/// `weight[rows[i], :] -= lr * values[i, :]`; rows outside the table are skipped.
pub fn sgd_sparse(
    num_embeddings: usize,
    dim: usize,
    lr: f32,
    values: &[f32],
    weight: &mut [f32],
    rows: &[u32],
) {
    for (i, &row) in rows.iter().enumerate() {
        let row = row as usize;
        if row >= num_embeddings {
            continue;
        }
        for c in 0..dim {
            weight[row * dim + c] -= lr * values[i * dim + c];
        }
    }
}
