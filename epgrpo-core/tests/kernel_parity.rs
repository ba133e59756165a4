//! Equivalence of the advantage operation of `epgrpo-kernels` (E2–E12, through
//! [`token_advantages`]) with the f64 reference of `epgrpo_core::reference`, on random and edge
//! inputs, for every method.
//!
//! The backend under test is chosen by feature: `wgpu` → `Wgpu` (the CubeCL kernel; Mesa's
//! lavapipe on a machine without a GPU), `cuda` → `Cuda`, neither → NdArray f32 (the plain-Burn
//! implementation).
//!
//! f32 can put a token whose f64 progress K·τ lies within 1e-4 (K ≤ 100) of an integer into the
//! neighbouring bucket. Such a flip is accepted (it is asserted to be at a boundary), and the
//! values of that group are then not compared, because the flip changes two buckets' statistics.

mod common;

use burn::backend::{Autodiff, NdArray};
use common::{TOL_F32, TOL_F64, assert_rows, spec_group, spec_signal, zero_signal};
use epgrpo_core::advantage::GroupAdvantages;
use epgrpo_core::config::{
    Algorithm, AlgorithmConfig, BucketNormalization, GateNormalization, SignOrder,
};
use epgrpo_core::{GroupTensors, ResponseGroup, reference, to_host, token_advantages};
use epgrpo_kernels::KernelBackend;

#[cfg(feature = "wgpu")]
type Tested = burn::backend::Wgpu;
#[cfg(all(feature = "cuda", not(feature = "wgpu")))]
type Tested = burn::backend::Cuda;
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
type Tested = NdArray<f32>;

/// Relative part of the value tolerance (the absolute part is the spec's 2e-4).
const RTOL: f64 = 1e-4;
/// Distance of f64 K·τ to an integer under which a different bucket in f32 is accepted, per unit
/// of K (τ = S_t / S_L is one f32 division of exact sums: relative error ≤ 2⁻²⁴).
const BOUNDARY: f64 = 1e-6;

/// SplitMix64, so the cases are reproducible without an RNG crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() * n as f64) as usize % n
    }
}

/// How a random group's responses look.
#[derive(Clone, Copy)]
struct Shape {
    /// Responses per group.
    g: usize,
    /// Response lengths are drawn from `0..=max_len` (`min_len..=max_len`).
    min_len: usize,
    max_len: usize,
    /// Probability that a response has zero entropy on every token.
    zero_entropy: f64,
    /// Probability that a token has zero entropy.
    zero_token: f64,
}

impl Shape {
    fn new(g: usize, min_len: usize, max_len: usize) -> Self {
        Self {
            g,
            min_len,
            max_len,
            zero_entropy: 0.0,
            zero_token: 0.0,
        }
    }
}

/// x rounded to a multiple of 2⁻¹², exact in f32 (and so are the sums the tests form).
fn dyadic(x: f64) -> f64 {
    (x * 4096.0).round() / 4096.0
}

/// A random group: binary rewards, H in [0, 2), lp_ref in [−3.1, −0.1], drift in s of ±0.2.
///
/// Values are multiples of 2⁻¹² so that the f32 inputs are exact: with ε_s = 1e-3, an input
/// rounding of 1e-7 in lp would otherwise move s̃ by up to 1e-4 in a bucket of near-equal s, and
/// prefix sums are exact in any order.
fn random_group(rng: &mut Rng, shape: Shape) -> ResponseGroup {
    let lengths: Vec<usize> = (0..shape.g)
        .map(|_| shape.min_len + rng.below(shape.max_len - shape.min_len + 1))
        .collect();
    let entropy = lengths
        .iter()
        .map(|&l| {
            let flat = rng.next() < shape.zero_entropy;
            (0..l)
                .map(|_| {
                    let h = dyadic(2.0 * rng.next());
                    if flat || rng.next() < shape.zero_token {
                        0.0
                    } else {
                        h
                    }
                })
                .collect()
        })
        .collect();
    let logp_ref: Vec<Vec<f64>> = lengths
        .iter()
        .map(|&l| (0..l).map(|_| dyadic(-0.1 - 3.0 * rng.next())).collect())
        .collect();
    let logp_old = logp_ref
        .iter()
        .map(|row| {
            row.iter()
                .map(|r| dyadic(r + 0.4 * (rng.next() - 0.5)).min(0.0))
                .collect()
        })
        .collect();
    ResponseGroup {
        rewards: (0..shape.g)
            .map(|_| if rng.next() < 0.5 { 1.0 } else { 0.0 })
            .collect(),
        entropy,
        logp_old: Some(logp_old),
        logp_ref: Some(logp_ref),
    }
}

fn batch(rng: &mut Rng, groups: usize, shape: Shape) -> Vec<ResponseGroup> {
    (0..groups).map(|_| random_group(rng, shape)).collect()
}

fn all_algorithms() -> [Algorithm; 7] {
    [
        Algorithm::Cispo,
        Algorithm::Grpo,
        Algorithm::DrGrpo,
        Algorithm::Dapo,
        Algorithm::EntropyMask,
        Algorithm::Gspo,
        Algorithm::EpGrpo,
    ]
}

