//! CPU twin of `shaders/buffer_copy.wgsl`.

/// `dst[i] = src[i]` for the first `len4 * 4` floats.
pub fn buffer_copy(len4: usize, src: &[f32], dst: &mut [f32]) {
    dst[..len4 * 4].copy_from_slice(&src[..len4 * 4]);
}
