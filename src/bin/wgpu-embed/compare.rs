//! `wgpu-embed compare a.json b.json`: two runs side by side, with ratios.

use std::path::Path;

use wgpu_embed::bench::Results;

pub fn run(a: &Path, b: &Path) -> Result<(), String> {
    let (ra, rb) = (Results::read_json(a)?, Results::read_json(b)?);
    // As every command prints: a closed pipe (`| head`) ends it quietly.
    crate::say(format_args!("{}", table(&ra, &rb).trim_end()))
}

/// The side-by-side table: rows matched by (vocab, path), A's order then
/// B's rows that A lacks; ratio = b / a.
pub fn table(a: &Results, b: &Results) -> String {
    let mut s = format!(
        "A: {} — {} [{}], {}\n",
        a.producer, a.adapter, a.backend, a.clock
    );
    s += &format!(
        "B: {} — {} [{}], {}\n",
        b.producer, b.adapter, b.backend, b.clock
    );
    if (a.batch, a.dim) != (b.batch, b.dim) {
        s += &format!(
            "warning: different sizes (A: batch {} dim {}, B: batch {} dim {})\n",
            a.batch, a.dim, b.batch, b.dim
        );
    }
    s += &format!(
        "{:>9} {:<11} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7}\n",
        "vocab", "path", "A fwd ms", "B fwd ms", "B/A", "A bwd ms", "B bwd ms", "B/A"
    );
    let ms = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "—".into());
    let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if x > 0.0 => format!("{:.2}", y / x),
        _ => "—".into(),
    };
    for ra in &a.rows {
        let rb = b
            .rows
            .iter()
            .find(|r| r.vocab == ra.vocab && r.path == ra.path);
        let (bf, bb) = (
            rb.and_then(|r| r.forward_ms_median),
            rb.and_then(|r| r.backward_ms_median),
        );
        s += &format!(
            "{:>9} {:<11} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7}\n",
            ra.vocab,
            ra.path,
            ms(ra.forward_ms_median),
            ms(bf),
            ratio(ra.forward_ms_median, bf),
            ms(ra.backward_ms_median),
            ms(bb),
            ratio(ra.backward_ms_median, bb)
        );
    }
    // B's rows that A lacks (another vocabulary list): shown, not dropped.
    for rb in &b.rows {
        if !a
            .rows
            .iter()
            .any(|r| r.vocab == rb.vocab && r.path == rb.path)
        {
            s += &format!(
                "{:>9} {:<11} {:>10} {:>10} {:>7} {:>10} {:>10} {:>7}\n",
                rb.vocab,
                rb.path,
                "—",
                ms(rb.forward_ms_median),
                "—",
                "—",
                ms(rb.backward_ms_median),
                "—"
            );
        }
    }
    s
}
