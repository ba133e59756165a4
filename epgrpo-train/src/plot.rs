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
    let mut panels: Vec<(&str, Vec<(f64, f64)>)> = Vec::new();
    if !sft.is_empty() {
        panels.push((
            "warm-start loss",
            sft.iter().map(|m| (m.step as f64, m.loss)).collect(),
        ));
    }
    for (title, read) in RL_PANELS {
        let points: Vec<(f64, f64)> = rl
            .iter()
            .filter_map(|m| read(m).map(|v| (m.step as f64, v)))
            .filter(|(_, v)| v.is_finite())
            .collect();
        if !points.is_empty() {
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

/// One chart at (x0, y0): title, frame, min/max labels and the polyline.
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
