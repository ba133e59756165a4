//! E14–E15: importance ratio, clipped surrogate, KL estimators, loss aggregation and the policy
//! loss −J with its diagnostics.

use burn::tensor::{Tensor, backend::Backend};

use crate::config::{AlgorithmConfig, KlEstimator, LossAggregation, RatioLevel, Surrogate};

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

/// E14 for CISPO: ℓ = sg(clip(ρ, 1 − ε_low, 1 + ε_high)) · Â · lp_θ. Its value is not the PPO
/// surrogate's, but its gradient Â · clip(ρ) · ∇lp_θ is ρ Â ∇lp_θ wherever ρ is inside the range,
/// and stays non-zero (at the bound's weight) where PPO's clip would drop the token.
///
/// # Shapes
/// - `ratio`, `advantages`, `logp`: `[N, L]` → `[N, L]`
pub fn clipped_weight_objective<B: Backend>(
    ratio: Tensor<B, 2>,
    advantages: Tensor<B, 2>,
    logp: Tensor<B, 2>,
    eps_low: f64,
    eps_high: f64,
) -> Tensor<B, 2> {
    let weight = ratio.detach().clamp(1.0 - eps_low, 1.0 + eps_high);
    weight * advantages * logp
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

/// What a loss denominator counts, over one whole optimiser minibatch (all its accumulated
/// micro-batches, and all data-parallel ranks): summed, never averaged, so that micro-batches
/// and ranks combine exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenCounts {
    /// Valid (unmasked) response tokens.
    pub tokens: usize,
    /// Responses with at least one valid token.
    pub non_empty: usize,
    /// Responses, empty or not.
    pub responses: usize,
}

impl TokenCounts {
    /// The counts of responses of the given lengths in valid tokens.
    pub fn from_lengths(lengths: impl IntoIterator<Item = usize>) -> Self {
        lengths
            .into_iter()
            .fold(Self::default(), |counts, length| Self {
                tokens: counts.tokens + length,
                non_empty: counts.non_empty + usize::from(length > 0),
                responses: counts.responses + 1,
            })
    }

    /// The counts of a `[N, L]` mask (one host read).
    pub fn from_mask<B: Backend>(mask: &Tensor<B, 2>) -> Self {
        let [_, l] = mask.dims();
        let values = mask
            .to_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("a float mask converts to f32");
        Self::from_lengths(
            values
                .chunks(l.max(1))
                .map(|row| row.iter().filter(|&&m| m > 0.0).count()),
        )
    }
}

impl std::ops::Add for TokenCounts {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            tokens: self.tokens + other.tokens,
            non_empty: self.non_empty + other.non_empty,
            responses: self.responses + other.responses,
        }
    }
}

/// E15's normaliser, fixed for one optimiser minibatch before any of its micro-batches is
/// evaluated, so that the losses (and gradients) of the micro-batches sum to the loss of the
/// minibatch taken as one batch:
///
/// - `token_mean`: Σ mask·ℓ / (valid tokens of the minibatch) — TRL's `dapo` loss type, whose
///   `num_items_in_batch` is likewise the token count of the whole accumulated batch;
/// - `seq_mean_token_mean`: Σ_i (1/L_i) Σ_t ℓ / (non-empty responses of the minibatch);
/// - `constant`: Σ mask·ℓ / (responses of the minibatch × L_const) with L_const the
///   generation limit unless `constant_length` sets it (Dr. GRPO's constant).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossNormalizer {
    aggregation: LossAggregation,
    denominator: f64,
}

impl LossNormalizer {
    /// The normaliser of `config`'s aggregation for a minibatch with `counts`; `generation_limit`
    /// (the rollout's `max_new_tokens`) is L_const unless `config.constant_length` is set.
    pub fn new(config: &AlgorithmConfig, counts: TokenCounts, generation_limit: usize) -> Self {
        let aggregation = config.aggregation();
        let denominator = match aggregation {
            LossAggregation::TokenMean => counts.tokens,
            LossAggregation::SeqMeanTokenMean => counts.non_empty,
            LossAggregation::Constant => {
                counts.responses * config.constant_length.unwrap_or(generation_limit)
            }
        };
        Self {
            aggregation,
            denominator: denominator.max(1) as f64,
        }
    }

