//! The baselines against their published formulas, computed by hand here (TRL's GRPO loss
//! types, Dr. GRPO, DAPO's clip-higher, GSPO's sequence ratio, the 80/20 entropy mask).

mod common;

use burn::tensor::{Tensor, TensorData};
use common::*;
use epgrpo_core::config::{Algorithm, AlgorithmConfig, KlEstimator};
use epgrpo_core::reference::{self, LossRow};
use epgrpo_core::{LossInputs, LossNormalizer, ResponseGroup, policy_loss};

fn config(name: Algorithm) -> AlgorithmConfig {
    AlgorithmConfig {
        group_size: 4,
        ..AlgorithmConfig::for_algorithm(name)
    }
}

/// The spec's shared group (lengths 4, 3, 4, 3) with rewards [1, 0, 1, 0].
fn mixed() -> ResponseGroup {
    spec_group([1., 0., 1., 0.], &spec_signal())
}

/// Loss from both implementations for rows of (log ratio to old, advantage) per token;
/// lp_ref = lp_old − `ref_gap`. Returns the reference value after checking Burn agrees.
fn loss_of(config: &AlgorithmConfig, rows: &[Vec<(f64, f64)>], ref_gap: f64) -> f64 {
    let old = -1.0;
    let reference_rows: Vec<LossRow> = rows
        .iter()
        .map(|row| LossRow {
            logp: row.iter().map(|(r, _)| old + r).collect(),
            logp_old: vec![old; row.len()],
            logp_ref: vec![old - ref_gap; row.len()],
            advantages: row.iter().map(|(_, a)| *a).collect(),
        })
        .collect();
    let l = rows.iter().map(Vec::len).max().unwrap();
    let want = reference::policy_loss(config, &reference_rows, l);
    let n = rows.len();
    let pad = |f: &dyn Fn(usize, usize) -> f64| {
        let mut values = vec![0.0f64; n * l];
        for (i, row) in rows.iter().enumerate() {
            for t in 0..row.len() {
                values[i * l + t] = f(i, t);
            }
        }
        Tensor::<TestBackend, 2>::from_data(TensorData::new(values, [n, l]), &Default::default())
    };
    let got = policy_loss(
        config,
        LossInputs {
            logp: pad(&|i, t| old + rows[i][t].0),
            logp_old: pad(&|_, _| old),
            logp_ref: pad(&|_, _| old - ref_gap),
            advantages: pad(&|i, t| rows[i][t].1),
            mask: pad(&|_, _| 1.0),
        },
        LossNormalizer::whole_batch(config, &pad(&|_, _| 1.0)),
    )
    .loss
    .into_scalar() as f64;
    assert!(
        (got - want).abs() < TOL_F32,
        "{:?}: burn {got} vs reference {want}",
        config.name
    );
    want
}

/// Per-token rows of (log ratio, advantage) with a constant log ratio and Â_i per response.
fn rows(lengths: &[usize], log_ratio: &[f64], advantage: &[f64]) -> Vec<Vec<(f64, f64)>> {
    lengths
        .iter()
        .enumerate()
        .map(|(i, l)| vec![(log_ratio[i], advantage[i]); *l])
        .collect()
}

#[test]
fn grpo_uses_group_std_and_sequence_mean() {
    let got = reference_advantages(&config(Algorithm::Grpo), &[mixed()]).remove(0);
    let a = 0.5 / (0.5773502691896258 + 1e-4);
    let want: Vec<Vec<f64>> = [4, 3, 4, 3]
        .iter()
        .zip([a, -a, a, -a])
        .map(|(l, a)| vec![a; *l])
        .collect();
    assert_rows("GRPO", &got.advantages, &want, 1e-9);
    // Response 0 moved by log ratio 0.1 (ρ = 1.10517, inside the clip range):
    // J = (1/4) Σ_i mean_t ρ Â_i.
    let rho = 0.1f64.exp();
    let want = -(rho * a - a + a - a) / 4.0;
    let got = loss_of(
        &config(Algorithm::Grpo),
        &rows(&[4, 3, 4, 3], &[0.1, 0., 0., 0.], &[a, -a, a, -a]),
        0.0,
    );
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
}

