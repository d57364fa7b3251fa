//! CPU twin of `shaders/buffer_copy.wgsl`.

/// `dst[i] = src[i]` for the first `len4 * 4` floats.
pub fn buffer_copy(len4: usize, src: &[f32], dst: &mut [f32]) {
    for i in 0..len4 * 4 {
        dst[i] = src[i];
    }
}
