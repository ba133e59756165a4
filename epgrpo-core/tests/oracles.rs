//! The unit-test oracles O1–O10 of `shared/spec/ep-grpo.md` §9, each checked against the f64
//! reference (tolerance 1e-5) and the Burn implementation on ndarray f32 (tolerance 2e-4).

mod common;

use burn::tensor::{Int, Tensor, TensorData};
use common::*;
use epgrpo_core::config::{Algorithm, AlgorithmConfig, KlEstimator, LossAggregation, OutcomeScale};
use epgrpo_core::entropy::token_logp_entropy;
use epgrpo_core::loss::{clipped_surrogate, kl_estimate};
use epgrpo_core::outcome::outcome_advantage;
use epgrpo_core::progress::progress_buckets;
use epgrpo_core::reference::{self, LossRow};
use epgrpo_core::{
    GroupTensors, LossInputs, LossNormalizer, ResponseGroup, policy_loss, token_advantages,
};

fn burn_entropy(logits: &[f64], temperature: f64) -> f64 {
    let device = Default::default();
    let v = logits.len();
    let logits =
        Tensor::<TestBackend, 2>::from_data(TensorData::new(logits.to_vec(), [1, v]), &device);
    let targets =
        Tensor::<TestBackend, 1, Int>::from_data(TensorData::new(vec![0i64], [1]), &device);
    let (_, entropy) = token_logp_entropy(logits, targets, temperature);
    entropy.into_scalar() as f64
}

#[test]
fn o1_entropy_matches_table() {
    let distributions: [(&[f64], f64); 4] = [
        (&[0.5, 0.5], 0.693147),
        (&[0.7, 0.2, 0.1], 0.801819),
        (&[1.0, 0.0, 0.0], 0.0),
        (&[0.25, 0.25, 0.25, 0.25], 1.386294),
    ];
    for (probs, want) in distributions {
        assert!(
            (reference::entropy_of_probs(probs) - want).abs() < 1e-6,
            "{probs:?}"
        );
        // As logits ln p: p = 0 becomes a -inf logit, whose term must count as 0.
        let logits: Vec<f64> = probs.iter().map(|p| p.ln()).collect();
        assert!(
            (reference::logp_entropy(&logits, 0, 1.0).1 - want).abs() < 1e-6,
            "{probs:?}"
        );
        let got = burn_entropy(&logits, 1.0);
        assert!((got - want).abs() < TOL_F32, "burn {probs:?}: {got}");
    }
    for (temperature, want) in [(1.0, 0.832396), (0.5, 0.441057), (2.0, 1.020191)] {
        let logits = [2.0, 1.0, 0.0];
        assert!((reference::logp_entropy(&logits, 0, temperature).1 - want).abs() < 1e-6);
        assert!(
            (burn_entropy(&logits, temperature) - want).abs() < TOL_F32,
            "T = {temperature}"
        );
    }
}

#[test]
fn o1_logp_is_the_log_softmax_of_the_target() {
    // logits [2, 1, 0] at T = 0.5: p = [0.866813, 0.117310, 0.015876].
    let device = Default::default();
    let logits = Tensor::<TestBackend, 2>::from_data(
        TensorData::new(vec![2.0f64, 1.0, 0.0, 2.0, 1.0, 0.0], [2, 3]),
        &device,
    );
    let targets =
        Tensor::<TestBackend, 1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), &device);
    let (logp, _) = token_logp_entropy(logits, targets, 0.5);
    let logp = logp.to_data().convert::<f64>().to_vec::<f64>().unwrap();
    for (got, p) in logp.iter().zip([0.117310f64, 0.015876]) {
        assert!((got - p.ln()).abs() < 1e-4, "{got} vs {}", p.ln());
    }
    assert!((reference::logp_entropy(&[2.0, 1.0, 0.0], 1, 0.5).0 - 0.117310f64.ln()).abs() < 1e-5);
}

