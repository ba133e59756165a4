//! `save_hf_dir`: the committed fixtures exported and reloaded with `load_decoder` give the same
//! logits; a LoRA-adapted model exports with its adapters merged (and without them when they
//! are switched off); `config.json` parses back to an equal config; the tokenizer files give
//! the same ids, stop tokens and chat prompt; bad targets fail with errors naming the path.

#[allow(dead_code)] // shared by several test binaries; each uses a part of it
mod reference;

use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use epgrpo_models::load::{GgufFile, config_from_gguf};
use epgrpo_models::{
    Decoder, DecoderConfig, LoraConfig, LoraTarget, ModelError, TextTokenizer, load_decoder,
    save_hf_dir,
};
use reference::{TestBackend, cases, fixture_dir, tokens_tensor};
use serde_json::Value;

/// A fresh scratch directory for test `name` (removed when dropped).
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "epgrpo-models-export-{}-{name}",
            std::process::id()
        ));
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load(dir: &Path) -> (DecoderConfig, Decoder<TestBackend>) {
    load_decoder::<TestBackend>(dir, &Default::default())
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
}

/// Logits of every case of `fixture` (its unpadded sequence and its left-padded batch).
fn logits(model: &Decoder<TestBackend>, fixture: &str) -> Vec<Vec<f32>> {
    let device = Default::default();
    cases(fixture)
        .iter()
        .map(|case| {
            model
                .forward(tokens_tensor(&case.tokens, &device), &case.padding())
                .into_data()
                .to_vec::<f32>()
                .unwrap()
        })
        .collect()
}

fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len());
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

fn assert_export_reloads_identically(fixture: &str) {
    let scratch = Scratch::new(fixture);
    let (config, model) = load(&fixture_dir(fixture));
    let out = scratch.0.join("hf");
    save_hf_dir(&model, &config, None, &out).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["config.json", "model.safetensors"]);
    let (reloaded_config, reloaded) = load(&out);
    assert_eq!(reloaded_config, config);
    assert_eq!(
        logits(&reloaded, fixture),
        logits(&model, fixture),
        "{fixture}: exported logits"
    );
}

#[test]
fn llama_export_reloads_with_identical_logits() {
    assert_export_reloads_identically("llama");
}

#[test]
fn qwen2_export_with_biases_and_separate_head_reloads_with_identical_logits() {
    assert_export_reloads_identically("qwen2");
}

#[test]
fn safetensors_file_has_hf_names_and_layout() {
    let scratch = Scratch::new("names");
    let (config, model) = load(&fixture_dir("qwen2"));
    let out = scratch.0.join("hf");
    save_hf_dir(&model, &config, None, &out).unwrap();
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let (_, metadata) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        metadata.metadata().as_ref().and_then(|m| m.get("format")),
        Some(&"pt".to_string())
    );
    let tensors = metadata.tensors();
    // 2 layers × (4 + 3 weights, 3 biases, 2 norms) + embedding, norm, head.
    assert_eq!(tensors.len(), 2 * 12 + 3);
    let shape = |name: &str| tensors[name].shape.clone();
    assert_eq!(shape("model.embed_tokens.weight"), [300, 64]);
    assert_eq!(shape("lm_head.weight"), [300, 64]);
    assert_eq!(shape("model.layers.1.self_attn.q_proj.weight"), [64, 64]);
    assert_eq!(shape("model.layers.1.self_attn.k_proj.weight"), [16, 64]);
    assert_eq!(shape("model.layers.1.self_attn.k_proj.bias"), [16]);
    assert_eq!(shape("model.layers.0.mlp.down_proj.weight"), [64, 160]);
    assert_eq!(
        shape("model.layers.0.post_attention_layernorm.weight"),
        [64]
    );
    assert!(!tensors.contains_key("model.layers.0.self_attn.o_proj.bias"));
    assert!(tensors.values().all(|t| t.dtype == safetensors::Dtype::F32));
    // The bytes of a weight are the fixture's (the fixture stores F32 in PyTorch layout).
    let fixture =
        std::fs::read(fixture_dir("qwen2").join("model-00001-of-00003.safetensors")).unwrap();
    let original = safetensors::SafeTensors::deserialize(&fixture).unwrap();
    let exported = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(!original.tensors().is_empty());
    for (name, view) in original.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name}");
        assert_eq!(
            exported.tensor(&name).unwrap().data(),
            view.data(),
            "{name}"
        );
    }
}

