//! `generate`: batched autoregressive generation of `G` completions per prompt. Prompts are
//! left-padded into one batch and prefilled once; the KV cache and the last logits are then
//! repeated `G` times, and every row decodes one token per step with its own seeded generator
//! until a stop token or `max_new_tokens`. Token ids only: no tokenizer, no rewards.
//!
//! Run it on a non-autodiff backend (`decoder.valid()` for an autodiff model) so that no graph
//! is recorded.

use burn::prelude::*;
use epgrpo_kernels::KernelBackend;

use crate::decoder::Decoder;
use crate::padding::LeftPadding;
use crate::sampling::{Sampling, SamplingError, SequenceRng};

/// Settings of one generation call.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    /// Completions drawn per prompt (`G`).
    pub samples_per_prompt: usize,
    /// Longest completion, in tokens.
    pub max_new_tokens: usize,
    /// Greedy or random sampling.
    pub sampling: Sampling,
    /// Tokens that end a completion (kept as its last token).
    pub stop_tokens: Vec<u32>,
    /// Run seed; sample `g` of prompt `p` uses `SequenceRng::for_sequence(seed, p, g)`.
    pub seed: u64,
    /// Filler token id written left of shorter prompts (never attended to).
    pub pad_token: u32,
}

/// Why a completion ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// It produced a stop token.
    Stop,
    /// It reached `max_new_tokens`.
    Length,
}

/// One generated completion.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// Index of its prompt.
    pub prompt: usize,
    /// Index among the prompt's samples.
    pub sample: usize,
    /// Generated tokens (the stop token included when `finish` is `Stop`).
    pub tokens: Vec<u32>,
    /// Per token, `log_softmax(logits / temperature)` of the chosen token (see
    /// [`crate::sampling::Draw`]).
    pub logprobs: Vec<f32>,
    /// Why it ended.
    pub finish: FinishReason,
}

/// Requests [`generate`] refuses.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenerateError {
    /// A prompt has no tokens.
    #[error("prompt {index} is empty")]
    EmptyPrompt {
        /// Index of the prompt.
        index: usize,
    },
    /// A setting is out of range.
    #[error("generation setting `{field}`: {reason}")]
    InvalidSetting {
        /// Field of [`GenerationConfig`] or [`Sampling`].
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl GenerationConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), GenerateError> {
        let bad = |field, reason: &str| GenerateError::InvalidSetting {
            field,
            reason: reason.into(),
        };
        if self.samples_per_prompt == 0 {
            return Err(bad("samples_per_prompt", "must be at least 1"));
        }
        self.sampling.validate().map_err(|e| match e {
            SamplingError::InvalidSetting { field, reason } => bad(field, reason),
            other => bad("sampling", &other.to_string()),
        })
    }
}

/// Draws `samples_per_prompt` completions for every prompt, ordered prompt-major
/// (`prompt 0 sample 0, prompt 0 sample 1, …`).
pub fn generate<B: KernelBackend>(
    decoder: &Decoder<B>,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    device: &B::Device,
) -> Result<Vec<Completion>, GenerateError> {
    generate_from(decoder, prompts, 0, config, device)
}

/// [`generate`] for the prompts from `first_prompt` on of a larger batch (one process's share
/// of a data-parallel step): prompt `i` draws its samples as prompt `first_prompt + i` of the
/// whole batch does, so the samples do not depend on how the batch is split.
pub fn generate_from<B: KernelBackend>(
    decoder: &Decoder<B>,
    prompts: &[Vec<u32>],
    first_prompt: usize,
    config: &GenerationConfig,
    device: &B::Device,
) -> Result<Vec<Completion>, GenerateError> {
    config.validate()?;
    if let Some(index) = prompts.iter().position(Vec::is_empty) {
        return Err(GenerateError::EmptyPrompt { index });
    }
    let g = config.samples_per_prompt;
    let rows = prompts.len() * g;
    let mut completions: Vec<Completion> = (0..rows)
        .map(|r| Completion {
            prompt: r / g,
            sample: r % g,
            tokens: Vec::new(),
            logprobs: Vec::new(),
            finish: FinishReason::Length,
        })
        .collect();
    if prompts.is_empty() || config.max_new_tokens == 0 {
        return Ok(completions);
    }
    let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let lengths: Vec<usize> = prompts.iter().map(Vec::len).collect();
    let padding = LeftPadding::from_lengths(&lengths, width);
    let tokens: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            std::iter::repeat_n(config.pad_token, width - p.len())
                .chain(p.iter().copied())
                .collect()
        })
        .collect();

    let mut cache = decoder.new_cache(padding, width + config.max_new_tokens, device);
    let prefill = decoder.hidden_states_cached(token_tensor(&tokens, device), &mut cache);
    let mut cache = cache.repeat_rows(g);
    let prompt_logits = last_logits(decoder, prefill);
    let vocab = prompt_logits.len() / prompts.len();
    let mut logits: Vec<f32> = prompt_logits
        .chunks_exact(vocab)
        .flat_map(|row| std::iter::repeat_n(row, g).flatten().copied())
        .collect();

    let mut rngs: Vec<SequenceRng> = (0..rows)
        .map(|r| SequenceRng::for_sequence(config.seed, first_prompt + r / g, r % g))
        .collect();
    let mut done = vec![false; rows];
    for step in 0..config.max_new_tokens {
        let mut next = vec![config.pad_token; rows];
        for r in 0..rows {
            if done[r] {
                continue;
            }
            let draw = config
                .sampling
                .draw(&logits[r * vocab..(r + 1) * vocab], &mut rngs[r]);
            let completion = &mut completions[r];
            completion.tokens.push(draw.token);
            completion.logprobs.push(draw.logprob);
            next[r] = draw.token;
            if config.stop_tokens.contains(&draw.token) {
                completion.finish = FinishReason::Stop;
                done[r] = true;
            }
        }
        if done.iter().all(|&d| d) || step + 1 == config.max_new_tokens {
            break;
        }
        let column: Vec<Vec<u32>> = next.into_iter().map(|t| vec![t]).collect();
        let hidden = decoder.hidden_states_cached(token_tensor(&column, device), &mut cache);
        logits = last_logits(decoder, hidden);
    }
    Ok(completions)
}

/// Rows of equal length as an Int tensor.
///
/// # Shapes
/// - output: `[rows, width]`
fn token_tensor<B: Backend>(rows: &[Vec<u32>], device: &B::Device) -> Tensor<B, 2, Int> {
    let width = rows.first().map_or(0, Vec::len);
    let flat: Vec<i64> = rows.iter().flatten().map(|&t| i64::from(t)).collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), width]), device)
}

/// Logits of the last position of every row, copied to the host. Only the last position is
/// sampled from, so the head runs on that one alone (it is most of a prefill's head cost).
///
/// # Shapes
/// - `hidden`: final-norm hidden states `[rows, seq, hidden]` → host `rows * vocab`, row-major
fn last_logits<B: KernelBackend>(decoder: &Decoder<B>, hidden: Tensor<B, 3>) -> Vec<f32> {
    let [b, t, d] = hidden.dims();
    let logits = decoder.logits(hidden.slice([0..b, t - 1..t, 0..d]));
    let v = logits.dims()[2];
    // As `[rows, vocab]` the CPU backend hands over its buffer; the `[rows, 1, vocab]` view
    // was copied element by element (≈8 % of a decode step).
    logits.reshape([b, v]).into_data().iter::<f32>().collect()
}
