//! Token weights from entropy: EP-GRPO's soft gate (E2–E3) and the hard top-ρ entropy mask of
//! the "80/20" baseline.
//!
//! The top-ρ mask needs a quantile over every valid token of the batch (a sort); it stays in
//! plain Burn on every backend.

use burn::tensor::{Tensor, backend::Backend};

/// E2–E3: the soft gate W = σ(γ z) (plain Burn; shared with `epgrpo-kernels`, whose CubeCL
/// kernel computes the same inside [`crate::advantage::token_advantages`]).
pub use epgrpo_kernels::advantage::plain::entropy_gate;

/// The "Beyond 80/20" mask: 1 on valid tokens whose entropy is at or above the (1 − ρ) quantile
/// (linear interpolation) of all valid tokens of the batch, else 0.
///
/// # Shapes
/// - `entropy`, `mask`: `[B, G, L]` → `[B, G, L]`
pub fn top_entropy_mask<B: Backend>(
    entropy: Tensor<B, 3>,
    mask: Tensor<B, 3>,
    fraction: f64,
) -> Tensor<B, 3> {
    let valid = mask.clone().equal_elem(1.0);
    // Padding sorts below every entropy (entropies are ≥ 0), so the n valid values come first.
    let sorted = entropy
        .clone()
        .mask_fill(valid.bool_not(), -1.0)
        .flatten::<1>(0, 2)
        .sort_descending(0);
    let n = mask.clone().sum();
    // Ascending position q·(n − 1) is descending index n − 1 − q·(n − 1).
    let position = n
        .clone()
        .sub_scalar(1.0)
        .clamp_min(0.0)
        .mul_scalar(1.0 - fraction);
    let low = position.clone().floor();
    let high = position.clone().ceil();
    let frac = position - low.clone();
    let last = n.sub_scalar(1.0).clamp_min(0.0);
    let at = |ascending: Tensor<B, 1>| sorted.clone().select(0, (last.clone() - ascending).int());
    let (value_low, value_high) = (at(low), at(high));
    let threshold = value_low.clone() + frac * (value_high - value_low);
    let keep = entropy.greater_equal(threshold.reshape([1, 1, 1]).expand(mask.dims()));
    keep.float() * mask
}
