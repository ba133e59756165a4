//! Plain-Rust f64 reference implementation of E1–E15, written for clarity, one loop per
//! equation. The tests check the Burn implementation against it and both against the spec's
//! oracles; it is not used on the training path.

use crate::advantage::GroupAdvantages;
use crate::config::{
    AlgorithmConfig, BucketNormalization, GateNormalization, KlEstimator, LossAggregation,
    OutcomeScale, RatioLevel, SignOrder, Surrogate, TokenWeighting,
};
use crate::groups::ResponseGroup;

/// E1: (log p(target), entropy) of the softmax of `logits / temperature`.
pub fn logp_entropy(logits: &[f64], target: usize, temperature: f64) -> (f64, f64) {
    let z: Vec<f64> = logits.iter().map(|x| x / temperature).collect();
    let max = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = z.iter().map(|v| (v - max).exp()).sum();
    let log_z = max + sum.ln();
    let entropy = z
        .iter()
        .map(|v| {
            let p = (v - log_z).exp();
            if p > 0.0 { -p * (v - log_z) } else { 0.0 }
        })
        .sum();
    (z[target] - log_z, entropy)
}

/// E1 for a probability vector: −Σ p log p with 0 log 0 = 0.
pub fn entropy_of_probs(probs: &[f64]) -> f64 {
    probs
        .iter()
        .filter(|p| **p > 0.0)
        .map(|p| -p * p.ln())
        .sum()
}

/// E4: outcome advantages Â_i and the zero-variance flag.
pub fn outcome_advantage(
    rewards: &[f64],
    scale: OutcomeScale,
    eps: f64,
    tol: f64,
) -> (Vec<f64>, bool) {
    let g = rewards.len() as f64;
    let mean = rewards.iter().sum::<f64>() / g;
    let std = if rewards.len() > 1 {
        (rewards.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (g - 1.0)).sqrt()
    } else {
        0.0
    };
    if std < tol {
        return (vec![0.0; rewards.len()], true);
    }
    let advantages = rewards
        .iter()
        .map(|r| match scale {
            OutcomeScale::GroupStd => (r - mean) / (std + eps),
            OutcomeScale::MeanOnly => r - mean,
        })
        .collect();
    (advantages, false)
}

/// E7: polarity d_i.
pub fn polarity(rewards: &[f64], advantages: &[f64], zero_var: bool, theta: f64) -> Vec<f64> {
    let sign = |x: f64| {
        if x > 0.0 {
            1.0
        } else if x < 0.0 {
            -1.0
        } else {
            0.0
        }
    };
    if zero_var {
        rewards.iter().map(|r| sign(r - theta)).collect()
    } else {
        advantages.iter().map(|a| sign(*a)).collect()
    }
}

/// Population mean and std of a sample (0, 0 when empty).
fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt())
}

/// E2–E3: gate W_{i,t} = σ(γ z_{i,t}), z the entropy z-score over the whole group.
pub fn entropy_gate(entropy: &[Vec<f64>], gamma: f64, eps: f64) -> Vec<Vec<f64>> {
    let pooled: Vec<f64> = entropy.iter().flatten().copied().collect();
    let (mean, std) = mean_std(&pooled);
    entropy
        .iter()
        .map(|row| {
            row.iter()
                .map(|h| sigmoid(gamma * (h - mean) / (std + eps)))
                .collect()
        })
        .collect()
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// E8–E9: progress coordinate τ_{i,t} and bucket b_{i,t} of one response.
pub fn progress_buckets(entropy: &[f64], k: usize) -> (Vec<f64>, Vec<u32>) {
    let mut prefix = Vec::with_capacity(entropy.len());
    let mut sum = 0.0;
    for h in entropy {
        sum += h;
        prefix.push(sum);
    }
    let len = entropy.len() as f64;
    let tau: Vec<f64> = prefix
        .iter()
        .enumerate()
        .map(|(t, s)| {
            if sum > 0.0 {
                s / sum
            } else {
                (t + 1) as f64 / len
            }
        })
        .collect();
    let bucket = tau
        .iter()
        .map(|tau| ((k as f64 * tau).floor() as usize).min(k - 1) as u32)
        .collect();
    (tau, bucket)
}

/// E10: normalise `signal` inside each bucket, pooling the tokens of all responses.
pub fn bucket_normalize(
    signal: &[Vec<f64>],
    bucket: &[Vec<u32>],
    k: usize,
    kind: BucketNormalization,
    eps: f64,
) -> Vec<Vec<f64>> {
    let stats: Vec<(f64, f64)> = (0..k as u32)
        .map(|b| {
            let members: Vec<f64> = signal
                .iter()
                .zip(bucket)
                .flat_map(|(s, bk)| s.iter().zip(bk).filter(|(_, x)| **x == b).map(|(s, _)| *s))
                .collect();
            mean_std(&members)
        })
        .collect();
    signal
        .iter()
        .zip(bucket)
        .map(|(s, bk)| {
            s.iter()
                .zip(bk)
                .map(|(s, b)| {
                    let (mean, std) = stats[*b as usize];
                    match kind {
                        BucketNormalization::ZScore => (s - mean) / (std + eps),
                        BucketNormalization::Center => s - mean,
                        BucketNormalization::Raw => *s,
                    }
                })
                .collect()
        })
        .collect()
}

/// Linear-interpolation quantile of a non-empty sample (NumPy's default).
fn quantile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let position = q * (values.len() - 1) as f64;
    let (low, high) = (position.floor() as usize, position.ceil() as usize);
    values[low] + (position - low as f64) * (values[high] - values[low])
}

