//! EP-GRPO's switches of issue 13 against oracles computed here by hand: the mean-one gate
//! (`gate_normalization = "mean_one"`) and the α warm-up (A7, `alpha_warmup_steps`).

mod common;

use common::*;
use epgrpo_core::config::{Algorithm, AlgorithmConfig, GateNormalization};

fn mean_one(config: AlgorithmConfig) -> AlgorithmConfig {
    AlgorithmConfig {
        gate_normalization: GateNormalization::MeanOne,
        ..config
    }
}

#[test]
fn mean_one_gate_with_gamma_and_alpha_zero_is_exactly_grpo() {
    // O7b gives 0.5 × GRPO for the raw gate (W ≡ σ(0) = 0.5); divided by its mean it is 1.
    let config = mean_one(AlgorithmConfig {
        gamma: 0.0,
        alpha: 0.0,
        ..ep_config(2)
    });
    let group = spec_group([1., 0., 1., 0.], &spec_signal());
    let grpo = AlgorithmConfig {
        group_size: 4,
        ..AlgorithmConfig::for_algorithm(Algorithm::Grpo)
    };
    let want = reference_advantages(&grpo, std::slice::from_ref(&group))
        .remove(0)
        .advantages;
    assert_both(&config, &group, &want);
}

#[test]
fn mean_one_gate_averages_one_and_rescales_the_outcome_term_only_where_the_gate_enters() {
    let group = spec_group([1., 0., 1., 0.], &spec_signal());
    let groups = std::slice::from_ref(&group);
    for gate_progress in [true, false] {
        let raw = AlgorithmConfig {
            gate_progress,
            ..ep_config(2)
        };
        let normalized = mean_one(raw.clone());
        let before = burn_advantages(&raw, groups).remove(0);
        let after = burn_advantages(&normalized, groups).remove(0);
        let weights: Vec<f64> = before.token_weight.iter().flatten().copied().collect();
        let mean = weights.iter().sum::<f64>() / weights.len() as f64;
        // W' = W / mean(W), which averages 1 over the group's tokens.
        let want_weight: Vec<Vec<f64>> = before
            .token_weight
            .iter()
            .map(|row| row.iter().map(|w| w / mean).collect())
            .collect();
        assert_rows("W'", &after.token_weight, &want_weight, 1e-5);
        // Â' = W'·Â_i + α·d_i·(W' or 1)·s̃: built from the raw run's parts.
        // E4 for rewards [1, 0, 1, 0]: ±0.5 / (sample std √(1/3) + ε_adv).
        let magnitude = 0.5 / ((1.0f64 / 3.0).sqrt() + 1e-4);
        let outcome = [1.0, -1.0, 1.0, -1.0].map(|sign| sign * magnitude);
        let want: Vec<Vec<f64>> = (0..group.size())
            .map(|i| {
                (0..before.advantages[i].len())
                    .map(|t| {
                        let w = before.token_weight[i][t];
                        let progress = before.advantages[i][t] - w * outcome[i];
                        let gate_scale = if gate_progress { 1.0 / mean } else { 1.0 };
                        w / mean * outcome[i] + progress * gate_scale
                    })
                    .collect()
            })
            .collect();
        assert_both(&normalized, &group, &want);
    }
}

#[test]
fn alpha_warms_up_linearly_over_the_first_steps() {
    let config = AlgorithmConfig {
        alpha: 0.8,
        alpha_warmup_steps: 4,
        ..AlgorithmConfig::default()
    };
    let alphas: Vec<f64> = (0..6).map(|step| config.at_step(step).alpha).collect();
    let want = [0.2, 0.4, 0.6, 0.8, 0.8, 0.8];
    for (got, want) in alphas.iter().zip(want) {
        assert!((got - want).abs() < 1e-12, "{alphas:?}");
    }
    let off = AlgorithmConfig::default();
    assert_eq!(off.at_step(0), off);
    // The warmed-up α is the α of the advantages: half the progress term at step 1 of 4.
    let group = spec_group([1., 0., 1., 0.], &spec_signal());
    let groups = std::slice::from_ref(&group);
    let full = burn_advantages(
        &AlgorithmConfig {
            alpha: 0.8,
            ..ep_config(2)
        },
        groups,
    )
    .remove(0);
    let none = burn_advantages(
        &AlgorithmConfig {
            alpha: 0.0,
            ..ep_config(2)
        },
        groups,
    )
    .remove(0);
    let warm = AlgorithmConfig {
        alpha_warmup_steps: 4,
        ..AlgorithmConfig {
            alpha: 0.8,
            ..ep_config(2)
        }
    }
    .at_step(1);
    let got = burn_advantages(&warm, groups).remove(0);
    let want: Vec<Vec<f64>> = full
        .advantages
        .iter()
        .zip(&none.advantages)
        .map(|(f, n)| f.iter().zip(n).map(|(f, n)| n + 0.5 * (f - n)).collect())
        .collect();
    assert_rows("α at step 1 of 4", &got.advantages, &want, 1e-5);
}
