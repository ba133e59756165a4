//! E2–E12 as one CubeCL kernel: one cube per prompt group, `block` threads (a power of two).
//!
//! Inputs and outputs are contiguous `[B, G, L]` (`[B, G]` for rewards and outcomes). Thread `u`
//! of the cube handles the tokens `t = c · block + u` of every row, chunk by chunk, in every
//! pass, so each thread reads back only what it wrote itself; the outputs double as scratch:
//! `progress` holds the prefix sums S_{i,t} until the last pass, `advantages` the signal s, and
//! `bucket` holds K on padding. Block-wide sums are shared-memory tree reductions.
//!
//! Passes over the group (tokens are re-read from global memory, which the cache keeps):
//! 1. E4: μ_r and σ_r of the G rewards (every thread, a loop over G), Â_i; E7 polarity d_i.
//! 2. E2 (with a progress term): μ_H and σ_H over the valid tokens of the group (two passes).
//! 3. E8–E9 per row: an inclusive scan of H along the row in chunks of `block` (Hillis–Steele in
//!    shared memory, carried across chunks); the thread holding the last valid token publishes
//!    S_{i,L_i} and L_i; then τ, the bucket, the gate W (E3) and s = λ (lp_old − lp_ref) (E6).
//! 4. E10 (z-score or centring): for each bucket k, the count, mean and M2 of s over the group's
//!    tokens in k (Welford per thread, Chan's merge across threads), kept in shared memory.
//!    No `[B, G, L, K]` buffer; K passes over the group.
//! 5. E10–E12: s̃, the progress term and the final advantages.

use cubecl::prelude::*;

/// Group handled by this cube, on the 2-D grid of [`super::row_grid`].
#[cube]
fn cube_group() -> usize {
    (CUBE_POS_Y * CUBE_COUNT_X + CUBE_POS_X) as usize
}

/// Sum of `value` over the threads of the cube, returned to every thread.
#[cube]
fn block_sum<F: Float>(sm: &mut SharedMemory<F>, value: F) -> F {
    let tid = UNIT_POS_X as usize;
    sm[tid] = value;
    sync_cube();
    let mut stride = CUBE_DIM_X as usize / 2;
    while stride > 0 {
        if tid < stride {
            let mine = sm[tid];
            let other = sm[tid + stride];
            sm[tid] = mine + other;
        }
        sync_cube();
        stride /= 2;
    }
    let total = sm[0];
    sync_cube();
    total
}

/// Inclusive prefix sum of `value` over the threads of the cube (thread order), returned to each
/// thread, plus the total (`sm[block − 1]`) through `total`.
#[cube]
fn block_scan<F: Float>(sm: &mut SharedMemory<F>, value: F, total: &mut F) -> F {
    let tid = UNIT_POS_X as usize;
    let block = CUBE_DIM_X as usize;
    sm[tid] = value;
    sync_cube();
    let mut offset = 1usize;
    while offset < block {
        let mut add = F::new(0.0);
        if tid >= offset {
            add = sm[tid - offset];
        }
        sync_cube();
        let mine = sm[tid];
        sm[tid] = mine + add;
        sync_cube();
        offset *= 2;
    }
    let inclusive = sm[tid];
    *total = sm[block - 1];
    sync_cube();
    inclusive
}

/// sign(x) with sign(0) = 0.
#[cube]
fn sign<F: Float>(x: F) -> F {
    let mut s = F::new(0.0);
    if x > F::new(0.0) {
        s = F::new(1.0);
    }
    if x < F::new(0.0) {
        s = F::new(-1.0);
    }
    s
}