fn config(name: Algorithm, g: usize, k: usize) -> AlgorithmConfig {
    AlgorithmConfig {
        group_size: g,
        num_buckets: k,
        ..AlgorithmConfig::for_algorithm(name)
    }
}

/// Advantages on the backend under test `B`, copied to the host.
fn device_advantages<B: KernelBackend>(
    config: &AlgorithmConfig,
    groups: &[ResponseGroup],
) -> Vec<GroupAdvantages> {
    let device = B::Device::default();
    let batch = GroupTensors::<B>::from_groups(groups, &device).expect("valid groups");
    to_host(&token_advantages(config, &batch), groups)
}

/// Whether f64 K·τ of a token lies within K·[`BOUNDARY`] of an integer.
fn on_boundary(entropy: &[f64], t: usize, k: usize) -> bool {
    let tau = reference::progress_buckets(entropy, k).0[t];
    let scaled = tau * k as f64;
    (scaled - scaled.round()).abs() < BOUNDARY * k.max(100) as f64
}

/// Compares the backend `B` with the reference: zero-variance flags, buckets (boundary flips
/// allowed in at most 5 % of the groups, whose values are then skipped), advantages and weights.
fn check_with<B: KernelBackend>(label: &str, config: &AlgorithmConfig, groups: &[ResponseGroup]) {
    let want = reference::token_advantages(config, groups);
    let got = device_advantages::<B>(config, groups);
    assert_eq!(got.len(), want.len(), "{label}: group count");
    let mut flipped = 0;
    for (index, ((got, want), group)) in got.iter().zip(&want).zip(groups).enumerate() {
        let label = format!("{label}, group {index}");
        assert_eq!(
            got.zero_variance, want.zero_variance,
            "{label}: zero variance"
        );
        let mut same_buckets = true;
        for (i, (g_row, w_row)) in got.bucket.iter().zip(&want.bucket).enumerate() {
            assert_eq!(g_row.len(), w_row.len(), "{label}: length of row {i}");
            for (t, (g_b, w_b)) in g_row.iter().zip(w_row).enumerate() {
                if g_b != w_b {
                    assert!(
                        g_b.abs_diff(*w_b) == 1
                            && on_boundary(&group.entropy[i], t, config.num_buckets),
                        "{label}: bucket[{i}][{t}] = {g_b}, reference {w_b}, not at a boundary"
                    );
                    same_buckets = false;
                }
            }
        }
        if !same_buckets {
            flipped += 1;
            continue;
        }
        assert_close(
            &format!("{label}: advantages"),
            &got.advantages,
            &want.advantages,
        );
        assert_close(
            &format!("{label}: weight"),
            &got.token_weight,
            &want.token_weight,
        );
    }
    assert!(
        flipped * 20 <= groups.len().max(20),
        "{label}: {flipped} of {} groups had bucket flips",
        groups.len()
    );
}

fn check(label: &str, config: &AlgorithmConfig, groups: &[ResponseGroup]) {
    check_with::<Tested>(label, config, groups);
}

/// |got − want| ≤ 2e-4 + 1e-4 |want| elementwise; NaN never passes.
fn assert_close(label: &str, got: &[Vec<f64>], want: &[Vec<f64>]) {
    assert_eq!(got.len(), want.len(), "{label}: row count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{label}: length of row {i}");
        for (t, (g, w)) in g.iter().zip(w).enumerate() {
            assert!(
                (g - w).abs() <= TOL_F32 + RTOL * w.abs(),
                "{label}[{i}][{t}]: got {g}, want {w}"
            );
        }
    }
}

#[test]
fn every_method_matches_reference_on_random_batches() {
    let mut rng = Rng(101);
    for case in 0..6 {
        let g = [5, 8, 2][case % 3];
        let k = [1, 3, 10][case % 3];
        let groups = batch(&mut rng, 1 + case % 4, Shape::new(g, 0, 40));
        for name in all_algorithms() {
            check(
                &format!("{name:?} case {case}"),
                &config(name, g, k),
                &groups,
            );
        }
    }
}

#[test]
fn ablation_switches_match_reference() {
    let mut rng = Rng(103);
    let groups = batch(&mut rng, 3, Shape::new(6, 1, 50));
    let base = config(Algorithm::EpGrpo, 6, 10);
    let variants = [
        AlgorithmConfig {
            sign_order: SignOrder::SignThenNormalize,
            ..base.clone()
        },
        AlgorithmConfig {
            gate_progress: false,
            ..base.clone()
        },
        AlgorithmConfig {
            bucket_normalization: BucketNormalization::Center,
            ..base.clone()
        },
        AlgorithmConfig {
            bucket_normalization: BucketNormalization::Raw,
            alpha: 0.5,
            ..base.clone()
        },
        AlgorithmConfig {
            gamma: 0.0,
            alpha: 0.0,
            ..base.clone()
        },
        AlgorithmConfig {
            gamma: 3.0,
            lambda: 2.0,
            theta_reward: 0.0,
            eps_bucket: 1e-2,
            ..base.clone()
        },
        AlgorithmConfig {
            gate_normalization: GateNormalization::MeanOne,
            ..base.clone()
        },
        AlgorithmConfig {
            gate_normalization: GateNormalization::MeanOne,
            gate_progress: false,
            gamma: 5.0,
            alpha: 0.2,
            ..base.clone()
        },
    ];
    for (index, config) in variants.iter().enumerate() {
        check(&format!("variant {index}"), config, &groups);
    }
}

