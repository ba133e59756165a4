//! The work split: whole prompt groups per rank, laid out so that every optimiser minibatch of
//! the data-parallel run holds the same prompts as the minibatch of one process.

use epgrpo_core::config::TokenWeighting;
use epgrpo_eval::{Problem, Verifier};
use epgrpo_kernels::KernelBackend;
use epgrpo_models::{Decoder, GenerationConfig};

use crate::codec::Codec;
use crate::config::TrainConfig;
use crate::error::CliError;
use crate::rollout::{Rollout, rollout_from};

/// The global indices (in `0..prompts`) of the prompts that `rank` of `world` generates and
/// trains on, in its local order. Minibatch `m` of one process is prompts
/// `[m·P/M, (m+1)·P/M)`; each rank takes an equal contiguous share of every minibatch, so its
/// local minibatch `m` is its share of the global minibatch `m`. With one process: `0..prompts`.
pub fn prompts_of_rank(
    prompts: usize,
    minibatches: usize,
    world: usize,
    rank: usize,
) -> Vec<usize> {
    if world == 1 {
        return (0..prompts).collect();
    }
    let per_minibatch = prompts / minibatches;
    let share = per_minibatch / world;
    (0..minibatches)
        .flat_map(|m| {
            let first = m * per_minibatch + rank * share;
            first..first + share
        })
        .collect()
}

/// The rollout of `problems`, whose global indices in the step's batch are `indices`: every
/// prompt is sampled as in the whole batch (one generation call per run of consecutive
/// indices; one call for a single process).
pub fn rollout<B: KernelBackend>(
    model: &Decoder<B>,
    codec: &Codec,
    problems: Vec<Problem>,
    indices: &[usize],
    generation: &GenerationConfig,
    verifier: &Verifier,
    device: &B::Device,
) -> Result<Rollout, CliError> {
    let mut runs: Vec<(usize, Vec<Problem>)> = Vec::new();
    for (problem, &index) in problems.into_iter().zip(indices) {
        match runs.last_mut() {
            Some((first, run)) if *first + run.len() == index => run.push(problem),
            _ => runs.push((index, vec![problem])),
        }
    }
    let mut parts = runs
        .into_iter()
        .map(|(first, run)| rollout_from(model, codec, run, first, generation, verifier, device));
    let mut whole = match parts.next() {
        Some(part) => part?,
        None => rollout_from(model, codec, Vec::new(), 0, generation, verifier, device)?,
    };
    for part in parts {
        let Rollout {
            problems,
            prompts,
            completions,
            rewards,
            texts,
            pad: _,
            correct,
            scores,
        } = part?;
        let offset = whole.problems.len();
        whole.problems.extend(problems);
        whole.prompts.extend(prompts);
        whole
            .completions
            .extend(completions.into_iter().map(|mut c| {
                c.prompt += offset;
                c
            }));
        whole.rewards.extend(rewards);
        whole.texts.extend(texts);
        whole.correct.extend(correct);
        whole.scores.extend(scores);
    }
    Ok(whole)
}

/// Checks that `config` splits over `world` processes: whole prompt groups per rank and per
/// minibatch, and micro-batches that divide each rank's rows.
pub fn check(config: &TrainConfig, world: usize) -> Result<(), CliError> {
    if world == 1 {
        return Ok(());
    }
    let p = config.rollout.prompts_per_step;
    let o = &config.optim;
    if p % (world * o.minibatches) != 0 {
        return Err(CliError::Input(format!(
            "rollout.prompts_per_step ({p}) must be divisible by the number of processes ({world}) \
             × optim.minibatches ({}): every rank takes whole prompt groups of every minibatch",
            o.minibatches
        )));
    }
    let rows = p / world * config.algorithm.group_size;
    let chunks = o.minibatches * o.grad_accumulation;
    if rows % chunks != 0 {
        return Err(CliError::Input(format!(
            "each of the {world} processes trains on {rows} responses per step, which must be \
             divisible by optim.minibatches × optim.grad_accumulation ({chunks})"
        )));
    }
    if let TokenWeighting::TopEntropy { .. } = config.algorithm.token_weighting() {
        return Err(CliError::Input(format!(
            "algorithm.name = \"entropy_mask\" takes the entropy quantile over the whole batch, \
             which is not split over processes yet: run it with one process (got {world})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use epgrpo_core::Algorithm;

    #[test]
    fn every_prompt_lands_on_one_rank_inside_its_minibatch() {
        for (prompts, minibatches, world) in [(12, 2, 3), (8, 1, 2), (8, 2, 2), (6, 1, 3)] {
            let mut seen: Vec<usize> = (0..world)
                .flat_map(|r| prompts_of_rank(prompts, minibatches, world, r))
                .collect();
            for rank in 0..world {
                let local = prompts_of_rank(prompts, minibatches, world, rank);
                let share = local.len() / minibatches;
                for (m, chunk) in local.chunks(share).enumerate() {
                    let per = prompts / minibatches;
                    assert!(chunk.iter().all(|&i| i / per == m), "{local:?}");
                }
            }
            seen.sort_unstable();
            assert_eq!(seen, (0..prompts).collect::<Vec<_>>());
        }
        assert_eq!(prompts_of_rank(12, 2, 3, 1), vec![2, 3, 8, 9]);
        assert_eq!(prompts_of_rank(5, 3, 1, 0), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn a_batch_that_does_not_split_is_refused_by_name() {
        let mut config = TrainConfig::default();
        config.rollout.prompts_per_step = 6;
        config.optim.minibatches = 2;
        let error = check(&config, 2).unwrap_err().to_string();
        assert!(error.contains("rollout.prompts_per_step (6)"), "{error}");
        check(&config, 3).unwrap();
        config.optim.grad_accumulation = 5;
        let error = check(&config, 3).unwrap_err().to_string();
        assert!(error.contains("optim.grad_accumulation"), "{error}");
        config.optim.grad_accumulation = 1;
        config.algorithm.name = Algorithm::EntropyMask;
        assert!(
            check(&config, 3)
                .unwrap_err()
                .to_string()
                .contains("entropy_mask")
        );
        check(&config, 1).unwrap();
    }
}
