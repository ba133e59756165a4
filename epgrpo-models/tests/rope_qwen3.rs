//! RoPE scaling (`linear`, `dynamic`, `llama3`, `yarn`) and Qwen3 against Hugging Face
//! transformers (PyTorch, f32) on the fixtures of `fixtures/make_fixtures_rope_qwen3.py`: the
//! logits of a left-padded batch of 40, 23 and 9 tokens, and greedy completions of a padded
//! prompt batch through [`generate`] (KV cache, one token per step) against transformers'
//! `generate(do_sample=False)`. Each test also checks that the feature under test matters:
//! the same weights with plain RoPE (or without Qwen3's q/k norms) miss the reference. Last,
//! every fixture exported with `save_hf_dir` loads back with the same config and logits.

#[allow(dead_code)] // shared by several test binaries; each uses a part of it
mod reference;

use epgrpo_models::rope::RotaryEmbedding;
use epgrpo_models::{
    Arch, Decoder, DecoderConfig, GenerationConfig, RopeScaling, Sampling, generate, load_decoder,
    load_gguf, save_hf_dir,
};
use reference::{TestBackend, cases, fixture_dir, max_abs_diff};
use serde::Deserialize;

/// Maximum absolute logit error tolerated against transformers.
const TOLERANCE: f32 = 1e-4;

/// A change of the computation must move some logit by more than this.
const MATTERS: f32 = 0.05;

/// The greedy completions of a fixture's `reference.json`.
#[derive(Debug, Deserialize)]
struct Greedy {
    prompts: Vec<Vec<u32>>,
    max_new_tokens: usize,
    stop: Vec<u32>,
    completions: Vec<Vec<u32>>,
}

#[derive(Debug, Deserialize)]
struct WithGenerate {
    generate: Greedy,
}

fn greedy_reference(fixture: &str) -> Greedy {
    let path = fixture_dir(fixture).join("reference.json");
    let text = std::fs::read_to_string(&path).expect("fixture reference.json is readable");
    let parsed: WithGenerate = serde_json::from_str(&text).expect("reference.json parses");
    parsed.generate
}

fn load(fixture: &str) -> (DecoderConfig, Decoder<TestBackend>) {
    let device = Default::default();
    let dir = fixture_dir(fixture);
    let gguf = dir.join("model.gguf");
    let loaded = if gguf.exists() {
        load_gguf::<TestBackend>(&gguf, &device)
    } else {
        load_decoder::<TestBackend>(&dir, &device)
    };
    loaded.unwrap_or_else(|e| panic!("loading {fixture}: {e}"))
}

/// Largest logit error of `decoder` over the fixture's cases.
fn logit_error(fixture: &str, decoder: &Decoder<TestBackend>) -> f32 {
    let device = Default::default();
    cases(fixture)
        .iter()
        .map(|case| {
            let logits = decoder.forward(case.token_tensor(&device), &case.padding());
            assert_eq!(logits.dims(), case.shape, "{fixture}/{}", case.name);
            let got = logits.into_data().to_vec::<f32>().unwrap();
            max_abs_diff(&got, &case.logits, case.shape, &case.left_pad)
        })
        .fold(0.0, f32::max)
}

/// Loads `fixture`, checks its architecture and scaling, its logits and its greedy tokens
/// against transformers, and returns the decoder for the "it matters" checks.
fn assert_matches_transformers(
    fixture: &str,
    arch: Arch,
    scaling: fn(&RopeScaling) -> bool,
) -> Decoder<TestBackend> {
    let (config, decoder) = load(fixture);
    assert_eq!(config.model_type, arch);
    assert!(
        scaling(decoder.rope.scaling()),
        "{fixture}: {:?}",
        decoder.rope.scaling()
    );
    let err = logit_error(fixture, &decoder);
    eprintln!("{fixture}: max |Δlogit| = {err:.3e}");
    assert!(err < TOLERANCE, "{fixture}: max |Δlogit| = {err}");

    let greedy = greedy_reference(fixture);
    assert_eq!(
        greedy_tokens(&decoder, &greedy),
        greedy.completions,
        "{fixture}: greedy tokens"
    );
    decoder
}

/// Greedy completions of the reference prompts through the KV-cache decoding path.
fn greedy_tokens(decoder: &Decoder<TestBackend>, greedy: &Greedy) -> Vec<Vec<u32>> {
    let generation = GenerationConfig {
        samples_per_prompt: 1,
        max_new_tokens: greedy.max_new_tokens,
        sampling: Sampling::Greedy,
        stop_tokens: greedy.stop.clone(),
        seed: 0,
        pad_token: 0,
    };
    generate(decoder, &greedy.prompts, &generation, &Default::default())
        .expect("valid generation config")
        .into_iter()
        .map(|c| c.tokens)
        .collect()
}

