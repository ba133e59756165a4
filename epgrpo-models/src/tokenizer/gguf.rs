//! The tokenizer embedded in a llama.cpp GGUF file (`tokenizer.ggml.*` metadata) rebuilt as a
//! Hugging Face [`tokenizers::Tokenizer`]: a byte-level BPE (`tokenizer.ggml.model = gpt2`)
//! from `tokens` (id = position) and `merges` (`"left right"`), control tokens
//! (`token_type` 3) registered as special tokens, user-defined ones (4) as added tokens, and
//! the pre-tokenizer that `tokenizer.ggml.pre` names.

use serde_json::{Map, Value};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::error::ModelError;
use crate::load::{GgufFile, GgufValue};

/// `tokenizer.ggml.token_type` of a control token (`<|im_start|>`, `<|endoftext|>`, …).
const TOKEN_TYPE_CONTROL: u64 = 3;
/// `tokenizer.ggml.token_type` of a user-defined token (matched verbatim, not special).
const TOKEN_TYPE_USER_DEFINED: u64 = 4;

/// The `tokenizer.ggml.pre` values understood, for error messages.
pub const SUPPORTED_PRE: &str = "smollm, gpt-2, default, qwen2";

/// Qwen2's split regex (llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2`, HF `Split` with `Isolated`):
/// contractions, letter runs with one leading non-letter, single digits, punctuation runs,
/// newlines and whitespace.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Builds the tokenizer described by `file`'s `tokenizer.ggml.*` metadata.
pub fn tokenizer_from_gguf(file: &GgufFile) -> Result<Tokenizer, ModelError> {
    let missing = |key: &str, expected| ModelError::MissingMetadata {
        file: file.path().to_path_buf(),
        key: key.to_string(),
        expected,
    };
    let bad = |reason: String| ModelError::Tokenizer {
        file: file.path().to_path_buf(),
        reason,
    };
    let string = |key: &str| {
        file.metadata
            .get(key)
            .and_then(GgufValue::as_str)
            .ok_or_else(|| missing(key, "string"))
    };
    let strings = |key: &str| match file.metadata.get(key) {
        Some(GgufValue::Array(items)) => items
            .iter()
            .map(GgufValue::as_str)
            .collect::<Option<Vec<&str>>>()
            .ok_or_else(|| missing(key, "array of strings")),
        _ => Err(missing(key, "array of strings")),
    };
    let model = string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        return Err(bad(format!(
            "`tokenizer.ggml.model` is `{model}`; only `gpt2` (byte-level BPE) is supported"
        )));
    }
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<u64> = match file.metadata.get("tokenizer.ggml.token_type") {
        Some(GgufValue::Array(items)) => items
            .iter()
            .map(GgufValue::as_u64)
            .collect::<Option<_>>()
            .ok_or_else(|| missing("tokenizer.ggml.token_type", "array of integers"))?,
        None => Vec::new(),
        Some(_) => return Err(missing("tokenizer.ggml.token_type", "array of integers")),
    };
    if !types.is_empty() && types.len() != tokens.len() {
        return Err(bad(format!(
            "`tokenizer.ggml.token_type` has {} entries, `tokenizer.ggml.tokens` {}",
            types.len(),
            tokens.len()
        )));
    }
    let pre = file
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(GgufValue::as_str)
        .unwrap_or("default");

    let (normalizer, pre_tokenizer) = pre_tokenizer(pre).map_err(bad)?;
    let mut tokenizer = Tokenizer::new(bpe(&tokens, &merges).map_err(bad)?);
    if let Some(normalizer) = normalizer {
        tokenizer
            .with_normalizer(Some(normalizer))
            .map_err(|e| bad(e.to_string()))?;
    }
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));

    let added = |wanted: u64, special: bool| {
        tokens
            .iter()
            .zip(&types)
            .filter(move |(_, t)| **t == wanted)
            .map(move |(tok, _)| AddedToken::from(tok.to_string(), special))
    };
    tokenizer
        .add_special_tokens(added(TOKEN_TYPE_CONTROL, true))
        .map_err(|e| bad(e.to_string()))?;
    tokenizer
        .add_tokens(added(TOKEN_TYPE_USER_DEFINED, false))
        .map_err(|e| bad(e.to_string()))?;
    Ok(tokenizer)
}

/// The BPE model: token `i` has id `i`; each merge is two tokens separated by one space.
fn bpe(tokens: &[&str], merges: &[&str]) -> Result<BPE, String> {
    let vocab: Map<String, Value> = tokens
        .iter()
        .enumerate()
        .map(|(id, tok)| (tok.to_string(), Value::from(id)))
        .collect();
    let pairs = merges
        .iter()
        .enumerate()
        .map(|(i, merge)| {
            let (left, right) = merge.split_once(' ').ok_or_else(|| {
                format!("`tokenizer.ggml.merges[{i}]` = {merge:?} is not two tokens separated by a space")
            })?;
            Ok(Value::from(vec![left, right]))
        })
        .collect::<Result<Vec<_>, String>>()?;
    // The model deserialises from text only (it borrows its `type` tag).
    let json = serde_json::json!({ "type": "BPE", "vocab": vocab, "merges": pairs }).to_string();
    serde_json::from_str(&json).map_err(|e| format!("cannot build the BPE model: {e}"))
}

/// Normalizer and pre-tokenizer of a `tokenizer.ggml.pre` value.
fn pre_tokenizer(pre: &str) -> Result<(Option<NFC>, PreTokenizerWrapper), String> {
    let byte_level = |use_regex| ByteLevel::new(false, true, use_regex);
    Ok(match pre {
        // GPT-2 regex on bytes.
        "default" | "gpt-2" => (None, byte_level(true).into()),
        // Every digit on its own, then the GPT-2 regex on bytes.
        "smollm" => (
            None,
            Sequence::new(vec![Digits::new(true).into(), byte_level(true).into()]).into(),
        ),
        "qwen2" => {
            let split = Split::new(
                SplitPattern::Regex(QWEN2_SPLIT.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map_err(|e| format!("Qwen2 split pattern: {e}"))?;
            (
                Some(NFC),
                Sequence::new(vec![split.into(), byte_level(false).into()]).into(),
            )
        }
        other => {
            return Err(format!(
                "`tokenizer.ggml.pre` = `{other}` is not supported ({SUPPORTED_PRE})"
            ));
        }
    })
}