#[test]
fn o2_outcome_advantage_matches_table() {
    let cases: [([f64; 4], [f64; 4], bool); 4] = [
        (
            [1., 0., 0., 0.],
            [1.499700, -0.499900, -0.499900, -0.499900],
            false,
        ),
        (
            [1., 0., 1., 0.],
            [0.865875, -0.865875, 0.865875, -0.865875],
            false,
        ),
        (
            [1., 1., 1., 0.],
            [0.499900, 0.499900, 0.499900, -1.499700],
            false,
        ),
        ([1., 1., 1., 1.], [0.0; 4], true),
    ];
    let device = Default::default();
    for (rewards, want, zero_var) in cases {
        let (got, flag) =
            reference::outcome_advantage(&rewards, OutcomeScale::GroupStd, 1e-4, 1e-8);
        assert_eq!(flag, zero_var);
        assert_rows("reference", &[got], &[want.to_vec()], 1e-6);
        let tensor =
            Tensor::<TestBackend, 2>::from_data(TensorData::new(rewards.to_vec(), [1, 4]), &device);
        let (got, flag) = outcome_advantage(tensor, OutcomeScale::GroupStd, 1e-4, 1e-8);
        assert_eq!(flag.into_data().to_vec::<bool>().unwrap(), vec![zero_var]);
        let got = got.to_data().convert::<f64>().to_vec::<f64>().unwrap();
        assert_rows("burn", &[got], &[want.to_vec()], TOL_F32);
    }
}

const O3_FINAL: [&[f64]; 4] = [
    &[0.587720, 1.726339, 0.159481, 0.017481],
    &[0.238200, -0.446873, -2.152503],
    &[0.513956, 0.463383, 0.013776, 0.166750],
    &[-1.806757, 0.357057, -0.017481],
];

fn rows(table: &[&[f64]]) -> Vec<Vec<f64>> {
    table.iter().map(|row| row.to_vec()).collect()
}

#[test]
fn o3_mixed_group_k2_matches_oracle() {
    let group = spec_group([1., 0., 1., 0.], &spec_signal());
    let result = assert_both(&ep_config(2), &group, &rows(&O3_FINAL));
    let want_w = rows(&[
        &[0.336195, 0.845632, 0.415773, 0.336195],
        &[0.457584, 0.624859, 0.795857],
        &[0.375141, 0.336195, 0.264940, 0.233165],
        &[0.885025, 0.584227, 0.336195],
    ]);
    assert_rows("W", &result.token_weight, &want_w, TOL_F64);
    let want_b = vec![
        vec![0, 1, 1, 1],
        vec![0, 1, 1],
        vec![0, 1, 1, 1],
        vec![1, 1, 1],
    ];
    assert_eq!(result.bucket, want_b);
    let burn = burn_advantages(&ep_config(2), std::slice::from_ref(&group)).remove(0);
    assert_rows("burn W", &burn.token_weight, &want_w, TOL_F32);
}

#[test]
fn o3_progress_coordinate_matches_oracle() {
    let group = spec_group([1., 0., 1., 0.], &spec_signal());
    let want = [
        vec![0.15, 0.65, 0.85, 1.0],
        vec![0.225, 0.55, 1.0],
        vec![0.35, 0.65, 0.85, 1.0],
        vec![0.55, 0.85, 1.0],
    ];
    for (row, want) in group.entropy.iter().zip(&want) {
        assert_rows(
            "tau",
            &[reference::progress_buckets(row, 2).0],
            &[want.clone()],
            TOL_F64,
        );
    }
}

#[test]
fn o3_losses_at_mu_one() {
    let group = spec_group([1., 0., 1., 0.], &spec_signal());
    check_losses(&ep_config(2), &group, 0.012819, 0.090974);
}

