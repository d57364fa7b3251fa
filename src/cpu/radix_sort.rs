//! CPU twin of `shaders/radix_sort.wgsl`: the same LSD passes over 4-bit
//! digits. Each pass is a stable counting sort by one digit; the shader's
//! blocks change how the counts are gathered, never where an element lands.

use crate::kernels::radix_sort::{passes, DIGIT_BITS};

/// Sorts `keys` (each below `key_bound`, else sorted by its low bits only)
/// stably, writing the sorted keys and the positions they came from.
pub fn radix_sort(keys: &[u32], key_bound: usize, keys_out: &mut [u32], positions_out: &mut [u32]) {
    let n = keys.len();
    assert!(
        keys_out.len() == n && positions_out.len() == n,
        "outputs hold n entries"
    );
    if n == 0 {
        return;
    }
    let mut cur_keys = keys.to_vec();
    let mut cur_pos: Vec<u32> = (0..n as u32).collect();
    let radix = 1usize << DIGIT_BITS;
    for pass in 0..passes(key_bound) {
        let shift = pass * DIGIT_BITS;
        let digit = |k: u32| ((k >> shift) as usize) & (radix - 1);
        let mut starts = vec![0usize; radix + 1];
        for &k in &cur_keys {
            starts[digit(k) + 1] += 1;
        }
        for d in 0..radix {
            starts[d + 1] += starts[d];
        }
        let mut next_keys = vec![0u32; n];
        let mut next_pos = vec![0u32; n];
        for i in 0..n {
            let d = digit(cur_keys[i]);
            next_keys[starts[d]] = cur_keys[i];
            next_pos[starts[d]] = cur_pos[i];
            starts[d] += 1;
        }
        cur_keys = next_keys;
        cur_pos = next_pos;
    }
    keys_out.copy_from_slice(&cur_keys);
    positions_out.copy_from_slice(&cur_pos);
}
