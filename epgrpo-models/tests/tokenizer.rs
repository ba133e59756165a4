//! `TextTokenizer` against the Python `tokenizers` / `transformers` libraries on the fixture of
//! `fixtures/make_tokenizer.py`: the `tokenizer.json` gives Python's ids and round-trips, the
//! same vocabulary and merges written into a synthetic GGUF (`tokenizer.ggml.*`, pre-tokenizer
//! `smollm`) give the same ids, and the ChatML prompt equals `apply_chat_template`'s.

#[allow(dead_code)] // shared by several test binaries; each uses a part of it
mod reference;

use std::path::Path;

use epgrpo_models::load::GgufFile;
use epgrpo_models::{ModelError, TextTokenizer};
use reference::fixture_dir;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    decoded: String,
}

#[derive(Debug, Deserialize)]
struct Chat {
    user: String,
    text: String,
    ids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
struct Expected {
    cases: Vec<Case>,
    chat: Chat,
}

fn expected() -> Expected {
    let path = fixture_dir("tokenizer").join("expected.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn assert_matches_python(tok: &TextTokenizer) {
    let expected = expected();
    for case in &expected.cases {
        let ids = tok.encode(&case.text).unwrap();
        assert_eq!(ids, case.ids, "ids of {:?}", case.text);
        assert_eq!(tok.decode(&ids, false).unwrap(), case.decoded);
        assert_eq!(case.decoded, case.text, "the fixture round-trips in Python");
    }
    let template = tok.chat_template().unwrap();
    assert_eq!(
        template.user_prompt(&expected.chat.user).unwrap(),
        expected.chat.text
    );
    assert_eq!(
        tok.encode_chat(&expected.chat.user).unwrap(),
        expected.chat.ids
    );
    let im_end = tok.token_to_id("<|im_end|>").unwrap();
    let eot = tok.token_to_id("<|endoftext|>").unwrap();
    assert_eq!(tok.stop_tokens(), &[eot, im_end]);
    // Special tokens are dropped on request.
    let ids = tok.encode("<|im_start|>user\nHi<|im_end|>").unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nHi");
}

#[test]
fn tokenizer_json_matches_python_ids_and_round_trips() {
    let tok = TextTokenizer::from_dir(&fixture_dir("tokenizer")).unwrap();
    assert_eq!(tok.vocab_size(), 400);
    assert_matches_python(&tok);
}

/// A GGUF metadata value as the writer below encodes it.
enum Meta {
    U32(u32),
    Str(String),
    Strs(Vec<String>),
    I32s(Vec<i32>),
}

/// Writes a GGUF v3 file with metadata only (no tensors).
fn write_gguf(path: &Path, entries: &[(&str, Meta)]) {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(0u64.to_le_bytes());
    out.extend((entries.len() as u64).to_le_bytes());
    for (key, value) in entries {
        string(&mut out, key);
        match value {
            Meta::U32(v) => {
                out.extend(4u32.to_le_bytes());
                out.extend(v.to_le_bytes());
            }
            Meta::Str(s) => {
                out.extend(8u32.to_le_bytes());
                string(&mut out, s);
            }
            Meta::Strs(items) => {
                out.extend(9u32.to_le_bytes());
                out.extend(8u32.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for s in items {
                    string(&mut out, s);
                }
            }
            Meta::I32s(items) => {
                out.extend(9u32.to_le_bytes());
                out.extend(5u32.to_le_bytes());
                out.extend((items.len() as u64).to_le_bytes());
                for v in items {
                    out.extend(v.to_le_bytes());
                }
            }
        }
    }
    std::fs::write(path, out).unwrap();
}

/// The fixture's vocabulary (by id), merges (`"left right"`), token types (3 for the special
/// tokens, 1 otherwise) and chat template, as llama.cpp's converter would store them.
fn gguf_metadata(pre: &str) -> Vec<(&'static str, Meta)> {
    let dir = fixture_dir("tokenizer");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
            .unwrap();
    let vocab = json["model"]["vocab"].as_object().unwrap();
    let mut tokens = vec![String::new(); vocab.len()];
    for (token, id) in vocab {
        tokens[id.as_u64().unwrap() as usize] = token.clone();
    }
    let special: Vec<u64> = json["added_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    let types = (0..tokens.len() as u64)
        .map(|id| if special.contains(&id) { 3 } else { 1 })
        .collect();
    let merges = json["model"]["merges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| format!("{} {}", m[0].as_str().unwrap(), m[1].as_str().unwrap()))
        .collect();
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer_config.json")).unwrap())
            .unwrap();
    vec![
        ("general.architecture", Meta::Str("llama".into())),
        ("tokenizer.ggml.model", Meta::Str("gpt2".into())),
        ("tokenizer.ggml.pre", Meta::Str(pre.into())),
        ("tokenizer.ggml.tokens", Meta::Strs(tokens)),
        ("tokenizer.ggml.token_type", Meta::I32s(types)),
        ("tokenizer.ggml.merges", Meta::Strs(merges)),
        ("tokenizer.ggml.bos_token_id", Meta::U32(1)),
        ("tokenizer.ggml.eos_token_id", Meta::U32(2)),
        (
            "tokenizer.chat_template",
            Meta::Str(config["chat_template"].as_str().unwrap().into()),
        ),
    ]
}

fn temp_gguf(name: &str, entries: &[(&str, Meta)]) -> GgufFile {
    let dir = std::env::temp_dir().join(format!("epgrpo-models-{}-tok", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    write_gguf(&path, entries);
    GgufFile::open(&path).unwrap()
}

#[test]
fn gguf_embedded_tokenizer_matches_python_ids() {
    let file = temp_gguf("smollm.gguf", &gguf_metadata("smollm"));
    let tok = TextTokenizer::from_gguf(&file).unwrap();
    assert_eq!(tok.vocab_size(), 400);
    assert_matches_python(&tok);
}

#[test]
fn gguf_tokenizer_errors_name_the_file_and_the_key() {
    let mut entries = gguf_metadata("falcon");
    let file = temp_gguf("falcon.gguf", &entries);
    let err = TextTokenizer::from_gguf(&file).unwrap_err().to_string();
    assert!(
        err.contains("falcon.gguf") && err.contains("tokenizer.ggml.pre") && err.contains("smollm"),
        "{err}"
    );
    entries.retain(|(k, _)| *k != "tokenizer.ggml.merges");
    let file = temp_gguf("nomerges.gguf", &entries);
    let err = TextTokenizer::from_gguf(&file).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingMetadata { key, .. } if key == "tokenizer.ggml.merges"),
        "{err}"
    );
    assert!(err.to_string().contains("nomerges.gguf"));
    // A special-token id outside the vocabulary names its key.
    let mut entries = gguf_metadata("smollm");
    entries.push(("tokenizer.ggml.padding_token_id", Meta::U32(400)));
    let file = temp_gguf("badpad.gguf", &entries);
    let err = TextTokenizer::from_gguf(&file).unwrap_err().to_string();
    assert!(
        err.contains("badpad.gguf")
            && err.contains("`tokenizer.ggml.padding_token_id` is 400, outside the vocabulary"),
        "{err}"
    );
}

#[test]
fn broken_tokenizer_json_is_an_error_naming_the_file() {
    let dir = std::env::temp_dir().join(format!("epgrpo-models-{}-badtok", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tokenizer.json"), b"{\"model\": 3}").unwrap();
    let err = TextTokenizer::from_dir(&dir).unwrap_err().to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("not a Hugging Face tokenizer.json"),
        "{err}"
    );
    let missing = TextTokenizer::from_dir(&dir.join("nowhere"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nowhere/tokenizer.json"), "{missing}");
}
