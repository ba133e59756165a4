//! E1 on NdArray as fused row loops: the log-prob, entropy and log-normaliser of each row of
//! `[N, V]` logits in two passes over the row, and the backward's `[N, V]` gradient in one, the
//! rows split over the rayon pool.
//!
//! The plain-Burn formulas of [`crate::reference`] run about ten whole-tensor operations on one
//! thread, each allocating a fresh `[N, V]` buffer; here nothing but the gradient is allocated.
//! Each row's sums run left to right on one thread, so the bits do not depend on the number of
//! threads.
//!
//! Semantics as in the crate docs: with `z = logits / T`, `m = max z`, `s = Σ e^(z−m)`,
//! `t = Σ e^(z−m)(z−m)`: `lse = m + ln s`, `H = ln s − t/s`, `logp = z[target] − lse`; `-inf`
//! logits add nothing to `s` or `t`; a row of `-inf` logits gives `logp = 0`, `H = 0`,
//! `lse = -inf` and a zero gradient.

use burn::backend::ndarray::NdArrayTensor;
use rayon::prelude::*;

use crate::cpu_float::{CpuFloat, FloatKind, kind, row_major, tensor_of};

/// The forward statistics `[logp, entropy, log_normalizer]`, each `[N]`, of f32 or f64 logits
/// `[N, V]` (any strides) with `targets` in `[0, V)`.
///
/// # Panics
/// On logits that are not f32 or f64, or a shape that is not `[N, V]` with `N = targets.len()`.
pub(crate) fn token_stats(
    logits: NdArrayTensor,
    targets: &[usize],
    temperature: f32,
) -> [NdArrayTensor; 3] {
    match kind(&logits) {
        FloatKind::F32 => forward::<f32>(logits, targets, temperature),
        FloatKind::F64 => forward::<f64>(logits, targets, temperature),
    }
}

/// E1 backward: the `[N, V]` gradient with respect to the logits,
/// `(g_lp (onehot − p) − g_H · p (ln p + H)) / T` per element, zero on masked rows. `rows` are
/// `[log_normalizer, entropy, grad_logp, grad_entropy]`, each `[N]` of the logits' type.
///
/// # Panics
/// As [`token_stats`], and when the per-row inputs are not `[N]` or of another type.
pub(crate) fn token_stats_backward(
    logits: NdArrayTensor,
    targets: &[usize],
    rows: [NdArrayTensor; 4],
    temperature: f32,
) -> NdArrayTensor {
    match kind(&logits) {
        FloatKind::F32 => backward::<f32>(logits, targets, rows, temperature),
        FloatKind::F64 => backward::<f64>(logits, targets, rows, temperature),
    }
}

/// `V` of `[N, V]` logits.
fn vocabulary(shape: &[usize], n: usize) -> usize {
    assert!(
        shape.len() == 2 && shape[0] == n,
        "E1 needs [N, V] logits with N = {n} targets, got {shape:?}"
    );
    shape[1]
}

/// `(max, s, t)` of one scaled row: `z = x · inv_t`, `max z`, `Σ e^(z−m)`, `Σ e^(z−m)(z−m)`.
fn row_sums<E: CpuFloat>(row: &[E], inv_t: E) -> (E, E, E) {
    let max = row.iter().fold(E::neg_infinity(), |m, &x| m.max(x * inv_t));
    if max == E::neg_infinity() {
        return (max, E::zero(), E::zero());
    }
    let (mut s, mut t) = (E::zero(), E::zero());
    for &x in row {
        let shifted = x * inv_t - max;
        if shifted != E::neg_infinity() {
            let e = shifted.exp();
            s = s + e;
            t = t + e * shifted;
        }
    }
    (max, s, t)
}

/// E1 forward over `[N, V]` logits of type `E`.
fn forward<E: CpuFloat>(
    logits: NdArrayTensor,
    targets: &[usize],
    temperature: f32,
) -> [NdArrayTensor; 3] {
    let logits = E::array(logits);
    let n = targets.len();
    let v = vocabulary(logits.shape(), n);
    let logits = row_major(&logits);
    let inv_t = E::of(temperature).recip();
    let mut stats = vec![(E::zero(), E::zero(), E::neg_infinity()); n];
    if v > 0 {
        stats
            .par_iter_mut()
            .zip(logits.par_chunks(v))
            .zip(targets.par_iter())
            .for_each(|((out, row), &target)| {
                let (max, s, t) = row_sums(row, inv_t);
                if max != E::neg_infinity() {
                    let log_s = s.ln();
                    let lse = max + log_s;
                    *out = (row[target] * inv_t - lse, log_s - t / s, lse);
                }
            });
    }
    let column = |f: fn(&(E, E, E)) -> E| tensor_of(vec![n], stats.iter().map(f).collect());
    [column(|s| s.0), column(|s| s.1), column(|s| s.2)]
}

/// E1 backward over `[N, V]` logits of type `E`.
fn backward<E: CpuFloat>(
    logits: NdArrayTensor,
    targets: &[usize],
    rows: [NdArrayTensor; 4],
    temperature: f32,
) -> NdArrayTensor {
    let logits = E::array(logits);
    let n = targets.len();
    let v = vocabulary(logits.shape(), n);
    let logits = row_major(&logits);
    let [log_normalizer, entropy, grad_logp, grad_entropy] = rows.map(|t| {
        let values: Vec<E> = E::array(t).iter().copied().collect();
        assert_eq!(
            values.len(),
            n,
            "E1 backward: a per-row input has {} rows, the logits {n}",
            values.len()
        );
        values
    });
    let inv_t = E::of(temperature).recip();
    let mut grad = vec![E::zero(); n * v];
    if v > 0 {
        grad.par_chunks_mut(v)
            .zip(logits.par_chunks(v))
            .enumerate()
            .for_each(|(r, (out, row))| {
                let lse = log_normalizer[r];
                if lse == E::neg_infinity() {
                    return; // a masked row: zero gradient
                }
                let (h, g_lp, g_h) = (entropy[r], grad_logp[r], grad_entropy[r]);
                for (o, &x) in out.iter_mut().zip(row) {
                    let log_p = x * inv_t - lse;
                    let p = log_p.exp();
                    // p (ln p + H), with the p = 0 terms (ln p = -inf) counted 0.
                    let dh = if p == E::zero() {
                        E::zero()
                    } else {
                        p * (log_p + h)
                    };
                    *o = (-g_lp * p - g_h * dh) * inv_t;
                }
                out[targets[r]] = out[targets[r]] + g_lp * inv_t;
            });
    }
    tensor_of(vec![n, v], grad)
}
