//! `TextTokenizer`: the only part of the crate that sees text. It wraps a Hugging Face
//! [`tokenizers::Tokenizer`] loaded from a model directory's `tokenizer.json` or rebuilt from
//! the tokenizer embedded in a GGUF file, together with the checkpoint's own Jinja
//! [`ChatTemplate`], its named special tokens and the token ids that end an assistant turn.

mod chat;
mod gguf;

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::Tokenizer;

pub use chat::{ChatMessage, ChatTemplate, SpecialToken, SpecialTokens};
pub use gguf::{SUPPORTED_PRE, tokenizer_from_gguf};

use crate::error::ModelError;
use crate::load::{GgufFile, GgufValue};

/// File name of a Hugging Face tokenizer inside a model directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// File name of the tokenizer settings (chat template, eos token) inside a model directory.
pub const TOKENIZER_CONFIG_FILE: &str = "tokenizer_config.json";

/// Tokens that end a turn or a document when present in a vocabulary.
const STOP_TEXTS: [&str; 2] = ["<|im_end|>", "<|endoftext|>"];

/// Field of `tokenizer_config.json` that holds the chat template.
const CONFIG_CHAT_KEY: &str = "chat_template";
/// GGUF metadata key that holds the chat template.
const GGUF_CHAT_KEY: &str = "tokenizer.chat_template";

/// A tokenizer with its chat template, special tokens and stop tokens.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    origin: PathBuf,
    chat: Chat,
    special: SpecialTokens,
    stop_tokens: Vec<u32>,
}