#[test]
fn o4_default_k10_matches_oracle() {
    let group = spec_group([1., 0., 1., 0.], &spec_signal());
    let want = rows(&[
        &[0.291103, 1.561264, 0.797473, 0.036311],
        &[-0.396210, 0.077622, -2.016056],
        &[0.324825, -0.038500, 0.299096, 0.166550],
        &[-1.642583, 0.262517, -0.036311],
    ]);
    let result = assert_both(&ep_config(10), &group, &want);
    let want_b = vec![
        vec![1, 6, 8, 9],
        vec![2, 5, 9],
        vec![3, 6, 8, 9],
        vec![5, 8, 9],
    ];
    assert_eq!(result.bucket, want_b);
    check_losses(&ep_config(10), &group, 0.022350, 0.097703);
}

/// Checks the token-mean and seq-mean-token-mean losses at μ = 1 (lp_θ = lp_old) with both
/// implementations.
fn check_losses(config: &AlgorithmConfig, group: &ResponseGroup, token_mean: f64, seq_mean: f64) {
    let advantages = reference::token_advantages(config, std::slice::from_ref(group))
        .remove(0)
        .advantages;
    let old = group.logp_old.clone().unwrap();
    let reference_rows: Vec<LossRow> = (0..4)
        .map(|i| LossRow {
            logp: old[i].clone(),
            logp_old: old[i].clone(),
            logp_ref: group.logp_ref.clone().unwrap()[i].clone(),
            advantages: advantages[i].clone(),
        })
        .collect();
    for (aggregation, want) in [
        (LossAggregation::TokenMean, token_mean),
        (LossAggregation::SeqMeanTokenMean, seq_mean),
    ] {
        let config = AlgorithmConfig {
            loss_aggregation: Some(aggregation),
            ..config.clone()
        };
        let got = reference::policy_loss(&config, &reference_rows, 4);
        assert!(
            (got - want).abs() < TOL_F64,
            "reference {aggregation:?}: {got} vs {want}"
        );
        let device = Default::default();
        let batch =
            GroupTensors::<TestBackend>::from_groups(std::slice::from_ref(group), &device).unwrap();
        let adv = token_advantages(&config, &batch);
        let flat = |t: Tensor<TestBackend, 3>| t.squeeze_dim::<2>(0);
        let loss = policy_loss(
            &config,
            LossInputs {
                logp: flat(batch.logp_old.clone()),
                logp_old: flat(batch.logp_old.clone()),
                logp_ref: flat(batch.logp_ref.clone()),
                advantages: flat(adv.advantages),
                mask: flat(batch.mask.clone()),
            },
            LossNormalizer::whole_batch(&config, &flat(batch.mask.clone())),
        );
        let got = loss.loss.into_scalar() as f64;
        assert!(
            (got - want).abs() < TOL_F32,
            "burn {aggregation:?}: {got} vs {want}"
        );
    }
}

const O5_FINAL: [&[f64]; 4] = [
    &[0.296617, 0.994126, -0.200527, -0.273621],
    &[-0.634411, -0.094178, 1.463391],
    &[0.189131, 0.172280, -0.215629, -0.035142],
    &[1.040436, -0.862925, -0.273621],
];

#[test]
fn o5_all_correct_zero_variance_keeps_progress_term() {
    let group = spec_group([1., 1., 1., 1.], &spec_signal());
    let result = assert_both(&ep_config(2), &group, &rows(&O5_FINAL));
    assert!(result.zero_variance);
}

#[test]
fn o6_all_wrong_zero_variance_flips_sign() {
    let group = spec_group([0., 0., 0., 0.], &spec_signal());
    let flipped: Vec<Vec<f64>> = O5_FINAL
        .iter()
        .map(|row| row.iter().map(|x| -x).collect())
        .collect();
    let result = assert_both(&ep_config(2), &group, &flipped);
    assert!(result.zero_variance);
}

