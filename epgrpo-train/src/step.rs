//! One RL step after the rollout: score the answers under π_old and π_ref (no gradient), compute
//! the advantages (E1–E13), then μ epochs of minibatch updates of the clipped surrogate
//! (E14–E15) with AdamW, gradient accumulation and global-norm clipping.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use epgrpo_core::{
    GroupTensors, LossInputs, LossNormalizer, TokenCounts, policy_loss, token_advantages,
};
use epgrpo_kernels::KernelBackend;
use epgrpo_models::{Decoder, FinishReason, HeadLoss};

use crate::config::TrainConfig;
use crate::distributed::{Communicator, sync};
use crate::error::CliError;
use crate::metrics::{RlMetrics, quantile};
use crate::optim::clip_global_norm;
use crate::rollout::Rollout;
use crate::scoring::{
    response_logp_entropy_checkpointed, response_logp_entropy_chunked, response_logp_entropy_with,
};

/// What an RL update returns besides the new model.
#[derive(Debug, Clone)]
pub struct UpdateReport {
    /// Mean policy loss over the optimiser steps.
    pub loss: f64,
    /// Mean global gradient norm before clipping.
    pub grad_norm: f64,
    /// Optimiser steps refused because the loss or the gradient norm was not finite (the
    /// weights and the optimiser state stay as they were).
    pub skipped_steps: usize,
    /// Optimiser steps taken.
    pub optimizer_steps: usize,
    /// Refused steps after the last step taken (all of `skipped_steps` when none was taken).
    pub trailing_skipped: usize,
    /// Statistics of the step (the perf fields of the rollout are filled by the caller).
    pub metrics: RlMetrics,
}

impl UpdateReport {
    /// Optimiser steps refused in a row after this update, given `before` refused in a row
    /// before it (the non-finite guard of the training loop).
    pub fn refused_in_a_row(&self, before: usize) -> usize {
        if self.optimizer_steps > 0 {
            self.trailing_skipped
        } else {
            before + self.skipped_steps
        }
    }
}

/// Host copy of a `[N, C]` tensor.
fn host<B: Backend>(t: &Tensor<B, 2>) -> Vec<f32> {
    t.to_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("converted to f32")
}

/// Scores `rollout`, computes advantages and updates `model` in place of the optimiser.
#[allow(clippy::too_many_arguments)]
pub fn rl_update<B, O>(
    model: Decoder<B>,
    optim: &mut O,
    reference: &Decoder<B::InnerBackend>,
    rollout: &Rollout,
    config: &TrainConfig,
    lr: f64,
    device: &B::Device,
) -> (Decoder<B>, UpdateReport)
where
    B: AutodiffBackend + KernelBackend,
    B::InnerBackend: KernelBackend,
    O: Optimizer<Decoder<B>, B>,
{
    let single = &Communicator::Single;
    rl_update_on(model, optim, reference, rollout, config, lr, device, single)
        .expect("one process does not communicate")
}

