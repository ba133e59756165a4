//! The RL update moves the policy the right way: after one step on a group where some answers
//! were rewarded, the rewarded answers become more likely and the others less likely.

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use epgrpo_core::Algorithm;
use epgrpo_eval::{Verifier, VerifierConfig};
use epgrpo_models::Decoder;
use epgrpo_train::codec::Codec;
use epgrpo_train::config::TrainConfig;
use epgrpo_train::optim::adamw;
use epgrpo_train::policy::decoder_config;
use epgrpo_train::rollout::{generation_config, rollout};
use epgrpo_train::scoring::{SequenceBatch, response_logp_entropy};
use epgrpo_train::step::rl_update;
use epgrpo_train::task::{ArithmeticTask, Split};

type B = Autodiff<NdArray<f32>>;

/// Sum of the answer log-probs of each row under `model`.
fn sequence_logps(model: &Decoder<NdArray<f32>>, batch: &SequenceBatch) -> Vec<f32> {
    let (logp, _) = response_logp_entropy(model, batch, 1.0, &Default::default());
    let c = batch.response_width;
    let values = logp.to_data().convert::<f32>().to_vec::<f32>().unwrap();
    values.chunks(c).map(|row| row.iter().sum()).collect()
}

#[test]
fn one_update_raises_rewarded_answers_and_lowers_the_rest() {
    for name in [
        Algorithm::Grpo,
        Algorithm::Dapo,
        Algorithm::EpGrpo,
        Algorithm::DrGrpo,
        Algorithm::Gspo,
        Algorithm::Cispo,
    ] {
        let device = Default::default();
        let mut config = TrainConfig::default();
        config.model.hidden_size = 32;
        config.model.intermediate_size = 64;
        config.model.num_hidden_layers = 1;
        config.algorithm.name = name;
        config.algorithm.group_size = 8;
        config.rollout.prompts_per_step = 2;
        let model = Decoder::<B>::init(&decoder_config(&config.model).unwrap(), &device);
        let reference = model.valid();
        let task = ArithmeticTask::new(&config.task);
        let problems = (0..2).map(|i| task.problem(Split::Train, 1, i)).collect();
        let codec = Codec::chars(&config.task.prompt);
        let generation = generation_config(&config.rollout, &codec, 8, 5, false);
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
        // An untrained model is never right: reward the answers that start with an even digit.
        for (i, completion) in batch.completions.iter().enumerate() {
            let even = completion
                .tokens
                .first()
                .is_some_and(|t| (t.wrapping_sub(3)) % 2 == 0);
            batch.rewards[i] = if even { 1.0 } else { 0.0 };
        }
        let sequences = batch.sequences();
        let before = sequence_logps(&model.valid(), &sequences);
        let mut optim = adamw(0.0).init::<B, Decoder<B>>();
        let (model, _) = rl_update(
            model, &mut optim, &reference, &batch, &config, 1e-3, &device,
        );
        let after = sequence_logps(&model.valid(), &sequences);
        let mean_change = |rewarded: bool| {
            let changes: Vec<f32> = (0..before.len())
                .filter(|&i| (batch.rewards[i] > 0.5) == rewarded)
                .map(|i| after[i] - before[i])
                .collect();
            changes.iter().sum::<f32>() / changes.len().max(1) as f32
        };
        let (up, down) = (mean_change(true), mean_change(false));
        assert!(
            up > 0.0 && down < 0.0,
            "{name:?}: rewarded {up}, others {down}"
        );
    }
}
