//! Supervised warm start: teacher-forced cross-entropy on correct answers (`answer<stop>`), so
//! that the policy solves some problems before RL starts rewarding it.

use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use epgrpo_eval::Problem;
use epgrpo_kernels::KernelBackend;
use epgrpo_models::Decoder;

use crate::codec::Codec;
use crate::error::CliError;
use crate::optim::clip_global_norm;
use crate::scoring::{SequenceBatch, response_logp_entropy};

/// One optimiser step of mean token cross-entropy on `problems`; returns the new model, the
/// loss and the gradient norm before clipping (clipped to 1).
pub fn sft_step<B: AutodiffBackend + KernelBackend, O: Optimizer<Decoder<B>, B>>(
    model: Decoder<B>,
    optim: &mut O,
    codec: &Codec,
    problems: &[Problem],
    lr: f64,
    device: &B::Device,
) -> Result<(Decoder<B>, f64, f64), CliError> {
    let pairs = problems
        .iter()
        .map(|p| Ok((codec.prompt(p)?, codec.answer(p)?)))
        .collect::<Result<Vec<_>, CliError>>()?;
    let prompts: Vec<&[u32]> = pairs.iter().map(|(p, _)| p.as_slice()).collect();
    let answers: Vec<&[u32]> = pairs.iter().map(|(_, a)| a.as_slice()).collect();
    let batch = SequenceBatch::new(&prompts, &answers, codec.pad());
    let (logp, _) = response_logp_entropy(&model, &batch, 1.0, device);
    let loss = logp
        .sum()
        .neg()
        .div_scalar(batch.response_tokens().max(1) as f64);
    let value = loss.clone().into_scalar().to_f64();
    let mut grads = GradientsParams::from_grads(loss.backward(), &model);
    let norm = clip_global_norm(&model, &mut grads, 1.0);
    Ok((optim.step(lr, model, grads), value, norm))
}
