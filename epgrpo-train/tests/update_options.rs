//! The memory options of the RL update change memory, not the update: with activation
//! checkpointing (`[train] activation_checkpointing`) and with materialised or chunked head
//! logits (`[train] head_chunk_tokens`) one SGD step moves every weight as the plain update does.

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, Module, ModuleVisitor, Param};
use burn::optim::SgdConfig;
use burn::prelude::*;
use epgrpo_eval::{Verifier, VerifierConfig};
use epgrpo_models::Decoder;
use epgrpo_train::codec::Codec;
use epgrpo_train::config::TrainConfig;
use epgrpo_train::policy::decoder_config;
use epgrpo_train::rollout::{generation_config, rollout};
use epgrpo_train::step::rl_update;
use epgrpo_train::task::{ArithmeticTask, Split};

type B = Autodiff<NdArray<f32>>;

/// Every float parameter, flattened in visiting order.
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

#[test]
fn checkpointing_and_head_chunks_do_not_change_the_update() {
    let device = Default::default();
    let mut config = TrainConfig::default();
    config.model.hidden_size = 32;
    config.model.intermediate_size = 64;
    config.model.num_hidden_layers = 2;
    config.algorithm.group_size = 8;
    config.rollout.prompts_per_step = 2;
    config.optim.grad_accumulation = 2;
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
    // Rewards for an even first token, answers cut to different lengths (padding).
    for (i, completion) in batch.completions.iter_mut().enumerate() {
        let even = completion.tokens.first().is_some_and(|t| t % 2 == 0);
        batch.rewards[i] = if even { 1.0 } else { 0.0 };
        completion.tokens.truncate(1 + i % 5);
    }
    let reference = model.valid();
    let start = weights(&model);
    let update = |checkpointing: bool, chunk: usize| {
        let mut config = config.clone();
        config.train.activation_checkpointing = checkpointing;
        config.train.head_chunk_tokens = chunk;
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
    let plain = update(false, 0);
    let largest = plain.iter().fold(0.0f32, |m, d| m.max(d.abs()));
    assert!(largest > 1e-4, "the update did not move ({largest})");
    for (checkpointing, chunk) in [(true, 0), (false, 7), (true, 7)] {
        let other = update(checkpointing, chunk);
        let worst = plain
            .iter()
            .zip(&other)
            .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            worst <= 1e-4 * largest,
            "checkpointing {checkpointing}, chunk {chunk}: differs by {worst} (largest {largest})"
        );
    }
}
