//! Per-step metrics: what is logged, under which key, and the JSONL file they go to.
//! `docs/metrics.md` explains every key.
//!
//! JSON has no NaN or infinity (serde_json writes them as `null`), so a non-finite value is
//! written as the string `"NaN"`, `"Infinity"` or `"-Infinity"`, and read back from those (and
//! from `null`, as older files have it): a diverged step stays visible in `metrics.jsonl` and
//! the file still reads for `epgrpo plot` and `--resume`.

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
    #[serde(with = "number")]
    pub lr: f64,
    /// Policy loss (RL) or cross-entropy (SFT).
    #[serde(rename = "loss", with = "number")]
    pub loss: f64,
    /// Global gradient norm before clipping.
    #[serde(rename = "grad_norm", with = "number")]
    pub grad_norm: f64,
    /// RL-only statistics.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub rl: Option<RlMetrics>,
    /// Held-out greedy accuracy, when evaluated at this step.
    #[serde(
        rename = "eval/accuracy",
        default,
        skip_serializing_if = "Option::is_none",
        with = "optional_number"
    )]
    pub eval_accuracy: Option<f64>,
}

/// Statistics of one RL step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RlMetrics {
    /// Mean reward of the B × G answers.
    #[serde(rename = "reward/mean", with = "number")]
    pub reward_mean: f64,
    /// Std of the rewards (population).
    #[serde(rename = "reward/std", with = "number")]
    pub reward_std: f64,
    /// Fraction of answers verified correct.
    #[serde(rename = "reward/accuracy", with = "number")]
    pub accuracy: f64,
    /// Fraction of prompt groups whose rewards all tie (E4 zero variance).
    #[serde(rename = "reward/zero_var_frac", with = "number")]
    pub zero_var_frac: f64,
    /// Fraction of answer tokens with a non-zero advantage (|Â| > 1e-8).
    #[serde(rename = "adv/nonzero_frac", with = "number")]
    pub nonzero_adv_frac: f64,
    /// Mean |Â| of the outcome term W·Â_i (E5).
    #[serde(rename = "adv/outcome_abs_mean", with = "number")]
    pub outcome_abs_mean: f64,
    /// Mean |Â^prog| of the progress term (E11).
    #[serde(rename = "adv/progress_abs_mean", with = "number")]
    pub progress_abs_mean: f64,
    /// Mean token entropy of π_old (E1), nats.
    #[serde(rename = "entropy/mean", with = "number")]
    pub entropy_mean: f64,
    /// 10th, 50th and 90th percentiles of the token entropy.
    #[serde(rename = "entropy/p10", with = "number")]
    pub entropy_p10: f64,
    /// Median token entropy.
    #[serde(rename = "entropy/p50", with = "number")]
    pub entropy_p50: f64,
    /// 90th percentile of the token entropy.
    #[serde(rename = "entropy/p90", with = "number")]
    pub entropy_p90: f64,
    /// Mean of the token weight (the gate W for EP-GRPO).
    #[serde(rename = "ep/gate_mean", with = "number")]
    pub gate_mean: f64,
    /// Std of the token weight.
    #[serde(rename = "ep/gate_std", with = "number")]
    pub gate_std: f64,
    /// Mean |lp_old − lp_ref|: drift of the policy from the reference.
    #[serde(rename = "ep/drift_abs_mean", with = "number")]
    pub drift_abs_mean: f64,
    /// Fraction of tokens where the lower clip was active.
    #[serde(rename = "clip/low_frac", with = "number")]
    pub clip_low_frac: f64,
    /// Fraction of tokens where the upper clip was active.
    #[serde(rename = "clip/high_frac", with = "number")]
    pub clip_high_frac: f64,
    /// Mean k3 KL(π_θ ‖ π_ref) per token.
    #[serde(rename = "kl/mean", with = "number")]
    pub kl_mean: f64,
    /// Mean answer length in tokens.
    #[serde(rename = "response/len_mean", with = "number")]
    pub response_len_mean: f64,
    /// Fraction of answers cut at max_new_tokens.
    #[serde(rename = "response/truncated_frac", with = "number")]
    pub truncated_frac: f64,
    /// Fraction of answers whose verdict a size or cost limit of the verifier decided (longer
    /// than its scan window, a number too long to read, a Countdown expression too large).
    #[serde(rename = "reward/verifier_gave_up", default, with = "number")]
    pub verifier_gave_up: f64,
    /// Answer tokens generated per second during the rollout.
    #[serde(rename = "perf/rollout_tokens_per_s", with = "number")]
    pub rollout_tokens_per_s: f64,
    /// Tokens scored per second (π_old and π_ref passes, no gradient).
    #[serde(rename = "perf/scoring_tokens_per_s", with = "number")]
    pub scoring_tokens_per_s: f64,
    /// Tokens per second of the update (forward + backward + AdamW).
    #[serde(rename = "perf/update_tokens_per_s", with = "number")]
    pub update_tokens_per_s: f64,
    /// Optimiser steps of this RL step refused because the loss or the gradient norm was not
    /// finite (the weights stayed as they were).
    #[serde(rename = "train/skipped_steps", default)]
    pub skipped_steps: usize,
    /// Answer tokens generated for this step, every sampling round included: the rollout cost.
    #[serde(rename = "rollout/tokens", default)]
    pub rollout_tokens: usize,
    /// Rounds of prompts sampled (above 1 only with dynamic sampling).
    #[serde(rename = "rollout/rounds", default)]
    pub rollout_rounds: usize,
    /// Groups with tied rewards the batch kept because the dynamic-sampling rounds ran out.
    #[serde(rename = "rollout/tied_kept", default)]
    pub tied_kept: usize,
}

