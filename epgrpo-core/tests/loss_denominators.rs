//! E15 under gradient accumulation: an optimiser minibatch split into micro-batches of unequal
//! token counts gives the loss and the gradients of the minibatch taken whole, and both equal the
//! loss formulas of the methods' papers as TRL implements them, written out here in plain f64:
//!
//! - `dapo` (token mean): −Σ_{i,t} ℓ / Σ_i |o_i|, the token count of the whole accumulated batch
//!   (TRL's `num_items_in_batch`);
//! - `grpo` (sequence mean of token means): −(1/N) Σ_i (1/|o_i|) Σ_t ℓ;
//! - `dr_grpo` (constant): −Σ_{i,t} ℓ / (N · max_completion_length), the generation limit;
//! - GSPO: the sequence ratio exp(mean_t log ρ) clipped per response, averaged over responses;
//! - CISPO (MiniMax-M1): the token mean of sg(clip(ρ, 1 − ε_low, 1 + ε_high)) · Â · log π_θ;
//!
//! with ℓ = min(ρÂ, clip(ρ, 1 − ε_low, 1 + ε_high)Â) − β·k3 for the others.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Tensor, TensorData};
use epgrpo_core::config::{Algorithm, AlgorithmConfig};
use epgrpo_core::{LossInputs, LossNormalizer, TokenCounts, policy_loss};

type Ad = Autodiff<NdArray<f32>>;

/// The generation limit of the test rollouts (longer than any response, as in training).
const GENERATION_LIMIT: usize = 12;
/// Response lengths: the micro-batches of two rows hold 3, 11 and 17 tokens.
const LENGTHS: [usize; 6] = [1, 2, 9, 2, 8, 9];
const WIDTH: usize = 9;

/// A seeded SplitMix64 stream of uniforms in [0, 1).
struct Uniforms(u64);

impl Uniforms {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn between(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.next()
    }
}

/// Per-token inputs of one minibatch (ragged rows, f32-representable values).
struct Rows {
    logp: Vec<Vec<f64>>,
    logp_old: Vec<Vec<f64>>,
    logp_ref: Vec<Vec<f64>>,
    advantages: Vec<Vec<f64>>,
}

fn rows(seed: u64) -> Rows {
    let mut u = Uniforms(seed);
    let mut draw = |low: f64, high: f64| -> Vec<Vec<f64>> {
        LENGTHS
            .iter()
            .map(|&l| (0..l).map(|_| u.between(low, high) as f32 as f64).collect())
            .collect()
    };
    let logp_old = draw(-3.0, -0.1);
    let shift = draw(-0.4, 0.4);
    let gap = draw(-0.3, 0.3);
    let advantages = draw(-1.5, 1.5);
    let plus = |a: &[Vec<f64>], b: &[Vec<f64>]| -> Vec<Vec<f64>> {
        a.iter()
            .zip(b)
            .map(|(x, y)| {
                x.iter()
                    .zip(y)
                    .map(|(p, q)| (p + q) as f32 as f64)
                    .collect()
            })
            .collect()
    };
    Rows {
        logp: plus(&logp_old, &shift),
        logp_ref: plus(&logp_old, &gap),
        logp_old,
        advantages,
    }
}

/// The method's loss over the whole minibatch, from the published formulas.
fn formula_loss(config: &AlgorithmConfig, rows: &Rows) -> f64 {
    let (eps_low, eps_high) = config.clip_range();
    let beta = config.kl_coef;
    let surrogate = |ratio: f64, advantage: f64| {
        (ratio * advantage).min(ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * advantage)
    };
    let k3 = |logp: f64, logp_ref: f64| (logp_ref - logp).exp() - (logp_ref - logp) - 1.0;
    let per_token: Vec<Vec<f64>> = (0..LENGTHS.len())
        .map(|i| {
            let l = LENGTHS[i];
            let sequence_ratio = ((0..l)
                .map(|t| rows.logp[i][t] - rows.logp_old[i][t])
                .sum::<f64>()
                / l as f64)
                .exp();
            (0..l)
                .map(|t| {
                    let ratio = if config.name == Algorithm::Gspo {
                        sequence_ratio
                    } else {
                        (rows.logp[i][t] - rows.logp_old[i][t]).exp()
                    };
                    let advantage = rows.advantages[i][t];
                    let objective = if config.name == Algorithm::Cispo {
                        ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * advantage * rows.logp[i][t]
                    } else {
                        surrogate(ratio, advantage)
                    };
                    objective - beta * k3(rows.logp[i][t], rows.logp_ref[i][t])
                })
                .collect()
        })
        .collect();
    let total: f64 = per_token.iter().flatten().sum();
    let n = LENGTHS.len() as f64;
    let objective = match config.name {
        Algorithm::Dapo | Algorithm::EpGrpo | Algorithm::EntropyMask | Algorithm::Cispo => {
            total / LENGTHS.iter().sum::<usize>() as f64
        }
        Algorithm::Grpo | Algorithm::Gspo => {
            per_token
                .iter()
                .map(|row| row.iter().sum::<f64>() / row.len() as f64)
                .sum::<f64>()
                / n
        }
        Algorithm::DrGrpo => total / (n * GENERATION_LIMIT as f64),
    };
    -objective
}

