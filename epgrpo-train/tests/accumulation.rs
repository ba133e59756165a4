//! The RL update under gradient accumulation and with non-finite inputs: accumulating unequal
//! micro-batches moves the weights as one large batch does (each micro-batch divides by the
//! token count of its whole minibatch), and a non-finite loss refuses the optimiser step.

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::SgdConfig;
use burn::prelude::*;
use epgrpo_core::Algorithm;
use epgrpo_eval::{Verifier, VerifierConfig};
use epgrpo_models::Decoder;
use epgrpo_train::codec::Codec;
use epgrpo_train::config::TrainConfig;
use epgrpo_train::optim::adamw;
use epgrpo_train::policy::decoder_config;
use epgrpo_train::rollout::{Rollout, generation_config, rollout};
use epgrpo_train::step::rl_update;
use epgrpo_train::task::{ArithmeticTask, Split};

type B = Autodiff<NdArray<f32>>;

/// Every float parameter of a module, flattened in visiting order.
struct Weights(Vec<f32>);

impl<Bk: Backend> ModuleVisitor<Bk> for Weights {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
        let values = param.val().to_data().convert::<f32>().to_vec::<f32>();
        self.0.extend(values.expect("f32 weights"));
    }
}

fn weights(model: &Decoder<B>) -> Vec<f32> {
    let mut collect = Weights(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// A tiny policy, its rollout of 2 prompts × 8 answers with rewards for an even first token, and
/// the config.
fn setup(name: Algorithm) -> (TrainConfig, Decoder<B>, Rollout) {
    let device = Default::default();
    let mut config = TrainConfig::default();
    config.model.hidden_size = 32;
    config.model.intermediate_size = 64;
    config.model.num_hidden_layers = 1;
    config.algorithm.name = name;
    config.algorithm.group_size = 8;
    config.rollout.prompts_per_step = 2;
    let model = Decoder::<B>::init(&decoder_config(&config.model).unwrap(), &device);
    let task = ArithmeticTask::new(&config.task);
    let problems = (0..2).map(|i| task.problem(Split::Train, 3, i)).collect();
    let codec = Codec::chars(&config.task.prompt);
    let generation = generation_config(&config.rollout, &codec, 8, 11, false);
    let verifier = Verifier::new(config.task.kind, VerifierConfig::default()).unwrap();
    let mut batch = rollout(
        &model.valid(),
        &codec,
        problems,
        &generation,
        &verifier,
        &device,
    )
    .unwrap();
    for (i, completion) in batch.completions.iter().enumerate() {
        let even = completion
            .tokens
            .first()
            .is_some_and(|t| t.wrapping_sub(3) % 2 == 0);
        batch.rewards[i] = if even { 1.0 } else { 0.0 };
    }
    (config, model, batch)
}

#[test]
fn accumulating_unequal_micro_batches_equals_one_large_batch() {
    for name in [
        Algorithm::Grpo,
        Algorithm::DrGrpo,
        Algorithm::Dapo,
        Algorithm::EpGrpo,
    ] {
        let (mut config, model, mut batch) = setup(name);
        // Four micro-batches of 4 answers: their token counts must differ for the test to mean
        // anything (a per-micro-batch token mean would then weigh them unequally), so the
        // answers are cut to lengths 1, 2, …, 5, 1, … (an untrained model mostly runs to the
        // limit).
        for (i, completion) in batch.completions.iter_mut().enumerate() {
            completion.tokens.truncate(1 + i % 5);
        }
        let lengths = batch.sequences().response_lengths();
        let per_micro: Vec<usize> = lengths.chunks(4).map(|c| c.iter().sum()).collect();
        assert!(
            per_micro.iter().any(|&t| t != per_micro[0]),
            "equal micro-batches {per_micro:?}"
        );
        let device = Default::default();
        let reference = model.valid();
        let start = weights(&model);
        let mut update = |accumulation: usize| {
            config.optim.grad_accumulation = accumulation;
            let mut sgd = SgdConfig::new().init::<B, Decoder<B>>();
            let (next, report) = rl_update(
                model.clone(),
                &mut sgd,
                &reference,
                &batch,
                &config,
                0.5,
                &device,
            );
            assert_eq!(report.optimizer_steps, 1);
            weights(&next)
                .iter()
                .zip(&start)
                .map(|(w, w0)| w - w0)
                .collect::<Vec<f32>>()
        };
        let whole = update(1);
        let accumulated = update(4);
        let largest = whole.iter().fold(0.0f32, |m, d| m.max(d.abs()));
        let worst = whole
            .iter()
            .zip(&accumulated)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            largest > 1e-4,
            "{name:?}: the update did not move ({largest})"
        );
        assert!(
            worst <= 1e-4 * largest,
            "{name:?}: accumulated update differs by {worst} (largest change {largest})"
        );
    }
}

#[test]
fn a_non_finite_loss_refuses_the_step_and_is_reported() {
    let (mut config, model, mut batch) = setup(Algorithm::EpGrpo);
    batch.rewards[0] = f64::NAN;
    let device = Default::default();
    let reference = model.valid();
    let start = weights(&model);
    let mut optim = adamw(0.0).init::<B, Decoder<B>>();
    let (next, report) = rl_update(
        model.clone(),
        &mut optim,
        &reference,
        &batch,
        &config,
        1e-2,
        &device,
    );
    assert!(!report.loss.is_finite(), "loss {}", report.loss);
    assert_eq!((report.skipped_steps, report.optimizer_steps), (1, 0));
    assert_eq!(report.metrics.skipped_steps, 1);
    assert_eq!(report.refused_in_a_row(2), 3);
    assert_eq!(weights(&next), start, "a refused step changed the weights");

    // Two minibatches (one prompt group each): the NaN group's step is refused, the other taken.
    config.optim.minibatches = 2;
    let (next, report) = rl_update(
        model, &mut optim, &reference, &batch, &config, 1e-2, &device,
    );
    assert_eq!((report.skipped_steps, report.optimizer_steps), (1, 1));
    assert_eq!(report.refused_in_a_row(4), 0);
    assert_ne!(weights(&next), start);
}
