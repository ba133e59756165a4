//! Grouped rollout: B problems → G sampled answers each (one shared prefill per prompt, no
//! autodiff graph), decoded and scored by the verifier.

use epgrpo_eval::{Problem, Score, Verifier};
use epgrpo_kernels::KernelBackend;
use epgrpo_models::generate::generate_from;
use epgrpo_models::{Completion, Decoder, FinishReason, GenerationConfig, Sampling};

use crate::codec::Codec;
use crate::config::RolloutConfig;
use crate::error::CliError;
use crate::scoring::SequenceBatch;

/// The answers of one RL step with their rewards.
#[derive(Debug, Clone)]
pub struct Rollout {
    /// The B problems.
    pub problems: Vec<Problem>,
    /// Their prompt ids.
    pub prompts: Vec<Vec<u32>>,
    /// B × G completions, prompt-major.
    pub completions: Vec<Completion>,
    /// Reward of each completion.
    pub rewards: Vec<f64>,
    /// The text of each completion.
    pub texts: Vec<String>,
    /// Filler id of the policy's vocabulary.
    pub pad: u32,
    /// Whether each completion's answer was verified correct.
    pub correct: Vec<bool>,
    /// The verifier's full verdict on each completion (extracted answer, format).
    pub scores: Vec<Score>,
}

impl Rollout {
    /// Fraction of completions that hit `max_new_tokens` without a stop token.
    pub fn truncated_fraction(&self) -> f64 {
        let truncated = self
            .completions
            .iter()
            .filter(|c| c.finish == FinishReason::Length)
            .count();
        truncated as f64 / self.completions.len().max(1) as f64
    }

    /// Every completion behind its prompt, laid out for teacher forcing (rows in completion
    /// order).
    pub fn sequences(&self) -> SequenceBatch {
        let prompts: Vec<&[u32]> = self
            .completions
            .iter()
            .map(|c| self.prompts[c.prompt].as_slice())
            .collect();
        let answers: Vec<&[u32]> = self
            .completions
            .iter()
            .map(|c| c.tokens.as_slice())
            .collect();
        SequenceBatch::new(&prompts, &answers, self.pad)
    }

    /// Fraction of completions whose verdict a size or cost limit of the verifier decided
    /// ([`epgrpo_eval::GaveUp`]).
    pub fn gave_up_fraction(&self) -> f64 {
        let gave_up = self.scores.iter().filter(|s| s.gave_up.is_some()).count();
        gave_up as f64 / self.scores.len().max(1) as f64
    }

    /// Mean completion length in tokens.
    pub fn mean_length(&self) -> f64 {
        let total: usize = self.completions.iter().map(|c| c.tokens.len()).sum();
        total as f64 / self.completions.len().max(1) as f64
    }
}

/// Generation settings of a rollout.
pub fn generation_config(
    config: &RolloutConfig,
    codec: &Codec,
    samples: usize,
    seed: u64,
    greedy: bool,
) -> GenerationConfig {
    GenerationConfig {
        samples_per_prompt: samples,
        max_new_tokens: config.max_new_tokens,
        sampling: if greedy {
            Sampling::Greedy
        } else {
            Sampling::Random {
                temperature: config.temperature as f32,
                top_k: (config.top_k > 0).then_some(config.top_k),
                top_p: (config.top_p < 1.0).then_some(config.top_p as f32),
            }
        },
        stop_tokens: codec.stop_tokens(),
        seed,
        pad_token: codec.pad(),
    }
}

/// Samples `generation.samples_per_prompt` answers per problem with `model` and scores them.
pub fn rollout<B: KernelBackend>(
    model: &Decoder<B>,
    codec: &Codec,
    problems: Vec<Problem>,
    generation: &GenerationConfig,
    verifier: &Verifier,
    device: &B::Device,
) -> Result<Rollout, CliError> {
    rollout_from(model, codec, problems, 0, generation, verifier, device)
}

/// [`rollout`] of the problems from `first_prompt` on of a larger batch, sampled as in the
/// whole batch ([`epgrpo_models::generate::generate_from`]).
pub fn rollout_from<B: KernelBackend>(
    model: &Decoder<B>,
    codec: &Codec,
    problems: Vec<Problem>,
    first_prompt: usize,
    generation: &GenerationConfig,
    verifier: &Verifier,
    device: &B::Device,
) -> Result<Rollout, CliError> {
    let prompts = problems
        .iter()
        .map(|p| codec.prompt(p))
        .collect::<Result<Vec<_>, _>>()?;
    let completions = generate_from(model, &prompts, first_prompt, generation, device)
        .map_err(|e| CliError::Internal(format!("generation failed: {e}")))?;
    let g = generation.samples_per_prompt;
    let texts: Vec<String> = completions
        .iter()
        .map(|c| codec.decode(&c.tokens))
        .collect();
    let scores: Vec<Score> = completions
        .iter()
        .zip(&texts)
        .map(|(c, text)| verifier.score(text, &problems[c.prompt]))
        .collect();
    debug_assert_eq!(completions.len(), problems.len() * g);
    Ok(Rollout {
        problems,
        prompts,
        completions,
        rewards: scores.iter().map(|s| s.reward).collect(),
        correct: scores.iter().map(|s| s.correct).collect(),
        scores,
        texts,
        pad: codec.pad(),
    })
}
