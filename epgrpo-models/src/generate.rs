//! `generate`: batched autoregressive generation of `G` completions per prompt. Prompts are
//! left-padded into one batch and prefilled once; the KV cache and the last logits are then
//! repeated `G` times, and every row decodes one token per step with its own seeded generator
//! until a stop token or `max_new_tokens`. The next tokens are drawn on the device
//! ([`crate::device_sampling`]) from per-row uniforms of the host generators, and finished
//! rows leave the batch and the KV cache ([`Compaction`]). Token ids only: no tokenizer, no
//! rewards.
//!
//! Run it on a non-autodiff backend (`decoder.valid()` for an autodiff model) so that no graph
//! is recorded.

use burn::prelude::*;
use epgrpo_kernels::KernelBackend;

use crate::decoder::Decoder;
use crate::device_sampling::draw_rows;
use crate::kv_cache::RowOutOfRange;
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
    /// The device sampler refused its input.
    #[error(transparent)]
    Sampling(#[from] SamplingError),
    /// Compacting the KV cache named a missing row.
    #[error(transparent)]
    Cache(#[from] RowOutOfRange),
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
/// whole batch does, so the samples do not depend on how the batch is split. Finished rows
/// leave the batch as [`Compaction::default`] says.
pub fn generate_from<B: KernelBackend>(
    decoder: &Decoder<B>,
    prompts: &[Vec<u32>],
    first_prompt: usize,
    config: &GenerationConfig,
    device: &B::Device,
) -> Result<Vec<Completion>, GenerateError> {
    generate_with_compaction(
        decoder,
        prompts,
        first_prompt,
        config,
        Compaction::default(),
        device,
    )
}

/// When finished rows leave the decode batch. Completions do not depend on it: a row's draws
/// come from its own generator, whatever its place in the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compaction {
    /// Finished rows stay (fed the pad token, their draws ignored) until every row is done.
    Off,
    /// The batch is compacted after every step in which a row finished.
    EveryStop,
    /// The batch is compacted once finished rows make up at least 1/8 of it: at most 1/8 of a
    /// step is wasted on them, and each compaction (a copy of the live rows' KV cache) shrinks
    /// the batch by at least 1/8.
    #[default]
    Eighth,
}

impl Compaction {
    /// Whether a batch of `batch` rows, `finished` of them done, is compacted now.
    fn due(self, finished: usize, batch: usize) -> bool {
        match self {
            Compaction::Off => false,
            Compaction::EveryStop => finished > 0,
            Compaction::Eighth => finished > 0 && finished * 8 >= batch,
        }
    }
}

/// [`generate_from`] with an explicit [`Compaction`] policy. Per token step the logits stay on
/// the device ([`draw_rows`]); only `[rows]` uniforms go there and `[rows]` tokens and
/// log-probs come back.
pub fn generate_with_compaction<B: KernelBackend>(
    decoder: &Decoder<B>,
    prompts: &[Vec<u32>],
    first_prompt: usize,
    config: &GenerationConfig,
    compaction: Compaction,
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
    let mut logits = repeat_rows(last_logits(decoder, prefill), g);

    let mut rngs: Vec<SequenceRng> = (0..rows)
        .map(|r| SequenceRng::for_sequence(config.seed, first_prompt + r / g, r % g))
        .collect();
    let mut done = vec![false; rows];
    // The completion each row of the decode batch belongs to.
    let mut batch: Vec<usize> = (0..rows).collect();
    for step in 0..config.max_new_tokens {
        let uniforms: Vec<f64> = match config.sampling {
            Sampling::Greedy => Vec::new(),
            // One draw per live row, as the host sampler takes; finished rows draw nothing.
            Sampling::Random { .. } => batch
                .iter()
                .map(|&r| if done[r] { 0.0 } else { rngs[r].next_f64() })
                .collect(),
        };
        let draws = draw_rows(&config.sampling, logits, &uniforms)?.to_host();
        let mut next = vec![config.pad_token; batch.len()];
        for ((&r, draw), next) in batch.iter().zip(&draws).zip(&mut next) {
            if done[r] {
                continue;
            }
            let completion = &mut completions[r];
            completion.tokens.push(draw.token);
            completion.logprobs.push(draw.logprob);
            *next = draw.token;
            if config.stop_tokens.contains(&draw.token) {
                completion.finish = FinishReason::Stop;
                done[r] = true;
            }
        }
        if done.iter().all(|&d| d) || step + 1 == config.max_new_tokens {
            break;
        }
        let finished = batch.iter().filter(|&&r| done[r]).count();
        if compaction.due(finished, batch.len()) {
            let live: Vec<usize> = (0..batch.len()).filter(|&i| !done[batch[i]]).collect();
            cache = cache.select_rows(&live)?;
            next = live.iter().map(|&i| next[i]).collect();
            batch = live.iter().map(|&i| batch[i]).collect();
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

/// Logits of the last position of every row, on the device. Only the last position is
/// sampled from, so the head runs on that one alone (it is most of a prefill's head cost).
///
/// # Shapes
/// - `hidden`: final-norm hidden states `[rows, seq, hidden]` → `[rows, vocab]`
fn last_logits<B: KernelBackend>(decoder: &Decoder<B>, hidden: Tensor<B, 3>) -> Tensor<B, 2> {
    let [b, t, d] = hidden.dims();
    let logits = decoder.logits(hidden.slice([0..b, t - 1..t, 0..d]));
    let v = logits.dims()[2];
    logits.reshape([b, v])
}

/// Every row repeated `times` times in place (row `b` becomes rows `b*times .. (b+1)*times`),
/// as [`crate::KvCache::repeat_rows`] lays out the samples of one prompt.
///
/// # Shapes
/// - `x`: `[rows, vocab]` → `[rows * times, vocab]`
fn repeat_rows<B: Backend>(x: Tensor<B, 2>, times: usize) -> Tensor<B, 2> {
    let [b, v] = x.dims();
    x.reshape([b, 1, v])
        .repeat_dim(1, times)
        .reshape([b * times, v])
}
