//! E1: log-prob of the sampled token and entropy of the next-token distribution, from logits
//! divided by the sampling temperature.
//!
//! The computation is the backend's [`KernelBackend`] operation: a fused one-pass CubeCL kernel
//! on the GPU backends (no `[N, V]` buffer), the plain Burn formulation
//! (`epgrpo_kernels::reference`) on the CPU, with a hand-written backward under autodiff.

use burn::tensor::{Int, Tensor};
use epgrpo_kernels::KernelBackend;

/// E1: `(lp, H)` per row: lp = log softmax(z)\[target\], H = −Σ_v p_v log p_v, z = logits / T.
/// Terms with p = 0 (including `-inf` logits) contribute 0 to H.
///
/// # Shapes
/// - `logits`: `[N, V]`, `targets`: `[N]` → `([N], [N])`
pub fn token_logp_entropy<B: KernelBackend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    temperature: f64,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    epgrpo_kernels::token_logp_entropy(logits, targets, temperature)
}
