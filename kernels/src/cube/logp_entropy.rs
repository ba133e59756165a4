//! E1 as CubeCL kernels: per-row target log-prob and entropy in one pass over the logits
//! (forward), and the logits gradient with the softmax recomputed on the fly (backward).
//!
//! Inputs are row-major with unit column stride; rows are addressed through `stride(0)`
//! because CubeCL may pitch (pad) the rows of 2-D allocations (it does on CUDA).
//!
//! Layout: one cube per row, `block` threads (a power of two) striding over the vocabulary
//! with unit stride between neighbouring threads (coalesced reads). Rows are numbered
//! `CUBE_POS_Y · CUBE_COUNT_X + CUBE_POS_X` so that more than 65,535 rows fit a 2-D grid.
//!
//! Each thread keeps an online state `(m, s, t)` over the logits it has seen, with
//! `z = logit / T`: the running maximum `m`, `s = Σ e^(z−m)` and `t = Σ e^(z−m)(z−m)`. A new
//! maximum rescales the sums. `s = 0` marks an empty state (no finite logit yet), so no `-inf`
//! constant is needed (WGSL cannot spell one). The per-thread states are merged in shared memory
//! by a tree reduction, and thread 0 finishes the row with
//! `logsumexp = m + ln s`, `H = ln s − t/s`, `logp = z[target] − logsumexp`.

use cubecl::prelude::*;

/// Strided columns each thread folds in per step of the forward pass.
const UNROLL: usize = 4;

/// Row handled by this cube, from the 2-D grid of [`super::row_grid`].
#[cube]
fn cube_row() -> usize {
    (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) as usize
}

/// E1 forward. Writes `logp`, `entropy` and `log_normalizer` (`[N]` each) for `logits`
/// `[N, V]` (contiguous) and `targets` `[N]`. Masked rows (no finite logit) get `logp = 0`,
/// `H = 0` and `log_normalizer = -inf` (copied from the row's first logit).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn token_stats_kernel<F: Float, I: Numeric>(
    logits: &Tensor<F>,
    targets: &Tensor<I>,
    logp: &mut Tensor<F>,
    entropy: &mut Tensor<F>,
    log_normalizer: &mut Tensor<F>,
    inv_temperature: f32,
    #[comptime] block: usize,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let row = cube_row();
    if row >= logits.shape(0) {
        terminate!();
    }
    let tid = UNIT_POS_X as usize;
    // Runtime copy of `block` for loop counters (comptime values cannot be mutated).
    let step = CUBE_DIM_X as usize;
    let vocab = logits.shape(1);
    // Rows may be pitched (CUDA pads rows of 2-D allocations): step rows by the stride.
    let base = row * logits.stride(0);
    let inv_t = F::cast_from(inv_temperature);
    let zero = F::new(0.0);
    // `z > lowest` is false only for -inf (and the lowest finite value, whose p is 0 next to
    // any ordinary logit); comparisons avoid an infinity constant.
    let lowest = F::min_value();

    // Per-thread online pass over z = logit / T, UNROLL strided columns per step: their loads
    // are independent (memory-level parallelism) and the running maximum moves at most once per
    // step. Columns past the end of the row are skipped.
    let mut m = zero;
    let mut s = zero;
    let mut t = zero;
    let mut v = tid;
    while v < vocab {
        let mut group_max = logits[base + v];
        #[unroll]
        for k in 1..UNROLL {
            let col = v + k * step;
            if col < vocab {
                group_max = F::max(group_max, logits[base + col]);
            }
        }
        // T > 0, so the maximum commutes with the scaling.
        let group_max = group_max * inv_t;
        // A group of -inf logits (p = 0) changes nothing.
        if group_max > lowest {
            if s == zero {
                m = group_max;
            } else if group_max > m {
                let d = m - group_max;
                let a = d.exp();
                t = a * (t + s * d);
                s *= a;
                m = group_max;
            }
            #[unroll]
            for k in 0..UNROLL {
                let col = v + k * step;
                if col < vocab {
                    let d = logits[base + col] * inv_t - m;
                    let e = d.exp();
                    // e = 0 covers -inf logits (e·d would be NaN) and underflow (term is 0).
                    if e > zero {
                        s += e;
                        t += e * d;
                    }
                }
            }
        }
        v += UNROLL * step;
    }

    let mut sm_m = SharedMemory::<F>::new(block);
    let mut sm_s = SharedMemory::<F>::new(block);
    let mut sm_t = SharedMemory::<F>::new(block);
    sm_m[tid] = m;
    sm_s[tid] = s;
    sm_t[tid] = t;
    sync_cube();

    // Tree merge of (m, s, t) states.
    let mut stride = step / 2;
    while stride > 0 {
        if tid < stride {
            let s2 = sm_s[tid + stride];
            if s2 > zero {
                let m2 = sm_m[tid + stride];
                let t2 = sm_t[tid + stride];
                let s1 = sm_s[tid];
                if s1 == zero {
                    sm_m[tid] = m2;
                    sm_s[tid] = s2;
                    sm_t[tid] = t2;
                } else {
                    let m1 = sm_m[tid];
                    let t1 = sm_t[tid];
                    let mm = F::max(m1, m2);
                    let d1 = m1 - mm;
                    let d2 = m2 - mm;
                    let a1 = d1.exp();
                    let a2 = d2.exp();
                    sm_s[tid] = s1 * a1 + s2 * a2;
                    sm_t[tid] = a1 * (t1 + s1 * d1) + a2 * (t2 + s2 * d2);
                    sm_m[tid] = mm;
                }
            }
        }
        sync_cube();
        stride /= 2;
    }

    if tid == 0 {
        let s = sm_s[0];
        if s == zero {
            // Masked row: every logit is -inf.
            logp[row] = zero;
            entropy[row] = zero;
            log_normalizer[row] = logits[base] * inv_t;
        } else {
            let log_s = s.ln();
            let lse = sm_m[0] + log_s;
            let target = u32::cast_from(targets[row]) as usize;
            logp[row] = logits[base + target] * inv_t - lse;
            entropy[row] = log_s - sm_t[0] / s;
            log_normalizer[row] = lse;
        }
    }
}

