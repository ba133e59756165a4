//! Per-step metrics: what is logged, under which key, and the JSONL file they go to.
//! `docs/metrics.md` explains every key.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// One line of `metrics.jsonl`. Keys are slash-namespaced; absent values are omitted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// `sft` or `rl`.
    pub stage: String,
    /// Step within the stage, from 1.
    pub step: usize,
    /// Learning rate used at this step.
    pub lr: f64,
    /// Policy loss (RL) or cross-entropy (SFT).
    #[serde(rename = "loss")]
    pub loss: f64,
    /// Global gradient norm before clipping.
    #[serde(rename = "grad_norm")]
    pub grad_norm: f64,
    /// RL-only statistics.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub rl: Option<RlMetrics>,
    /// Held-out greedy accuracy, when evaluated at this step.
    #[serde(rename = "eval/accuracy", skip_serializing_if = "Option::is_none")]
    pub eval_accuracy: Option<f64>,
}

/// Statistics of one RL step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RlMetrics {
    /// Mean reward of the B × G answers.
    #[serde(rename = "reward/mean")]
    pub reward_mean: f64,
    /// Std of the rewards (population).
    #[serde(rename = "reward/std")]
    pub reward_std: f64,
    /// Fraction of answers verified correct.
    #[serde(rename = "reward/accuracy")]
    pub accuracy: f64,
    /// Fraction of prompt groups whose rewards all tie (E4 zero variance).
    #[serde(rename = "reward/zero_var_frac")]
    pub zero_var_frac: f64,
    /// Fraction of answer tokens with a non-zero advantage (|Â| > 1e-8).
    #[serde(rename = "adv/nonzero_frac")]
    pub nonzero_adv_frac: f64,
    /// Mean |Â| of the outcome term W·Â_i (E5).
    #[serde(rename = "adv/outcome_abs_mean")]
    pub outcome_abs_mean: f64,
    /// Mean |Â^prog| of the progress term (E11).
    #[serde(rename = "adv/progress_abs_mean")]
    pub progress_abs_mean: f64,
    /// Mean token entropy of π_old (E1), nats.
    #[serde(rename = "entropy/mean")]
    pub entropy_mean: f64,
    /// 10th, 50th and 90th percentiles of the token entropy.
    #[serde(rename = "entropy/p10")]
    pub entropy_p10: f64,
    /// Median token entropy.
    #[serde(rename = "entropy/p50")]
    pub entropy_p50: f64,
    /// 90th percentile of the token entropy.
    #[serde(rename = "entropy/p90")]
    pub entropy_p90: f64,
    /// Mean of the token weight (the gate W for EP-GRPO).
    #[serde(rename = "ep/gate_mean")]
    pub gate_mean: f64,
    /// Std of the token weight.
    #[serde(rename = "ep/gate_std")]
    pub gate_std: f64,
    /// Mean |lp_old − lp_ref|: drift of the policy from the reference.
    #[serde(rename = "ep/drift_abs_mean")]
    pub drift_abs_mean: f64,
    /// Fraction of tokens where the lower clip was active.
    #[serde(rename = "clip/low_frac")]
    pub clip_low_frac: f64,
    /// Fraction of tokens where the upper clip was active.
    #[serde(rename = "clip/high_frac")]
    pub clip_high_frac: f64,
    /// Mean k3 KL(π_θ ‖ π_ref) per token.
    #[serde(rename = "kl/mean")]
    pub kl_mean: f64,
    /// Mean answer length in tokens.
    #[serde(rename = "response/len_mean")]
    pub response_len_mean: f64,
    /// Fraction of answers cut at max_new_tokens.
    #[serde(rename = "response/truncated_frac")]
    pub truncated_frac: f64,
    /// Answer tokens generated per second during the rollout.
    #[serde(rename = "perf/rollout_tokens_per_s")]
    pub rollout_tokens_per_s: f64,
    /// Tokens scored per second (π_old and π_ref passes, no gradient).
    #[serde(rename = "perf/scoring_tokens_per_s")]
    pub scoring_tokens_per_s: f64,
    /// Tokens per second of the update (forward + backward + AdamW).
    #[serde(rename = "perf/update_tokens_per_s")]
    pub update_tokens_per_s: f64,
    /// Optimiser steps of this RL step refused because the loss or the gradient norm was not
    /// finite (the weights stayed as they were).
    #[serde(rename = "train/skipped_steps", default)]
    pub skipped_steps: usize,
}

/// Appends [`StepMetrics`] to `metrics.jsonl` in a run directory.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: File,
}

impl MetricsLog {
    /// Opens `run_dir/metrics.jsonl`. When `keep` is given (resuming), lines written after that
    /// (stage, step) are dropped first, so a resumed run's file equals an uninterrupted run's.
    pub fn open(run_dir: &Path, keep: Option<(&str, usize)>) -> Result<Self, CliError> {
        let path = run_dir.join("metrics.jsonl");
        let io = |e: std::io::Error| CliError::Internal(format!("{}: {e}", path.display()));
        if let Some((stage, step)) = keep {
            let kept = read_metrics(&path)?
                .into_iter()
                .filter(|m| position(&m.stage, m.step) <= position(stage, step))
                .map(|m| serde_json::to_string(&m).map(|line| line + "\n"))
                .collect::<Result<String, _>>()
                .map_err(|e| CliError::Internal(e.to_string()))?;
            std::fs::write(&path, kept).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        Ok(Self { path, file })
    }

    /// Writes one line and flushes it.
    pub fn write(&mut self, metrics: &StepMetrics) -> Result<(), CliError> {
        let line = serde_json::to_string(metrics).map_err(|e| CliError::Internal(e.to_string()))?;
        writeln!(self.file, "{line}")
            .and_then(|_| self.file.flush())
            .map_err(|e| CliError::Internal(format!("{}: {e}", self.path.display())))
    }
}

/// Order of a (stage, step) in a run: every SFT step comes before every RL step.
fn position(stage: &str, step: usize) -> (u8, usize) {
    (u8::from(stage == "rl"), step)
}

/// Reads a `metrics.jsonl`; a bad line is reported with its number.
pub fn read_metrics(path: &Path) -> Result<Vec<StepMetrics>, CliError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(CliError::Input(format!("{}: {e}", path.display()))),
    };
    BufReader::new(file)
        .lines()
        .enumerate()
        .filter(|(_, line)| line.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(|(i, line)| {
            let line =
                line.map_err(|e| CliError::Input(format!("{}:{}: {e}", path.display(), i + 1)))?;
            serde_json::from_str(&line)
                .map_err(|e| CliError::Input(format!("{}:{}: {e}", path.display(), i + 1)))
        })
        .collect()
}

/// Linear-interpolation quantile of a sample (0 for an empty one).
pub fn quantile(values: &mut [f32], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f32::total_cmp);
    let position = q * (values.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    values[low] as f64 + (position - low as f64) * (values[high] - values[low]) as f64
}
