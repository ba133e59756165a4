//! The chat templates that SmolLM2, Qwen2.5, Qwen3 and Llama 3 ship, rendered by `ChatTemplate`
//! (minijinja), against transformers' `apply_chat_template` on the same conversations:
//! `fixtures/chat_templates/*.json`, made by `fixtures/make_chat_templates.py`, which names where
//! each template comes from, plus `python_features`, a template written for the fixture that
//! exercises the Jinja2 / Python behaviour HF templates rely on. The text is checked here on every
//! run; the ids need the real tokenizers (`--ignored`, see `ids_equal_transformers`).

#[allow(dead_code)] // shared by several test binaries; each uses a part of it
mod reference;

use std::path::{Path, PathBuf};

use epgrpo_models::load::GgufFile;
use epgrpo_models::tokenizer::{SpecialToken, SpecialTokens};
use epgrpo_models::{ChatMessage, ChatTemplate, ModelError, TextTokenizer};
use reference::fixture_dir;
use serde::Deserialize;
use serde_json::{Value, json};

const MODELS: [&str; 5] = ["smollm2", "qwen25", "qwen3", "llama3", "python_features"];

#[derive(Debug, Deserialize)]
struct Message {
    role: String,
    content: String,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    messages: Vec<Message>,
    add_generation_prompt: bool,
    text: String,
    ids: Vec<u32>,
}

#[derive(Debug, Deserialize)]
struct Fixture {
    chat_template: String,
    special_tokens: std::collections::BTreeMap<String, String>,
    cases: Vec<Case>,
}

fn fixture_path(model: &str) -> PathBuf {
    fixture_dir("chat_templates").join(format!("{model}.json"))
}

fn fixture(model: &str) -> Fixture {
    serde_json::from_str(&std::fs::read_to_string(fixture_path(model)).unwrap()).unwrap()
}

fn special_tokens(fixture: &Fixture) -> SpecialTokens {
    fixture
        .special_tokens
        .iter()
        .map(|(key, text)| {
            let token = SpecialToken::ALL
                .into_iter()
                .find(|t| t.config_key() == key)
                .unwrap_or_else(|| panic!("unknown special token {key}"));
            (token, text.clone())
        })
        .collect()
}

