//! The `[algorithm]` section of a run configuration: which objective to optimise and its
//! hyperparameters, with the defaults of `shared/spec/ep-grpo.md` §5.
//!
//! Paper methods are values of [`Algorithm`], not code forks. Each method is a point on a few
//! independent axes (outcome scaling, token weighting, ratio level, clip range, loss aggregation);
//! the `*_for` methods of [`AlgorithmConfig`] resolve those axes with one exhaustive `match` each,
//! so adding a method fails to compile until every axis says what it does.

use epgrpo_kernels::advantage::{AdvantageParams, ProgressParams};
use serde::{Deserialize, Serialize};

use crate::error::CoreError;

/// A5 (sign order), A8 (bucket normalisation) and the E4 outcome scaling: defined next to the
/// kernels that implement them.
pub use epgrpo_kernels::advantage::{BucketNormalization, OutcomeScale, SignOrder};

/// The policy-optimisation method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// GRPO (DeepSeekMath): group-normalised outcome advantage, token ratio clipped at ±0.2,
    /// sequence-mean of token-means.
    Grpo,
    /// Dr. GRPO: no division by the reward std, constant length normaliser.
    DrGrpo,
    /// DAPO: clip-higher (ε_high = 0.28) and the token-mean loss. Zero-variance groups are kept
    /// (dynamic sampling is a rollout policy, not part of the objective).
    Dapo,
    /// "Beyond the 80/20 rule": GRPO advantages applied only to the top-ρ entropy tokens of the
    /// batch (`top_entropy_fraction`).
    EntropyMask,
    /// GSPO: sequence-level importance ratio (length-normalised), clipped at 3e-4 / 4e-4.
    Gspo,
    /// EP-GRPO: entropy-gated outcome term plus the bucket-normalised implicit process term
    /// (E2–E12).
    EpGrpo,
    /// CISPO (MiniMax-M1, arXiv 2506.13585): GRPO advantages, every token trained through
    /// sg(clip(ρ, 1 − ε_low, 1 + ε_high)) · Â · log π_θ (the importance weight is clipped and
    /// detached, so no token's gradient is dropped), token-mean. Default ε_low = 1 (no lower
    /// bound, as the paper), ε_high = 0.28.
    Cispo,
}

impl Algorithm {
    /// Name as written in configuration files.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Grpo => "grpo",
            Algorithm::DrGrpo => "dr_grpo",
            Algorithm::Dapo => "dapo",
            Algorithm::EntropyMask => "entropy_mask",
            Algorithm::Gspo => "gspo",
            Algorithm::EpGrpo => "ep_grpo",
            Algorithm::Cispo => "cispo",
        }
    }
}

/// How the per-token objective is reduced to one loss value (E15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossAggregation {
    /// Σ mask·ℓ / Σ mask over the whole optimiser minibatch (DAPO; TRL's default `dapo`).
    TokenMean,
    /// (1/N) Σ_i (1/L_i) Σ_t ℓ over the non-empty responses (original GRPO).
    SeqMeanTokenMean,
    /// Σ mask·ℓ / (N · L_const) with a constant length, the generation limit by default
    /// (Dr. GRPO).
    Constant,
}

/// Estimator of the per-token KL divergence to the reference policy (E15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlEstimator {
    /// k1 = log π_θ − log π_ref.
    K1,
    /// k2 = ½ (log π_θ − log π_ref)².
    K2,
    /// k3 = exp(log π_ref − log π_θ) − (log π_ref − log π_θ) − 1 (GRPO).
    K3,
}

/// How tokens of a response are weighted before the outcome advantage is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TokenWeighting {
    /// Every valid token has weight 1.
    Uniform,
    /// Weight 1 on tokens whose entropy is at or above the batch (1 − ρ) quantile, else 0.
    TopEntropy {
        /// Fraction ρ of tokens kept.
        fraction: f64,
    },
    /// EP-GRPO's soft gate W = σ(γ z) (E2–E3) plus the progress term (E6–E12).
    EntropyProgress,
}

