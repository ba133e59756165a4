//! E1: log-prob of the sampled token and entropy of the next-token distribution, from logits
//! divided by the sampling temperature.
//!
//! This is the plain Burn formulation (it materialises a `[N, V]` log-softmax); the fused kernels
//! of `epgrpo-kernels` compute the same two numbers without it and are tested against this.

use burn::tensor::{Int, Tensor, activation::log_softmax, backend::Backend};

/// E1: `(lp, H)` per row: lp = log softmax(z)[target], H = −Σ_v p_v log p_v, z = logits / T.
/// Terms with p = 0 (including `-inf` logits) contribute 0 to H.
///
/// # Shapes
/// - `logits`: `[N, V]`, `targets`: `[N]` → `([N], [N])`
pub fn token_logp_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    temperature: f64,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let log_probs = log_softmax(logits.div_scalar(temperature), 1);
    let probs = log_probs.clone().exp();
    let zero = probs.clone().equal_elem(0.0);
    let entropy = probs
        .mul(log_probs.clone())
        .mask_fill(zero, 0.0)
        .sum_dim(1)
        .neg();
    let logp = log_probs.gather(1, targets.unsqueeze_dim(1));
    (logp.squeeze_dim(1), entropy.squeeze_dim(1))
}
