//! Shared inputs and helpers of the oracle tests: the spec's O3–O7 group, and a runner that
//! computes advantages with both implementations.

#![allow(dead_code)]

use burn::backend::NdArray;
use epgrpo_core::advantage::GroupAdvantages;
use epgrpo_core::{
    AlgorithmConfig, GroupTensors, ResponseGroup, reference, to_host, token_advantages,
};

/// The Burn backend of the tests (f32, as in training).
pub type TestBackend = NdArray<f32>;

/// Spec tolerance in f64.
pub const TOL_F64: f64 = 1e-5;
/// Spec tolerance in f32.
pub const TOL_F32: f64 = 2e-4;

/// The shared input of O3–O7: entropies H and s = lp_old − lp_ref with lp_ref = −1.
pub fn spec_group(rewards: [f64; 4], s: &[Vec<f64>]) -> ResponseGroup {
    let entropy = vec![
        vec![0.30, 1.00, 0.40, 0.30],
        vec![0.45, 0.65, 0.90],
        vec![0.35, 0.30, 0.20, 0.15],
        vec![1.10, 0.60, 0.30],
    ];
    let logp_ref: Vec<Vec<f64>> = entropy.iter().map(|row| vec![-1.0; row.len()]).collect();
    let logp_old = s
        .iter()
        .map(|row| row.iter().map(|s| -1.0 + s).collect())
        .collect();
    ResponseGroup {
        rewards: rewards.to_vec(),
        entropy,
        logp_old: Some(logp_old),
        logp_ref: Some(logp_ref),
    }
}

/// s of the shared input.
pub fn spec_signal() -> Vec<Vec<f64>> {
    vec![
        vec![0.10, 0.30, 0.05, 0.00],
        vec![-0.20, 0.10, 0.40],
        vec![0.05, 0.20, 0.00, 0.10],
        vec![0.30, -0.10, 0.00],
    ]
}

/// s ≡ 0 (step 0: π_old = π_ref).
pub fn zero_signal() -> Vec<Vec<f64>> {
    spec_signal()
        .iter()
        .map(|row| vec![0.0; row.len()])
        .collect()
}

/// Advantages from the f64 reference.
pub fn reference_advantages(
    config: &AlgorithmConfig,
    groups: &[ResponseGroup],
) -> Vec<GroupAdvantages> {
    reference::token_advantages(config, groups)
}

/// Advantages from the Burn implementation on ndarray f32, copied to the host.
pub fn burn_advantages(config: &AlgorithmConfig, groups: &[ResponseGroup]) -> Vec<GroupAdvantages> {
    let device = Default::default();
    let batch = GroupTensors::<TestBackend>::from_groups(groups, &device).expect("valid groups");
    to_host(&token_advantages(config, &batch), groups)
}

/// Asserts two ragged matrices agree within `tol`.
pub fn assert_rows(label: &str, got: &[Vec<f64>], want: &[Vec<f64>], tol: f64) {
    assert_eq!(got.len(), want.len(), "{label}: row count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{label}: length of row {i}");
        for (t, (g, w)) in g.iter().zip(w).enumerate() {
            assert!(
                (g - w).abs() <= tol,
                "{label}[{i}][{t}]: got {g}, want {w} (tol {tol})"
            );
        }
    }
}

/// Asserts the oracle's final advantages with both implementations.
pub fn assert_both(
    config: &AlgorithmConfig,
    group: &ResponseGroup,
    want: &[Vec<f64>],
) -> GroupAdvantages {
    let groups = std::slice::from_ref(group);
    let reference = reference_advantages(config, groups).remove(0);
    assert_rows("reference", &reference.advantages, want, TOL_F64);
    let burn = burn_advantages(config, groups).remove(0);
    assert_rows("burn", &burn.advantages, want, TOL_F32);
    assert_eq!(burn.bucket, reference.bucket, "bucket ids");
    assert_eq!(burn.zero_variance, reference.zero_variance);
    reference
}

/// Config for the spec's oracles: defaults with G = 4 and K buckets.
pub fn ep_config(k: usize) -> AlgorithmConfig {
    AlgorithmConfig {
        group_size: 4,
        num_buckets: k,
        ..AlgorithmConfig::default()
    }
}
