//! The policy a run trains: a scratch decoder on the character vocabulary, or a pretrained
//! model (Hugging Face directory or GGUF) with its tokenizer, optionally wrapped in LoRA
//! adapters — together with the [`Codec`] that turns problems into its prompts.

use std::path::Path;
use std::sync::Mutex;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use epgrpo_models::load::GgufFile;
use epgrpo_models::{
    Decoder, DecoderConfig, LoraConfig, ModelError, TextTokenizer, load_decoder, load_gguf,
};

use crate::codec::Codec;
use crate::config::{ModelConfig, TrainConfig};
use crate::error::CliError;
use crate::task::CharVocab;

/// The decoder of a `[model]` section for the task's character vocabulary.
pub fn decoder_config(model: &ModelConfig) -> Result<DecoderConfig, CliError> {
    let json = serde_json::json!({
        "model_type": "llama",
        "vocab_size": CharVocab::SIZE,
        "hidden_size": model.hidden_size,
        "intermediate_size": model.intermediate_size,
        "num_hidden_layers": model.num_hidden_layers,
        "num_attention_heads": model.num_attention_heads,
        "num_key_value_heads": model.num_key_value_heads,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": false,
        "max_position_embeddings": 64,
        "bos_token_id": CharVocab::BOS,
        "eos_token_id": CharVocab::EOS,
    });
    let config: DecoderConfig =
        serde_json::from_value(json).map_err(|e| CliError::Input(format!("[model]: {e}")))?;
    config
        .validate(Path::new("[model]"))
        .map_err(|e| CliError::Input(e.to_string()))?;
    Ok(config)
}

/// Runs `build` with Burn's RNG seeded to `seed` and draws every parameter of the module it
/// returns. Burn's RNG is process-global and parameters are drawn lazily, so seeding and
/// drawing happen under one lock: runs that start at the same time in one process cannot
/// interleave their draws.
fn seeded<B: Backend, M: Module<B>, E>(
    seed: u64,
    device: &B::Device,
    build: impl FnOnce() -> Result<M, E>,
) -> Result<M, E> {
    struct Materialize;
    impl<B: Backend> ModuleVisitor<B> for Materialize {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let _ = param.val();
        }
    }
    static INIT: Mutex<()> = Mutex::new(());
    let _guard = INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    B::seed(device, seed);
    let module = build()?;
    module.visit(&mut Materialize);
    Ok(module)
}

/// The freshly initialised scratch decoder of a run.
pub fn initial_model<B: Backend>(
    config: &DecoderConfig,
    seed: u64,
    device: &B::Device,
) -> Decoder<B> {
    let init = || Ok::<_, std::convert::Infallible>(Decoder::<B>::init(config, device));
    match seeded(seed, device, init) {
        Ok(model) => model,
    }
}

/// A policy network with its codec and architecture.
#[derive(Debug)]
pub struct Policy<B: Backend> {
    /// The network.
    pub model: Decoder<B>,
    /// Problems → prompt ids, answer ids → text.
    pub codec: Codec,
    /// The network's architecture (what an exported `config.json` holds).
    pub architecture: DecoderConfig,
}

/// The policy of `config` before any training: the scratch decoder drawn from the seed, or the
/// pretrained model of `[model] path` (with fresh LoRA adapters drawn from the seed when
/// `lora_rank > 0`).
pub fn initial_policy<B: Backend>(
    config: &TrainConfig,
    device: &B::Device,
) -> Result<Policy<B>, CliError> {
    let m = &config.model;
    let seed = config.train.seed;
    let Some(path) = &m.path else {
        let architecture = decoder_config(m)?;
        return Ok(Policy {
            model: initial_model(&architecture, seed, device),
            codec: Codec::chars(&config.task.prompt),
            architecture,
        });
    };
    let (architecture, model, tokenizer) = load_pretrained::<B>(path, device)
        .map_err(|e| CliError::Input(format!("model.path: {e}")))?;
    let codec = Codec::text(&config.task.prompt, tokenizer, m.chat_template)?;
    if m.lora_rank == 0 {
        return Ok(Policy {
            model,
            codec,
            architecture,
        });
    }
    let targets: Vec<&str> = m.lora_targets.iter().map(String::as_str).collect();
    let lora = LoraConfig::from_names(m.lora_rank, m.lora_alpha, &targets)
        .map_err(|e| CliError::Input(format!("model.lora_targets: {e}")))?;
    let model = seeded(seed, device, || model.with_lora(&lora, device))
        .map_err(|e| CliError::Input(format!("[model] LoRA: {e}")))?;
    Ok(Policy {
        model,
        codec,
        architecture,
    })
}

/// A pretrained decoder, its architecture and its tokenizer from a `.gguf` file or a Hugging
/// Face directory.
pub fn load_pretrained<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<(DecoderConfig, Decoder<B>, TextTokenizer), ModelError> {
    let is_gguf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    let (tokenizer, (config, decoder)) = if is_gguf {
        let tokenizer = TextTokenizer::from_gguf(&GgufFile::open(path)?)?;
        (tokenizer, load_gguf(path, device)?)
    } else {
        (TextTokenizer::from_dir(path)?, load_decoder(path, device)?)
    };
    // A tokenizer may have fewer ids than the embedding (padded vocabularies), never more.
    if tokenizer.vocab_size() > config.vocab_size {
        return Err(ModelError::Tokenizer {
            file: tokenizer.origin().to_path_buf(),
            reason: format!(
                "the tokenizer has {} ids but the model's vocab_size is {}",
                tokenizer.vocab_size(),
                config.vocab_size
            ),
        });
    }
    Ok((config, decoder, tokenizer))
}