#[test]
fn o7_step_zero_gives_gated_grpo() {
    let group = spec_group([1., 0., 1., 0.], &zero_signal());
    let want = rows(&[
        &[0.291103, 0.732212, 0.360008, 0.291103],
        &[-0.396210, -0.541050, -0.689113],
        &[0.324825, 0.291103, 0.229405, 0.201892],
        &[-0.766321, -0.505868, -0.291103],
    ]);
    assert_both(&ep_config(2), &group, &want);
    // Same step-0 input with a zero-variance reward pattern: every advantage is exactly 0.
    for rewards in [[1., 1., 1., 1.], [0., 0., 0., 0.]] {
        let group = spec_group(rewards, &zero_signal());
        for result in [
            reference_advantages(&ep_config(2), std::slice::from_ref(&group)).remove(0),
            burn_advantages(&ep_config(2), std::slice::from_ref(&group)).remove(0),
        ] {
            assert!(
                result.advantages.iter().flatten().all(|a| *a == 0.0),
                "{:?}",
                result.advantages
            );
        }
    }
}

#[test]
fn o7b_gamma_and_alpha_zero_give_half_grpo() {
    let config = AlgorithmConfig {
        gamma: 0.0,
        alpha: 0.0,
        ..ep_config(2)
    };
    let group = spec_group([1., 0., 1., 0.], &spec_signal());
    let want: Vec<Vec<f64>> = group
        .entropy
        .iter()
        .zip([1.0, -1.0, 1.0, -1.0])
        .map(|(row, sign)| vec![sign * 0.432938; row.len()])
        .collect();
    assert_both(&config, &group, &want);
    // Exactly 0.5 × GRPO's token advantages.
    let grpo = AlgorithmConfig {
        group_size: 4,
        ..AlgorithmConfig::for_algorithm(Algorithm::Grpo)
    };
    let grpo = reference_advantages(&grpo, std::slice::from_ref(&group))
        .remove(0)
        .advantages;
    let half: Vec<Vec<f64>> = grpo
        .iter()
        .map(|row| row.iter().map(|a| 0.5 * a).collect())
        .collect();
    assert_rows(
        "0.5 × GRPO",
        &burn_advantages(&config, std::slice::from_ref(&group))[0].advantages,
        &half,
        TOL_F32,
    );
}

#[test]
fn o8_progress_coordinate_and_bucket_edges() {
    let cases: [(&[f64], usize, &[f64], &[u32]); 4] = [
        (&[0.25, 0.25, 0.5], 2, &[0.25, 0.5, 1.0], &[0, 1, 1]),
        (&[0.25, 0.25, 0.5], 4, &[0.25, 0.5, 1.0], &[1, 2, 3]),
        (&[0.25, 0.25, 0.5], 10, &[0.25, 0.5, 1.0], &[2, 5, 9]),
        (
            &[0.0, 0.0, 0.0, 0.0],
            10,
            &[0.25, 0.5, 0.75, 1.0],
            &[2, 5, 7, 9],
        ),
    ];
    let device = Default::default();
    for (entropy, k, tau, bucket) in cases {
        let (got_tau, got_bucket) = reference::progress_buckets(entropy, k);
        assert_eq!(got_tau, tau.to_vec(), "reference τ for {entropy:?}");
        assert_eq!(
            got_bucket,
            bucket.to_vec(),
            "reference b for {entropy:?}, K = {k}"
        );
        // Burn, with a padded second row to check that padding does not disturb the first.
        let n = entropy.len();
        let mut padded = entropy.to_vec();
        padded.extend(vec![0.0; n]);
        let mut mask = vec![1.0; n];
        mask.extend(vec![1.0; n - 1]);
        mask.push(0.0);
        let h = Tensor::<TestBackend, 3>::from_data(TensorData::new(padded, [1, 2, n]), &device);
        let m = Tensor::<TestBackend, 3>::from_data(TensorData::new(mask, [1, 2, n]), &device);
        let (got_tau, got_bucket) = progress_buckets(h, m, k);
        let got_tau = got_tau.to_data().convert::<f64>().to_vec::<f64>().unwrap();
        assert_eq!(&got_tau[..n], tau, "burn τ for {entropy:?}");
        let got_bucket = got_bucket
            .to_data()
            .convert::<i64>()
            .to_vec::<i64>()
            .unwrap();
        let want: Vec<i64> = bucket.iter().map(|b| *b as i64).collect();
        assert_eq!(
            &got_bucket[..n],
            want.as_slice(),
            "burn b for {entropy:?}, K = {k}"
        );
        assert_eq!(got_bucket[2 * n - 1], 0, "padding gets bucket 0");
    }
}

