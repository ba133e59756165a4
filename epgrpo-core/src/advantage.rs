//! E5, E11–E13: per-token advantages of every method, from a batch of response groups.
//!
//! For EP-GRPO: Â_{i,t} = W_{i,t} · Â_i + α · d_i · W_{i,t} · s̃_{i,t} (E12), where W is the
//! entropy gate (E3), Â_i the outcome advantage (E4), d_i the polarity (E7) and s̃ the
//! bucket-normalised implicit process signal s = λ (lp_old − lp_ref) (E6, E8–E10). Zero-variance
//! groups keep their progress term (E13). The baselines use Â_i on every valid token (or on the
//! top-entropy tokens for `entropy_mask`). Advantages are constants for the update (detached).

use burn::tensor::{Tensor, backend::Backend};
use epgrpo_kernels::KernelBackend;
use epgrpo_kernels::advantage::{GroupInputs, group_advantages};
use serde::Serialize;

use crate::config::{AlgorithmConfig, GateNormalization, TokenWeighting};
use crate::gate::top_entropy_mask;
use crate::groups::{GroupTensors, ResponseGroup};

/// Everything the advantage computation produces, kept on the device for logging: the
/// backend op's [`epgrpo_kernels::advantage::GroupAdvantages`], whose `token_weight` is the 0/1
/// top-entropy mask for `entropy_mask`.
pub use epgrpo_kernels::advantage::GroupAdvantages as TokenAdvantages;

/// Computes [`TokenAdvantages`] for `config.name`. The tensors are detached from any graph.
///
/// E2–E12 are the backend's [`KernelBackend::group_advantages`] (one CubeCL kernel on the GPU
/// backends, plain Burn operations on the CPU); the top-entropy mask of `entropy_mask` (a batch
/// quantile) is applied afterwards in plain Burn.
pub fn token_advantages<B: KernelBackend>(
    config: &AlgorithmConfig,
    batch: &GroupTensors<B>,
) -> TokenAdvantages<B> {
    let inputs = GroupInputs {
        rewards: batch.rewards.clone().detach(),
        entropy: batch.entropy.clone().detach(),
        logp_old: batch.logp_old.clone().detach(),
        logp_ref: batch.logp_ref.clone().detach(),
        mask: batch.mask.clone().detach(),
    };
    let out = group_advantages(inputs, &config.advantage_params());
    let (advantages, token_weight) = match config.token_weighting() {
        TokenWeighting::TopEntropy { fraction } => {
            let dims = batch.mask.dims();
            let weight =
                top_entropy_mask(batch.entropy.clone().detach(), batch.mask.clone(), fraction);
            // E5 with the hard mask as the token weight.
            let outcome = out.outcome.clone().unsqueeze_dim::<3>(2).expand(dims);
            (weight.clone() * outcome, weight)
        }
        TokenWeighting::Uniform => (out.advantages, out.token_weight),
        TokenWeighting::EntropyProgress => match config.gate_normalization {
            GateNormalization::Raw => (out.advantages, out.token_weight),
            GateNormalization::MeanOne => {
                let normalized = mean_one_gate(&out, &batch.mask, config.gate_progress);
                return normalized;
            }
        },
    };
    TokenAdvantages {
        advantages,
        token_weight,
        ..out
    }
}

/// `gate_normalization = "mean_one"`: W' = W / mean(W) over each group's valid tokens, applied
/// after E12 where W enters: the outcome term W·Â_i, and the progress term when the gate
/// multiplies it (A6). Groups without valid tokens are left as they are.
fn mean_one_gate<B: Backend>(
    out: &TokenAdvantages<B>,
    mask: &Tensor<B, 3>,
    gate_progress: bool,
) -> TokenAdvantages<B> {
    let dims = out.token_weight.dims();
    let mask = mask.clone().detach();
    let tokens = mask.clone().sum_dim(2).sum_dim(1);
    let gate_sum = (out.token_weight.clone() * mask.clone())
        .sum_dim(2)
        .sum_dim(1);
    let empty = tokens.clone().lower_equal_elem(0.0);
    let mean = (gate_sum / tokens.clamp_min(1.0)).mask_fill(empty, 1.0);
    let scale = mean.recip().expand(dims);
    let outcome_term = (out.advantages.clone() - out.progress.clone()) * scale.clone();
    let progress = if gate_progress {
        out.progress.clone() * scale.clone()
    } else {
        out.progress.clone()
    };
    TokenAdvantages {
        advantages: outcome_term + progress.clone(),
        token_weight: out.token_weight.clone() * scale * mask,
        progress,
        ..out.clone()
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

/// Copies `advantages` to the host, one [`GroupAdvantages`] per input group, rows cut to the
/// lengths of `groups` (the groups these advantages were computed from).
pub fn to_host<B: Backend>(
    advantages: &TokenAdvantages<B>,
    groups: &[ResponseGroup],
) -> Vec<GroupAdvantages> {
    let [_, g, l] = advantages.advantages.dims();
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
    let values = floats(&advantages.advantages);
    let weight = floats(&advantages.token_weight);
    let bucket: Vec<u32> = ints(advantages.bucket.to_data())
        .into_iter()
        .map(|v| v as u32)
        .collect();
    let zero_variance = ints(advantages.zero_variance.clone().int().to_data());
    groups
        .iter()
        .enumerate()
        .map(|(b, group)| {
            let lengths = group.lengths();
            GroupAdvantages {
                advantages: rows(&values, &lengths, b * g, l),
                token_weight: rows(&weight, &lengths, b * g, l),
                bucket: rows(&bucket, &lengths, b * g, l),
                zero_variance: zero_variance[b] != 0,
            }
        })
        .collect()
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
