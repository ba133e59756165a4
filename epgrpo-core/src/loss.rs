//! E14–E15: importance ratio, clipped surrogate, KL estimators, loss aggregation and the policy
//! loss −J with its diagnostics.

use burn::tensor::{Tensor, backend::Backend};

use crate::config::{AlgorithmConfig, KlEstimator, LossAggregation, RatioLevel};

/// Per-token inputs of the policy loss for N responses padded to L tokens.
///
/// # Shapes
/// All `[N, L]`; only `logp` carries a gradient.
#[derive(Debug, Clone)]
pub struct LossInputs<B: Backend> {
    /// lp_θ of the sampled tokens under the policy being trained.
    pub logp: Tensor<B, 2>,
    /// lp_old of the sampled tokens under the rollout policy.
    pub logp_old: Tensor<B, 2>,
    /// lp_ref of the sampled tokens under the reference policy.
    pub logp_ref: Tensor<B, 2>,
    /// Â_{i,t}, constants.
    pub advantages: Tensor<B, 2>,
    /// 1.0 on valid tokens.
    pub mask: Tensor<B, 2>,
}

/// Diagnostics of one loss evaluation, kept on the device until logged. Each is a `[1]` tensor.
#[derive(Debug, Clone)]
pub struct LossStats<B: Backend> {
    /// Fraction of valid tokens with Â < 0 and ρ < 1 − ε_low (lower clip active).
    pub clip_low_frac: Tensor<B, 1>,
    /// Fraction of valid tokens with Â > 0 and ρ > 1 + ε_high (upper clip active).
    pub clip_high_frac: Tensor<B, 1>,
    /// Mean k3 estimate of KL(π_θ ‖ π_ref) over valid tokens, whatever `kl_coef` is.
    pub kl_mean: Tensor<B, 1>,
    /// Mean importance ratio over valid tokens.
    pub ratio_mean: Tensor<B, 1>,
}

/// The policy loss and its diagnostics.
#[derive(Debug, Clone)]
pub struct PolicyLoss<B: Backend> {
    /// −J, shape `[1]`, to be minimised.
    pub loss: Tensor<B, 1>,
    /// Clip fractions, KL and ratio statistics.
    pub stats: LossStats<B>,
}

/// E14: importance ratio per token, exp(lp_θ − lp_old), or the GSPO sequence ratio
/// exp(mean_t (lp_θ − lp_old)) repeated over the response's tokens.
///
/// # Shapes
/// - `logp`, `logp_old`, `mask`: `[N, L]` → `[N, L]`
pub fn importance_ratio<B: Backend>(
    logp: Tensor<B, 2>,
    logp_old: Tensor<B, 2>,
    mask: Tensor<B, 2>,
    level: RatioLevel,
) -> Tensor<B, 2> {
    let log_ratio = (logp - logp_old) * mask.clone();
    match level {
        RatioLevel::Token => log_ratio.exp(),
        RatioLevel::Sequence => {
            let dims = log_ratio.dims();
            let length = mask.sum_dim(1).clamp_min(1.0);
            (log_ratio.sum_dim(1) / length).exp().expand(dims)
        }
    }
}

/// E14: ℓ = min(ρ Â, clip(ρ, 1 − ε_low, 1 + ε_high) Â).
///
/// # Shapes
/// - `ratio`, `advantages`: `[N, L]` → `[N, L]`
pub fn clipped_surrogate<B: Backend>(
    ratio: Tensor<B, 2>,
    advantages: Tensor<B, 2>,
    eps_low: f64,
    eps_high: f64,
) -> Tensor<B, 2> {
    let unclipped = ratio.clone() * advantages.clone();
    let clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * advantages;
    unclipped.min_pair(clipped)
}

/// E15: per-token KL estimate from lp_θ and lp_ref.
///
/// # Shapes
/// - `logp`, `logp_ref`: `[N, L]` → `[N, L]`
pub fn kl_estimate<B: Backend>(
    logp: Tensor<B, 2>,
    logp_ref: Tensor<B, 2>,
    estimator: KlEstimator,
) -> Tensor<B, 2> {
    let diff = logp_ref - logp;
    match estimator {
        KlEstimator::K1 => diff.neg(),
        KlEstimator::K2 => diff.powi_scalar(2).mul_scalar(0.5),
        KlEstimator::K3 => diff.clone().exp() - diff - 1.0,
    }
}

/// E15: reduce a per-token objective to a scalar. `constant_length` is L_const of
/// [`LossAggregation::Constant`]. Responses without valid tokens do not count in the
/// sequence mean.
///
/// # Shapes
/// - `per_token`, `mask`: `[N, L]` → `[1]`
pub fn aggregate<B: Backend>(
    per_token: Tensor<B, 2>,
    mask: Tensor<B, 2>,
    aggregation: LossAggregation,
    constant_length: usize,
) -> Tensor<B, 1> {
    let [n, _] = per_token.dims();
    let masked = per_token * mask.clone();
    match aggregation {
        LossAggregation::TokenMean => masked.sum() / mask.sum().clamp_min(1.0),
        LossAggregation::SeqMeanTokenMean => {
            let length = mask.sum_dim(1);
            let non_empty = length.clone().greater_elem(0.0).float();
            let row_mean = masked.sum_dim(1) / length.clamp_min(1.0);
            (row_mean * non_empty.clone()).sum() / non_empty.sum().clamp_min(1.0)
        }
        LossAggregation::Constant => masked.sum().div_scalar((n * constant_length).max(1) as f64),
    }
}

/// E14–E15: loss = −J with J = Agg(ℓ − β_KL · kl), and its diagnostics.
pub fn policy_loss<B: Backend>(config: &AlgorithmConfig, inputs: LossInputs<B>) -> PolicyLoss<B> {
    let LossInputs {
        logp,
        logp_old,
        logp_ref,
        advantages,
        mask,
    } = inputs;
    let (eps_low, eps_high) = config.clip_range();
    let ratio = importance_ratio(logp.clone(), logp_old, mask.clone(), config.ratio_level());
    let surrogate = clipped_surrogate(ratio.clone(), advantages.clone(), eps_low, eps_high);
    let objective = match config.kl_penalty() {
        Some((estimator, beta)) => {
            surrogate - kl_estimate(logp.clone(), logp_ref.clone(), estimator).mul_scalar(beta)
        }
        None => surrogate,
    };
    let constant_length = config.constant_length.unwrap_or(mask.dims()[1]);
    let loss = aggregate(
        objective,
        mask.clone(),
        config.aggregation(),
        constant_length,
    )
    .neg();

    let tokens = mask.clone().sum().clamp_min(1.0);
    let fraction = |flag: Tensor<B, 2>| (flag * mask.clone()).sum() / tokens.clone();
    let ratio = ratio.detach();
    let clip_low = ratio.clone().lower_elem(1.0 - eps_low).float()
        * advantages.clone().lower_elem(0.0).float();
    let clip_high =
        ratio.clone().greater_elem(1.0 + eps_high).float() * advantages.greater_elem(0.0).float();
    let kl = kl_estimate(logp.detach(), logp_ref, KlEstimator::K3);
    let stats = LossStats {
        clip_low_frac: fraction(clip_low),
        clip_high_frac: fraction(clip_high),
        kl_mean: fraction(kl),
        ratio_mean: fraction(ratio),
    };
    PolicyLoss { loss, stats }
}
