//! `epgrpo compare`'s analysis: methods × seeds of one configuration, read back from their run
//! directories and reduced to one table (mean and 95 % interval over seeds) and the series of
//! one overlay figure. Running the training processes is `commands::compare`'s job.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::TrainConfig;
use crate::error::CliError;
use crate::metrics::{StepMetrics, read_metrics};
use crate::trainer::Outcome;

/// A method to compare: an `[algorithm] name` and optional `[algorithm]` keys, written
/// `NAME` or `NAME+key=value+key=value` (e.g. `ep_grpo+gate_normalization=mean_one`).
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The spec as written; also the variant's directory name.
    pub label: String,
    /// `[algorithm]` keys and TOML values, `name` first.
    pub keys: Vec<(String, toml::Value)>,
}

impl Variant {
    /// Parses `NAME[+key=value]…`; a value that is not a TOML literal is taken as a string.
    pub fn parse(spec: &str) -> Result<Self, CliError> {
        let mut parts = spec.split('+');
        let name = parts.next().unwrap_or_default().trim();
        if name.is_empty() {
            return Err(CliError::Input(format!(
                "--methods: `{spec}` has no method name (expected NAME or NAME+key=value)"
            )));
        }
        let mut keys = vec![("name".to_string(), toml::Value::String(name.to_string()))];
        for part in parts {
            let (key, value) = part.split_once('=').ok_or_else(|| {
                CliError::Input(format!(
                    "--methods: `{part}` in `{spec}` is not key=value (an [algorithm] key)"
                ))
            })?;
            let value = toml::from_str::<toml::Table>(&format!("v = {value}"))
                .ok()
                .and_then(|mut table| table.remove("v"))
                .unwrap_or_else(|| toml::Value::String(value.to_string()));
            keys.push((key.trim().to_string(), value));
        }
        Ok(Self {
            label: spec.to_string(),
            keys,
        })
    }

    /// `base` with this variant's `[algorithm]` keys, validated (unknown keys and bad values
    /// are refused naming the variant).
    pub fn apply(&self, base: &TrainConfig) -> Result<TrainConfig, CliError> {
        let refuse = |e: String| CliError::Input(format!("--methods `{}`: {e}", self.label));
        let mut algorithm = toml::Value::try_from(&base.algorithm)
            .map_err(|e| CliError::Internal(e.to_string()))?;
        let table = algorithm
            .as_table_mut()
            .ok_or_else(|| CliError::Internal("[algorithm] is not a table".into()))?;
        for (key, value) in &self.keys {
            table.insert(key.clone(), value.clone());
        }
        let mut config = base.clone();
        config.algorithm = algorithm
            .try_into()
            .map_err(|e: toml::de::Error| refuse(e.message().to_string()))?;
        config.validate().map_err(|e| refuse(e.to_string()))?;
        Ok(config)
    }
}

/// One finished run of a variant, as its directory holds it.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The seed.
    pub seed: u64,
    /// `summary.json`.
    pub outcome: Outcome,
    /// `metrics.jsonl`.
    pub metrics: Vec<StepMetrics>,
    /// Seconds the training process took.
    pub wall_s: f64,
}

impl RunRecord {
    /// Reads the run in `dir`.
    pub fn read(dir: &Path, seed: u64, wall_s: f64) -> Result<Self, CliError> {
        let path = dir.join("summary.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        let outcome: Outcome = serde_json::from_str(&text)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        let metrics = read_metrics(&dir.join("metrics.jsonl"))?;
        Ok(Self {
            seed,
            outcome,
            metrics,
            wall_s,
        })
    }

    fn rl(&self) -> impl Iterator<Item = &crate::metrics::RlMetrics> {
        self.metrics.iter().filter_map(|m| m.rl.as_ref())
    }

    /// Mean of a per-step RL statistic over the run's RL steps (NaN without RL steps).
    fn step_mean(&self, read: impl Fn(&crate::metrics::RlMetrics) -> f64) -> f64 {
        let values: Vec<f64> = self.rl().map(read).collect();
        values.iter().sum::<f64>() / values.len() as f64
    }

    /// The per-run values of the comparison table.
    pub fn row(&self) -> RunRow {
        let last_kl = self.rl().last().map_or(f64::NAN, |r| r.kl_mean);
        RunRow {
            accuracy_final: self.outcome.accuracy_final.unwrap_or(f64::NAN),
            rl_gain: match (self.outcome.accuracy_final, self.outcome.accuracy_before_rl) {
                (Some(end), Some(start)) => end - start,
                _ => f64::NAN,
            },
            zero_var_frac: self.step_mean(|r| r.zero_var_frac),
            nonzero_adv_frac: self.step_mean(|r| r.nonzero_adv_frac),
            kl_final: last_kl,
            rollout_tokens: self.rl().map(|r| r.rollout_tokens as f64).sum(),
            wall_s: self.wall_s,
        }
    }
}

/// The table's values for one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RunRow {
    /// Held-out greedy accuracy at the end.
    pub accuracy_final: f64,
    /// Final accuracy minus the accuracy when RL began.
    pub rl_gain: f64,
    /// Mean over RL steps of the share of tied (zero-variance) groups.
    pub zero_var_frac: f64,
    /// Mean over RL steps of the share of answer tokens with a non-zero advantage.
    pub nonzero_adv_frac: f64,
    /// k3 KL to the reference at the last RL step.
    pub kl_final: f64,
    /// Answer tokens generated over the run (every sampling round).
    pub rollout_tokens: f64,
    /// Wall time of the training process, seconds.
    pub wall_s: f64,
}