/// Serde of an `f64` metric: a JSON number when finite, else `"NaN"` / `"Infinity"` /
/// `"-Infinity"`; `null` reads as NaN. Every `f64` field of the metrics uses it.
mod number {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        match non_finite_name(*value) {
            Some(name) => serializer.serialize_str(name),
            None => serializer.serialize_f64(*value),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        deserializer.deserialize_any(Number)
    }

    /// The name a non-finite value is written as (`None` for a finite one).
    fn non_finite_name(value: f64) -> Option<&'static str> {
        if value.is_nan() {
            Some("NaN")
        } else if value == f64::INFINITY {
            Some("Infinity")
        } else if value == f64::NEG_INFINITY {
            Some("-Infinity")
        } else {
            None
        }
    }

    struct Number;

    impl<'de> Visitor<'de> for Number {
        type Value = f64;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a number, \"NaN\", \"Infinity\", \"-Infinity\" or null")
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            match v {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
            }
        }

        fn visit_unit<E: de::Error>(self) -> Result<f64, E> {
            Ok(f64::NAN)
        }

        fn visit_none<E: de::Error>(self) -> Result<f64, E> {
            Ok(f64::NAN)
        }
    }
}

/// [`number`] for an optional metric (absent when not measured at that step).
mod optional_number {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::number::serialize(v, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::number")] f64);
        Ok(Some(Wrapped::deserialize(deserializer)?.0))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("epgrpo-metrics-{name}-{}", std::process::id()));
        std::fs::remove_dir_all(&dir).ok();
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn rl_step(step: usize, loss: f64, kl: f64) -> StepMetrics {
        StepMetrics {
            stage: "rl".into(),
            step,
            lr: 1e-4,
            loss,
            grad_norm: f64::INFINITY,
            rl: Some(RlMetrics {
                kl_mean: kl,
                reward_mean: 0.5,
                ..RlMetrics::default()
            }),
            eval_accuracy: (step == 2).then_some(0.25),
        }
    }

    #[test]
    fn non_finite_values_are_written_by_name_and_survive_a_resume() {
        let dir = scratch("nonfinite");
        let mut log = MetricsLog::open(&dir, None).unwrap();
        for step in 1..=3 {
            log.write(&rl_step(step, f64::NAN, f64::NEG_INFINITY))
                .unwrap();
        }
        drop(log);
        let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["loss"], "NaN");
        assert_eq!(first["grad_norm"], "Infinity");
        assert_eq!(first["kl/mean"], "-Infinity");
        assert_eq!(first["reward/mean"], 0.5);
        assert!(!text.contains("null"), "{text}");
        // Resuming at step 2 keeps the first two lines, values intact.
        drop(MetricsLog::open(&dir, Some(("rl", 2))).unwrap());
        let kept = read_metrics(&dir.join("metrics.jsonl")).unwrap();
        assert_eq!(kept.len(), 2);
        for (m, step) in kept.iter().zip(1..) {
            assert_eq!(m.step, step);
            assert!(m.loss.is_nan());
            assert_eq!(m.grad_norm, f64::INFINITY);
            let rl = m.rl.as_ref().unwrap();
            assert_eq!((rl.kl_mean, rl.reward_mean), (f64::NEG_INFINITY, 0.5));
        }
        assert_eq!(kept[1].eval_accuracy, Some(0.25));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn older_files_with_null_read_as_nan_and_bad_values_are_named() {
        let dir = scratch("null");
        let path = dir.join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"stage\":\"sft\",\"step\":1,\"lr\":0.001,\"loss\":null,\"grad_norm\":2}\n",
        )
        .unwrap();
        let lines = read_metrics(&path).unwrap();
        assert!(lines[0].loss.is_nan());
        assert_eq!((lines[0].grad_norm, lines[0].rl.is_none()), (2.0, true));
        std::fs::write(
            &path,
            "{\"stage\":\"sft\",\"step\":1,\"lr\":0.001,\"loss\":\"nan\",\"grad_norm\":2}\n",
        )
        .unwrap();
        let error = read_metrics(&path).unwrap_err().to_string();
        assert!(
            error.contains("metrics.jsonl:1") && error.contains("\"nan\""),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