/// Every adapter of `model` gets a random non-zero `B`.
fn randomise_adapters(model: &mut Decoder<TestBackend>) {
    let device = Default::default();
    for layer in &mut model.layers {
        let (a, m) = (&mut layer.self_attn, &mut layer.mlp);
        for p in [
            &mut a.q_proj,
            &mut a.k_proj,
            &mut a.v_proj,
            &mut a.o_proj,
            &mut m.gate_proj,
            &mut m.up_proj,
            &mut m.down_proj,
        ] {
            let adapter = p.adapter.as_mut().expect("every projection is adapted");
            let [r, out] = adapter.lora_b.shape().dims();
            adapter.lora_b = Param::from_tensor(Tensor::random(
                [r, out],
                Distribution::Normal(0.0, 0.02),
                &device,
            ));
        }
    }
}

fn assert_lora_merges(fixture: &str) {
    let scratch = Scratch::new(&format!("lora-{fixture}"));
    let device = Default::default();
    let (config, base) = load(&fixture_dir(fixture));
    let base_logits = logits(&base, fixture);
    let targets: Vec<&str> = LoraTarget::ALL.iter().map(|t| t.name()).collect();
    let lora = LoraConfig::from_names(4, 16.0, &targets).unwrap();
    let mut adapted = base.with_lora(&lora, &device).unwrap();
    randomise_adapters(&mut adapted);
    let adapted_logits = logits(&adapted, fixture);
    let change = max_abs_diff(&adapted_logits, &base_logits);
    assert!(
        change > 0.1,
        "{fixture}: the adapters change the logits ({change})"
    );

    let merged = scratch.0.join("merged");
    save_hf_dir(&adapted, &config, None, &merged).unwrap();
    let (_, reloaded) = load(&merged);
    assert!(!reloaded.has_adapters());
    // Merging changes only the rounding (`x·(W + s·A·B)` vs `x·W + s·(x·A)·B`); the Llama
    // fixture's logits reach 50, where one f32 ulp is 4e-6, so the bound is relative.
    let largest = adapted_logits
        .iter()
        .flatten()
        .fold(1.0f32, |m, x| m.max(x.abs()));
    let err = max_abs_diff(&logits(&reloaded, fixture), &adapted_logits);
    eprintln!(
        "{fixture}: merged vs adapted max |Δlogit| = {err:.3e}, max |logit| {largest:.1}, \
         adapters moved the logits by up to {change:.3}"
    );
    assert!(err <= 2e-6 * largest, "{fixture}: merged vs adapted: {err}");

    let off = scratch.0.join("off");
    save_hf_dir(&adapted.with_adapters_enabled(false), &config, None, &off).unwrap();
    assert_eq!(
        logits(&load(&off).1, fixture),
        base_logits,
        "{fixture}: adapters off"
    );
}

#[test]
fn lora_adapters_are_merged_into_the_export() {
    assert_lora_merges("llama");
}

#[test]
fn lora_adapters_are_merged_into_the_qwen2_export() {
    assert_lora_merges("qwen2");
}

#[test]
fn config_round_trips_through_from_file() {
    let scratch = Scratch::new("config");
    let mut configs: Vec<(&str, DecoderConfig)> = ["llama", "llama_bf16", "qwen2"]
        .into_iter()
        .map(|f| {
            let path = fixture_dir(f).join("config.json");
            (f, DecoderConfig::from_file(&path).unwrap())
        })
        .collect();
    let gguf = GgufFile::open(&fixture_dir("qwen2_gguf").join("model.gguf")).unwrap();
    configs.push(("qwen2_gguf", config_from_gguf(&gguf).unwrap()));
    // A transformers < 5 style config: `rope_theta` only, no head_dim / kv heads, eos list.
    let minimal = r#"{"model_type": "llama", "vocab_size": 300, "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "max_position_embeddings": 64,
        "eos_token_id": [2, 5], "attention_bias": true}"#;
    configs.push((
        "minimal",
        DecoderConfig::from_json_str(minimal, Path::new("minimal.json")).unwrap(),
    ));
    for (name, config) in configs {
        let json = config.to_hf_json();
        let path = scratch.0.join(format!("{name}.json"));
        std::fs::write(&path, format!("{json:#}")).unwrap();
        assert_eq!(DecoderConfig::from_file(&path).unwrap(), config, "{name}");
        let arch = match config.model_type {
            epgrpo_models::Arch::Llama => "LlamaForCausalLM",
            epgrpo_models::Arch::Qwen2 => "Qwen2ForCausalLM",
            epgrpo_models::Arch::Qwen3 => "Qwen3ForCausalLM",
        };
        assert_eq!(json["architectures"], serde_json::json!([arch]), "{name}");
        assert_eq!(json["dtype"], "float32");
        assert_eq!(json["torch_dtype"], "float32");
        assert_eq!(
            json["rope_theta"].as_f64(),
            Some(config.rope_theta),
            "{name}"
        );
        assert_eq!(json["tie_word_embeddings"], config.tie_word_embeddings);
    }
    // The qwen2 fixture as transformers 5.24 wrote it: every field we write has its value.
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir("qwen2").join("config.json")).unwrap(),
    )
    .unwrap();
    let ours = DecoderConfig::from_file(&fixture_dir("qwen2").join("config.json"))
        .unwrap()
        .to_hf_json();
    for (key, value) in ours.as_object().unwrap() {
        if !["rope_theta", "torch_dtype"].contains(&key.as_str()) {
            assert_eq!(&fixture[key], value, "qwen2 `{key}`");
        }
    }
}