/// Mean and half-width of the two-sided 95 % Student-t interval of a sample (half-width NaN
/// below two values).
pub fn mean_ci95(values: &[f64]) -> (f64, f64) {
    let n = values.len();
    let mean = values.iter().sum::<f64>() / n as f64;
    if n < 2 {
        return (mean, f64::NAN);
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    (mean, t_975(n - 1) * (variance / n as f64).sqrt())
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (standard tables; the normal
/// 1.96 above 30).
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    TABLE.get(df.wrapping_sub(1)).copied().unwrap_or(1.960)
}

/// One variant's line of the table: per-run rows and their reduction over seeds.
#[derive(Debug, Clone, Serialize)]
pub struct VariantSummary {
    /// The variant as written.
    pub label: String,
    /// Seeds run.
    pub seeds: Vec<u64>,
    /// The per-run values, seed by seed.
    pub runs: Vec<RunRow>,
}

impl VariantSummary {
    fn column(&self, read: impl Fn(&RunRow) -> f64) -> Vec<f64> {
        self.runs.iter().map(read).collect()
    }
}

/// The comparison as a Markdown table.
pub fn table(summaries: &[VariantSummary]) -> String {
    let mut out = String::from(
        "| method | seeds | final held-out acc. (95 % CI) | RL gain (95 % CI) | zero-variance groups | tokens with Â ≠ 0 | KL (last step) | rollout tokens | wall (s) |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for summary in summaries {
        let interval = |values: Vec<f64>| {
            let (mean, half) = mean_ci95(&values);
            format!("{:.1} ± {:.1}", 100.0 * mean, 100.0 * half)
        };
        let mean = |values: Vec<f64>| values.iter().sum::<f64>() / values.len() as f64;
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} % | {:.1} % | {:.4} | {:.0} | {:.0} |\n",
            summary.label,
            summary.runs.len(),
            interval(summary.column(|r| r.accuracy_final)),
            interval(summary.column(|r| r.rl_gain)),
            100.0 * mean(summary.column(|r| r.zero_var_frac)),
            100.0 * mean(summary.column(|r| r.nonzero_adv_frac)),
            mean(summary.column(|r| r.kl_final)),
            mean(summary.column(|r| r.rollout_tokens)),
            mean(summary.column(|r| r.wall_s)),
        ));
    }
    out
}

/// Where seed `seed` of `variant` runs under `out`.
pub fn run_dir(out: &Path, variant: &Variant, seed: u64) -> PathBuf {
    out.join(&variant.label).join(format!("seed-{seed}"))
}

/// A per-step series of each run of a variant: (RL step, value) for the steps that log it.
pub fn series(
    runs: &[RunRecord],
    read: impl Fn(&StepMetrics) -> Option<f64>,
) -> Vec<Vec<(f64, f64)>> {
    runs.iter()
        .map(|run| {
            run.metrics
                .iter()
                .filter(|m| m.stage == "rl")
                .filter_map(|m| read(m).map(|v| (m.step as f64, v)))
                .filter(|(_, v)| v.is_finite())
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_follow_student_t() {
        // Python: statistics.mean / stdev of [1, 2, 3, 4, 5] = 3, 1.5811388; t(0.975, 4) = 2.776.
        let (mean, half) = mean_ci95(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!((mean - 3.0).abs() < 1e-12);
        assert!((half - 2.776 * 1.5811388300841898 / 5f64.sqrt()).abs() < 1e-9);
        let (mean, half) = mean_ci95(&[0.4, 0.6]);
        assert!((mean - 0.5).abs() < 1e-12);
        assert!((half - 12.706 * 0.1).abs() < 1e-9, "{half}");
        assert!(mean_ci95(&[0.3]).1.is_nan());
    }

    #[test]
    fn variants_set_algorithm_keys_and_refuse_unknown_ones() {
        let base = TrainConfig::default();
        let variant = Variant::parse("ep_grpo+gate_normalization=mean_one+gamma=5").unwrap();
        let config = variant.apply(&base).unwrap();
        assert_eq!(
            config.algorithm.gate_normalization,
            epgrpo_core::config::GateNormalization::MeanOne
        );
        assert_eq!(config.algorithm.gamma, 5.0);
        let cispo = Variant::parse("cispo").unwrap().apply(&base).unwrap();
        assert_eq!(cispo.algorithm.name, epgrpo_core::Algorithm::Cispo);
        let error = Variant::parse("grpo+gamma_typo=1")
            .unwrap()
            .apply(&base)
            .unwrap_err();
        assert!(error.to_string().contains("gamma_typo"), "{error}");
        assert!(Variant::parse("grpo+gamma").is_err());
        assert!(Variant::parse("").is_err());
    }
}