    /// The normaliser of one batch taken whole (no accumulation); L_const defaults to the
    /// batch's padded width.
    pub fn whole_batch<B: Backend>(config: &AlgorithmConfig, mask: &Tensor<B, 2>) -> Self {
        Self::new(config, TokenCounts::from_mask(mask), mask.dims()[1])
    }

    /// The aggregation this normaliser divides.
    pub fn aggregation(&self) -> LossAggregation {
        self.aggregation
    }

    /// The denominator (at least 1).
    pub fn denominator(&self) -> f64 {
        self.denominator
    }
}

/// E15: a per-token objective reduced to this micro-batch's share of the minibatch objective:
/// the numerator of `normalizer`'s aggregation over these rows, divided by the minibatch-wide
/// denominator.
///
/// # Shapes
/// - `per_token`, `mask`: `[N, L]` → `[1]`
pub fn aggregate<B: Backend>(
    per_token: Tensor<B, 2>,
    mask: Tensor<B, 2>,
    normalizer: LossNormalizer,
) -> Tensor<B, 1> {
    let masked = per_token * mask.clone();
    let numerator = match normalizer.aggregation {
        LossAggregation::TokenMean | LossAggregation::Constant => masked.sum(),
        LossAggregation::SeqMeanTokenMean => {
            let length = mask.sum_dim(1).clamp_min(1.0);
            (masked.sum_dim(1) / length).sum()
        }
    };
    numerator.div_scalar(normalizer.denominator)
}

/// E14–E15: loss = −J with J = Agg(ℓ − β_KL · kl), and its diagnostics. `normalizer` is the
/// denominator of the whole optimiser minibatch these rows belong to
/// ([`LossNormalizer::whole_batch`] when they are the whole minibatch).
pub fn policy_loss<B: Backend>(
    config: &AlgorithmConfig,
    inputs: LossInputs<B>,
    normalizer: LossNormalizer,
) -> PolicyLoss<B> {
    let LossInputs {
        logp,
        logp_old,
        logp_ref,
        advantages,
        mask,
    } = inputs;
    let (eps_low, eps_high) = config.clip_range();
    let ratio = importance_ratio(logp.clone(), logp_old, mask.clone(), config.ratio_level());
    let surrogate = match config.surrogate() {
        Surrogate::ClippedRatio => {
            clipped_surrogate(ratio.clone(), advantages.clone(), eps_low, eps_high)
        }
        Surrogate::ClippedWeight => clipped_weight_objective(
            ratio.clone(),
            advantages.clone(),
            logp.clone(),
            eps_low,
            eps_high,
        ),
    };
    let objective = match config.kl_penalty() {
        Some((estimator, beta)) => {
            surrogate - kl_estimate(logp.clone(), logp_ref.clone(), estimator).mul_scalar(beta)
        }
        None => surrogate,
    };
    let loss = aggregate(objective, mask.clone(), normalizer).neg();

    let tokens = mask.clone().sum().clamp_min(1.0);
    let fraction = |flag: Tensor<B, 2>| (flag * mask.clone()).sum() / tokens.clone();
    let ratio = ratio.detach();
    let below = ratio.clone().lower_elem(1.0 - eps_low).float();
    let above = ratio.clone().greater_elem(1.0 + eps_high).float();
    // A PPO clip is active only where it binds the min (its sign of Â); CISPO's weight is
    // clipped whatever the sign.
    let (clip_low, clip_high) = match config.surrogate() {
        Surrogate::ClippedRatio => (
            below * advantages.clone().lower_elem(0.0).float(),
            above * advantages.greater_elem(0.0).float(),
        ),
        Surrogate::ClippedWeight => (below, above),
    };
    let kl = kl_estimate(logp.detach(), logp_ref, KlEstimator::K3);
    let stats = LossStats {
        clip_low_frac: fraction(clip_low),
        clip_high_frac: fraction(clip_high),
        kl_mean: fraction(kl),
        ratio_mean: fraction(ratio),
    };
    PolicyLoss { loss, stats }
}