#[test]
fn tokenizer_round_trips_through_from_dir() {
    let scratch = Scratch::new("tokenizer");
    let (config, model) = load(&fixture_dir("llama"));
    let tok = TextTokenizer::from_dir(&fixture_dir("tokenizer")).unwrap();
    let out = scratch.0.join("hf");
    save_hf_dir(&model, &config, Some(&tok), &out).unwrap();
    let back = TextTokenizer::from_dir(&out).unwrap();
    for text in [
        "What is 12 + 30?",
        "<|im_start|>user\nHi there, it's 2024!<|im_end|>",
        "  spaces\tand\nnewlines  ",
        "",
    ] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(back.encode(text).unwrap(), ids, "{text:?}");
        assert_eq!(
            back.decode(&ids, false).unwrap(),
            tok.decode(&ids, false).unwrap()
        );
    }
    assert_eq!(back.vocab_size(), tok.vocab_size());
    assert_eq!(back.stop_tokens(), tok.stop_tokens());
    assert_eq!(back.eos_token_id(), tok.eos_token_id());
    assert!(tok.eos_token_id().is_some());
    assert_eq!(back.chat_template().unwrap(), tok.chat_template().unwrap());
    assert_eq!(back.chat_template_source(), tok.chat_template_source());
    assert_eq!(back.special_tokens(), tok.special_tokens());
    assert_eq!(
        back.encode_chat("What is 2 + 2?").unwrap(),
        tok.encode_chat("What is 2 + 2?").unwrap()
    );
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["eos_token"], "<|im_end|>");
    assert_eq!(config["tokenizer_class"], "PreTrainedTokenizerFast");
    // The model still loads next to the tokenizer files.
    assert_eq!(logits(&load(&out).1, "llama"), logits(&model, "llama"));
}

#[test]
fn an_earlier_export_is_replaced_and_other_directories_are_not() {
    let scratch = Scratch::new("replace");
    let (config, model) = load(&fixture_dir("llama"));
    let tok = TextTokenizer::from_dir(&fixture_dir("tokenizer")).unwrap();
    let out = scratch.0.join("hf");
    save_hf_dir(&model, &config, Some(&tok), &out).unwrap();
    save_hf_dir(&model, &config, None, &out).unwrap();
    assert!(
        !out.join("tokenizer.json").exists(),
        "the old export is replaced"
    );
    assert!(!scratch.0.join("hf.tmp").exists() && !scratch.0.join("hf.old").exists());

    let run = scratch.0.join("run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("state.json"), "{}").unwrap();
    let err = save_hf_dir(&model, &config, None, &run).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&run.display().to_string()) && msg.contains("state.json"),
        "{msg}"
    );
    assert!(run.join("state.json").exists(), "nothing was removed");
}

#[test]
fn unwritable_target_is_an_error_naming_the_path() {
    let scratch = Scratch::new("unwritable");
    let (config, model) = load(&fixture_dir("llama"));
    // A regular file where a parent directory should be: unwritable even for root.
    let blocker = scratch.0.join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let target = blocker.join("hf");
    let err = save_hf_dir(&model, &config, None, &target).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::Write { .. }), "{msg}");
    assert!(msg.contains(&target.display().to_string()), "{msg}");
}

#[test]
fn a_config_that_does_not_describe_the_decoder_is_refused_before_writing() {
    let scratch = Scratch::new("mismatch");
    let (config, model) = load(&fixture_dir("llama"));
    let out = scratch.0.join("hf");
    let mut untied = config.clone();
    untied.tie_word_embeddings = false;
    let err = save_hf_dir(&model, &untied, None, &out).unwrap_err();
    assert!(err.to_string().contains("tie_word_embeddings"), "{err}");
    let mut wider = config.clone();
    wider.intermediate_size = 256;
    let err = save_hf_dir(&model, &wider, None, &out).unwrap_err();
    assert!(
        matches!(&err, ModelError::ShapeMismatch { tensor, .. } if tensor == "model.layers.0.mlp.gate_proj.weight"),
        "{err}"
    );
    let mut biased = config;
    biased.attention_bias = true;
    let err = save_hf_dir(&model, &biased, None, &out).unwrap_err();
    assert!(
        matches!(&err, ModelError::MissingTensor { tensor, .. } if tensor == "model.layers.0.self_attn.q_proj.bias"),
        "{err}"
    );
    assert!(!out.exists() && !scratch.0.join("hf.tmp").exists());
}