/// `[rows, WIDTH]` padded tensor of `values` (rows `range` of the minibatch).
fn padded(values: &[Vec<f64>], range: std::ops::Range<usize>) -> Tensor<Ad, 2> {
    let mut flat = vec![0.0f32; range.len() * WIDTH];
    for (r, row) in values[range.clone()].iter().enumerate() {
        for (t, v) in row.iter().enumerate() {
            flat[r * WIDTH + t] = *v as f32;
        }
    }
    Tensor::from_data(
        TensorData::new(flat, [range.len(), WIDTH]),
        &Default::default(),
    )
}

fn mask(range: std::ops::Range<usize>) -> Tensor<Ad, 2> {
    let ones: Vec<Vec<f64>> = LENGTHS.iter().map(|&l| vec![1.0; l]).collect();
    padded(&ones, range)
}

/// Loss of rows `range` with the given normaliser, and d loss / d logp of those rows.
fn loss_and_grad(
    config: &AlgorithmConfig,
    rows: &Rows,
    range: std::ops::Range<usize>,
    normalizer: LossNormalizer,
) -> (f64, Vec<f32>) {
    let logp = padded(&rows.logp, range.clone()).require_grad();
    let output = policy_loss(
        config,
        LossInputs {
            logp: logp.clone(),
            logp_old: padded(&rows.logp_old, range.clone()),
            logp_ref: padded(&rows.logp_ref, range.clone()),
            advantages: padded(&rows.advantages, range.clone()),
            mask: mask(range),
        },
        normalizer,
    );
    let value = output.loss.clone().into_scalar() as f64;
    let grads = output.loss.backward();
    let grad = logp
        .grad(&grads)
        .unwrap()
        .to_data()
        .to_vec::<f32>()
        .unwrap();
    (value, grad)
}

fn configs() -> Vec<AlgorithmConfig> {
    let mut configs: Vec<AlgorithmConfig> = [
        Algorithm::Grpo,
        Algorithm::DrGrpo,
        Algorithm::Dapo,
        Algorithm::Gspo,
        Algorithm::EpGrpo,
        Algorithm::Cispo,
    ]
    .into_iter()
    .map(AlgorithmConfig::for_algorithm)
    .collect();
    configs.push(AlgorithmConfig {
        kl_coef: 0.04,
        ..AlgorithmConfig::for_algorithm(Algorithm::Grpo)
    });
    configs
}

#[test]
fn accumulated_micro_batches_equal_the_whole_minibatch_and_the_published_formulas() {
    let rows = rows(7);
    let n = LENGTHS.len();
    for config in configs() {
        let counts = TokenCounts::from_lengths(LENGTHS);
        let normalizer = LossNormalizer::new(&config, counts, GENERATION_LIMIT);
        let (whole, whole_grad) = loss_and_grad(&config, &rows, 0..n, normalizer);
        let want = formula_loss(&config, &rows);
        assert!(
            (whole - want).abs() < 1e-6,
            "{:?}: whole minibatch {whole} vs formula {want}",
            config.name
        );
        let mut accumulated = 0.0;
        let mut accumulated_grad = Vec::new();
        for micro in 0..3 {
            let (loss, grad) = loss_and_grad(&config, &rows, 2 * micro..2 * micro + 2, normalizer);
            accumulated += loss;
            accumulated_grad.extend(grad);
        }
        assert!(
            (accumulated - want).abs() < 1e-6,
            "{:?}: sum of micro-batches {accumulated} vs formula {want}",
            config.name
        );
        let worst = whole_grad
            .iter()
            .zip(&accumulated_grad)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-7,
            "{:?}: gradients differ by {worst}",
            config.name
        );
    }
}

