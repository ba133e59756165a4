//! E2–E12: per-token advantages of a batch of response groups, as one backend operation.
//!
//! The inputs are `[B, G, L]` tensors (B prompt groups of G responses, padded to L tokens; valid
//! tokens form a prefix of each row) and the `[B, G]` rewards. Per group the operation computes
//! the outcome advantage and polarity (E4, E7), the entropy gate W (E2–E3), the
//! cumulative-entropy buckets (E8–E9), the bucket-normalised implicit process signal (E6, E10)
//! and the final advantages (E5, E11–E12). Everything is a constant for the update (no
//! gradient).
//!
//! [`plain`] is the formulation in plain Burn tensor operations (the NdArray implementation and
//! the fallback for cases the kernel does not cover); the CubeCL backends run one kernel with one
//! cube per group.

pub mod plain;

use burn::tensor::{Bool, Int, Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::KernelBackend;

/// How the sequence outcome advantage is scaled (E4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeScale {
    /// (r − μ_r) / (σ_r + ε_adv), σ_r the sample std.
    GroupStd,
    /// r − μ_r (Dr. GRPO).
    MeanOnly,
}

/// Ambiguity A5: where the polarity d_i enters the bucket normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignOrder {
    /// s̃ = BucketNorm(s), progress term = d·s̃ (spec recommendation).
    NormalizeThenSign,
    /// progress term = BucketNorm(d·s).
    SignThenNormalize,
}

/// Ambiguity A8: what the bucket normalisation of E10 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketNormalization {
    /// (s − μ_k) / (σ_k + ε_s) (spec recommendation).
    ZScore,
    /// s − μ_k.
    Center,
    /// s unchanged.
    Raw,
}

/// Hyperparameters of EP-GRPO's gate and progress term (E2–E3, E6–E11).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProgressParams {
    /// γ, sharpness of the gate W = σ(γ z) (E3).
    pub gamma: f64,
    /// λ, scale of the implicit process signal s = λ (lp_old − lp_ref) (E6).
    pub lambda: f64,
    /// α, weight of the progress term (E11).
    pub alpha: f64,
    /// θ_reward: polarity of zero-variance groups d = sign(r − θ) (E7).
    pub theta_reward: f64,
    /// ε_H added to the group entropy std (E2).
    pub eps_entropy: f64,
    /// ε_s added to the bucket std (E10).
    pub eps_bucket: f64,
    /// A5: order of polarity and bucket normalisation.
    pub sign_order: SignOrder,
    /// A6: whether W also multiplies the progress term.
    pub gate_progress: bool,
    /// A8: z-score, centring or nothing inside a bucket (E10).
    pub normalization: BucketNormalization,
}

/// Hyperparameters of [`group_advantages`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdvantageParams {
    /// E4 scaling of the outcome advantage.
    pub outcome_scale: OutcomeScale,
    /// ε_adv added to the reward std (E4).
    pub eps_adv: f64,
    /// δ: a group whose reward std is below it has zero variance (E4).
    pub zero_var_tol: f64,
    /// K, number of cumulative-entropy buckets (E9); at least 1.
    pub num_buckets: usize,
    /// EP-GRPO's gate and progress term; `None` gives every valid token weight 1 and no
    /// progress term (the GRPO-family baselines).
    pub progress: Option<ProgressParams>,
}

/// Inputs of [`group_advantages`].
///
/// # Shapes
/// `rewards`: `[B, G]`; the others `[B, G, L]`, 0 on padding, `mask` 1.0 on valid tokens (a
/// prefix of each row).
#[derive(Debug, Clone)]
pub struct GroupInputs<B: Backend> {
    /// r_i.
    pub rewards: Tensor<B, 2>,
    /// H_{i,t} of π_old (E1), ≥ 0.
    pub entropy: Tensor<B, 3>,
    /// lp_old of the sampled tokens.
    pub logp_old: Tensor<B, 3>,
    /// lp_ref of the sampled tokens.
    pub logp_ref: Tensor<B, 3>,
    /// 1.0 on valid tokens, 0.0 on padding.
    pub mask: Tensor<B, 3>,
}

/// Outputs of [`group_advantages`].
///
/// # Shapes
/// `[B, G, L]` per token, `[B, G]` per response, `[B, 1]` per group.
#[derive(Debug, Clone)]
pub struct GroupAdvantages<B: Backend> {
    /// Â_{i,t} = W_{i,t} Â_i + Â^prog_{i,t} (E12), zero on padding.
    pub advantages: Tensor<B, 3>,
    /// W_{i,t} (E3) with a progress term, else the mask.
    pub token_weight: Tensor<B, 3>,
    /// Â^prog_{i,t} = α d_i W s̃ (E11); zero without a progress term.
    pub progress: Tensor<B, 3>,
    /// Cumulative-entropy bucket b_{i,t} (E9), 0 on padding.
    pub bucket: Tensor<B, 3, Int>,
    /// Â_i (E4).
    pub outcome: Tensor<B, 2>,
    /// Whether each group's rewards have zero variance (E4).
    pub zero_variance: Tensor<B, 2, Bool>,
}

/// E2–E12 for every group of the batch (see the module docs): the backend's
/// [`KernelBackend::group_advantages`]. The results carry no gradient.
pub fn group_advantages<B: KernelBackend>(
    inputs: GroupInputs<B>,
    params: &AdvantageParams,
) -> GroupAdvantages<B> {
    assert!(params.num_buckets >= 1, "group_advantages: K must be ≥ 1");
    B::group_advantages(inputs, params)
}