/// Token advantages of every group (E4–E13 for `ep_grpo`, the baselines otherwise).
/// The entropy threshold of `entropy_mask` is taken over all valid tokens of all groups.
pub fn token_advantages(
    config: &AlgorithmConfig,
    groups: &[ResponseGroup],
) -> Vec<GroupAdvantages> {
    let threshold = match config.token_weighting() {
        TokenWeighting::TopEntropy { fraction } => {
            let mut pooled: Vec<f64> = groups
                .iter()
                .flat_map(|g| g.entropy.iter().flatten().copied())
                .collect();
            (!pooled.is_empty()).then(|| quantile(&mut pooled, 1.0 - fraction))
        }
        TokenWeighting::Uniform | TokenWeighting::EntropyProgress => None,
    };
    groups
        .iter()
        .map(|group| group_advantages(config, group, threshold))
        .collect()
}

fn group_advantages(
    config: &AlgorithmConfig,
    group: &ResponseGroup,
    threshold: Option<f64>,
) -> GroupAdvantages {
    let (outcome, zero_variance) = outcome_advantage(
        &group.rewards,
        config.outcome_scale(),
        config.eps_adv,
        config.zero_var_tol,
    );
    let k = config.num_buckets;
    let bucket: Vec<Vec<u32>> = group
        .entropy
        .iter()
        .map(|row| progress_buckets(row, k).1)
        .collect();
    let broadcast = |weight: &[Vec<f64>]| -> Vec<Vec<f64>> {
        weight
            .iter()
            .zip(&outcome)
            .map(|(w, a)| w.iter().map(|w| w * a).collect())
            .collect()
    };
    let (advantages, token_weight) = match config.token_weighting() {
        TokenWeighting::Uniform => {
            let ones: Vec<Vec<f64>> = group
                .entropy
                .iter()
                .map(|row| vec![1.0; row.len()])
                .collect();
            (broadcast(&ones), ones)
        }
        TokenWeighting::TopEntropy { .. } => {
            let threshold = threshold.unwrap_or(f64::INFINITY);
            let mask: Vec<Vec<f64>> = group
                .entropy
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|h| if *h >= threshold { 1.0 } else { 0.0 })
                        .collect()
                })
                .collect();
            (broadcast(&mask), mask)
        }
        TokenWeighting::EntropyProgress => {
            let gate = entropy_gate(&group.entropy, config.gamma, config.eps_entropy);
            let gate = match config.gate_normalization {
                GateNormalization::Raw => gate,
                GateNormalization::MeanOne => {
                    let pooled: Vec<f64> = gate.iter().flatten().copied().collect();
                    let mean = if pooled.is_empty() {
                        1.0
                    } else {
                        pooled.iter().sum::<f64>() / pooled.len() as f64
                    };
                    gate.iter()
                        .map(|row| row.iter().map(|w| w / mean).collect())
                        .collect()
                }
            };
            let d = polarity(&group.rewards, &outcome, zero_variance, config.theta_reward);
            let s: Vec<Vec<f64>> = group
                .log_ratio_to_ref()
                .iter()
                .map(|row| row.iter().map(|x| config.lambda * x).collect())
                .collect();
            // A5: the polarity enters after (i) or before (ii) the bucket normalisation.
            let (signal, sign_after): (Vec<Vec<f64>>, bool) = match config.sign_order {
                SignOrder::NormalizeThenSign => (s, true),
                SignOrder::SignThenNormalize => (
                    s.iter()
                        .zip(&d)
                        .map(|(row, d)| row.iter().map(|x| d * x).collect())
                        .collect(),
                    false,
                ),
            };
            let normalized = bucket_normalize(
                &signal,
                &bucket,
                k,
                config.bucket_normalization,
                config.eps_bucket,
            );
            let advantages = (0..group.size())
                .map(|i| {
                    (0..gate[i].len())
                        .map(|t| {
                            let w = gate[i][t];
                            let polarity = if sign_after { d[i] } else { 1.0 };
                            let gate = if config.gate_progress { w } else { 1.0 };
                            // E11–E12: Â = W·Â_i + α·d_i·W·s̃.
                            w * outcome[i] + config.alpha * polarity * gate * normalized[i][t]
                        })
                        .collect()
                })
                .collect();
            (advantages, gate)
        }
    };
    GroupAdvantages {
        advantages,
        token_weight,
        bucket,
        zero_variance,
    }
}