fn messages(case: &Case) -> Vec<ChatMessage> {
    case.messages
        .iter()
        .map(|m| ChatMessage::new(&m.role, &m.content))
        .collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("epgrpo-chat-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every case of `model` rendered by `template` gives transformers' text.
fn assert_texts(model: &str, template: &ChatTemplate) {
    let fixture = fixture(model);
    assert_eq!(fixture.cases.len(), 8, "{model}");
    for case in &fixture.cases {
        let text = template
            .render(&messages(case), case.add_generation_prompt)
            .unwrap();
        assert_eq!(text, case.text, "{model} {}", case.name);
    }
}

#[test]
fn templates_render_transformers_text() {
    for model in MODELS {
        let fixture = fixture(model);
        let template = ChatTemplate::new(
            &fixture.chat_template,
            special_tokens(&fixture),
            &fixture_path(model),
            "chat_template",
        )
        .unwrap();
        assert_texts(model, &template);
    }
}

/// A model directory with the fixture tokenizer (`fixtures/tokenizer`) and `config` as its
/// `tokenizer_config.json`.
fn model_dir(name: &str, config: &Value) -> PathBuf {
    let dir = temp_dir(name);
    std::fs::copy(
        fixture_dir("tokenizer").join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
    dir
}

#[test]
fn templates_and_special_tokens_are_read_from_tokenizer_config() {
    for model in MODELS {
        let fixture = fixture(model);
        let mut config = json!({ "chat_template": fixture.chat_template });
        for (key, text) in &fixture.special_tokens {
            // AddedToken objects, as many checkpoints write them.
            config[key] = json!({ "content": text, "special": true });
        }
        let tok = TextTokenizer::from_dir(&model_dir(model, &config)).unwrap();
        assert_eq!(tok.special_tokens(), &special_tokens(&fixture), "{model}");
        assert_texts(model, tok.chat_template().unwrap());
    }
}

#[test]
fn missing_and_broken_templates_are_errors_naming_the_file() {
    let dir = model_dir("none", &json!({ "eos_token": "<|im_end|>" }));
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let err = tok.chat_template().unwrap_err().to_string();
    assert!(
        err.contains("tokenizer_config.json") && err.contains("no chat template (`chat_template`"),
        "{err}"
    );
    let err = tok.encode_chat("Hi").unwrap_err().to_string();
    assert!(err.contains("no chat template"), "{err}");
    // The raw (non-chat) path still works.
    assert!(!tok.encode("Hi").unwrap().is_empty());

    let dir = model_dir(
        "broken",
        &json!({ "chat_template": "{% for m in messages %}" }),
    );
    let tok = TextTokenizer::from_dir(&dir).unwrap();
    let err = tok.encode_chat("Hi").unwrap_err().to_string();
    assert!(
        err.contains("tokenizer_config.json: tokenizer: chat template `chat_template`: ")
            && err.contains("syntax error"),
        "{err}"
    );
    assert_eq!(tok.chat_template_source(), Some("{% for m in messages %}"));

    let dir = model_dir("badtoken", &json!({ "bos_token": 7 }));
    let err = TextTokenizer::from_dir(&dir).unwrap_err();
    assert!(
        matches!(&err, ModelError::InvalidConfig { field, .. } if field == "bos_token"),
        "{err}"
    );
}

#[test]
fn named_template_lists_use_the_default_one() {
    let fixture = fixture("qwen3");
    let config = json!({
        "eos_token": "<|im_end|>",
        "chat_template": [
            { "name": "tool_use", "template": "{{ raise_exception('not this one') }}" },
            { "name": "default", "template": fixture.chat_template },
        ],
    });
    let tok = TextTokenizer::from_dir(&model_dir("named", &config)).unwrap();
    assert_texts("qwen3", tok.chat_template().unwrap());
}

fn env_path(var: &str, what: &str) -> PathBuf {
    std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{var} is not set: {what}"))
}

fn assert_ids(model: &str, tok: &TextTokenizer) {
    let fixture = fixture(model);
    let template = tok.chat_template().unwrap();
    for case in &fixture.cases {
        let text = template
            .render(&messages(case), case.add_generation_prompt)
            .unwrap();
        assert_eq!(text, case.text, "{model} {}", case.name);
        assert_eq!(
            tok.encode(&text).unwrap(),
            case.ids,
            "{model} {}",
            case.name
        );
    }
}

const FETCH: &str = "run `eval \"$(epgrpo-models/scripts/fetch_chat_templates.sh)\"`";

#[test]
#[ignore = "needs the tokenizers: eval \"$(epgrpo-models/scripts/fetch_chat_templates.sh)\" \"$(epgrpo-models/scripts/fetch_smollm2.sh)\""]
fn ids_equal_transformers() {
    let qwen3 = env_path("EPGRPO_QWEN_TOKENIZER_DIR", FETCH);
    assert_ids("qwen3", &TextTokenizer::from_dir(&qwen3).unwrap());
    let llama = env_path("EPGRPO_LLAMA3_TOKENIZER_DIR", FETCH);
    assert_ids("llama3", &TextTokenizer::from_dir(&llama).unwrap());
    // Qwen2.5 and python_features = Qwen3's tokenizer.json with their template (the fixture
    // script does the same).
    for model in ["qwen25", "python_features"] {
        let dir = temp_dir(model);
        std::fs::copy(qwen3.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
        let config = json!({
            "chat_template": fixture(model).chat_template,
            "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>",
        });
        std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
        assert_ids(model, &TextTokenizer::from_dir(&dir).unwrap());
    }
    // SmolLM2: template and special tokens from the GGUF's metadata.
    let gguf = env_path(
        "EPGRPO_SMOLLM2_GGUF",
        "run `eval \"$(epgrpo-models/scripts/fetch_smollm2.sh)\"`",
    );
    let tok = TextTokenizer::from_gguf(&GgufFile::open(Path::new(&gguf)).unwrap()).unwrap();
    assert_eq!(tok.special_tokens(), &special_tokens(&fixture("smollm2")));
    assert_ids("smollm2", &tok);
}