/// (Â, lp_θ − lp_old, loss contribution, gradient flows).
const O9: [(f64, f64, f64, bool); 5] = [
    (0.8, 0.3, -0.960000, false),
    (0.8, -0.3, -0.592655, true),
    (-0.5, -0.356_674_943_938_732_4, 0.400000, false), // ln 0.7
    (-0.5, 0.405_465_108_108_164_4, 0.750000, true),   // ln 1.5
    (0.5, 0.0, -0.500000, true),
];

#[test]
fn o9_clipped_surrogate_and_its_gradient() {
    type Ad = burn::backend::Autodiff<TestBackend>;
    let device = Default::default();
    for (advantage, log_ratio, want, flows) in O9 {
        let ratio = log_ratio.exp();
        assert!((-reference::clipped_surrogate(ratio, advantage, 0.2, 0.2) - want).abs() < 1e-6);
        let logp =
            Tensor::<Ad, 2>::from_data(TensorData::new(vec![log_ratio - 1.0], [1, 1]), &device)
                .require_grad();
        let old = Tensor::<Ad, 2>::from_data(TensorData::new(vec![-1.0f64], [1, 1]), &device);
        let adv = Tensor::<Ad, 2>::from_data(TensorData::new(vec![advantage], [1, 1]), &device);
        let ratio = (logp.clone() - old).exp();
        let loss = clipped_surrogate(ratio, adv, 0.2, 0.2).neg().sum();
        assert!(
            (loss.clone().into_scalar() as f64 - want).abs() < TOL_F32,
            "Â = {advantage}"
        );
        let grads = loss.backward();
        let grad = logp.grad(&grads).map(|g| g.into_scalar()).unwrap_or(0.0);
        assert_eq!(
            grad != 0.0,
            flows,
            "Â = {advantage}, log ratio {log_ratio}: gradient {grad}"
        );
    }
}

#[test]
fn o10_k3_kl_estimator() {
    let device = Default::default();
    for (logp, logp_ref, want) in [
        (-1.0, -1.2, 0.018731),
        (-1.2, -1.0, 0.021403),
        (-1.0, -1.0, 0.0),
    ] {
        assert!((reference::kl(KlEstimator::K3, logp, logp_ref) - want).abs() < 1e-6);
        let t =
            |v: f64| Tensor::<TestBackend, 2>::from_data(TensorData::new(vec![v], [1, 1]), &device);
        let got = kl_estimate(t(logp), t(logp_ref), KlEstimator::K3).into_scalar() as f64;
        assert!((got - want).abs() < TOL_F32, "{got} vs {want}");
    }
}

#[test]
fn a6_ungated_progress_term_matches_spec() {
    let config = AlgorithmConfig {
        gate_progress: false,
        ..ep_config(2)
    };
    let group = spec_group([1., 0., 1., 0.], &spec_signal());
    let reference = reference_advantages(&config, std::slice::from_ref(&group)).remove(0);
    let want = vec![1.173381, 1.907814, -0.122290, -0.522775];
    assert_rows(
        "reference",
        &reference.advantages[..1],
        &[want.clone()],
        TOL_F64,
    );
    let burn = burn_advantages(&config, std::slice::from_ref(&group)).remove(0);
    assert_rows("burn", &burn.advantages[..1], &[want], TOL_F32);
}
