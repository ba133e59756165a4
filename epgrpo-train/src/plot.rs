//! `plots.svg` of a run: one small line chart per metric of `metrics.jsonl`, RL steps on the x
//! axis (the warm-start loss gets its own panel). Written as plain SVG text: no font or image
//! library is needed, and any browser shows it.

use std::fmt::Write as _;
use std::path::Path;

use crate::error::CliError;
use crate::metrics::{StepMetrics, read_metrics};

/// The panels: title and how to read the value from a line (None: not logged at that step).
type Panel = (&'static str, fn(&StepMetrics) -> Option<f64>);

const RL_PANELS: [Panel; 12] = [
    ("reward / mean", |m| m.rl.as_ref().map(|r| r.reward_mean)),
    ("held-out accuracy", |m| m.eval_accuracy),
    ("zero-variance groups", |m| {
        m.rl.as_ref().map(|r| r.zero_var_frac)
    }),
    ("tokens with advantage ≠ 0", |m| {
        m.rl.as_ref().map(|r| r.nonzero_adv_frac)
    }),
    ("entropy mean (nats)", |m| {
        m.rl.as_ref().map(|r| r.entropy_mean)
    }),
    ("gate W mean", |m| m.rl.as_ref().map(|r| r.gate_mean)),
    ("|Â out| mean", |m| {
        m.rl.as_ref().map(|r| r.outcome_abs_mean)
    }),
    ("|Â prog| mean", |m| {
        m.rl.as_ref().map(|r| r.progress_abs_mean)
    }),
    ("KL to reference (k3)", |m| m.rl.as_ref().map(|r| r.kl_mean)),
    ("policy loss", |m| Some(m.loss)),
    ("response length", |m| {
        m.rl.as_ref().map(|r| r.response_len_mean)
    }),
    ("update tokens/s", |m| {
        m.rl.as_ref().map(|r| r.update_tokens_per_s)
    }),
];

const WIDTH: f64 = 300.0;
const HEIGHT: f64 = 180.0;
const COLUMNS: usize = 3;

/// Reads `run_dir/metrics.jsonl` and writes `run_dir/plots.svg`; returns its path.
pub fn plot_run(run_dir: &Path) -> Result<std::path::PathBuf, CliError> {
    let metrics = read_metrics(&run_dir.join("metrics.jsonl"))?;
    if metrics.is_empty() {
        return Err(CliError::Input(format!(
            "{}: no metrics.jsonl to plot",
            run_dir.display()
        )));
    }
    let rl: Vec<&StepMetrics> = metrics.iter().filter(|m| m.stage == "rl").collect();
    let sft: Vec<&StepMetrics> = metrics.iter().filter(|m| m.stage == "sft").collect();
    let mut panels: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let sft_loss: Panel = ("warm-start loss", |m| Some(m.loss));
    for ((title, read), lines) in
        std::iter::once((sft_loss, &sft)).chain(RL_PANELS.into_iter().map(|panel| (panel, &rl)))
    {
        let logged: Vec<(f64, f64)> = lines
            .iter()
            .filter_map(|m| read(m).map(|v| (m.step as f64, v)))
            .collect();
        let points: Vec<(f64, f64)> = logged
            .iter()
            .copied()
            .filter(|(_, v)| v.is_finite())
            .collect();
        // A NaN or infinite value has no place on the axis; the title says how many were left
        // out, so a diverged step is not silently hidden.
        let title = match logged.len() - points.len() {
            0 => title.to_string(),
            1 => format!("{title} (1 step not finite)"),
            n => format!("{title} ({n} steps not finite)"),
        };
        if !logged.is_empty() {
            panels.push((title, points));
        }
    }
    let rows = panels.len().div_ceil(COLUMNS);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
        WIDTH * COLUMNS as f64,
        HEIGHT * rows as f64
    );
    for (i, (title, points)) in panels.iter().enumerate() {
        let (x0, y0) = ((i % COLUMNS) as f64 * WIDTH, (i / COLUMNS) as f64 * HEIGHT);
        panel(&mut svg, x0, y0, title, points);
    }
    svg.push_str("</svg>\n");
    let path = run_dir.join("plots.svg");
    std::fs::write(&path, svg)
        .map_err(|e| CliError::Internal(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// One chart at (x0, y0): title, frame, min/max labels and the polyline (only the title when
/// no value is finite).
fn panel(svg: &mut String, x0: f64, y0: f64, title: &str, points: &[(f64, f64)]) {
    let (left, right, top, bottom) = (x0 + 48.0, x0 + WIDTH - 12.0, y0 + 24.0, y0 + HEIGHT - 28.0);
    let (xmin, xmax) = bounds(points.iter().map(|p| p.0));
    let (ymin, ymax) = bounds(points.iter().map(|p| p.1));
    let sx = |x: f64| left + (x - xmin) / (xmax - xmin) * (right - left);
    let sy = |y: f64| bottom - (y - ymin) / (ymax - ymin) * (bottom - top);
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>",
        left,
        y0 + 15.0,
        escape(title)
    );
    if points.is_empty() {
        return;
    }
    let _ = writeln!(
        svg,
        "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#999\"/>",
        right - left,
        bottom - top
    );
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        left - 4.0,
        top + 8.0,
        number(ymax)
    );
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        left - 4.0,
        bottom,
        number(ymin)
    );
    let _ = writeln!(
        svg,
        "<text x=\"{left:.1}\" y=\"{:.1}\">{}</text>",
        bottom + 14.0,
        number(xmin)
    );
    let _ = writeln!(
        svg,
        "<text x=\"{right:.1}\" y=\"{:.1}\" text-anchor=\"end\">step {}</text>",
        bottom + 14.0,
        number(xmax)
    );
    let line: Vec<String> = points
        .iter()
        .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
        .collect();
    let _ = writeln!(
        svg,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>",
        line.join(" ")
    );
    if points.len() <= 12 {
        for &(x, y) in points {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#1f77b4\"/>",
                sx(x),
                sy(y)
            );
        }
    }
}

/// Min and max, widened when they coincide so that the scale is defined.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (min, max) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    if max > min {
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
    fn non_finite_values_are_left_off_the_curves_and_counted() {
        let dir = std::env::temp_dir().join(format!("epgrpo-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let lines = [
            r#"{"stage":"sft","step":1,"lr":0.001,"loss":2.5,"grad_norm":1}"#,
            r#"{"stage":"sft","step":2,"lr":0.001,"loss":"NaN","grad_norm":"Infinity"}"#,
            r#"{"stage":"sft","step":3,"lr":0.001,"loss":1.5,"grad_norm":1}"#,
        ];
        std::fs::write(dir.join("metrics.jsonl"), lines.join("\n")).unwrap();
        let svg = std::fs::read_to_string(plot_run(&dir).unwrap()).unwrap();
        assert!(svg.contains("warm-start loss (1 step not finite)"), "{svg}");
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        // The two finite points span the panel: the labels are their min and max.
        assert!(svg.contains(">2.500<") && svg.contains(">1.500<"), "{svg}");
        assert_eq!(svg.matches("<circle").count(), 2);
        std::fs::remove_dir_all(&dir).ok();
    }
}
