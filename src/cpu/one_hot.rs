//! CPU twin of `shaders/one_hot.wgsl`.

/// `out[p, c] = 1.0` if `indices[p] == c`, else `0.0`; `out` is
/// `indices.len() × num_classes`. An out-of-range index gives a zero row and
/// lowers `status` to its position (it starts at `STATUS_OK`).
pub fn one_hot(indices: &[u32], num_classes: usize, status: &mut u32, out: &mut [f32]) {
    assert_eq!(
        out.len(),
        indices.len() * num_classes,
        "out length is indices × classes"
    );
    for (pos, &hot) in indices.iter().enumerate() {
        if hot as usize >= num_classes {
            *status = (*status).min(pos as u32);
        }
        let base = pos * num_classes;
        for c in 0..num_classes {
            out[base + c] = if c == hot as usize { 1.0 } else { 0.0 };
        }
    }
}
