//! CPU twin of `shaders/exclusive_scan.wgsl` (integer sums: the GPU's
//! block grouping cannot change the result, so one loop is the whole twin).

pub use crate::kernels::exclusive_scan::ScanMode;

/// `out[i]` = sum of the first `i` elements for `i` in `0..=input.len()`.
/// With `Nonzero`, element `x` counts as `(x != 0) as u32`; with `RunStarts`
/// as 1 when it starts a run of equal values and is not `exclude` (a value
/// then); otherwise element `exclude` counts as zero.
pub fn exclusive_scan(input: &[u32], exclude: Option<usize>, mode: ScanMode, out: &mut [u32]) {
    assert_eq!(out.len(), input.len() + 1, "out holds len + 1 entries");
    let mut running = 0u32;
    for (i, &x) in input.iter().enumerate() {
        out[i] = running;
        let v = match mode {
            ScanMode::RunStarts => {
                let starts = i == 0 || input[i - 1] != x;
                // As the shader's word: none, or one past u32, excludes nothing.
                let excluded = exclude.filter(|&e| e < u32::MAX as usize) == Some(x as usize);
                (starts && !excluded) as u32
            }
            _ if Some(i) == exclude => 0,
            ScanMode::Nonzero => (x != 0) as u32,
            ScanMode::Sum => x,
        };
        running = running.wrapping_add(v);
    }
    out[input.len()] = running;
}
