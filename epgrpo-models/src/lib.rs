//! `epgrpo-models`: the language models that epgrpo trains.
//!
//! This crate will hold the Llama / Qwen2 / SmolLM2 decoder (RMSNorm, rotary embeddings,
//! grouped-query attention, SwiGLU), loading from Hugging Face safetensors directories and GGUF
//! files, the tokenizer and chat template, the KV-cache generator that draws G answers per prompt,
//! and LoRA adapters. It never sees rewards.