#[test]
fn micro_batch_means_would_weigh_short_micro_batches_more() {
    // The test above can fail: normalising each micro-batch by its own tokens (the old rule)
    // gives another token-mean loss on these rows.
    let rows = rows(7);
    let config = AlgorithmConfig::for_algorithm(Algorithm::Dapo);
    let mean_of_means = (0..3)
        .map(|micro| {
            let range = 2 * micro..2 * micro + 2;
            let own = LossNormalizer::whole_batch(&config, &mask(range.clone()));
            loss_and_grad(&config, &rows, range, own).0
        })
        .sum::<f64>()
        / 3.0;
    let want = formula_loss(&config, &rows);
    assert!(
        (mean_of_means - want).abs() > 1e-3,
        "{mean_of_means} vs {want}"
    );
}

#[test]
fn dr_grpo_divides_by_the_generation_limit_whatever_the_padded_width() {
    let config = AlgorithmConfig::for_algorithm(Algorithm::DrGrpo);
    let counts = TokenCounts::from_lengths(LENGTHS);
    let normalizer = LossNormalizer::new(&config, counts, GENERATION_LIMIT);
    assert_eq!(
        normalizer.denominator(),
        (LENGTHS.len() * GENERATION_LIMIT) as f64
    );
    let fixed = AlgorithmConfig {
        constant_length: Some(40),
        ..config
    };
    let normalizer = LossNormalizer::new(&fixed, counts, GENERATION_LIMIT);
    assert_eq!(normalizer.denominator(), (LENGTHS.len() * 40) as f64);
}

#[test]
fn token_counts_of_a_mask_and_of_lengths_agree_and_add() {
    let from_mask = TokenCounts::from_mask(&mask(0..6));
    let from_lengths = TokenCounts::from_lengths(LENGTHS);
    assert_eq!(from_mask, from_lengths);
    assert_eq!(
        TokenCounts::from_lengths([0, 3]) + TokenCounts::from_lengths([2]),
        TokenCounts {
            tokens: 5,
            non_empty: 2,
            responses: 3
        }
    );
}

#[test]
fn cispo_keeps_the_gradient_of_tokens_that_ppo_clips() {
    // d loss / d lp_θ per token, from the two objectives written out: PPO's clipped surrogate
    // has none where ρ > 1 + ε and Â > 0; CISPO's is −clip(ρ)·Â / tokens there too.
    let rows = rows(7);
    let n = LENGTHS.len();
    let tokens = LENGTHS.iter().sum::<usize>() as f64;
    let cispo = AlgorithmConfig::for_algorithm(Algorithm::Cispo);
    let ppo = AlgorithmConfig::for_algorithm(Algorithm::Dapo);
    let counts = TokenCounts::from_lengths(LENGTHS);
    let grad = |config: &AlgorithmConfig| {
        let normalizer = LossNormalizer::new(config, counts, GENERATION_LIMIT);
        loss_and_grad(config, &rows, 0..n, normalizer).1
    };
    let (cispo_grad, ppo_grad) = (grad(&cispo), grad(&ppo));
    let mut clipped_tokens = 0;
    for i in 0..n {
        for t in 0..LENGTHS[i] {
            let ratio = (rows.logp[i][t] - rows.logp_old[i][t]).exp();
            let advantage = rows.advantages[i][t];
            let want = -ratio.clamp(0.0, 1.28) * advantage / tokens;
            let got = cispo_grad[i * WIDTH + t] as f64;
            assert!(
                (got - want).abs() < 1e-6,
                "CISPO [{i}][{t}]: {got} vs {want}"
            );
            if ratio > 1.28 && advantage > 0.0 {
                clipped_tokens += 1;
                assert_eq!(ppo_grad[i * WIDTH + t], 0.0, "PPO [{i}][{t}]");
                assert!(got.abs() > 0.0);
            }
        }
    }
    assert!(
        clipped_tokens > 0,
        "no token above the clip: the test shows nothing"
    );
}
