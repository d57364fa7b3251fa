//! CPU twin of `shaders/embedding_gather.wgsl`.

/// `out[p, :] = table[indices[p], :]` for a table of `num_embeddings` rows of
/// `dim` floats. A row whose index is out of range is zero-filled and the
/// smallest such position is written to `status` (which starts at `u32::MAX`),
/// exactly as the shader's `atomicMin` leaves it.
pub fn embedding_gather(
    num_embeddings: usize,
    dim: usize,
    indices: &[u32],
    status: &mut u32,
    table: &[f32],
    out: &mut [f32],
) {
    assert_eq!(
        table.len(),
        num_embeddings * dim,
        "table length is rows × dim"
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
        let src = row as usize * dim;
        out[dst..dst + dim].copy_from_slice(&table[src..src + dim]);
    }
}

/// CPU twin of the shader's `F16` variants: the same gather from
/// an f16 table, each element widened to f32 (exactly).
pub fn embedding_gather_f16(
    num_embeddings: usize,
    dim: usize,
    indices: &[u32],
    status: &mut u32,
    table: &[half::f16],
    out: &mut [f32],
) {
    assert_eq!(
        table.len(),
        num_embeddings * dim,
        "table length is rows × dim"
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
        let src = row as usize * dim;
        for c in 0..dim {
            out[dst + c] = table[src + c].to_f32();
        }
    }
}
