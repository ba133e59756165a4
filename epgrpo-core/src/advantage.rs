//! E5, E11–E13: per-token advantages of every method, from a batch of response groups.
//!
//! For EP-GRPO: Â_{i,t} = W_{i,t} · Â_i + α · d_i · W_{i,t} · s̃_{i,t} (E12), where W is the
//! entropy gate (E3), Â_i the outcome advantage (E4), d_i the polarity (E7) and s̃ the
//! bucket-normalised implicit process signal s = λ (lp_old − lp_ref) (E6, E8–E10). Zero-variance
//! groups keep their progress term (E13). The baselines use Â_i on every valid token (or on the
//! top-entropy tokens for `entropy_mask`). Advantages are constants for the update (detached).

use burn::tensor::{Bool, Int, Tensor, backend::Backend};
use serde::Serialize;

use crate::config::{AlgorithmConfig, SignOrder, TokenWeighting};
use crate::gate::{entropy_gate, top_entropy_mask};
use crate::groups::{GroupTensors, ResponseGroup};
use crate::outcome::{outcome_advantage, polarity};
use crate::progress::{bucket_normalize, progress_buckets};

/// Everything the advantage computation produces, kept on the device for logging.
///
/// # Shapes
/// `[B, G, L]` per token, `[B, G]` per response, `[B, 1]` per group.
#[derive(Debug, Clone)]
pub struct TokenAdvantages<B: Backend> {
    /// Â_{i,t}, zero on padding.
    pub advantages: Tensor<B, 3>,
    /// W_{i,t} for EP-GRPO, the 0/1 mask for `entropy_mask`, 1 for the others (0 on padding).
    pub token_weight: Tensor<B, 3>,
    /// Â^prog_{i,t} = α d_i W s̃ (E11); zero for the baselines.
    pub progress: Tensor<B, 3>,
    /// Cumulative-entropy bucket b_{i,t} (E9).
    pub bucket: Tensor<B, 3, Int>,
    /// Â_i (E4).
    pub outcome: Tensor<B, 2>,
    /// Whether each group's rewards have zero variance (E4).
    pub zero_variance: Tensor<B, 2, Bool>,
}

/// Computes [`TokenAdvantages`] for `config.name`. The tensors are detached from any graph.
pub fn token_advantages<B: Backend>(
    config: &AlgorithmConfig,
    batch: &GroupTensors<B>,
) -> TokenAdvantages<B> {
    let mask = batch.mask.clone();
    let entropy = batch.entropy.clone().detach();
    let rewards = batch.rewards.clone().detach();
    let dims = mask.dims();
    let (outcome, zero_variance) = outcome_advantage(
        rewards.clone(),
        config.outcome_scale(),
        config.eps_adv,
        config.zero_var_tol,
    );
    let per_token = |response: Tensor<B, 2>| response.unsqueeze_dim::<3>(2).expand(dims);
    let (_, bucket) = progress_buckets(entropy.clone(), mask.clone(), config.num_buckets);
    let (token_weight, progress) = match config.token_weighting() {
        TokenWeighting::Uniform => (mask.clone(), mask.zeros_like()),
        TokenWeighting::TopEntropy { fraction } => (
            top_entropy_mask(entropy, mask.clone(), fraction),
            mask.zeros_like(),
        ),
        TokenWeighting::EntropyProgress => {
            let gate = entropy_gate(entropy, mask.clone(), config.gamma, config.eps_entropy);
            let d = per_token(polarity(
                rewards,
                outcome.clone(),
                zero_variance.clone(),
                config.theta_reward,
            ));
            // E6: s = λ (lp_old − lp_ref), detached.
            let s = (batch.logp_old.clone() - batch.logp_ref.clone())
                .detach()
                .mul_scalar(config.lambda);
            let normalize = |signal| {
                bucket_normalize(
                    signal,
                    bucket.clone(),
                    mask.clone(),
                    config.num_buckets,
                    config.bucket_normalization,
                    config.eps_bucket,
                )
            };
            // A5: polarity after (i) or before (ii) the bucket normalisation.
            let directed = match config.sign_order {
                SignOrder::NormalizeThenSign => normalize(s) * d,
                SignOrder::SignThenNormalize => normalize(s * d),
            };
            // A6: whether the gate also scales the progress term.
            let gated = if config.gate_progress {
                directed * gate.clone()
            } else {
                directed
            };
            (gate, gated.mul_scalar(config.alpha) * mask.clone())
        }
    };
    // E5 + E12: outcome term (weighted) plus progress term.
    let advantages = token_weight.clone() * per_token(outcome.clone()) + progress.clone();
    TokenAdvantages {
        advantages,
        token_weight,
        progress,
        bucket,
        outcome,
        zero_variance,
    }
}

/// Per-token result for one group on the host, rows trimmed to the response lengths.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupAdvantages {
    /// Â_{i,t}.
    pub advantages: Vec<Vec<f64>>,
    /// W for EP-GRPO, the 0/1 entropy mask for `entropy_mask`, 1 for the others.
    pub token_weight: Vec<Vec<f64>>,
    /// Cumulative-entropy bucket b_{i,t} (E9).
    pub bucket: Vec<Vec<u32>>,
    /// Whether the group's rewards have zero variance (E4).
    pub zero_variance: bool,
}

impl<B: Backend> TokenAdvantages<B> {
    /// Copies the result to the host, one [`GroupAdvantages`] per input group, rows cut to the
    /// lengths of `groups` (the groups these advantages were computed from).
    pub fn to_host(&self, groups: &[ResponseGroup]) -> Vec<GroupAdvantages> {
        let [_, g, l] = self.advantages.dims();
        let floats = |t: &Tensor<B, 3>| {
            t.to_data()
                .convert::<f64>()
                .to_vec::<f64>()
                .expect("converted to f64 above")
        };
        let ints = |data: burn::tensor::TensorData| {
            data.convert::<i64>()
                .to_vec::<i64>()
                .expect("converted to i64 above")
        };
        let (advantages, weight) = (floats(&self.advantages), floats(&self.token_weight));
        let bucket: Vec<u32> = ints(self.bucket.to_data())
            .into_iter()
            .map(|v| v as u32)
            .collect();
        let zero_variance = ints(self.zero_variance.clone().int().to_data());
        groups
            .iter()
            .enumerate()
            .map(|(b, group)| {
                let lengths = group.lengths();
                GroupAdvantages {
                    advantages: rows(&advantages, &lengths, b * g, l),
                    token_weight: rows(&weight, &lengths, b * g, l),
                    bucket: rows(&bucket, &lengths, b * g, l),
                    zero_variance: zero_variance[b] != 0,
                }
            })
            .collect()
    }
}

/// Rows `first_row..` of a padded `[rows, L]` host buffer, each cut to its length.
fn rows<T: Clone>(values: &[T], lengths: &[usize], first_row: usize, l: usize) -> Vec<Vec<T>> {
    lengths
        .iter()
        .enumerate()
        .map(|(i, len)| {
            let start = (first_row + i) * l;
            values[start..start + len].to_vec()
        })
        .collect()
}