/// E1 backward: `grad[n, v] = (g_lp (onehot − p) − g_H p (log p + H)) / T` with
/// `log p = z − log_normalizer` recomputed per element; zero on masked rows
/// (`log_normalizer = -inf`).
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn token_stats_backward_kernel<F: Float, I: Numeric>(
    logits: &Tensor<F>,
    targets: &Tensor<I>,
    log_normalizer: &Tensor<F>,
    entropy: &Tensor<F>,
    grad_logp: &Tensor<F>,
    grad_entropy: &Tensor<F>,
    grad_logits: &mut Tensor<F>,
    inv_temperature: f32,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let row = cube_row();
    if row >= logits.shape(0) {
        terminate!();
    }
    let step = CUBE_DIM_X as usize;
    let vocab = logits.shape(1);
    // Rows may be pitched (CUDA pads rows of 2-D allocations): step rows by the stride.
    let base = row * logits.stride(0);
    let zero = F::new(0.0);
    let inv_t = F::cast_from(inv_temperature);
    let lse = log_normalizer[row];
    // A masked row has log-normaliser -inf: zero upstream gradients and a finite shift make
    // every term 0 there (its logits are -inf, so p = 0).
    let live = lse > F::min_value();
    let shift = if live { lse } else { zero };
    let g_lp = if live { grad_logp[row] * inv_t } else { zero };
    let g_h = if live {
        grad_entropy[row] * inv_t
    } else {
        zero
    };
    let h = entropy[row];
    let target = u32::cast_from(targets[row]) as usize;
    let out_base = row * grad_logits.stride(0);
    let mut v = UNIT_POS_X as usize;
    while v < vocab {
        let log_p = logits[base + v] * inv_t - shift;
        let p = log_p.exp();
        let mut g = zero - g_lp * p;
        // p = 0 terms (log p = -inf) contribute nothing to the entropy gradient.
        if p > zero {
            g -= g_h * p * (log_p + h);
        }
        if v == target {
            g += g_lp;
        }
        grad_logits[out_base + v] = g;
        v += step;
    }
}
