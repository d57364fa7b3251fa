//! CPU twin of `shaders/column_sum.wgsl`.

/// `out[c] = Σ_r x[r, c]` (then `out[c] + sum` when accumulating), summed in
/// f32 row by row in the shader's order, so the two agree bit for bit.
pub fn column_sum(rows: usize, cols: usize, accumulate: bool, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), rows * cols, "x holds rows × cols values");
    assert_eq!(out.len(), cols, "out holds cols values");
    for col in 0..cols {
        let mut sum = 0.0f32;
        for r in 0..rows {
            sum += x[r * cols + col];
        }
        if accumulate {
            sum += out[col];
        }
        out[col] = sum;
    }
}
