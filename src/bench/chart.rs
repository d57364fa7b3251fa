//! The SVG chart: time and memory against vocabulary size, both paths, log scales.

use plotters::prelude::*;

use super::report::Results;

type Series = (String, RGBColor, Vec<(f64, f64)>);

fn series(
    results: &Results,
    path: &str,
    pick: impl Fn(&super::report::Row) -> Option<f64>,
) -> Vec<(f64, f64)> {
    results
        .rows
        .iter()
        .filter(|r| r.path == path)
        .filter_map(|r| pick(r).map(|y| (r.vocab as f64, y)))
        .filter(|&(_, y)| y > 0.0)
        .collect()
}

fn panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    title: &str,
    y_label: &str,
    x_range: (f64, f64),
    lines: &[Series],
) -> Result<(), String> {
    let ys: Vec<f64> = lines
        .iter()
        .flat_map(|(_, _, p)| p.iter().map(|&(_, y)| y))
        .collect();
    let (lo, hi) = ys
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &y| (lo.min(y), hi.max(y)));
    let (lo, hi) = if ys.is_empty() {
        (1.0, 10.0)
    } else {
        (lo / 2.0, hi * 40.0) // headroom above the data for the legend
    };
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((x_range.0..x_range.1).log_scale(), (lo..hi).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("vocabulary size (rows)")
        .y_desc(y_label)
        .x_label_formatter(&|v| {
            // Label 1, 3 and 10 times each power of ten; the rest crowd.
            let lead = v / 10f64.powf(v.log10().floor());
            if (lead - 1.0).abs() < 1e-6 || (lead - 3.0).abs() < 1e-6 {
                format!("{v:.0}")
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|v| {
            if *v >= 1.0 {
                format!("{v:.0}")
            } else {
                format!("{v}")
            }
        })
        .draw()
        .map_err(|e| e.to_string())?;
    for (name, color, points) in lines {
        if points.is_empty() {
            continue;
        }
        let c = *color;
        chart
            .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2)));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The two-panel chart as an SVG document: the CLI writes it to `chart.svg`,
/// the page puts it inline.
pub fn svg(results: &Results) -> Result<String, String> {
    let mut out = String::new();
    draw(results, &mut out)?;
    Ok(out)
}

fn draw(results: &Results, out: &mut String) -> Result<(), String> {
    let vocabs: Vec<f64> = results.rows.iter().map(|r| r.vocab as f64).collect();
    let x_range = (
        vocabs.iter().cloned().fold(f64::MAX, f64::min) / 1.5,
        vocabs.iter().cloned().fold(f64::MIN, f64::max) * 1.5,
    );
    let gather = RGBColor(31, 119, 180);
    let one_hot = RGBColor(214, 39, 40);
    let time = vec![
        (
            "gather forward".to_string(),
            gather,
            series(results, "gather", |r| r.forward_ms_median),
        ),
        (
            "gather backward (dense dW)".to_string(),
            RGBColor(120, 170, 220),
            series(results, "gather", |r| r.backward_ms_median),
        ),
        (
            "gather SGD step (fused, no dense dW)".to_string(),
            RGBColor(44, 160, 44),
            series(results, "gather_sgd", |r| r.backward_ms_median),
        ),
        (
            "one-hot forward".to_string(),
            one_hot,
            series(results, "one_hot", |r| r.forward_ms_median),
        ),
        (
            "one-hot backward".to_string(),
            RGBColor(240, 140, 140),
            series(results, "one_hot", |r| r.backward_ms_median),
        ),
    ];
    let mib = |b: u64| b as f64 / 1048576.0;
    let row_mib = (results.dim * 4) as f64 / 1048576.0;
    let memory = vec![
        (
            "gather forward, beyond the table".to_string(),
            gather,
            series(results, "gather", |r| r.forward_extra_bytes.map(mib)),
        ),
        (
            "one-hot forward, beyond the table".to_string(),
            one_hot,
            series(results, "one_hot", |r| r.forward_extra_bytes.map(mib)),
        ),
        (
            "gather peak, table and backward included".to_string(),
            RGBColor(120, 170, 220),
            series(results, "gather", |r| r.peak_bytes.map(mib)),
        ),
        (
            "one-hot peak, table and backward included".to_string(),
            RGBColor(240, 140, 140),
            series(results, "one_hot", |r| r.peak_bytes.map(mib)),
        ),
        (
            "the table itself (vocab × dim × 4 B)".to_string(),
            RGBColor(150, 150, 150),
            series(results, "gather", |r| Some(r.vocab as f64 * row_mib)),
        ),
    ];
    let root = SVGBackend::with_string(out, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let root = root
        .titled(
            &format!(
                "gather vs one-hot matmul — {} [{}], batch {}, dim {}",
                results.adapter, results.backend, results.batch, results.dim
            ),
            ("sans-serif", 20),
        )
        .map_err(|e| e.to_string())?;
    let (left, right) = root.split_horizontally(600);
    panel(
        &left,
        &format!("time ({})", results.clock),
        "milliseconds (median)",
        x_range,
        &time,
    )?;
    panel(&right, "memory", "MiB", x_range, &memory)?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}
