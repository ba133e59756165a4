//! Overlay figures: several methods (or runs) on the same axes, one panel per metric. Each
//! method's line is the mean over its seeds of a moving average, with a band from the lowest
//! to the highest seed. Plain SVG text, like `plot.rs`.

use std::fmt::Write as _;

/// The runs of one method for one panel: per seed, (step, value) points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub label: String,
    /// One point list per seed (or per run).
    pub runs: Vec<Vec<(f64, f64)>>,
}

/// A panel: title and one series per method.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Title above the chart.
    pub title: String,
    /// The methods.
    pub series: Vec<Series>,
    /// Points of trailing moving average applied to each run (1: none).
    pub smoothing: usize,
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const WIDTH: f64 = 420.0;
const HEIGHT: f64 = 260.0;

/// Trailing moving average over `window` points (the first points average what there is).
pub fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let window = window.max(1);
    (0..points.len())
        .map(|i| {
            let start = (i + 1).saturating_sub(window);
            let slice = &points[start..=i];
            let mean = slice.iter().map(|p| p.1).sum::<f64>() / slice.len() as f64;
            (points[i].0, mean)
        })
        .collect()
}

/// Per step present in every run: (step, mean, min, max) over the runs.
pub fn band(runs: &[Vec<(f64, f64)>]) -> Vec<(f64, f64, f64, f64)> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .iter()
        .filter_map(|&(step, _)| {
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|run| run.iter().find(|p| p.0 == step).map(|p| p.1))
                .collect();
            (values.len() == runs.len()).then(|| {
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                let (low, high) = values
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
                        (a.min(*v), b.max(*v))
                    });
                (step, mean, low, high)
            })
        })
        .collect()
}

/// The SVG document of `panels` side by side, with a legend.
pub fn render(panels: &[Panel]) -> String {
    let legend_height = 18.0 * panels.first().map_or(0, |p| p.series.len()) as f64 + 10.0;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        WIDTH * panels.len() as f64,
        HEIGHT + legend_height
    );
    for (index, panel) in panels.iter().enumerate() {
        draw_panel(&mut svg, index as f64 * WIDTH, panel);
    }
    if let Some(panel) = panels.first() {
        for (i, series) in panel.series.iter().enumerate() {
            let y = HEIGHT + 14.0 + 18.0 * i as f64;
            let color = COLORS[i % COLORS.len()];
            let _ = writeln!(
                svg,
                "<rect x=\"48\" y=\"{:.1}\" width=\"14\" height=\"4\" fill=\"{color}\"/><text x=\"68\" y=\"{:.1}\">{} ({} runs)</text>",
                y - 4.0,
                y,
                escape(&series.label),
                series.runs.len()
            );
        }
    }
    svg.push_str("</svg>\n");
    svg
}

fn draw_panel(svg: &mut String, x0: f64, panel: &Panel) {
    let (left, right, top, bottom) = (x0 + 52.0, x0 + WIDTH - 14.0, 28.0, HEIGHT - 28.0);
    let bands: Vec<Vec<(f64, f64, f64, f64)>> = panel
        .series
        .iter()
        .map(|series| {
            let smoothed: Vec<Vec<(f64, f64)>> = series
                .runs
                .iter()
                .map(|run| smooth(run, panel.smoothing))
                .collect();
            band(&smoothed)
        })
        .collect();
    let points = bands.iter().flatten();
    let (xmin, xmax) = bounds(points.clone().map(|p| p.0));
    let (ymin, ymax) = bounds(points.flat_map(|p| [p.2, p.3]));
    let sx = |x: f64| left + (x - xmin) / (xmax - xmin) * (right - left);
    let sy = |y: f64| bottom - (y - ymin) / (ymax - ymin) * (bottom - top);
    let _ = writeln!(
        svg,
        "<text x=\"{left:.1}\" y=\"16\" font-weight=\"bold\">{}</text>",
        escape(&panel.title)
    );
    let _ = writeln!(
        svg,
        "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#999\"/>",
        right - left,
        bottom - top
    );
    for (value, y) in [(ymax, top + 8.0), (ymin, bottom)] {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{y:.1}\" text-anchor=\"end\">{}</text>",
            left - 4.0,
            number(value)
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{left:.1}\" y=\"{:.1}\">{}</text><text x=\"{right:.1}\" y=\"{:.1}\" text-anchor=\"end\">step {}</text>",
        bottom + 14.0,
        number(xmin),
        bottom + 14.0,
        number(xmax)
    );
    for (i, band) in bands.iter().enumerate() {
        if band.is_empty() {
            continue;
        }
        let color = COLORS[i % COLORS.len()];
        let upper = band
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.3)));
        let lower = band
            .iter()
            .rev()
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.2)));
        let outline: Vec<String> = upper.chain(lower).collect();
        let _ = writeln!(
            svg,
            "<polygon points=\"{}\" fill=\"{color}\" fill-opacity=\"0.15\" stroke=\"none\"/>",
            outline.join(" ")
        );
        let line: Vec<String> = band
            .iter()
            .map(|p| format!("{:.1},{:.1}", sx(p.0), sy(p.1)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.8\"/>",
            line.join(" ")
        );
    }
}

/// Min and max, widened when they coincide or nothing is finite.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if !min.is_finite() || !max.is_finite() {
        (0.0, 1.0)
    } else if max > min {
        (min, max)
    } else {
        (min - 0.5, max + 0.5)
    }
}

fn number(v: f64) -> String {
    if v.abs() >= 1000.0 || v == v.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moving_average_and_seed_band() {
        let run = [(1.0, 1.0), (2.0, 3.0), (3.0, 5.0), (4.0, 7.0)];
        assert_eq!(
            smooth(&run, 2),
            [(1.0, 1.0), (2.0, 2.0), (3.0, 4.0), (4.0, 6.0)]
        );
        let other = vec![(1.0, 3.0), (2.0, 1.0), (4.0, 1.0)];
        // Step 3 is missing from the second run, so it has no band point.
        assert_eq!(
            band(&[run.to_vec(), other]),
            [
                (1.0, 2.0, 1.0, 3.0),
                (2.0, 2.0, 1.0, 3.0),
                (4.0, 4.0, 1.0, 7.0)
            ]
        );
    }

    #[test]
    fn the_figure_has_a_line_and_a_band_per_method_and_a_legend() {
        let panel = Panel {
            title: "reward".into(),
            series: vec![
                Series {
                    label: "grpo".into(),
                    runs: vec![vec![(1.0, 0.1), (2.0, 0.2)], vec![(1.0, 0.3), (2.0, 0.4)]],
                },
                Series {
                    label: "ep_grpo".into(),
                    runs: vec![vec![(1.0, 0.5), (2.0, 0.6)]],
                },
            ],
            smoothing: 1,
        };
        let svg = render(&[panel]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<polygon").count(), 2);
        assert!(svg.contains("grpo (2 runs)") && svg.contains("ep_grpo (1 runs)"));
    }
}