/// E2–E12 for the group of this cube. See the module docs.
///
/// E10 (A8): `bucket_stats` is false for no normalisation; with it, `z_score` picks
/// (s − μ_k) / (σ_k + ε_s) over s − μ_k. `num_buckets` ≤ `bucket_capacity` (the shared-memory
/// size of the per-bucket statistics). The flags other than `with_progress` matter only with it.
#[cube(launch)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn group_advantages_kernel<F: Float, I: Numeric>(
    rewards: &Tensor<F>,
    entropy: &Tensor<F>,
    logp_old: &Tensor<F>,
    logp_ref: &Tensor<F>,
    mask: &Tensor<F>,
    advantages: &mut Tensor<F>,
    token_weight: &mut Tensor<F>,
    progress: &mut Tensor<F>,
    bucket: &mut Tensor<I>,
    outcome: &mut Tensor<F>,
    zero_variance: &mut Tensor<F>,
    eps_adv: f32,
    zero_var_tol: f32,
    gamma: f32,
    lambda: f32,
    alpha: f32,
    theta_reward: f32,
    eps_entropy: f32,
    eps_bucket: f32,
    num_buckets: u32,
    #[comptime] block: usize,
    #[comptime] bucket_capacity: usize,
    #[comptime] with_progress: bool,
    #[comptime] mean_only: bool,
    #[comptime] sign_then_normalize: bool,
    #[comptime] gate_progress: bool,
    #[comptime] bucket_stats: bool,
    #[comptime] z_score: bool,
    #[define(F, I)] _dtypes: [StorageType; 2],
) {
    let group = cube_group();
    if group >= entropy.shape(0) {
        terminate!();
    }
    let tid = UNIT_POS_X as usize;
    let step = CUBE_DIM_X as usize;
    let g = entropy.shape(1);
    let l = entropy.shape(2);
    let chunks = l.div_ceil(step);
    let group_base = group * g * l;
    let k_count = num_buckets as usize;
    let zero = F::new(0.0);
    let one = F::new(1.0);
    let eps_adv = F::cast_from(eps_adv);
    let zero_var_tol = F::cast_from(zero_var_tol);
    let gamma = F::cast_from(gamma);
    let lambda = F::cast_from(lambda);
    let alpha = F::cast_from(alpha);
    let theta = F::cast_from(theta_reward);
    let eps_entropy = F::cast_from(eps_entropy);
    let eps_bucket = F::cast_from(eps_bucket);

    let mut sm_a = SharedMemory::<F>::new(block);
    let mut sm_b = SharedMemory::<F>::new(block);
    let mut sm_c = SharedMemory::<F>::new(block);
    let mut sm_row = SharedMemory::<F>::new(2usize);
    let mut sm_mean = SharedMemory::<F>::new(bucket_capacity);
    let mut sm_std = SharedMemory::<F>::new(bucket_capacity);

    // 1. E4: μ_r and the sample σ_r (ddof 1; one response counts as σ_r = 0).
    let reward_base = group * g;
    let mut sum_r = zero;
    let mut i = 0usize;
    while i < g {
        sum_r += rewards[reward_base + i];
        i += 1;
    }
    let mean_r = sum_r / F::cast_from(g as u32);
    let mut sq_r = zero;
    i = 0usize;
    while i < g {
        let c = rewards[reward_base + i] - mean_r;
        sq_r += c * c;
        i += 1;
    }
    let mut ddof_divisor = one;
    if g > 1 {
        ddof_divisor = F::cast_from((g - 1) as u32);
    }
    let std_r = F::sqrt(sq_r / ddof_divisor);
    let zero_var = std_r < zero_var_tol;
    i = tid;
    while i < g {
        let mut a = zero;
        if !zero_var {
            a = rewards[reward_base + i] - mean_r;
            if !mean_only {
                a /= std_r + eps_adv;
            }
        }
        outcome[reward_base + i] = a;
        i += step;
    }
    if tid == 0 {
        let mut flag = zero;
        if zero_var {
            flag = one;
        }
        zero_variance[group] = flag;
    }

    // 2. E2: μ_H and the population σ_H over the valid tokens of the group.
    let mut mean_h = zero;
    let mut std_h = zero;
    if with_progress {
        let mut count = zero;
        let mut sum_h = zero;
        i = 0usize;
        while i < g {
            let row = group_base + i * l;
            let mut c = 0usize;
            while c < chunks {
                let t = c * step + tid;
                if t < l {
                    let m = mask[row + t];
                    count += m;
                    sum_h += m * entropy[row + t];
                }
                c += 1;
            }
            i += 1;
        }
        let count = F::max(block_sum::<F>(&mut sm_a, count), one);
        mean_h = block_sum::<F>(&mut sm_a, sum_h) / count;
        let mut sq_h = zero;
        i = 0usize;
        while i < g {
            let row = group_base + i * l;
            let mut c = 0usize;
            while c < chunks {
                let t = c * step + tid;
                if t < l {
                    let d = entropy[row + t] - mean_h;
                    sq_h += mask[row + t] * d * d;
                }
                c += 1;
            }
            i += 1;
        }
        std_h = F::sqrt(block_sum::<F>(&mut sm_a, sq_h) / count);
    }

    // 3. E8–E9 (and E3, E6) row by row.
    let k_float = F::cast_from(num_buckets);
    let last_bucket = F::cast_from(num_buckets - 1);
    i = 0usize;
    while i < g {
        let row = group_base + i * l;
        let r_i = rewards[reward_base + i];
        let mut a_i = zero;
        if !zero_var {
            a_i = r_i - mean_r;
            if !mean_only {
                a_i /= std_r + eps_adv;
            }
        }
        // E7: d_i = sign(Â_i), or sign(r_i − θ) under zero variance.
        let mut d_i = sign::<F>(a_i);
        if zero_var {
            d_i = sign::<F>(r_i - theta);
        }
        if tid == 0 {
            sm_row[0] = zero;
            sm_row[1] = zero;
        }
        sync_cube();
        // Inclusive prefix sums S_{i,t} of the masked entropy, carried across chunks.
        let mut carry = zero;
        let mut c = 0usize;
        while c < chunks {
            let t = c * step + tid;
            let mut h = zero;
            let mut valid = false;
            if t < l {
                valid = mask[row + t] > zero;
                if valid {
                    h = entropy[row + t];
                }
            }
            let mut chunk_total = zero;
            let prefix = carry + block_scan::<F>(&mut sm_a, h, &mut chunk_total);
            carry += chunk_total;
            if t < l {
                progress[row + t] = prefix;
                // The last valid token (valid tokens are a prefix of the row) publishes
                // S_{i,L_i} and L_i.
                let mut last = valid;
                if valid && t + 1 < l {
                    last = !(mask[row + t + 1] > zero);
                }
                if last {
                    sm_row[0] = prefix;
                    sm_row[1] = F::cast_from(t as u32 + 1);
                }
            }
            c += 1;
        }
        sync_cube();
        let total = sm_row[0];
        let length = F::max(sm_row[1], one);
        // Everyone has read the row's values before thread 0 resets them for the next row.
        sync_cube();
        c = 0usize;
        while c < chunks {
            let t = c * step + tid;
            if t < l {
                let index = row + t;
                let m = mask[index];
                if m > zero {
                    // E8: τ = S_t / S_{L_i}, or t / L_i without entropy; E9: b = min(K−1, ⌊Kτ⌋).
                    let mut tau = F::cast_from(t as u32 + 1) / length;
                    if total > zero {
                        tau = progress[index] / total;
                    }
                    let b = F::min(F::floor(tau * k_float), last_bucket);
                    bucket[index] = I::cast_from(u32::cast_from(b));
                } else {
                    bucket[index] = I::cast_from(num_buckets);
                }
                if with_progress {
                    // E2–E3: W = σ(γ (H − μ_H) / (σ_H + ε_H)), 0 on padding.
                    let z = (entropy[index] - mean_h) / (std_h + eps_entropy);
                    token_weight[index] = m / (one + F::exp(zero - gamma * z));
                    // E6: s = λ (lp_old − lp_ref); A5 (ii) folds the polarity in first.
                    let mut s = lambda * (logp_old[index] - logp_ref[index]) * m;
                    if sign_then_normalize {
                        s *= d_i;
                    }
                    advantages[index] = s;
                } else {
                    token_weight[index] = m;
                }
            }
            c += 1;
        }
        i += 1;
    }

    // 4. E10 statistics per bucket: count, mean and M2 of s (Welford, Chan's merge).
    if bucket_stats {
        let mut k = 0usize;
        while k < k_count {
            let mut n = zero;
            let mut mean = zero;
            let mut m2 = zero;
            i = 0usize;
            while i < g {
                let row = group_base + i * l;
                let mut c = 0usize;
                while c < chunks {
                    let t = c * step + tid;
                    if t < l && u32::cast_from(bucket[row + t]) as usize == k {
                        let x = advantages[row + t];
                        n += one;
                        let delta = x - mean;
                        mean += delta / n;
                        m2 += delta * (x - mean);
                    }
                    c += 1;
                }
                i += 1;
            }
            sm_a[tid] = n;
            sm_b[tid] = mean;
            sm_c[tid] = m2;
            sync_cube();
            let mut stride = step / 2;
            while stride > 0 {
                if tid < stride {
                    let n2 = sm_a[tid + stride];
                    if n2 > zero {
                        let n1 = sm_a[tid];
                        let mean1 = sm_b[tid];
                        let mean2 = sm_b[tid + stride];
                        let m2_1 = sm_c[tid];
                        let m2_2 = sm_c[tid + stride];
                        let total_n = n1 + n2;
                        let delta = mean2 - mean1;
                        sm_a[tid] = total_n;
                        sm_b[tid] = mean1 + delta * n2 / total_n;
                        sm_c[tid] = m2_1 + m2_2 + delta * delta * n1 * n2 / total_n;
                    }
                }
                sync_cube();
                stride /= 2;
            }
            if tid == 0 {
                let n = F::max(sm_a[0], one);
                sm_mean[k] = sm_b[0];
                sm_std[k] = F::sqrt(sm_c[0] / n);
            }
            sync_cube();
            k += 1;
        }
    }

    // 5. E10–E12: s̃, Â^prog = α d W s̃ and Â = W Â_i + Â^prog; bucket 0 on padding.
    i = 0usize;
    while i < g {
        let row = group_base + i * l;
        let r_i = rewards[reward_base + i];
        let mut a_i = zero;
        if !zero_var {
            a_i = r_i - mean_r;
            if !mean_only {
                a_i /= std_r + eps_adv;
            }
        }
        let mut d_i = sign::<F>(a_i);
        if zero_var {
            d_i = sign::<F>(r_i - theta);
        }
        let mut c = 0usize;
        while c < chunks {
            let t = c * step + tid;
            if t < l {
                let index = row + t;
                let m = mask[index];
                let w = token_weight[index];
                let mut prog = zero;
                if m > zero {
                    if with_progress {
                        let s = advantages[index];
                        let k = u32::cast_from(bucket[index]) as usize;
                        let mut normalized = s;
                        if bucket_stats {
                            if z_score {
                                normalized = (s - sm_mean[k]) / (sm_std[k] + eps_bucket);
                            } else {
                                normalized = s - sm_mean[k];
                            }
                        }
                        if !sign_then_normalize {
                            normalized *= d_i;
                        }
                        if gate_progress {
                            normalized *= w;
                        }
                        prog = alpha * normalized;
                    }
                } else {
                    bucket[index] = I::cast_from(0u32);
                }
                progress[index] = prog;
                advantages[index] = w * a_i + prog;
            }
            c += 1;
        }
        i += 1;
    }
}
