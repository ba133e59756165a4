//! Logits of checkpoints loaded by `load_decoder` against Hugging Face transformers (PyTorch,
//! f32) on the fixtures of `fixtures/make_fixtures.py`: an unpadded sequence and a left-padded
//! batch, for Llama (tied head, GQA 4/2), the same Llama stored as BF16, and Qwen2 (q/k/v
//! biases, GQA 4/1, separate head, sharded checkpoint).

#[allow(dead_code)] // shared by several test binaries; each uses a part of it
mod reference;

use epgrpo_models::{Arch, load_decoder, load_gguf};
use reference::{TestBackend, cases, fixture_dir, max_abs_diff};

/// Maximum absolute logit error tolerated against transformers.
const TOLERANCE: f32 = 1e-4;

fn assert_matches_transformers(fixture: &str, arch: Arch) {
    let device = Default::default();
    let (config, decoder) = load_decoder::<TestBackend>(&fixture_dir(fixture), &device)
        .unwrap_or_else(|e| panic!("loading {fixture}: {e}"));
    assert_eq!(config.model_type, arch);
    for case in cases(fixture) {
        let logits = decoder.forward(case.token_tensor(&device), &case.padding());
        assert_eq!(logits.dims(), case.shape, "{fixture}/{}", case.name);
        let got = logits.into_data().to_vec::<f32>().unwrap();
        let err = max_abs_diff(&got, &case.logits, case.shape, &case.left_pad);
        eprintln!("{fixture}/{}: max |Δlogit| = {err:.3e}", case.name);
        assert!(
            err < TOLERANCE,
            "{fixture}/{}: max |Δlogit| = {err}",
            case.name
        );
    }
}

#[test]
fn llama_tied_logits_match_transformers() {
    assert_matches_transformers("llama", Arch::Llama);
}

#[test]
fn llama_bf16_checkpoint_logits_match_transformers() {
    assert_matches_transformers("llama_bf16", Arch::Llama);
}

#[test]
fn qwen2_sharded_logits_match_transformers() {
    assert_matches_transformers("qwen2", Arch::Qwen2);
}

/// GGUF fixtures (`{fixture}/model.gguf`) against transformers run on the dequantised weights.
fn assert_gguf_matches_transformers(fixture: &str, arch: Arch) {
    let device = Default::default();
    let path = fixture_dir(fixture).join("model.gguf");
    let (config, decoder) = load_gguf::<TestBackend>(&path, &device)
        .unwrap_or_else(|e| panic!("loading {fixture}: {e}"));
    assert_eq!(config.model_type, arch);
    for case in cases(fixture) {
        let logits = decoder.forward(case.token_tensor(&device), &case.padding());
        let got = logits.into_data().to_vec::<f32>().unwrap();
        let err = max_abs_diff(&got, &case.logits, case.shape, &case.left_pad);
        eprintln!("{fixture}/{}: max |Δlogit| = {err:.3e}", case.name);
        assert!(
            err < TOLERANCE,
            "{fixture}/{}: max |Δlogit| = {err}",
            case.name
        );
    }
}

#[test]
fn llama_gguf_with_permuted_qk_matches_transformers() {
    assert_gguf_matches_transformers("llama_gguf", Arch::Llama);
}

#[test]
fn qwen2_gguf_matches_transformers() {
    assert_gguf_matches_transformers("qwen2_gguf", Arch::Qwen2);
}
