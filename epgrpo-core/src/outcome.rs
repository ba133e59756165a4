//! E4 outcome advantage with zero-variance detection, and E7 polarity.

use burn::tensor::{Bool, Tensor, backend::Backend};

use crate::config::OutcomeScale;

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
