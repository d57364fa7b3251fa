//! CPU twin of `shaders/row_histogram.wgsl`.

/// `counts[r]` = how many of `indices` equal `r` (`counts` is cleared first).
/// An index outside the table is not counted and the smallest such position
/// lowers `status` (which starts at `u32::MAX`), as the shader's `atomicMin`.
pub fn row_histogram(num_embeddings: usize, indices: &[u32], status: &mut u32, counts: &mut [u32]) {
    assert_eq!(counts.len(), num_embeddings, "counts has one entry per row");
    counts.fill(0);
    for (p, &row) in indices.iter().enumerate() {
        if row as usize >= num_embeddings {
            *status = (*status).min(p as u32);
            continue;
        }
        counts[row as usize] += 1;
    }
}