#[test]
fn dr_grpo_drops_the_std_and_normalises_by_a_constant() {
    let got = reference_advantages(&config(Algorithm::DrGrpo), &[mixed()]).remove(0);
    assert_eq!(got.advantages[0], vec![0.5; 4]);
    assert_eq!(got.advantages[1], vec![-0.5; 3]);
    // Σ Â·L_i / (G · L_const) = (0.5·4 − 0.5·3 + 0.5·4 − 0.5·3) / (4 · 4) at ρ = 1.
    let lengths = [4, 3, 4, 3];
    let advantage = [0.5, -0.5, 0.5, -0.5];
    let got = loss_of(
        &config(Algorithm::DrGrpo),
        &rows(&lengths, &[0.; 4], &advantage),
        0.0,
    );
    assert!((got + 1.0 / 16.0).abs() < 1e-12, "{got}");
    // An explicit L_const replaces the padded width.
    let fixed = AlgorithmConfig {
        constant_length: Some(10),
        ..config(Algorithm::DrGrpo)
    };
    let got = loss_of(&fixed, &rows(&lengths, &[0.; 4], &advantage), 0.0);
    assert!((got + 1.0 / 40.0).abs() < 1e-12, "{got}");
}

#[test]
fn dapo_clips_higher_and_averages_over_tokens() {
    // ρ = 1.25 on a positive advantage: clipped at 1.2 by GRPO's range, not by DAPO's 1.28.
    let log_ratio = 1.25f64.ln();
    let row = rows(&[2, 3], &[log_ratio, 0.0], &[1.0, -1.0]);
    let dapo = loss_of(&config(Algorithm::Dapo), &row, 0.0);
    assert!((dapo - -(2.0 * 1.25 - 3.0) / 5.0).abs() < 1e-12, "{dapo}");
    let grpo_token_mean = AlgorithmConfig {
        loss_aggregation: Some(epgrpo_core::config::LossAggregation::TokenMean),
        ..config(Algorithm::Grpo)
    };
    let clipped = loss_of(&grpo_token_mean, &row, 0.0);
    assert!(
        (clipped - -(2.0 * 1.2 - 3.0) / 5.0).abs() < 1e-12,
        "{clipped}"
    );
}

#[test]
fn gspo_clips_the_sequence_ratio() {
    // Mean log ratio 2e-4 (ρ_i = 1.0002 < 1 + 4e-4): unclipped; 1e-3: clipped at 1.0004.
    let gspo = config(Algorithm::Gspo);
    let unclipped = vec![vec![(1e-4, 1.0), (3e-4, 1.0)]];
    let got = loss_of(&gspo, &unclipped, 0.0);
    assert!((got + 2e-4f64.exp()).abs() < 1e-12, "{got}");
    let clipped = vec![vec![(5e-4, 1.0), (1.5e-3, 1.0)]];
    let got = loss_of(&gspo, &clipped, 0.0);
    assert!((got + 1.0004).abs() < 1e-12, "{got}");
    // Per-token ratios would have been exp(5e-4) and exp(1.5e-3): the sequence ratio is shared.
    let token_level = AlgorithmConfig {
        epsilon_low: Some(0.2),
        epsilon_high: Some(0.2),
        ..config(Algorithm::Grpo)
    };
    let got = loss_of(&token_level, &clipped, 0.0);
    assert!(
        (got + (5e-4f64.exp() + 1.5e-3f64.exp()) / 2.0).abs() < 1e-12,
        "{got}"
    );
}

#[test]
fn entropy_mask_keeps_the_top_fifth_of_batch_entropies() {
    // The 14 entropies sorted: the 0.8 quantile sits at position 0.8 · 13 = 10.4, between
    // 0.65 and 0.90, i.e. 0.75. Tokens at or above it: 1.00, 0.90 and 1.10.
    let got = reference_advantages(&config(Algorithm::EntropyMask), &[mixed()]).remove(0);
    let want_mask = vec![
        vec![0., 1., 0., 0.],
        vec![0., 0., 1.],
        vec![0.; 4],
        vec![1., 0., 0.],
    ];
    assert_eq!(got.token_weight, want_mask);
    let burn = burn_advantages(&config(Algorithm::EntropyMask), &[mixed()]).remove(0);
    assert_eq!(burn.token_weight, want_mask);
    let a = 0.5 / (0.5773502691896258 + 1e-4);
    assert!((burn.advantages[0][1] - a).abs() < TOL_F32 && burn.advantages[0][0] == 0.0);
    assert!((burn.advantages[3][0] + a).abs() < TOL_F32);
}

#[test]
fn kl_penalty_enters_with_its_coefficient() {
    // lp_θ = lp_old = lp_ref + 0.2: every estimator, β = 0.1, Â = 0, token mean.
    let row = rows(&[3], &[0.0], &[0.0]);
    for (estimator, kl) in [
        (KlEstimator::K1, 0.2),
        (KlEstimator::K2, 0.5 * 0.04),
        (KlEstimator::K3, (-0.2f64).exp() + 0.2 - 1.0),
    ] {
        let config = AlgorithmConfig {
            kl_coef: 0.1,
            kl_estimator: estimator,
            ..config(Algorithm::Dapo)
        };
        let got = loss_of(&config, &row, 0.2);
        assert!((got - 0.1 * kl).abs() < 1e-12, "{estimator:?}: {got}");
    }
}