/// `decoder`, altered by the caller, misses the logits by more than [`MATTERS`] and the greedy
/// tokens somewhere.
fn assert_misses_reference(fixture: &str, decoder: &Decoder<TestBackend>, what: &str) {
    let err = logit_error(fixture, decoder);
    assert!(err > MATTERS, "{fixture}: {what} is as close ({err})");
    let greedy = greedy_reference(fixture);
    assert_ne!(
        greedy_tokens(decoder, &greedy),
        greedy.completions,
        "{fixture}: {what} decodes the same tokens"
    );
}

/// The same weights with unscaled RoPE must miss the reference.
fn assert_scaling_matters(fixture: &str, mut decoder: Decoder<TestBackend>) {
    let (config, _) = load(fixture);
    decoder.rope = RotaryEmbedding::new(config.head_dim(), config.rope_theta, RopeScaling::Default);
    assert_misses_reference(fixture, &decoder, "unscaled RoPE");
}

#[test]
fn linear_scaling_matches_transformers() {
    let decoder = assert_matches_transformers("rope_linear", Arch::Llama, |s| {
        *s == RopeScaling::Linear { factor: 4.0 }
    });
    assert_scaling_matters("rope_linear", decoder);
}

#[test]
fn dynamic_ntk_matches_transformers_past_the_original_context() {
    let decoder = assert_matches_transformers("rope_dynamic", Arch::Llama, |s| {
        *s == RopeScaling::Dynamic {
            factor: 4.0,
            original_max_positions: 16,
        }
    });
    assert_scaling_matters("rope_dynamic", decoder);
}

#[test]
fn llama3_scaling_from_a_transformers4_config_matches_transformers() {
    let decoder = assert_matches_transformers("rope_llama3", Arch::Llama, |s| {
        matches!(
            s,
            RopeScaling::Llama3 {
                original_max_positions: 64,
                ..
            }
        )
    });
    assert_scaling_matters("rope_llama3", decoder);
}

#[test]
fn yarn_scaling_qwen25_style_matches_transformers() {
    let decoder = assert_matches_transformers(
        "rope_yarn",
        Arch::Qwen2,
        |s| matches!(s, RopeScaling::Yarn(y) if y.factor == 4.0 && y.original_max_positions == 256),
    );
    assert_scaling_matters("rope_yarn", decoder);
}

#[test]
fn qwen3_matches_transformers_and_its_qk_norms_matter() {
    let mut decoder =
        assert_matches_transformers("qwen3", Arch::Qwen3, |s| *s == RopeScaling::Default);
    for layer in &mut decoder.layers {
        layer.self_attn.q_norm = None;
        layer.self_attn.k_norm = None;
    }
    assert_misses_reference("qwen3", &decoder, "Qwen3 without q/k norms");
}

#[test]
fn qwen3_gguf_with_yarn_metadata_matches_transformers() {
    let decoder = assert_matches_transformers(
        "qwen3_gguf",
        Arch::Qwen3,
        |s| matches!(s, RopeScaling::Yarn(y) if y.factor == 2.0 && y.original_max_positions == 32),
    );
    assert!(decoder.lm_head.is_some(), "the GGUF has an output.weight");
    assert_scaling_matters("qwen3_gguf", decoder);
}

#[test]
fn scaled_and_qwen3_models_export_and_load_back_unchanged() {
    let scratch = std::env::temp_dir().join(format!("epgrpo-rope-qwen3-{}", std::process::id()));
    let fixtures = [
        "rope_linear",
        "rope_dynamic",
        "rope_llama3",
        "rope_yarn",
        "qwen3",
        "qwen3_gguf",
    ];
    for fixture in fixtures {
        let (config, decoder) = load(fixture);
        let out = scratch.join(fixture);
        save_hf_dir(&decoder, &config, None, &out).unwrap_or_else(|e| panic!("{fixture}: {e}"));
        let (back_config, back) = load_decoder::<TestBackend>(&out, &Default::default())
            .unwrap_or_else(|e| panic!("{fixture} export: {e}"));
        assert_eq!(back_config, config, "{fixture}");
        assert_eq!(back.rope.scaling(), decoder.rope.scaling(), "{fixture}");
        let err = logit_error(fixture, &back);
        assert!(err < TOLERANCE, "{fixture} export: max |Δlogit| = {err}");
    }
    std::fs::remove_dir_all(&scratch).unwrap();
}