/// What the importance ratio does in the per-token objective (E14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surrogate {
    /// PPO's min(ρ Â, clip(ρ, 1 − ε_low, 1 + ε_high) Â): a clipped token has no gradient.
    ClippedRatio,
    /// CISPO's sg(clip(ρ, 1 − ε_low, 1 + ε_high)) · Â · lp_θ: the clipped, detached ratio
    /// weighs a REINFORCE term, so every token keeps a gradient.
    ClippedWeight,
}

/// How EP-GRPO's gate W enters the advantage (E3, E12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateNormalization {
    /// W = σ(γ z) as it is, mean ≈ 0.5: the outcome term takes about half of GRPO's step.
    Raw,
    /// W divided by its mean over the group's valid tokens, so it averages 1 in every group
    /// (as the public ERPO reimplementation does); it reweights tokens without shrinking the step.
    MeanOne,
}

/// Level at which the importance ratio is formed (E14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatioLevel {
    /// ρ_{i,t} = exp(lp_θ − lp_old) per token.
    Token,
    /// ρ_i = exp(mean_t (lp_θ − lp_old)) per response, shared by its tokens (GSPO).
    Sequence,
}

/// Hyperparameters of the objective. Every field has the default of `shared/spec/ep-grpo.md` §5;
/// a TOML `[algorithm]` table or the `algorithm` object of `epgrpo advantages` may set any
/// subset. Unknown keys are rejected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlgorithmConfig {
    /// Method: `grpo`, `dr_grpo`, `dapo`, `entropy_mask`, `gspo`, `cispo` or `ep_grpo`. Default
    /// `ep_grpo`.
    pub name: Algorithm,
    /// Responses sampled per prompt, G. Default 8 (EP-GRPO paper). Must be ≥ 2 for the
    /// outcome-only methods, whose advantages are all zero with one response.
    pub group_size: usize,
    /// γ, sharpness of the entropy gate W = σ(γ z) (E3). Default 1.0; 0 gives W ≡ 0.5.
    pub gamma: f64,
    /// λ, scale of the implicit process signal s = λ (lp_old − lp_ref) (E6). Default 1.0.
    pub lambda: f64,
    /// α, weight of the progress term (E11). Default 1.0; 0 leaves the gated outcome term.
    pub alpha: f64,
    /// A7: RL steps over which α rises linearly to its value (α_s = α · min(1, (s + 1) / n) at
    /// 0-based step s). Default 0: α from the first step.
    pub alpha_warmup_steps: usize,
    /// How the gate W enters E12: `raw` (the spec, default) or `mean_one` (W divided by its
    /// mean over the group's valid tokens).
    pub gate_normalization: GateNormalization,
    /// θ_reward, threshold that gives the polarity of zero-variance groups, d = sign(r − θ)
    /// (E7). Default 0.5 (binary rewards).
    pub theta_reward: f64,
    /// K, number of cumulative-entropy buckets (E9). Default 10.
    pub num_buckets: usize,
    /// ε_H added to the group entropy std (E2). Default 1e-6.
    pub eps_entropy: f64,
    /// ε_s added to the bucket std of s (E10). Default 1e-3.
    pub eps_bucket: f64,
    /// ε_adv added to the reward std (E4). Default 1e-4 (TRL).
    pub eps_adv: f64,
    /// δ: a group whose reward std is below it has zero variance (E4). Default 1e-8.
    pub zero_var_tol: f64,
    /// A5: normalise s then apply the polarity (default), or normalise d·s.
    pub sign_order: SignOrder,
    /// A6: whether the gate W also multiplies the progress term (E11). Default true.
    pub gate_progress: bool,
    /// A8: z-score (default), centring or no normalisation inside a bucket (E10).
    pub bucket_normalization: BucketNormalization,
    /// ρ, fraction of highest-entropy tokens trained by `entropy_mask`. Default 0.2.
    pub top_entropy_fraction: f64,
    /// ε_low of the clip range [1 − ε_low, 1 + ε_high] (E14). Default by method: 3e-4 for
    /// `gspo`, else 0.2.
    pub epsilon_low: Option<f64>,
    /// ε_high of the clip range (E14). Default by method: 0.28 for `dapo` (clip-higher), 4e-4
    /// for `gspo`, else 0.2.
    pub epsilon_high: Option<f64>,
    /// Loss aggregation (E15). Default by method: `seq_mean_token_mean` for `grpo` and `gspo`,
    /// `constant` for `dr_grpo`, `token_mean` for the others.
    pub loss_aggregation: Option<LossAggregation>,
    /// L_const of the `constant` aggregation. Default: the generation limit (the rollout's
    /// `max_new_tokens`), Dr. GRPO's constant, the same at every step.
    pub constant_length: Option<usize>,
    /// β_KL, weight of the KL penalty to the reference policy (E15). Default 0.
    pub kl_coef: f64,
    /// KL estimator used when `kl_coef` > 0. Default `k3`.
    pub kl_estimator: KlEstimator,
}

