//! E1 in plain Burn tensor operations: the CPU fallback and the oracle for the fused kernels.
//!
//! Every function here materialises `[N, V]` intermediates; that is the point of the fused
//! kernels, and the reason these run only on CPU backends or in tests and benchmarks.

use burn::tensor::{Bool, Int, Tensor, activation::log_softmax, backend::Backend};

/// `[N, 1]` mask of rows whose logits are all `-inf` (their maximum is `-inf`).
fn masked_rows<B: Backend>(z: &Tensor<B, 2>) -> Tensor<B, 2, Bool> {
    z.clone().max_dim(1).is_inf()
}

/// E1 as an unfused composition (`log_softmax` + `gather` + `sum`), differentiable by Burn's
/// autodiff: the oracle for the fused kernels and the "unfused" side of the benchmark.
///
/// Same semantics as [`crate::token_logp_entropy`]: `p = 0` terms count 0 in `H`, masked rows
/// (all `-inf`) give `logp = 0`, `H = 0` and a zero gradient.
///
/// # Shapes
/// - `logits`: `[N, V]`, `targets`: `[N]` → `([N], [N])`
pub fn token_logp_entropy<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    temperature: f64,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let [n, v] = logits.dims();
    let z = logits.div_scalar(temperature);
    let masked = masked_rows(&z);
    // A masked row becomes uniform so that log_softmax stays finite; its outputs are replaced
    // below and mask_fill blocks its gradient.
    let z = z.mask_fill(masked.clone().expand([n, v]), 0.0);
    let log_probs = log_softmax(z, 1);
    let probs = log_probs.clone().exp();
    let zero = probs.clone().equal_elem(0.0);
    // p log p with the p = 0 terms (log p = -inf) replaced before the product, so neither the
    // value nor its gradient sees 0 · (-inf).
    let entropy = probs
        .mul(log_probs.clone().mask_fill(zero, 0.0))
        .sum_dim(1)
        .neg()
        .mask_fill(masked.clone(), 0.0);
    let logp = log_probs
        .gather(1, targets.unsqueeze_dim(1))
        .mask_fill(masked, 0.0);
    (logp.squeeze_dim(1), entropy.squeeze_dim(1))
}

/// Per-row E1 forward statistics as tensors: `(logp, entropy, log_normalizer)`, each `[N]`.
///
/// Computed the way the kernel does (max shift, `s = Σ e^(z−m)`, `t = Σ e^(z−m)(z−m)`,
/// `H = ln s − t/s`), from whole-row tensor operations. `log_normalizer` is `-inf` for masked
/// rows.
pub fn token_stats<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    temperature: f64,
) -> (Tensor<B, 1>, Tensor<B, 1>, Tensor<B, 1>) {
    let z = logits.div_scalar(temperature);
    let max = z.clone().max_dim(1);
    let masked = max.clone().is_inf();
    let max = max.mask_fill(masked.clone(), 0.0);
    let shifted = z.clone().sub(max.clone());
    let e = shifted.clone().exp();
    let s = e.clone().sum_dim(1);
    let finite_shift = shifted.clone().mask_fill(shifted.is_inf(), 0.0);
    let t = e.mul(finite_shift).sum_dim(1);
    let log_s = s.clone().log();
    let log_normalizer = max.add(log_s.clone());
    let entropy = log_s.sub(t.div(s)).mask_fill(masked.clone(), 0.0);
    let logp = z
        .gather(1, targets.unsqueeze_dim(1))
        .sub(log_normalizer.clone())
        .mask_fill(masked, 0.0);
    (
        logp.squeeze_dim(1),
        entropy.squeeze_dim(1),
        log_normalizer.squeeze_dim(1),
    )
}

/// E1 backward in closed form: `[N, V]` gradient with respect to the logits of
/// `Σ_n grad_logp[n] · logp[n] + grad_entropy[n] · H[n]`:
/// `(grad_logp (onehot − p) − grad_entropy · p (log p + H)) / T`, zero on masked rows.
pub fn token_stats_backward<B: Backend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    log_normalizer: Tensor<B, 1>,
    entropy: Tensor<B, 1>,
    grad_logp: Tensor<B, 1>,
    grad_entropy: Tensor<B, 1>,
    temperature: f64,
) -> Tensor<B, 2> {
    let [n, v] = logits.dims();
    let z = logits.div_scalar(temperature);
    let lse: Tensor<B, 2> = log_normalizer.unsqueeze_dim(1);
    let masked = lse.clone().is_inf();
    let log_p = z.sub(lse.mask_fill(masked.clone(), 0.0));
    let p = log_p.clone().exp();
    let p_zero = p.clone().equal_elem(0.0);
    let dh = p
        .clone()
        .mul(log_p.mask_fill(p_zero, 0.0).add(entropy.unsqueeze_dim(1)));
    let columns = Tensor::<B, 1, Int>::arange(0..v as i64, &targets.device());
    let onehot = columns
        .unsqueeze_dim::<2>(0)
        .expand([n, v])
        .equal(targets.unsqueeze_dim::<2>(1).expand([n, v]))
        .float();
    onehot
        .sub(p)
        .mul(grad_logp.unsqueeze_dim(1))
        .sub(dh.mul(grad_entropy.unsqueeze_dim(1)))
        .div_scalar(temperature)
        .mask_fill(masked.expand([n, v]), 0.0)
}
