//! `epgrpo generate`: loads a model (a Hugging Face directory with `config.json`, safetensors
//! and `tokenizer.json`, or a `.gguf` file with its embedded tokenizer) on the CPU, optionally
//! wraps the prompt in the model's own chat template, and returns one completion as text.

use std::path::Path;

use burn::backend::NdArray;
use epgrpo_models::{GenerationConfig, Sampling, generate};

use crate::error::CliError;
use crate::policy::load_pretrained;

/// The CPU backend generation runs on.
type Cpu = NdArray<f32>;

/// Generates up to `max_new_tokens` tokens after `prompt` (greedy when `temperature` is 0,
/// otherwise sampling from `softmax(logits / temperature)` with `seed`) and returns the decoded
/// completion without special tokens. With `chat`, the prompt is one user turn of the model's
/// Jinja chat template (its default system prompt included), as transformers'
/// `apply_chat_template(..., add_generation_prompt=True)` writes it.
pub fn run(
    model: &Path,
    prompt: &str,
    chat: bool,
    max_new_tokens: usize,
    temperature: f32,
    seed: u64,
) -> Result<String, CliError> {
    let sampling = sampling(temperature)?;
    let device = Default::default();
    let (_, decoder, tokenizer) =
        load_pretrained::<Cpu>(model, &device).map_err(|e| CliError::Input(e.to_string()))?;
    let ids = if chat {
        tokenizer.encode_chat(prompt)
    } else {
        tokenizer.encode(prompt)
    }
    .map_err(|e| CliError::Input(e.to_string()))?;
    let stop_tokens = tokenizer.stop_tokens().to_vec();
    let config = GenerationConfig {
        samples_per_prompt: 1,
        max_new_tokens,
        sampling,
        pad_token: stop_tokens.first().copied().unwrap_or(0),
        stop_tokens,
        seed,
    };
    let completion = generate(&decoder, &[ids], &config, &device)
        .map_err(|e| CliError::Input(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::Internal("generation returned no completion".into()))?;
    tokenizer
        .decode(&completion.tokens, true)
        .map_err(|e| CliError::Internal(e.to_string()))
}

/// Greedy for temperature 0, plain sampling for a positive finite temperature.
fn sampling(temperature: f32) -> Result<Sampling, CliError> {
    if temperature == 0.0 {
        Ok(Sampling::Greedy)
    } else if temperature > 0.0 && temperature.is_finite() {
        Ok(Sampling::Random {
            temperature,
            top_k: None,
            top_p: None,
        })
    } else {
        Err(CliError::Input(format!(
            "temperature must be 0 (greedy) or positive, got {temperature}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temperature_zero_is_greedy_and_negative_is_refused() {
        assert_eq!(sampling(0.0).unwrap(), Sampling::Greedy);
        assert!(matches!(sampling(0.7), Ok(Sampling::Random { .. })));
        for bad in [-1.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(sampling(bad), Err(CliError::Input(_))), "{bad}");
        }
    }

    #[test]
    fn a_missing_model_is_an_input_error_naming_it() {
        let err = run(Path::new("/nonexistent/model-dir"), "Hi", true, 4, 0.0, 0).unwrap_err();
        assert!(
            matches!(&err, CliError::Input(m) if m.contains("/nonexistent/model-dir/tokenizer.json")),
            "{err:?}"
        );
    }

    /// SmolLM2-135M-Instruct (see `epgrpo-models/tests/smollm2.rs`), greedy, with its template.
    #[test]
    #[ignore = "needs the SmolLM2 GGUF: eval \"$(epgrpo-models/scripts/fetch_smollm2.sh)\""]
    fn smollm2_gguf_answers_in_chat_mode() {
        let path = std::env::var_os("EPGRPO_SMOLLM2_GGUF")
            .expect("EPGRPO_SMOLLM2_GGUF is not set: run epgrpo-models/scripts/fetch_smollm2.sh");
        let text = run(
            Path::new(&path),
            "What is the capital of France?",
            true,
            16,
            0.0,
            0,
        )
        .unwrap();
        assert_eq!(text, "The capital of France is Paris.");
    }
}