/// One response's inputs to the policy loss (ragged, f64).
#[derive(Debug, Clone)]
pub struct LossRow {
    /// lp_θ per token.
    pub logp: Vec<f64>,
    /// lp_old per token.
    pub logp_old: Vec<f64>,
    /// lp_ref per token.
    pub logp_ref: Vec<f64>,
    /// Â per token.
    pub advantages: Vec<f64>,
}

/// E15: KL estimate of one token from lp_θ and lp_ref.
pub fn kl(estimator: KlEstimator, logp: f64, logp_ref: f64) -> f64 {
    let diff = logp_ref - logp;
    match estimator {
        KlEstimator::K1 => -diff,
        KlEstimator::K2 => 0.5 * diff * diff,
        KlEstimator::K3 => diff.exp() - diff - 1.0,
    }
}

/// E14: clipped surrogate min(ρÂ, clip(ρ, 1−ε_low, 1+ε_high)Â).
pub fn clipped_surrogate(ratio: f64, advantage: f64, eps_low: f64, eps_high: f64) -> f64 {
    (ratio * advantage).min(ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * advantage)
}

/// E14–E15: the loss −J of a batch of responses taken as one optimiser minibatch.
/// `generation_limit` is L_const of the `constant` aggregation when `constant_length` is not set.
pub fn policy_loss(config: &AlgorithmConfig, rows: &[LossRow], generation_limit: usize) -> f64 {
    let (eps_low, eps_high) = config.clip_range();
    let objective: Vec<Vec<f64>> = rows
        .iter()
        .map(|row| {
            let n = row.logp.len();
            let seq_ratio = (n > 0).then(|| {
                (row.logp
                    .iter()
                    .zip(&row.logp_old)
                    .map(|(a, b)| a - b)
                    .sum::<f64>()
                    / n as f64)
                    .exp()
            });
            (0..n)
                .map(|t| {
                    let ratio = match config.ratio_level() {
                        RatioLevel::Token => (row.logp[t] - row.logp_old[t]).exp(),
                        RatioLevel::Sequence => seq_ratio.unwrap_or(1.0),
                    };
                    let penalty = config.kl_penalty().map_or(0.0, |(est, beta)| {
                        beta * kl(est, row.logp[t], row.logp_ref[t])
                    });
                    let advantage = row.advantages[t];
                    let objective = match config.surrogate() {
                        Surrogate::ClippedRatio => {
                            clipped_surrogate(ratio, advantage, eps_low, eps_high)
                        }
                        // CISPO: the clipped ratio is a constant weight of Â·lp_θ.
                        Surrogate::ClippedWeight => {
                            ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * advantage * row.logp[t]
                        }
                    };
                    objective - penalty
                })
                .collect()
        })
        .collect();
    let total: f64 = objective.iter().flatten().sum();
    let j = match config.aggregation() {
        LossAggregation::TokenMean => {
            let tokens: usize = objective.iter().map(Vec::len).sum();
            total / tokens.max(1) as f64
        }
        LossAggregation::SeqMeanTokenMean => {
            let means: Vec<f64> = objective
                .iter()
                .filter(|row| !row.is_empty())
                .map(|row| row.iter().sum::<f64>() / row.len() as f64)
                .collect();
            means.iter().sum::<f64>() / means.len().max(1) as f64
        }
        LossAggregation::Constant => {
            let length = config.constant_length.unwrap_or(generation_limit);
            total / (rows.len() * length).max(1) as f64
        }
    };
    -j
}
