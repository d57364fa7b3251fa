//! What more than one bench file uses (a folder, so cargo does not take it
//! for a bench of its own).

use std::time::Instant;

/// The median of 7 wall-clock runs of `f`, in milliseconds, after one run
/// to warm it up: the summary line a bench prints beside criterion's figures.
pub fn median_ms(mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}