/// The checkpoint's chat template as it was read.
#[derive(Debug, Clone)]
enum Chat {
    /// The checkpoint has none; the field (or key) of the file it would be in.
    Missing { file: PathBuf, key: &'static str },
    /// It does not compile: its source and the error (file and message).
    Broken {
        source: String,
        file: PathBuf,
        reason: String,
    },
    /// Compiled (boxed: a compiled environment is much larger than the other variants).
    Ready(Box<ChatTemplate>),
}

impl TextTokenizer {
    /// Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json` (its
    /// `chat_template` and named special tokens: `bos_token`, `eos_token`, …, each a string or
    /// an object with a `content` string).
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
        let (chat_source, special) = if config_path.exists() {
            let text = std::fs::read_to_string(&config_path).map_err(|source| ModelError::Io {
                file: config_path.clone(),
                source,
            })?;
            let config: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
                file: config_path.clone(),
                source,
            })?;
            config_tokens(&config, &config_path)?
        } else {
            (None, SpecialTokens::new())
        };
        Ok(Self::assemble(
            inner,
            path,
            chat_source,
            special,
            (config_path, CONFIG_CHAT_KEY),
        ))
    }

    /// Rebuilds the tokenizer embedded in a GGUF file (see [`tokenizer_from_gguf`]), with the
    /// chat template of `tokenizer.chat_template` and the special tokens whose ids
    /// `tokenizer.ggml.bos_token_id`, `….eos_token_id`, … name. An id outside the vocabulary is
    /// an error naming its key.
    pub fn from_gguf(file: &GgufFile) -> Result<Self, ModelError> {
        let inner = tokenizer_from_gguf(file)?;
        let chat_source = file
            .metadata
            .get(GGUF_CHAT_KEY)
            .and_then(GgufValue::as_str)
            .map(str::to_string);
        let mut special = SpecialTokens::new();
        for token in SpecialToken::ALL {
            let key = token.gguf_key();
            let Some(id) = file.metadata.get(key).and_then(GgufValue::as_u64) else {
                continue;
            };
            let text = u32::try_from(id)
                .ok()
                .and_then(|id| inner.id_to_token(id))
                .ok_or_else(|| ModelError::Gguf {
                    file: file.path().to_path_buf(),
                    reason: format!(
                        "`{key}` is {id}, outside the vocabulary of {} tokens",
                        inner.get_vocab_size(true)
                    ),
                })?;
            special.insert(token, text);
        }
        Ok(Self::assemble(
            inner,
            file.path().to_path_buf(),
            chat_source,
            special,
            (file.path().to_path_buf(), GGUF_CHAT_KEY),
        ))
    }

    fn assemble(
        inner: Tokenizer,
        origin: PathBuf,
        chat_source: Option<String>,
        special: SpecialTokens,
        (chat_file, key): (PathBuf, &'static str),
    ) -> Self {
        let chat = match chat_source {
            None => Chat::Missing {
                file: chat_file,
                key,
            },
            Some(source) => match ChatTemplate::new(&source, special.clone(), &chat_file, key) {
                Ok(template) => Chat::Ready(Box::new(template)),
                Err(ModelError::Tokenizer { file, reason }) => Chat::Broken {
                    source,
                    file,
                    reason,
                },
                Err(other) => Chat::Broken {
                    source,
                    file: chat_file,
                    reason: other.to_string(),
                },
            },
        };
        let eos = special
            .get(&SpecialToken::Eos)
            .and_then(|t| inner.token_to_id(t));
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
            special,
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

    /// The checkpoint's chat template. Errors: the checkpoint has none (naming the file and the
    /// field it would be in), or it does not compile (minijinja's message).
    pub fn chat_template(&self) -> Result<&ChatTemplate, ModelError> {
        match &self.chat {
            Chat::Ready(template) => Ok(template),
            Chat::Missing { file, key } => Err(ModelError::Tokenizer {
                file: file.clone(),
                reason: format!("no chat template (`{key}` is missing)"),
            }),
            Chat::Broken { file, reason, .. } => Err(ModelError::Tokenizer {
                file: file.clone(),
                reason: reason.clone(),
            }),
        }
    }

    /// Writes `dir/tokenizer.json` and a `dir/tokenizer_config.json` (the named special tokens,
    /// the chat template source, `tokenizer_class: PreTrainedTokenizerFast` so that
    /// transformers uses `tokenizer.json` as it is) from which [`TextTokenizer::from_dir`] reads
    /// back the same ids, stop tokens and chat template. `dir` must exist; existing files are
    /// replaced.
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
        for (token, text) in &self.special {
            config.insert(token.config_key().into(), text.clone().into());
        }
        if let Some(source) = self.chat_template_source() {
            config.insert(CONFIG_CHAT_KEY.into(), source.into());
        }
        write_file(
            &dir.join(TOKENIZER_CONFIG_FILE),
            format!("{:#}", Value::Object(config)),
        )
    }

    /// The checkpoint's Jinja chat template as it was read (compiling or not), `None` when it
    /// has none.
    pub fn chat_template_source(&self) -> Option<&str> {
        match &self.chat {
            Chat::Missing { .. } => None,
            Chat::Broken { source, .. } => Some(source),
            Chat::Ready(template) => Some(template.source()),
        }
    }

    /// The named special tokens the checkpoint declares (`bos_token`, `eos_token`, … of
    /// `tokenizer_config.json`; the `tokenizer.ggml.*_token_id` ids of a GGUF).
    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// The end-of-sequence id the checkpoint names (`eos_token` of `tokenizer_config.json`,
    /// `tokenizer.ggml.eos_token_id` of a GGUF), if any.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.special
            .get(&SpecialToken::Eos)
            .and_then(|t| self.inner.token_to_id(t))
    }

    /// Token ids of the chat prompt for one user turn (the template adds its default system
    /// prompt, if any), ending with the opening of the assistant turn: transformers'
    /// `apply_chat_template([user], add_generation_prompt=True)`.
    pub fn encode_chat(&self, user: &str) -> Result<Vec<u32>, ModelError> {
        self.encode(&self.chat_template()?.user_prompt(user)?)
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

/// The chat template and named special tokens of a parsed `tokenizer_config.json`.
fn config_tokens(
    config: &Value,
    file: &Path,
) -> Result<(Option<String>, SpecialTokens), ModelError> {
    let invalid = |field: &str, reason: &str| ModelError::InvalidConfig {
        file: file.to_path_buf(),
        field: field.to_string(),
        reason: reason.to_string(),
    };
    // A string, or (older multi-template checkpoints) a list of `{name, template}` of which
    // transformers uses the one named `default`.
    let chat_source = match config.get(CONFIG_CHAT_KEY) {
        None | Some(Value::Null) => None,
        Some(Value::String(source)) => Some(source.clone()),
        Some(Value::Array(named)) => Some(
            named
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid(
                        CONFIG_CHAT_KEY,
                        "a list of named templates without a `default` one",
                    )
                })?
                .to_string(),
        ),
        Some(_) => {
            return Err(invalid(
                CONFIG_CHAT_KEY,
                "expected a string or a list of {name, template} objects",
            ));
        }
    };
    let mut special = SpecialTokens::new();
    for token in SpecialToken::ALL {
        let key = token.config_key();
        let text = match config.get(key) {
            None | Some(Value::Null) => continue,
            Some(Value::String(text)) => text,
            Some(value) => value
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    invalid(
                        key,
                        "expected a string or an object with a `content` string",
                    )
                })?,
        };
        special.insert(token, text.to_string());
    }
    Ok((chat_source, special))
}

fn write_file(path: &Path, contents: String) -> Result<(), ModelError> {
    std::fs::write(path, contents).map_err(|source| ModelError::Write {
        file: path.to_path_buf(),
        source,
    })
}
