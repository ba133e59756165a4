//! Held-out evaluation: greedy pass@1 of a model on a problem set, with the same verifier as
//! training, generated in calls sized to a memory budget.

use burn::tensor::backend::Backend;
use epgrpo_eval::{Problem, Verifier};
use epgrpo_kernels::KernelBackend;
use epgrpo_models::Decoder;
use serde::Serialize;

use crate::codec::Codec;
use crate::config::RolloutConfig;
use crate::error::CliError;
use crate::rollout::{generation_config, rollout};

/// One problem's greedy answer.
#[derive(Debug, Clone, Serialize)]
pub struct Graded {
    /// Problem id.
    pub id: String,
    /// The question.
    pub question: String,
    /// The reference answer.
    pub answer: String,
    /// What the model wrote.
    pub completion: String,
    /// Whether it was verified correct.
    pub correct: bool,
}

/// Memory a generation call may hold by default: 4 GiB.
pub const DEFAULT_MEMORY_BUDGET_BYTES: u64 = 4 << 30;

/// Working copies of one row's logits while it decodes (the logits, the sampler's scaled
/// logits and probabilities).
const LOGIT_COPIES: u64 = 3;

/// Bytes one generated row holds at its longest: K and V of every layer (f32) for
/// `context_tokens` (prompt plus answer) and its working copies of one row of logits.
pub fn bytes_per_row<B: Backend>(model: &Decoder<B>, context_tokens: usize) -> u64 {
    let kv_per_token: u64 = model
        .layers
        .iter()
        .map(|layer| 2 * (layer.self_attn.num_kv_heads * layer.self_attn.head_dim) as u64)
        .sum();
    let vocab = model.embed_tokens.weight.dims()[0] as u64;
    4 * (kv_per_token * context_tokens as u64 + LOGIT_COPIES * vocab)
}

/// How many of `problems` one generation call takes so that their `samples` rows each fit in
/// `budget` bytes (at least one problem): rows are sized by the longest prompt of the set plus
/// `max_new_tokens`.
pub fn prompts_per_call<B: Backend>(
    model: &Decoder<B>,
    codec: &Codec,
    problems: &[Problem],
    max_new_tokens: usize,
    samples: usize,
    budget: u64,
) -> Result<usize, CliError> {
    let mut longest = 0;
    for problem in problems {
        longest = longest.max(codec.prompt(problem)?.len());
    }
    let row = bytes_per_row(model, longest + max_new_tokens).max(1);
    let rows = (budget / row) as usize;
    Ok((rows / samples.max(1)).max(1))
}

/// Greedy answers to `problems` (in calls that fit `budget` bytes) and their grades.
pub fn greedy_eval<B: KernelBackend>(
    model: &Decoder<B>,
    codec: &Codec,
    problems: &[Problem],
    rollout_config: &RolloutConfig,
    verifier: &Verifier,
    budget: u64,
    device: &B::Device,
) -> Result<Vec<Graded>, CliError> {
    let generation = generation_config(rollout_config, codec, 1, 0, true);
    let per_call = prompts_per_call(
        model,
        codec,
        problems,
        rollout_config.max_new_tokens,
        1,
        budget,
    )?;
    let mut graded = Vec::with_capacity(problems.len());
    for chunk in problems.chunks(per_call) {
        let result = rollout(model, codec, chunk.to_vec(), &generation, verifier, device)?;
        for ((completion, correct), text) in result
            .completions
            .iter()
            .zip(result.correct)
            .zip(result.texts)
        {
            let problem = &chunk[completion.prompt];
            graded.push(Graded {
                id: problem.id.clone(),
                question: problem.question.clone(),
                answer: problem.answer.clone(),
                completion: text,
                correct,
            });
        }
    }
    Ok(graded)
}

/// Fraction of correct answers.
pub fn accuracy(graded: &[Graded]) -> f64 {
    graded.iter().filter(|g| g.correct).count() as f64 / graded.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;
    use crate::policy::decoder_config;
    use crate::task::CharVocab;

    type Cpu = burn::backend::NdArray<f32>;

    fn problem(question: &str) -> Problem {
        Problem {
            id: question.into(),
            question: question.into(),
            answer: "0".into(),
            line: 0,
        }
    }

    #[test]
    fn calls_are_sized_by_the_kv_cache_and_logits_of_the_longest_row() {
        let model_config = ModelConfig {
            hidden_size: 32,
            intermediate_size: 64,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_key_value_heads: 2,
            ..ModelConfig::default()
        };
        let config = decoder_config(&model_config).unwrap();
        let model = Decoder::<Cpu>::init(&config, &Default::default());
        // K and V of 2 layers × 2 KV heads × head width 8, and three rows of 17 logits, in f32.
        let row = |context: u64| 4 * (2 * 2 * 2 * 8 * context + 3 * CharVocab::SIZE as u64);
        assert_eq!(bytes_per_row(&model, 10), row(10));

        // The longest prompt is `<bos>12+34=`: 7 tokens, plus 5 new tokens.
        let codec = Codec::chars("{question}=");
        let problems = [problem("1+2"), problem("12+34"), problem("3-4")];
        let per_call = |samples, budget| {
            prompts_per_call(&model, &codec, &problems, 5, samples, budget).unwrap()
        };
        assert_eq!(per_call(1, 7 * row(12)), 7);
        assert_eq!(per_call(2, 7 * row(12)), 3);
        assert_eq!(per_call(1, 7 * row(12) - 1), 6);
        assert_eq!(per_call(8, 7 * row(12)), 1, "at least one problem per call");
        assert_eq!(per_call(1, 1), 1);
    }
}
