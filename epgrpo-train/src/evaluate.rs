//! Held-out evaluation: greedy pass@1 of a model on a problem set, with the same verifier as
//! training.

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

/// Greedy answers to `problems` (in batches of 256) and their grades.
pub fn greedy_eval<B: KernelBackend>(
    model: &Decoder<B>,
    codec: &Codec,
    problems: &[Problem],
    rollout_config: &RolloutConfig,
    verifier: &Verifier,
    device: &B::Device,
) -> Result<Vec<Graded>, CliError> {
    let generation = generation_config(rollout_config, codec, 1, 0, true);
    let mut graded = Vec::with_capacity(problems.len());
    for chunk in problems.chunks(256) {
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
