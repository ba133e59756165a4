//! `epgrpo-models`: the language models that epgrpo trains.
//!
//! Llama / Qwen2 / Qwen3 / SmolLM2 decoders ([`Decoder`]: RMSNorm, `rotate_half` rotary
//! embeddings with HF's RoPE scaling kinds ([`RopeScaling`]), grouped-query attention, SwiGLU)
//! configured from a Hugging Face `config.json` ([`DecoderConfig`]), loaded from HF safetensors
//! directories ([`load_decoder`]) or llama.cpp GGUF files ([`load_gguf`]) and written back
//! as HF directories ([`save_hf_dir`], LoRA adapters merged), with a preallocated [`KvCache`]
//! for prefill + token-by-token decoding, and batched sampling of G completions per prompt
//! ([`generate()`]). Text enters and leaves
//! only through [`TextTokenizer`] (HF `tokenizer.json` or the tokenizer embedded in a GGUF, plus
//! the model's own Jinja [`ChatTemplate`]). The crate never sees rewards.

pub mod activation_checkpointing;
pub mod attention;
pub mod config;
pub mod decoder;
pub mod device_sampling;
pub mod error;
pub mod export;
pub mod generate;
pub mod head_loss;
pub mod kv_cache;
pub mod load;
pub mod lora;
pub mod mlp;
pub mod padding;
pub mod rope;
pub mod sampling;
pub mod tokenizer;

pub use activation_checkpointing::LayerCheckpoints;
pub use config::{Arch, DecoderConfig, RopeParameters, TokenIds};
pub use decoder::{Decoder, DecoderLayer};
pub use device_sampling::{RowDraws, draw_rows};
pub use error::ModelError;
pub use export::save_hf_dir;
pub use generate::{
    Compaction, Completion, FinishReason, GenerateError, GenerationConfig, generate,
    generate_with_compaction,
};
pub use head_loss::HeadLoss;
pub use kv_cache::{KvCache, RowOutOfRange};
pub use load::{load_decoder, load_gguf};
pub use lora::{LoraAdapter, LoraConfig, LoraError, LoraLinear, LoraTarget};
pub use padding::LeftPadding;
pub use rope::{RopeScaling, YarnScaling};
pub use sampling::{Draw, Sampling, SamplingError, SequenceRng};
pub use tokenizer::{ChatMessage, ChatTemplate, TextTokenizer};