impl Default for AlgorithmConfig {
    fn default() -> Self {
        Self {
            name: Algorithm::EpGrpo,
            group_size: 8,
            gamma: 1.0,
            lambda: 1.0,
            alpha: 1.0,
            alpha_warmup_steps: 0,
            gate_normalization: GateNormalization::Raw,
            theta_reward: 0.5,
            num_buckets: 10,
            eps_entropy: 1e-6,
            eps_bucket: 1e-3,
            eps_adv: 1e-4,
            zero_var_tol: 1e-8,
            sign_order: SignOrder::NormalizeThenSign,
            gate_progress: true,
            bucket_normalization: BucketNormalization::ZScore,
            top_entropy_fraction: 0.2,
            epsilon_low: None,
            epsilon_high: None,
            loss_aggregation: None,
            constant_length: None,
            kl_coef: 0.0,
            kl_estimator: KlEstimator::K3,
        }
    }
}

impl AlgorithmConfig {
    /// The defaults with another method.
    pub fn for_algorithm(name: Algorithm) -> Self {
        Self {
            name,
            ..Self::default()
        }
    }

    /// Checks every field and reports all violations at once, each naming its field.
    pub fn validate(&self) -> Result<(), CoreError> {
        let mut problems = Vec::new();
        let mut check = |ok: bool, message: String| {
            if !ok {
                problems.push(message);
            }
        };
        let finite = [
            ("gamma", self.gamma),
            ("lambda", self.lambda),
            ("alpha", self.alpha),
            ("theta_reward", self.theta_reward),
            ("kl_coef", self.kl_coef),
        ];
        for (field, value) in finite {
            check(
                value.is_finite(),
                format!("algorithm.{field} must be a finite number (got {value})"),
            );
        }
        check(
            self.gamma >= 0.0,
            format!("algorithm.gamma must be ≥ 0 (got {})", self.gamma),
        );
        check(
            self.num_buckets >= 1,
            "algorithm.num_buckets must be ≥ 1 (got 0)".to_string(),
        );
        for (field, value) in [
            ("eps_entropy", self.eps_entropy),
            ("eps_bucket", self.eps_bucket),
            ("eps_adv", self.eps_adv),
        ] {
            check(
                value.is_finite() && value > 0.0,
                format!("algorithm.{field} must be a finite number > 0 (got {value})"),
            );
        }
        check(
            self.zero_var_tol.is_finite() && self.zero_var_tol >= 0.0,
            format!(
                "algorithm.zero_var_tol must be ≥ 0 (got {})",
                self.zero_var_tol
            ),
        );
        check(
            self.top_entropy_fraction > 0.0 && self.top_entropy_fraction <= 1.0,
            format!(
                "algorithm.top_entropy_fraction must be in (0, 1] (got {})",
                self.top_entropy_fraction
            ),
        );
        if let Some(low) = self.epsilon_low {
            check(
                (0.0..=1.0).contains(&low),
                format!("algorithm.epsilon_low must be in [0, 1] (got {low})"),
            );
        }
        if let Some(high) = self.epsilon_high {
            check(
                high.is_finite() && high >= 0.0,
                format!("algorithm.epsilon_high must be ≥ 0 (got {high})"),
            );
        }
        if let Some(length) = self.constant_length {
            check(
                length >= 1,
                "algorithm.constant_length must be ≥ 1 (got 0)".to_string(),
            );
        }
        check(
            self.kl_coef >= 0.0,
            format!("algorithm.kl_coef must be ≥ 0 (got {})", self.kl_coef),
        );
        check(
            self.group_size >= 1,
            "algorithm.group_size must be ≥ 1 (got 0)".to_string(),
        );
        if self.group_size == 1 && !self.uses_progress_term() {
            problems.push(format!(
                "algorithm.group_size (1) must be ≥ 2 for {}: with one response per prompt every \
                 outcome advantage is zero",
                self.name.name()
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CoreError::InvalidConfig(problems))
        }
    }

    /// E4 scaling of the outcome advantage for this method.
    pub fn outcome_scale(&self) -> OutcomeScale {
        match self.name {
            Algorithm::DrGrpo => OutcomeScale::MeanOnly,
            Algorithm::Grpo
            | Algorithm::Dapo
            | Algorithm::EntropyMask
            | Algorithm::Gspo
            | Algorithm::Cispo
            | Algorithm::EpGrpo => OutcomeScale::GroupStd,
        }
    }

    /// Token weighting for this method.
    pub fn token_weighting(&self) -> TokenWeighting {
        match self.name {
            Algorithm::Grpo
            | Algorithm::DrGrpo
            | Algorithm::Dapo
            | Algorithm::Gspo
            | Algorithm::Cispo => TokenWeighting::Uniform,
            Algorithm::EntropyMask => TokenWeighting::TopEntropy {
                fraction: self.top_entropy_fraction,
            },
            Algorithm::EpGrpo => TokenWeighting::EntropyProgress,
        }
    }

    /// Whether the method adds the implicit process term (E6–E11).
    pub fn uses_progress_term(&self) -> bool {
        matches!(self.token_weighting(), TokenWeighting::EntropyProgress)
    }

    /// Hyperparameters of the advantage kernels (E2–E12) for this method: the gate and progress
    /// term for EP-GRPO, uniform token weights for the others (the top-entropy mask of
    /// `entropy_mask` is applied on top, see [`crate::advantage::token_advantages`]).
    pub fn advantage_params(&self) -> AdvantageParams {
        AdvantageParams {
            outcome_scale: self.outcome_scale(),
            eps_adv: self.eps_adv,
            zero_var_tol: self.zero_var_tol,
            num_buckets: self.num_buckets,
            progress: self.uses_progress_term().then_some(ProgressParams {
                gamma: self.gamma,
                lambda: self.lambda,
                alpha: self.alpha,
                theta_reward: self.theta_reward,
                eps_entropy: self.eps_entropy,
                eps_bucket: self.eps_bucket,
                sign_order: self.sign_order,
                gate_progress: self.gate_progress,
                normalization: self.bucket_normalization,
            }),
        }
    }

    /// Level of the importance ratio (E14).
    pub fn ratio_level(&self) -> RatioLevel {
        match self.name {
            Algorithm::Gspo => RatioLevel::Sequence,
            Algorithm::Grpo
            | Algorithm::DrGrpo
            | Algorithm::Dapo
            | Algorithm::EntropyMask
            | Algorithm::Cispo
            | Algorithm::EpGrpo => RatioLevel::Token,
        }
    }

    /// What the ratio does in the per-token objective (E14).
    pub fn surrogate(&self) -> Surrogate {
        match self.name {
            Algorithm::Cispo => Surrogate::ClippedWeight,
            Algorithm::Grpo
            | Algorithm::DrGrpo
            | Algorithm::Dapo
            | Algorithm::EntropyMask
            | Algorithm::Gspo
            | Algorithm::EpGrpo => Surrogate::ClippedRatio,
        }
    }

    /// This configuration at 0-based RL step `step`: α after the A7 warm-up
    /// (`alpha_warmup_steps`); every other field as it is.
    pub fn at_step(&self, step: usize) -> Self {
        let ramp = match self.alpha_warmup_steps {
            0 => 1.0,
            steps => ((step + 1) as f64 / steps as f64).min(1.0),
        };
        Self {
            alpha: self.alpha * ramp,
            ..self.clone()
        }
    }

    /// The clip range (ε_low, ε_high) after method defaults (E14).
    pub fn clip_range(&self) -> (f64, f64) {
        let (low, high) = match self.name {
            Algorithm::Gspo => (3e-4, 4e-4),
            Algorithm::Dapo => (0.2, 0.28),
            Algorithm::Cispo => (1.0, 0.28),
            Algorithm::Grpo | Algorithm::DrGrpo | Algorithm::EntropyMask | Algorithm::EpGrpo => {
                (0.2, 0.2)
            }
        };
        (
            self.epsilon_low.unwrap_or(low),
            self.epsilon_high.unwrap_or(high),
        )
    }

    /// The loss aggregation after method defaults (E15).
    pub fn aggregation(&self) -> LossAggregation {
        self.loss_aggregation.unwrap_or(match self.name {
            Algorithm::Grpo | Algorithm::Gspo => LossAggregation::SeqMeanTokenMean,
            Algorithm::DrGrpo => LossAggregation::Constant,
            Algorithm::Dapo | Algorithm::EntropyMask | Algorithm::Cispo | Algorithm::EpGrpo => {
                LossAggregation::TokenMean
            }
        })
    }

    /// The KL term (estimator, β), or `None` when `kl_coef` is 0.
    pub fn kl_penalty(&self) -> Option<(KlEstimator, f64)> {
        (self.kl_coef > 0.0).then_some((self.kl_estimator, self.kl_coef))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_toml_keeps_spec_defaults() {
        let config: AlgorithmConfig = toml::from_str("name = \"dapo\"\ngamma = 2.0").unwrap();
        assert_eq!(config.name, Algorithm::Dapo);
        assert_eq!(config.gamma, 2.0);
        assert_eq!(config.num_buckets, 10);
        assert_eq!(config.clip_range(), (0.2, 0.28));
        assert_eq!(config.aggregation(), LossAggregation::TokenMean);
    }

    #[test]
    fn unknown_key_is_rejected_with_its_name() {
        let error = toml::from_str::<AlgorithmConfig>("gama = 1.0")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown field `gama`"), "{error}");
    }

    #[test]
    fn invalid_values_are_all_reported_by_field() {
        let config = AlgorithmConfig {
            gamma: -1.0,
            num_buckets: 0,
            epsilon_high: Some(-0.1),
            ..AlgorithmConfig::default()
        };
        let CoreError::InvalidConfig(problems) = config.validate().unwrap_err() else {
            panic!("expected InvalidConfig")
        };
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("algorithm.gamma"));
        assert!(problems[1].contains("algorithm.num_buckets"));
        assert!(problems[2].contains("algorithm.epsilon_high"));
    }

    #[test]
    fn single_response_groups_need_the_progress_term() {
        let grpo = AlgorithmConfig {
            group_size: 1,
            ..AlgorithmConfig::for_algorithm(Algorithm::Grpo)
        };
        let error = grpo.validate().unwrap_err().to_string();
        assert!(error.contains("algorithm.group_size (1)"), "{error}");
        let ep = AlgorithmConfig {
            group_size: 1,
            ..AlgorithmConfig::default()
        };
        assert!(ep.validate().is_ok());
    }

    #[test]
    fn method_defaults_follow_the_papers() {
        let gspo = AlgorithmConfig::for_algorithm(Algorithm::Gspo);
        assert_eq!(gspo.clip_range(), (3e-4, 4e-4));
        assert_eq!(gspo.ratio_level(), RatioLevel::Sequence);
        let dr = AlgorithmConfig::for_algorithm(Algorithm::DrGrpo);
        assert_eq!(dr.outcome_scale(), OutcomeScale::MeanOnly);
        assert_eq!(dr.aggregation(), LossAggregation::Constant);
        let grpo = AlgorithmConfig::for_algorithm(Algorithm::Grpo);
        assert_eq!(grpo.aggregation(), LossAggregation::SeqMeanTokenMean);
        assert_eq!(
            AlgorithmConfig::default().aggregation(),
            LossAggregation::TokenMean
        );
    }
}
