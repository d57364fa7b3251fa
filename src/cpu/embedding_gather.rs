//! CPU twin of `shaders/embedding_gather.wgsl`.

use super::Rows;

/// `out[p, :] = table[indices[p], :]` for a table of `num_embeddings` rows of
/// `dim` elements, f32 or f16 (the shader's `F16` variants: each element
/// widened to f32, exactly). A row whose index is out of range is zero-filled and the
/// smallest such position is written to `status` (which starts at `u32::MAX`),
/// exactly as the shader's `atomicMin` leaves it.
pub fn embedding_gather<T: Rows + ?Sized>(
    num_embeddings: usize,
    dim: usize,
    indices: &[u32],
    status: &mut u32,
    table: &T,
    out: &mut [f32],
) {
    assert!(
        dim == 0 || table.rows(dim) == num_embeddings,
        "the table holds num_embeddings rows of dim"
    );
    assert_eq!(
        out.len(),
        indices.len() * dim,
        "out length is indices × dim"
    );
    for (pos, &row) in indices.iter().enumerate() {
        let dst = pos * dim;
        if row as usize >= num_embeddings {
            *status = (*status).min(pos as u32);
            out[dst..dst + dim].fill(0.0);
            continue;
        }
        for (c, o) in out[dst..dst + dim].iter_mut().enumerate() {
            *o = table.value(row as usize, c, dim);
        }
    }
}
