//! The property tests of `shared/spec/ep-grpo.md` §9 on random groups, for both
//! implementations, plus the zero-variance gradient test.

mod common;

use burn::backend::Autodiff;
use burn::tensor::{Tensor, TensorData};
use common::*;
use epgrpo_core::config::{Algorithm, AlgorithmConfig};
use epgrpo_core::{
    GroupTensors, LossInputs, LossNormalizer, ResponseGroup, policy_loss, token_advantages,
};

/// SplitMix64: a small seeded generator so that the random cases are reproducible.
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

/// A random group of `g` responses of length 1..=12 with binary rewards and drift in s.
fn random_group(rng: &mut Rng, g: usize) -> ResponseGroup {
    let lengths: Vec<usize> = (0..g).map(|_| 1 + rng.below(12)).collect();
    let entropy = lengths
        .iter()
        .map(|l| (0..*l).map(|_| 2.0 * rng.next()).collect())
        .collect();
    let logp_ref: Vec<Vec<f64>> = lengths
        .iter()
        .map(|l| (0..*l).map(|_| -0.1 - 3.0 * rng.next()).collect())
        .collect();
    let logp_old = logp_ref
        .iter()
        .map(|row| {
            row.iter()
                .map(|r| (r + 0.4 * (rng.next() - 0.5)).min(0.0))
                .collect()
        })
        .collect();
    ResponseGroup {
        rewards: (0..g)
            .map(|_| if rng.next() < 0.5 { 1.0 } else { 0.0 })
            .collect(),
        entropy,
        logp_old: Some(logp_old),
        logp_ref: Some(logp_ref),
    }
}

fn all_algorithms() -> [Algorithm; 6] {
    [
        Algorithm::Grpo,
        Algorithm::DrGrpo,
        Algorithm::Dapo,
        Algorithm::EntropyMask,
        Algorithm::Gspo,
        Algorithm::EpGrpo,
    ]
}

#[test]
fn burn_matches_reference_on_random_batches_for_every_algorithm() {
    let mut rng = Rng(7);
    for case in 0..20 {
        let groups: Vec<ResponseGroup> = (0..1 + case % 4)
            .map(|_| random_group(&mut rng, 5))
            .collect();
        for name in all_algorithms() {
            let config = AlgorithmConfig {
                group_size: 5,
                num_buckets: 1 + case % 10,
                ..AlgorithmConfig::for_algorithm(name)
            };
            let reference = reference_advantages(&config, &groups);
            let burn = burn_advantages(&config, &groups);
            for (r, b) in reference.iter().zip(&burn) {
                assert_rows(
                    &format!("{name:?} case {case}"),
                    &b.advantages,
                    &r.advantages,
                    TOL_F32,
                );
                assert_rows(
                    &format!("{name:?} weight"),
                    &b.token_weight,
                    &r.token_weight,
                    TOL_F32,
                );
                assert_eq!(b.bucket, r.bucket, "{name:?} case {case}");
                assert_eq!(b.zero_variance, r.zero_variance);
            }
        }
    }
}

#[test]
fn permuting_responses_permutes_the_advantages() {
    let mut rng = Rng(11);
    let config = AlgorithmConfig {
        group_size: 6,
        ..AlgorithmConfig::default()
    };
    for _ in 0..10 {
        let group = random_group(&mut rng, 6);
        let order = [3, 0, 5, 1, 4, 2];
        let pick =
            |rows: &Vec<Vec<f64>>| order.iter().map(|i| rows[*i].clone()).collect::<Vec<_>>();
        let permuted = ResponseGroup {
            rewards: order.iter().map(|i| group.rewards[*i]).collect(),
            entropy: pick(&group.entropy),
            logp_old: group.logp_old.as_ref().map(pick),
            logp_ref: group.logp_ref.as_ref().map(pick),
        };
        let base = reference_advantages(&config, std::slice::from_ref(&group)).remove(0);
        let moved = reference_advantages(&config, std::slice::from_ref(&permuted)).remove(0);
        assert_rows(
            "reference",
            &moved.advantages,
            &pick(&base.advantages),
            1e-12,
        );
        let moved = burn_advantages(&config, std::slice::from_ref(&permuted)).remove(0);
        assert_rows("burn", &moved.advantages, &pick(&base.advantages), TOL_F32);
    }
}

#[test]
fn shifting_s_by_a_constant_leaves_advantages_unchanged() {
    let mut rng = Rng(13);
    let config = AlgorithmConfig {
        group_size: 4,
        ..AlgorithmConfig::default()
    };
    for _ in 0..10 {
        let group = random_group(&mut rng, 4);
        // lp_ref − 0.25 raises s = lp_old − lp_ref by 0.25 on every token.
        let shifted = ResponseGroup {
            logp_ref: group.logp_ref.as_ref().map(|rows| {
                rows.iter()
                    .map(|row| row.iter().map(|r| r - 0.25).collect())
                    .collect()
            }),
            ..group.clone()
        };
        let base = reference_advantages(&config, std::slice::from_ref(&group)).remove(0);
        let moved = reference_advantages(&config, std::slice::from_ref(&shifted)).remove(0);
        assert_rows("reference", &moved.advantages, &base.advantages, 1e-9);
        let moved = burn_advantages(&config, std::slice::from_ref(&shifted)).remove(0);
        assert_rows("burn", &moved.advantages, &base.advantages, TOL_F32);
    }
}

