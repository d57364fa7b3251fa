//! CPU twin of `shaders/column_sum.wgsl`.

use crate::kernels::column_sum::BLOCK_ROWS;

/// `out[c] = Σ_r x[r, c]` (then `out[c] + sum` when accumulating), summed in
/// f32 in the shader's order, so the two agree bit for bit: rows in order up
/// to [`BLOCK_ROWS`]; past that, the sums of blocks of `BLOCK_ROWS` rows,
/// themselves summed the same way in block order (the host's passes).
pub fn column_sum(rows: usize, cols: usize, accumulate: bool, x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), rows * cols, "x holds rows × cols values");
    assert_eq!(out.len(), cols, "out holds cols values");
    if rows > BLOCK_ROWS {
        let blocks = rows.div_ceil(BLOCK_ROWS);
        let mut sums = vec![0.0f32; blocks * cols];
        column_sum_pass(rows, cols, BLOCK_ROWS, false, x, &mut sums);
        return column_sum(blocks, cols, accumulate, &sums, out);
    }
    column_sum_pass(rows, cols, BLOCK_ROWS, accumulate, x, out);
}

/// One dispatch: `out[b, c]` = the sum of rows `b · block_rows ..` of column
/// `c`, from 0 in row order (one block, `accumulate`: `out[c] + sum`).
fn column_sum_pass(
    rows: usize,
    cols: usize,
    block_rows: usize,
    accumulate: bool,
    x: &[f32],
    out: &mut [f32],
) {
    for block in 0..rows.div_ceil(block_rows).max(1) {
        let first = block * block_rows;
        let end = (first + block_rows).min(rows);
        for col in 0..cols {
            let mut sum = 0.0f32;
            for r in first..end {
                sum += x[r * cols + col];
            }
            if accumulate {
                sum += out[col];
            }
            out[block * cols + col] = sum;
        }
    }
}