#[test]
fn spec_group_matches_reference_with_and_without_drift() {
    for (rewards, signal) in [
        ([1.0, 0.0, 1.0, 0.0], spec_signal()),
        ([1.0, 1.0, 1.0, 1.0], spec_signal()),
        ([0.0, 0.0, 0.0, 0.0], spec_signal()),
        ([1.0, 0.0, 1.0, 0.0], zero_signal()),
        ([1.0, 1.0, 1.0, 1.0], zero_signal()),
    ] {
        let groups = [spec_group(rewards, &signal)];
        for k in [2, 10] {
            check(
                &format!("O3–O7 {rewards:?} K={k}"),
                &config(Algorithm::EpGrpo, 4, k),
                &groups,
            );
        }
    }
}

#[test]
fn edge_groups_match_reference() {
    let mut rng = Rng(107);
    let mut groups = batch(&mut rng, 2, Shape::new(5, 0, 12));
    // Zero variance: all correct and all wrong.
    for reward in [1.0, 0.0] {
        let mut group = random_group(&mut rng, Shape::new(5, 1, 12));
        group.rewards = vec![reward; 5];
        groups.push(group);
    }
    // All-masked responses, one of them in a group whose other responses are length 1.
    let mut group = random_group(&mut rng, Shape::new(5, 1, 1));
    group.entropy[2].clear();
    group.logp_old.as_mut().unwrap()[2].clear();
    group.logp_ref.as_mut().unwrap()[2].clear();
    groups.push(group);
    // Zero-entropy responses (positional fallback) and zero-entropy tokens.
    groups.push(random_group(
        &mut rng,
        Shape {
            zero_entropy: 0.5,
            zero_token: 0.3,
            ..Shape::new(5, 1, 12)
        },
    ));
    // A whole group without entropy.
    groups.push(random_group(
        &mut rng,
        Shape {
            zero_entropy: 1.0,
            ..Shape::new(5, 0, 12)
        },
    ));
    // A group whose responses are all empty.
    groups.push(random_group(&mut rng, Shape::new(5, 0, 0)));
    for name in all_algorithms() {
        for k in [1, 4, 10] {
            check(&format!("{name:?} K={k}"), &config(name, 5, k), &groups);
        }
    }
    // One response per group: zero variance by definition; only EP-GRPO has a signal.
    let single = batch(&mut rng, 3, Shape::new(1, 1, 9));
    check("G = 1", &config(Algorithm::EpGrpo, 1, 10), &single);
}

#[test]
fn long_responses_span_several_chunks() {
    let mut rng = Rng(109);
    // Lengths up to 1,025 (four chunks of 256 threads and one token) and not multiples of it.
    let groups = batch(&mut rng, 3, Shape::new(8, 200, 1025));
    for name in [Algorithm::EpGrpo, Algorithm::Grpo, Algorithm::EntropyMask] {
        check(&format!("{name:?}"), &config(name, 8, 10), &groups);
    }
}

#[test]
fn many_buckets_match_reference() {
    let mut rng = Rng(113);
    let groups = batch(&mut rng, 2, Shape::new(4, 300, 700));
    // K = 1,000 stays in the CubeCL kernel; K = 1,500 exceeds its shared-memory statistics and
    // takes the plain path on the device.
    for k in [64, 1000, 1500] {
        check(&format!("K={k}"), &config(Algorithm::EpGrpo, 4, k), &groups);
    }
}

#[test]
fn more_groups_than_one_grid_axis_match_reference() {
    let mut rng = Rng(127);
    let groups = batch(&mut rng, 66_000, Shape::new(2, 0, 3));
    check("B = 66,000", &config(Algorithm::EpGrpo, 2, 3), &groups);
}

#[test]
fn autodiff_backend_returns_the_same_constants() {
    let mut rng = Rng(131);
    let groups = batch(&mut rng, 2, Shape::new(4, 1, 30));
    let config = config(Algorithm::EpGrpo, 4, 10);
    let plain = device_advantages::<Tested>(&config, &groups);
    let tracked = device_advantages::<Autodiff<Tested>>(&config, &groups);
    for (a, b) in plain.iter().zip(&tracked) {
        assert_rows("autodiff", &b.advantages, &a.advantages, 0.0);
        assert_eq!(a.bucket, b.bucket);
    }
    // And the f64 CPU backend agrees with the reference to the spec's f64 tolerance.
    let want = reference::token_advantages(&config, &groups);
    let got = device_advantages::<NdArray<f64>>(&config, &groups);
    for (g, w) in got.iter().zip(&want) {
        assert_rows("ndarray f64", &g.advantages, &w.advantages, TOL_F64);
    }
}