#[test]
fn scaling_lambda_leaves_advantages_unchanged_when_drift_dominates_eps() {
    let mut rng = Rng(17);
    for _ in 0..10 {
        let group = random_group(&mut rng, 4);
        let with = |lambda| AlgorithmConfig {
            group_size: 4,
            lambda,
            ..AlgorithmConfig::default()
        };
        let base = reference_advantages(&with(1e4), std::slice::from_ref(&group)).remove(0);
        let scaled = reference_advantages(&with(1e5), std::slice::from_ref(&group)).remove(0);
        assert_rows("λ × 10", &scaled.advantages, &base.advantages, 1e-4);
    }
}

#[test]
fn gate_is_in_the_open_unit_interval_and_padding_gets_nothing() {
    let mut rng = Rng(19);
    let groups: Vec<ResponseGroup> = (0..3).map(|_| random_group(&mut rng, 4)).collect();
    let device = Default::default();
    let batch = GroupTensors::<TestBackend>::from_groups(&groups, &device).unwrap();
    for name in all_algorithms() {
        let config = AlgorithmConfig {
            group_size: 4,
            ..AlgorithmConfig::for_algorithm(name)
        };
        let result = token_advantages(&config, &batch);
        let padding = batch.mask.clone().neg().add_scalar(1.0);
        let leaked = (result.advantages.clone().abs() * padding.clone())
            .sum()
            .into_scalar();
        assert_eq!(leaked, 0.0, "{name:?}: advantage on padding");
        let leaked = (result.token_weight.clone().abs() * padding)
            .sum()
            .into_scalar();
        assert_eq!(leaked, 0.0, "{name:?}: weight on padding");
    }
    let config = AlgorithmConfig {
        group_size: 4,
        gamma: 3.0,
        ..AlgorithmConfig::default()
    };
    for group in reference_advantages(&config, &groups) {
        assert!(
            group
                .token_weight
                .iter()
                .flatten()
                .all(|w| *w > 0.0 && *w < 1.0)
        );
    }
}

#[test]
fn all_correct_and_all_wrong_groups_get_opposite_advantages() {
    let mut rng = Rng(23);
    let config = AlgorithmConfig {
        group_size: 5,
        ..AlgorithmConfig::default()
    };
    for _ in 0..10 {
        let group = random_group(&mut rng, 5);
        let correct = ResponseGroup {
            rewards: vec![1.0; 5],
            ..group.clone()
        };
        let wrong = ResponseGroup {
            rewards: vec![0.0; 5],
            ..group
        };
        let up = burn_advantages(&config, &[correct.clone(), wrong.clone()]);
        let negated: Vec<Vec<f64>> = up[0]
            .advantages
            .iter()
            .map(|row| row.iter().map(|a| -a).collect())
            .collect();
        assert_rows("burn", &up[1].advantages, &negated, 1e-6);
        assert!(
            up[0].advantages.iter().flatten().any(|a| a.abs() > 1e-3),
            "progress term is alive"
        );
    }
}

#[test]
fn groups_never_mix() {
    let mut rng = Rng(29);
    let config = AlgorithmConfig {
        group_size: 4,
        ..AlgorithmConfig::default()
    };
    let first = random_group(&mut rng, 4);
    let alone = burn_advantages(&config, std::slice::from_ref(&first)).remove(0);
    for _ in 0..5 {
        let other = random_group(&mut rng, 4);
        let together = burn_advantages(&config, &[first.clone(), other]).remove(0);
        assert_rows("first group", &together.advantages, &alone.advantages, 1e-6);
    }
}

/// ∇_{lp_θ} of the token-mean loss of one group at μ = 1 (lp_θ = lp_old), returned per token.
fn loss_gradient(config: &AlgorithmConfig, group: &ResponseGroup) -> Vec<f64> {
    type Ad = Autodiff<TestBackend>;
    let device = Default::default();
    let batch = GroupTensors::<Ad>::from_groups(std::slice::from_ref(group), &device).unwrap();
    let advantages = token_advantages(config, &batch).advantages;
    let flat = |t: Tensor<Ad, 3>| t.squeeze_dim::<2>(0);
    let dims = batch.logp_old.dims();
    let old = batch
        .logp_old
        .to_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .unwrap();
    let logp = Tensor::<Ad, 3>::from_data(TensorData::new(old, dims), &device).require_grad();
    let loss = policy_loss(
        config,
        LossInputs {
            logp: flat(logp.clone()),
            logp_old: flat(batch.logp_old.clone()),
            logp_ref: flat(batch.logp_ref.clone()),
            advantages: flat(advantages),
            mask: flat(batch.mask.clone()),
        },
        LossNormalizer::whole_batch(config, &flat(batch.mask.clone())),
    );
    let grads = loss.loss.backward();
    logp.grad(&grads)
        .unwrap()
        .to_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .unwrap()
}

#[test]
fn zero_variance_group_has_gradient_under_ep_grpo_and_none_under_grpo() {
    let drifted = spec_group([1., 1., 1., 1.], &spec_signal());
    let ep = loss_gradient(&ep_config(2), &drifted);
    assert!(ep.iter().any(|g| g.abs() > 1e-3), "EP-GRPO gradient {ep:?}");
    let grpo = AlgorithmConfig {
        group_size: 4,
        ..AlgorithmConfig::for_algorithm(Algorithm::Grpo)
    };
    let plain = loss_gradient(&grpo, &drifted);
    assert!(plain.iter().all(|g| *g == 0.0), "GRPO gradient {plain:?}");
    // At step 0 (π_θ = π_ref) the zero-variance group gives no gradient under EP-GRPO either.
    let fresh = loss_gradient(&ep_config(2), &spec_group([1., 1., 1., 1.], &zero_signal()));
    assert!(fresh.iter().all(|g| *g == 0.0), "step-0 gradient {fresh:?}");
}
