//! E2–E12 in plain Burn tensor operations: the NdArray implementation of
//! [`KernelBackend::group_advantages`](crate::KernelBackend::group_advantages), the fallback of the
//! CubeCL backends for K beyond the kernel's shared memory, and the unfused side of the
//! benchmark.
//!
//! The bucket statistics go through a `[B, G, L, K]` one-hot membership tensor; the CubeCL kernel
//! avoids it.

use burn::tensor::{Bool, Int, Tensor, backend::Backend};

use super::{
    AdvantageParams, BucketNormalization, GroupAdvantages, GroupInputs, OutcomeScale, SignOrder,
};

/// E2–E12 for every group (see [`super::group_advantages`]), in plain tensor operations.
pub fn group_advantages<B: Backend>(
    inputs: GroupInputs<B>,
    params: &AdvantageParams,
) -> GroupAdvantages<B> {
    let mask = inputs.mask.detach();
    let entropy = inputs.entropy.detach();
    let rewards = inputs.rewards.detach();
    let dims = mask.dims();
    let (outcome, zero_variance) = outcome_advantage(
        rewards.clone(),
        params.outcome_scale,
        params.eps_adv,
        params.zero_var_tol,
    );
    let per_token = |response: Tensor<B, 2>| response.unsqueeze_dim::<3>(2).expand(dims);
    let (_, bucket) = progress_buckets(entropy.clone(), mask.clone(), params.num_buckets);
    let (token_weight, progress) = match &params.progress {
        None => (mask.clone(), mask.zeros_like()),
        Some(p) => {
            let gate = entropy_gate(entropy, mask.clone(), p.gamma, p.eps_entropy);
            let d = per_token(polarity(
                rewards,
                outcome.clone(),
                zero_variance.clone(),
                p.theta_reward,
            ));
            // E6: s = λ (lp_old − lp_ref), detached.
            let s = (inputs.logp_old - inputs.logp_ref)
                .detach()
                .mul_scalar(p.lambda);
            let normalize = |signal| {
                bucket_normalize(
                    signal,
                    bucket.clone(),
                    mask.clone(),
                    params.num_buckets,
                    p.normalization,
                    p.eps_bucket,
                )
            };
            // A5: polarity after (i) or before (ii) the bucket normalisation.
            let directed = match p.sign_order {
                SignOrder::NormalizeThenSign => normalize(s) * d,
                SignOrder::SignThenNormalize => normalize(s * d),
            };
            // A6: whether the gate also scales the progress term.
            let gated = if p.gate_progress {
                directed * gate.clone()
            } else {
                directed
            };
            // E11.
            (gate, gated.mul_scalar(p.alpha) * mask.clone())
        }
    };
    // E5 + E12: outcome term (weighted) plus progress term.
    let advantages = token_weight.clone() * per_token(outcome.clone()) + progress.clone();
    GroupAdvantages {
        advantages,
        token_weight,
        progress,
        bucket,
        outcome,
        zero_variance,
    }
}

/// E4: sequence-level advantages Â_i and the zero-variance flag of each group.
///
/// Â_i = (r_i − μ_r) / (σ_r + ε_adv) with σ_r the sample std (ddof = 1), or r_i − μ_r under
/// [`OutcomeScale::MeanOnly`]; Â ≡ 0 in groups with σ_r < δ (a single response counts as σ_r = 0).
///
/// # Shapes
/// - `rewards`: `[B, G]` → (`[B, G]`, `[B, 1]`)
pub fn outcome_advantage<B: Backend>(
    rewards: Tensor<B, 2>,
    scale: OutcomeScale,
    eps_adv: f64,
    zero_var_tol: f64,
) -> (Tensor<B, 2>, Tensor<B, 2, Bool>) {
    let [b, g] = rewards.dims();
    let centred = rewards.clone() - rewards.mean_dim(1);
    let ddof_divisor = (g.max(2) - 1) as f64;
    let std = centred
        .clone()
        .powi_scalar(2)
        .sum_dim(1)
        .div_scalar(ddof_divisor)
        .sqrt();
    let zero_var = std.clone().lower_elem(zero_var_tol);
    let advantage = match scale {
        OutcomeScale::GroupStd => centred / std.add_scalar(eps_adv),
        OutcomeScale::MeanOnly => centred,
    };
    let advantage = advantage.mask_fill(zero_var.clone().expand([b, g]), 0.0);
    (advantage, zero_var)
}

/// E7: polarity d_i = sign(Â_i), or sign(r_i − θ_reward) in zero-variance groups
/// (sign(0) = 0).
///
/// # Shapes
/// - `rewards`, `advantage`: `[B, G]`, `zero_var`: `[B, 1]` → `[B, G]`
pub fn polarity<B: Backend>(
    rewards: Tensor<B, 2>,
    advantage: Tensor<B, 2>,
    zero_var: Tensor<B, 2, Bool>,
    theta_reward: f64,
) -> Tensor<B, 2> {
    let dims = rewards.dims();
    advantage.sign().mask_where(
        zero_var.expand(dims),
        rewards.sub_scalar(theta_reward).sign(),
    )
}

/// E2–E3: W_{i,t} = σ(γ · (H_{i,t} − μ_H) / (σ_H + ε_H)), with μ_H and the population σ_H taken
/// over the valid tokens of all G responses of the group. Padding gets W = 0.
///
/// # Shapes
/// - `entropy`, `mask`: `[B, G, L]` → `[B, G, L]`
pub fn entropy_gate<B: Backend>(
    entropy: Tensor<B, 3>,
    mask: Tensor<B, 3>,
    gamma: f64,
    eps_entropy: f64,
) -> Tensor<B, 3> {
    let count = mask.clone().sum_dims(&[1, 2]).clamp_min(1.0);
    let mean = (entropy.clone() * mask.clone()).sum_dims(&[1, 2]) / count.clone();
    let centred = entropy - mean;
    let var = (centred.clone().powi_scalar(2) * mask.clone()).sum_dims(&[1, 2]) / count;
    let z = centred / var.sqrt().add_scalar(eps_entropy);
    // σ(x) = 1 / (1 + e^(−x)), written out: Burn's `sigmoid` rounds through f32.
    z.mul_scalar(-gamma).exp().add_scalar(1.0).recip() * mask
}