/// [`rl_update`] on this rank's share of the prompt groups of a data-parallel step: the loss
/// denominators count every rank's minibatch rows, the gradients are summed over ranks before
/// clipping, and the statistics cover every rank's responses.
#[allow(clippy::too_many_arguments)]
pub fn rl_update_on<B, O>(
    model: Decoder<B>,
    optim: &mut O,
    reference: &Decoder<B::InnerBackend>,
    rollout: &Rollout,
    config: &TrainConfig,
    lr: f64,
    device: &B::Device,
    comm: &Communicator,
) -> Result<(Decoder<B>, UpdateReport), CliError>
where
    B: AutodiffBackend + KernelBackend,
    B::InnerBackend: KernelBackend,
    O: Optimizer<Decoder<B>, B>,
{
    let bucket_bytes = config.distributed.bucket_mb << 20;
    let temperature = config.rollout.temperature;
    let head = HeadLoss::from_chunk_tokens(config.train.head_chunk_tokens);
    let (b, g) = (rollout.problems.len(), config.algorithm.group_size);
    let batch = rollout.sequences();
    let (n, c) = (batch.rows, batch.response_width);

    // π_old and π_ref: no graph (E1, E6), in chunks of the update's micro-batch size.
    let scoring_start = Instant::now();
    let optim_config = &config.optim;
    let chunks = optim_config.minibatches * optim_config.grad_accumulation;
    let rows_per_chunk = n / chunks;
    let old = model.valid();
    let (logp_old, entropy) =
        response_logp_entropy_chunked(&old, &batch, temperature, rows_per_chunk, head, device);
    let (logp_ref, _) =
        response_logp_entropy_chunked(reference, &batch, temperature, rows_per_chunk, head, device);
    let mask = batch.mask::<B::InnerBackend>(device);
    let scoring_s = scoring_start.elapsed().as_secs_f64();

    // E2–E13 per prompt group.
    let groups = GroupTensors {
        rewards: Tensor::from_data(TensorData::new(rollout.rewards.clone(), [b, g]), device),
        entropy: entropy.clone().reshape([b, g, c]),
        logp_old: logp_old.clone().reshape([b, g, c]),
        logp_ref: logp_ref.clone().reshape([b, g, c]),
        mask: mask.clone().reshape([b, g, c]),
    };
    let advantages = token_advantages(&config.algorithm, &groups);
    let token_advantage: Tensor<B::InnerBackend, 2> = advantages.advantages.clone().reshape([n, c]);

    // E14–E15: μ epochs × minibatches × accumulated micro-batches. Every micro-batch divides by
    // the denominator of its whole minibatch, so accumulation equals one large batch.
    let update_start = Instant::now();
    let (mut losses, mut norms) = (Vec::new(), Vec::new());
    let (mut clip_low, mut clip_high, mut kl) = (0.0, 0.0, 0.0);
    let (mut skipped_steps, mut optimizer_steps, mut trailing_skipped) = (0, 0, 0);
    let rows_per_minibatch = rows_per_chunk * optim_config.grad_accumulation;
    let mut model = model;
    for _epoch in 0..optim_config.epochs {
        for minibatch in 0..optim_config.minibatches {
            let first = minibatch * rows_per_minibatch;
            let counts = TokenCounts::from_lengths(
                batch
                    .slice(first, first + rows_per_minibatch)
                    .response_lengths(),
            );
            let counts = sum_counts(comm, counts)?;
            let normalizer =
                LossNormalizer::new(&config.algorithm, counts, config.rollout.max_new_tokens);
            let mut accumulator = GradientsAccumulator::<Decoder<B>>::new();
            let mut loss_sum = 0.0;
            for micro in 0..optim_config.grad_accumulation {
                let start = first + micro * rows_per_chunk;
                let end = start + rows_per_chunk;
                let part = batch.slice(start, end);
                let (logp, checkpoints) = match config.train.activation_checkpointing {
                    true => {
                        let (logp, _, checkpoints) = response_logp_entropy_checkpointed(
                            &model,
                            &part,
                            temperature,
                            head,
                            device,
                        );
                        (logp, Some(checkpoints))
                    }
                    false => {
                        let (logp, _) =
                            response_logp_entropy_with(&model, &part, temperature, head, device);
                        (logp, None)
                    }
                };
                let rows = |t: &Tensor<B::InnerBackend, 2>| {
                    Tensor::<B, 2>::from_inner(t.clone().slice([start..end, 0..c]))
                };
                let output = policy_loss(
                    &config.algorithm,
                    LossInputs {
                        logp,
                        logp_old: rows(&logp_old),
                        logp_ref: rows(&logp_ref),
                        advantages: rows(&token_advantage),
                        mask: rows(&mask),
                    },
                    normalizer,
                );
                loss_sum += output.loss.clone().into_scalar().to_f64();
                clip_low += output.stats.clip_low_frac.into_scalar().to_f64();
                clip_high += output.stats.clip_high_frac.into_scalar().to_f64();
                kl += output.stats.kl_mean.into_scalar().to_f64();
                let grads = match checkpoints {
                    Some(checkpoints) => model.backward_checkpointed(output.loss, checkpoints),
                    None => GradientsParams::from_grads(output.loss.backward(), &model),
                };
                accumulator.accumulate(&model, grads);
            }
            let mut grads = accumulator.grads();
            sync::sum_gradients(&model, &mut grads, comm, bucket_bytes)?;
            let loss_sum = {
                let mut total = [loss_sum];
                comm.sum_f64(&mut total)?;
                total[0]
            };
            let norm = clip_global_norm(&model, &mut grads, optim_config.max_grad_norm);
            norms.push(norm);
            losses.push(loss_sum);
            // A non-finite loss or gradient refuses the step: the weights and AdamW's moments
            // stay as they were.
            if loss_sum.is_finite() && norm.is_finite() {
                model = optim.step(lr, model, grads);
                optimizer_steps += 1;
                trailing_skipped = 0;
            } else {
                skipped_steps += 1;
                trailing_skipped += 1;
            }
        }
    }
    let update_s = update_start.elapsed().as_secs_f64();
    let passes = (optim_config.epochs * chunks) as f64;
    let tokens = batch.response_tokens() as f64;

    // Statistics on the host (one copy each).
    let mask_h = host(&mask);
    let valid = |values: Vec<f32>| -> Vec<f32> {
        values
            .into_iter()
            .zip(&mask_h)
            .filter(|(_, m)| **m > 0.0)
            .map(|(v, _)| v)
            .collect()
    };
    let mean =
        |values: &[f32]| values.iter().map(|&v| v as f64).sum::<f64>() / values.len().max(1) as f64;
    let mut entropies = comm.gather_f32(valid(host(&entropy)))?;
    let weights = comm.gather_f32(valid(host(
        &advantages.token_weight.clone().reshape([n, c]),
    )))?;
    let gate_mean = mean(&weights);
    let gate_var = weights
        .iter()
        .map(|&w| (w as f64 - gate_mean).powi(2))
        .sum::<f64>()
        / weights.len().max(1) as f64;
    let all_adv = comm.gather_f32(valid(host(&token_advantage)))?;
    let progress = comm.gather_f32(valid(host(&advantages.progress.clone().reshape([n, c]))))?;
    let outcome: Vec<f32> = all_adv
        .iter()
        .zip(&progress)
        .map(|(a, p)| (a - p).abs())
        .collect();
    let drift: Vec<f32> = comm
        .gather_f32(valid(host(&(logp_old - logp_ref))))?
        .iter()
        .map(|d| d.abs())
        .collect();
    let zero_var = advantages
        .zero_variance
        .clone()
        .int()
        .to_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("ints");
    let zero_var = comm.gather_f64(zero_var.into_iter().map(|z| z as f64).collect())?;
    let rewards = comm.gather_f64(rollout.rewards.clone())?;
    let correct = comm.gather_f64(rollout.correct.iter().map(|&c| f64::from(c)).collect())?;
    let lengths = comm.gather_f64(
        rollout
            .completions
            .iter()
            .map(|c| c.tokens.len() as f64)
            .collect(),
    )?;
    let mut truncated = [rollout
        .completions
        .iter()
        .filter(|c| c.finish == FinishReason::Length)
        .count() as f64];
    comm.sum_f64(&mut truncated)?;
    let mut per_pass = [clip_low, clip_high, kl];
    comm.sum_f64(&mut per_pass)?;
    let ranks = comm.world_size() as f64;
    let [clip_low, clip_high, kl] = per_pass.map(|v| v / ranks);
    let reward_mean = rewards.iter().sum::<f64>() / rewards.len().max(1) as f64;
    let reward_var = rewards
        .iter()
        .map(|r| (r - reward_mean).powi(2))
        .sum::<f64>()
        / rewards.len().max(1) as f64;
    let metrics = RlMetrics {
        reward_mean,
        reward_std: reward_var.sqrt(),
        accuracy: correct.iter().sum::<f64>() / correct.len().max(1) as f64,
        zero_var_frac: zero_var.iter().filter(|&&z| z != 0.0).count() as f64
            / zero_var.len().max(1) as f64,
        nonzero_adv_frac: all_adv.iter().filter(|a| a.abs() > 1e-8).count() as f64
            / all_adv.len().max(1) as f64,
        outcome_abs_mean: mean(&outcome),
        progress_abs_mean: mean(&progress.iter().map(|p| p.abs()).collect::<Vec<_>>()),
        entropy_mean: mean(&entropies),
        entropy_p10: quantile(&mut entropies, 0.1),
        entropy_p50: quantile(&mut entropies, 0.5),
        entropy_p90: quantile(&mut entropies, 0.9),
        gate_mean,
        gate_std: gate_var.sqrt(),
        drift_abs_mean: mean(&drift),
        clip_low_frac: clip_low / passes,
        clip_high_frac: clip_high / passes,
        kl_mean: kl / passes,
        response_len_mean: lengths.iter().sum::<f64>() / lengths.len().max(1) as f64,
        truncated_frac: truncated[0] / lengths.len().max(1) as f64,
        verifier_gave_up: rollout.gave_up_fraction(),
        rollout_tokens_per_s: 0.0,
        rollout_tokens: 0,
        rollout_rounds: 0,
        tied_kept: 0,
        scoring_tokens_per_s: 2.0 * tokens / scoring_s.max(1e-9),
        update_tokens_per_s: tokens * optim_config.epochs as f64 / update_s.max(1e-9),
        skipped_steps,
    };
    let report = UpdateReport {
        loss: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
        grad_norm: norms.iter().sum::<f64>() / norms.len().max(1) as f64,
        skipped_steps,
        optimizer_steps,
        trailing_skipped,
        metrics,
    };
    Ok((model, report))
}

/// The token counts of every rank's share of a minibatch (exact: integers summed in f64).
fn sum_counts(comm: &Communicator, counts: TokenCounts) -> Result<TokenCounts, CliError> {
    let mut values = [counts.tokens, counts.non_empty, counts.responses].map(|v| v as f64);
    comm.sum_f64(&mut values)?;
    let [tokens, non_empty, responses] = values.map(|v| v as usize);
    Ok(TokenCounts {
        tokens,
        non_empty,
        responses,
    })
}
