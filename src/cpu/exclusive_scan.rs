//! CPU twin of `shaders/exclusive_scan.wgsl` (integer sums: the GPU's
//! block grouping cannot change the result, so one loop is the whole twin).

/// `out[i]` = sum of the first `i` elements for `i` in `0..=input.len()`.
/// With `flags`, element `x` counts as `(x != 0) as u32`; element `exclude`
/// counts as zero.
pub fn exclusive_scan(input: &[u32], exclude: Option<usize>, flags: bool, out: &mut [u32]) {
    assert_eq!(out.len(), input.len() + 1, "out holds len + 1 entries");
    let mut running = 0u32;
    for (i, &x) in input.iter().enumerate() {
        out[i] = running;
        let v = if Some(i) == exclude {
            0
        } else if flags {
            (x != 0) as u32
        } else {
            x
        };
        running = running.wrapping_add(v);
    }
    out[input.len()] = running;
}