/// E8–E9: τ_{i,t} = S_{i,t} / S_{i,L_i} with S the inclusive prefix sum of H over valid tokens
/// (τ = t / L_i when the response has zero total entropy), and b_{i,t} = min(K − 1, ⌊K τ⌋).
/// Padding gets τ = 0 and b = 0. Valid tokens must form a prefix of each row.
///
/// # Shapes
/// - `entropy`, `mask`: `[B, G, L]` → (`[B, G, L]`, `[B, G, L]` Int)
pub fn progress_buckets<B: Backend>(
    entropy: Tensor<B, 3>,
    mask: Tensor<B, 3>,
    num_buckets: usize,
) -> (Tensor<B, 3>, Tensor<B, 3, Int>) {
    let [b, g, l] = entropy.dims();
    let prefix = (entropy * mask.clone()).cumsum(2);
    // Padding adds exact zeros, so the last column is S_{i,L_i} bit for bit and τ_{i,L_i} = 1.
    let total = prefix.clone().slice([0..b, 0..g, l - 1..l]);
    let no_entropy = total.clone().lower_equal_elem(0.0);
    let length = mask.clone().sum_dim(2).clamp_min(1.0);
    let position = Tensor::<B, 1, Int>::arange(1..l as i64 + 1, &mask.device())
        .float()
        .reshape([1, 1, l])
        .expand([b, g, l]);
    let by_entropy = prefix / total.mask_fill(no_entropy.clone(), 1.0);
    let by_position = position / length;
    let tau = by_entropy.mask_where(no_entropy.expand([b, g, l]), by_position) * mask.clone();
    let bucket = tau
        .clone()
        .mul_scalar(num_buckets as f64)
        .floor()
        .clamp_max((num_buckets - 1) as f64)
        .int()
        * mask.int();
    (tau, bucket)
}

/// E10: normalise `signal` inside each bucket of each group, pooling the valid tokens of all G
/// responses: (s − μ_k) / (σ_k + ε_s) for [`BucketNormalization::ZScore`] (population σ_k;
/// a singleton bucket gives 0), s − μ_k for `Center`, s for `Raw`. Padding gets 0.
///
/// # Shapes
/// - `signal`, `mask`: `[B, G, L]`, `bucket`: `[B, G, L]` Int → `[B, G, L]`
pub fn bucket_normalize<B: Backend>(
    signal: Tensor<B, 3>,
    bucket: Tensor<B, 3, Int>,
    mask: Tensor<B, 3>,
    num_buckets: usize,
    kind: BucketNormalization,
    eps_bucket: f64,
) -> Tensor<B, 3> {
    let signal = signal * mask.clone();
    let normalized = match kind {
        BucketNormalization::Raw => return signal,
        BucketNormalization::Center => BucketStats::new(&bucket, &mask, num_buckets).centre(signal),
        BucketNormalization::ZScore => {
            let stats = BucketStats::new(&bucket, &mask, num_buckets);
            let centred = stats.centre(signal);
            let std = stats.mean_per_bucket(centred.clone().powi_scalar(2)).sqrt();
            centred / stats.per_token(std).add_scalar(eps_bucket)
        }
    };
    normalized * mask
}

/// Bucket membership of the tokens of each group, for segmented means.
struct BucketStats<B: Backend> {
    /// `[B, G, L, K]`: 1 when the token is valid and in bucket k.
    membership: Tensor<B, 4>,
    /// `[B, 1, 1, K]`: number of tokens per bucket (at least 1).
    count: Tensor<B, 4>,
}

impl<B: Backend> BucketStats<B> {
    fn new(bucket: &Tensor<B, 3, Int>, mask: &Tensor<B, 3>, num_buckets: usize) -> Self {
        let [b, g, l] = bucket.dims();
        let shape = [b, g, l, num_buckets];
        let ids = Tensor::<B, 1, Int>::arange(0..num_buckets as i64, &bucket.device())
            .reshape([1, 1, 1, num_buckets])
            .expand(shape);
        let membership = bucket
            .clone()
            .unsqueeze_dim::<4>(3)
            .expand(shape)
            .equal(ids)
            .float()
            * mask.clone().unsqueeze_dim(3);
        let count = membership.clone().sum_dims(&[1, 2]).clamp_min(1.0);
        Self { membership, count }
    }

    /// `[B, G, L]` token values → `[B, 1, 1, K]` mean per (group, bucket).
    fn mean_per_bucket(&self, values: Tensor<B, 3>) -> Tensor<B, 4> {
        (values.unsqueeze_dim(3) * self.membership.clone()).sum_dims(&[1, 2]) / self.count.clone()
    }

    /// `[B, 1, 1, K]` bucket statistic → `[B, G, L]` value of each token's bucket.
    fn per_token(&self, stat: Tensor<B, 4>) -> Tensor<B, 3> {
        (self.membership.clone() * stat).sum_dim(3).squeeze_dim(3)
    }

    /// s − μ_{b(token)}.
    fn centre(&self, signal: Tensor<B, 3>) -> Tensor<B, 3> {
        let mean = self.mean_per_bucket(signal.clone());
        signal - self.per_token(mean)
    }
}
