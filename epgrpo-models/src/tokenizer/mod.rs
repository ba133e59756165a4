//! `TextTokenizer`: the only part of the crate that sees text. It wraps a Hugging Face
//! [`tokenizers::Tokenizer`] loaded from a model directory's `tokenizer.json` or rebuilt from
//! the tokenizer embedded in a GGUF file, together with the checkpoint's ChatML
//! [`ChatTemplate`] and the token ids that end an assistant turn.

mod chat;
mod gguf;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::Tokenizer;

pub use chat::{ChatMessage, ChatTemplate, IM_END, IM_START};
pub use gguf::{SUPPORTED_PRE, tokenizer_from_gguf};

use crate::error::ModelError;
use crate::load::{GgufFile, GgufValue};

/// File name of a Hugging Face tokenizer inside a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// File name of the tokenizer settings (chat template, eos token) inside a model directory.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";

/// Tokens that end a turn or a document when present in a vocabulary.
const STOP_TEXTS: [&str; 2] = [IM_END, "<|endoftext|>"];

/// A tokenizer with its chat template and stop tokens.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    origin: PathBuf,
    chat: Option<ChatTemplate>,
    chat_source: Option<String>,
    eos: Option<u32>,
    stop_tokens: Vec<u32>,
}

impl TextTokenizer {
    /// Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json` (its
    /// `chat_template` and `eos_token`).
    pub fn from_dir(dir: &Path) -> Result<Self, ModelError> {
        let path = dir.join(TOKENIZER_FILE);
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            file: path.clone(),
            source,
        })?;
        let inner = Tokenizer::from_bytes(&bytes).map_err(|e| ModelError::Tokenizer {
            file: path.clone(),
            reason: format!("not a Hugging Face tokenizer.json: {e}"),
        })?;
        let config_path = dir.join(TOKENIZER_CONFIG_FILE);
        let (chat_source, eos) = if config_path.exists() {
            let text = std::fs::read_to_string(&config_path).map_err(|source| ModelError::Io {
                file: config_path.clone(),
                source,
            })?;
            let config: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
                file: config_path.clone(),
                source,
            })?;
            let chat_source = config
                .get("chat_template")
                .and_then(Value::as_str)
                .map(str::to_string);
            // `eos_token` is a string or an AddedToken object with a `content` field.
            let eos = config.get("eos_token").and_then(|e| {
                e.as_str()
                    .or_else(|| e.get("content").and_then(Value::as_str))
                    .and_then(|t| inner.token_to_id(t))
            });
            (chat_source, eos)
        } else {
            (None, None)
        };
        Ok(Self::assemble(inner, path, chat_source, eos))
    }

    /// Rebuilds the tokenizer embedded in a GGUF file (see [`tokenizer_from_gguf`]), with the
    /// chat template of `tokenizer.chat_template` and the eos id of
    /// `tokenizer.ggml.eos_token_id`.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ModelError> {
        let inner = tokenizer_from_gguf(file)?;
        let chat_source = file
            .metadata
            .get("tokenizer.chat_template")
            .and_then(GgufValue::as_str)
            .map(str::to_string);
        let eos = file
            .metadata
            .get("tokenizer.ggml.eos_token_id")
            .and_then(GgufValue::as_u64)
            .and_then(|id| u32::try_from(id).ok());
        Ok(Self::assemble(
            inner,
            file.path().to_path_buf(),
            chat_source,
            eos,
        ))
    }

    fn assemble(
        inner: Tokenizer,
        origin: PathBuf,
        chat_source: Option<String>,
        eos: Option<u32>,
    ) -> Self {
        let chat = chat_source.as_deref().and_then(ChatTemplate::from_jinja);
        let mut stop_tokens: Vec<u32> = STOP_TEXTS
            .iter()
            .filter_map(|t| inner.token_to_id(t))
            .chain(eos)
            .collect();
        stop_tokens.sort_unstable();
        stop_tokens.dedup();
        Self {
            inner,
            origin,
            chat,
            chat_source,
            eos,
            stop_tokens,
        }
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`, …) become their
    /// ids; nothing is added around the text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| self.error(format!("cannot encode text: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`; special tokens are left out when `skip_special` is set.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, ModelError> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| self.error(format!("cannot decode ids: {e}")))
    }

    /// The ChatML template of the checkpoint, `None` when it has no ChatML template.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat.as_ref()
    }

    /// Writes `dir/tokenizer.json` and a `dir/tokenizer_config.json` (the eos token, the chat
    /// template source, `tokenizer_class: PreTrainedTokenizerFast` so that transformers uses
    /// `tokenizer.json` as it is) from which [`TextTokenizer::from_dir`] reads back the same
    /// ids, stop tokens and chat template. `dir` must exist; existing files are replaced.
    pub fn save_dir(&self, dir: &Path) -> Result<(), ModelError> {
        let path = dir.join(TOKENIZER_FILE);
        let json = self
            .inner
            .to_string(true)
            .map_err(|e| ModelError::Tokenizer {
                file: path.clone(),
                reason: format!("cannot serialise the tokenizer: {e}"),
            })?;
        write_file(&path, json)?;
        let mut config = serde_json::Map::new();
        config.insert("tokenizer_class".into(), "PreTrainedTokenizerFast".into());
        // Decoding is the tokenizer's own; no extra clean-up of spaces before punctuation.
        config.insert("clean_up_tokenization_spaces".into(), false.into());
        if let Some(eos) = self.eos.and_then(|id| self.inner.id_to_token(id)) {
            config.insert("eos_token".into(), eos.into());
        }
        if let Some(source) = &self.chat_source {
            config.insert("chat_template".into(), source.clone().into());
        }
        write_file(
            &dir.join(TOKENIZER_CONFIG_FILE),
            format!("{:#}", Value::Object(config)),
        )
    }

    /// The checkpoint's Jinja chat template as it was read (ChatML or not), `None` when it has
    /// none.
    pub fn chat_template_source(&self) -> Option<&str> {
        self.chat_source.as_deref()
    }

    /// The end-of-sequence id the checkpoint names (`eos_token` of `tokenizer_config.json`,
    /// `tokenizer.ggml.eos_token_id` of a GGUF), if any.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.eos
    }

    /// Token ids of the chat prompt for one user turn (with the checkpoint's default system
    /// prompt, if any), ending with the opening of the assistant turn.
    pub fn encode_chat(&self, user: &str) -> Result<Vec<u32>, ModelError> {
        let template = self.chat.as_ref().ok_or_else(|| {
            self.error("no ChatML chat template (expected `<|im_start|>` in the checkpoint's chat_template)".into())
        })?;
        self.encode(&template.user_prompt(user))
    }

    /// Ids that end a completion: the eos id plus `<|im_end|>` and `<|endoftext|>` when the
    /// vocabulary has them; sorted.
    pub fn stop_tokens(&self) -> &[u32] {
        &self.stop_tokens
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token string, if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The wrapped Hugging Face tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// The file the tokenizer came from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    fn error(&self, reason: String) -> ModelError {
        ModelError::Tokenizer {
            file: self.origin.clone(),
            reason,
        }
    }
}

fn write_file(path: &Path, contents: String) -> Result<(), ModelError> {
    std::fs::write(path, contents).map_err(|source| ModelError::Write {
        file: path.to_path_buf(),
        source,
    })
}
