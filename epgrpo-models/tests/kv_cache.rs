//! Prefill + token-by-token decoding through the KV cache against one full forward pass, on
//! the transformers-checked fixtures (a left-padded batch; GQA with 2 and with 1 KV head).

#[allow(dead_code)] // shared by several test binaries; each uses a part of it
mod reference;

use burn::prelude::*;
use epgrpo_models::{Decoder, LeftPadding, load_decoder};
use reference::{TestBackend, cases, fixture_dir, max_abs_diff, tokens_tensor};

/// Maximum absolute logit difference between cached and uncached decoding.
const TOLERANCE: f32 = 1e-5;

fn decode_incrementally(
    model: &Decoder<TestBackend>,
    rows: &[Vec<i64>],
    padding: LeftPadding,
    prefill: usize,
) -> Tensor<TestBackend, 3> {
    let device = Default::default();
    let width = rows[0].len();
    let mut cache = model.new_cache(padding, width + 2, &device);
    let columns = |a: usize, b: usize| {
        let part: Vec<Vec<i64>> = rows.iter().map(|r| r[a..b].to_vec()).collect();
        tokens_tensor(&part, &device)
    };
    let mut outputs = vec![model.forward_cached(columns(0, prefill), &mut cache)];
    for t in prefill..width {
        outputs.push(model.forward_cached(columns(t, t + 1), &mut cache));
    }
    assert_eq!(cache.len(), width);
    Tensor::cat(outputs, 1)
}

fn assert_cache_matches_full_forward(fixture: &str) {
    let device = Default::default();
    let (_, model) = load_decoder::<TestBackend>(&fixture_dir(fixture), &device).unwrap();
    let case = cases(fixture)
        .into_iter()
        .find(|c| c.name == "padded")
        .unwrap();
    let full = model.forward(case.token_tensor(&device), &case.padding());
    let full = full.into_data().to_vec::<f32>().unwrap();
    for prefill in [1, 5] {
        let cached = decode_incrementally(&model, &case.tokens, case.padding(), prefill);
        let cached = cached.into_data().to_vec::<f32>().unwrap();
        let err = max_abs_diff(&cached, &full, case.shape, &case.left_pad);
        assert!(
            err < TOLERANCE,
            "{fixture}, prefill {prefill}: max |Δ| = {err}"
        );
    }
}

#[test]
fn llama_cached_decoding_matches_full_forward() {
    assert_cache_matches_full_forward("llama");
}

#[test]
fn qwen2_cached_decoding_matches_full_forward() {
    assert_cache_matches_full_forward("qwen2");
}

#[test]
fn repeated_rows_continue_like_their_source_row() {
    let device = Default::default();
    let (_, model) = load_decoder::<TestBackend>(&fixture_dir("qwen2"), &device).unwrap();
    let prompts = vec![vec![0, 0, 1, 40, 41], vec![1, 7, 8, 9, 10]];
    let padding = LeftPadding::new(vec![2, 0]);
    let mut cache = model.new_cache(padding.clone(), 8, &device);
    model.forward_cached(tokens_tensor(&prompts, &device), &mut cache);
    let mut forked = cache.repeat_rows(3);
    // Row b*3 + g continues prompt b with token 100 + g.
    let next: Vec<Vec<i64>> = (0..6).map(|r| vec![100 + (r % 3) as i64]).collect();
    let step = model.forward_cached(tokens_tensor(&next, &device), &mut forked);
    let step = step.into_data().to_vec::<f32>().unwrap();
    let vocab = step.len() / 6;
    for (r, token) in next.iter().enumerate() {
        let mut row = prompts[r / 3].clone();
        row.push(token[0]);
        let pad = LeftPadding::new(vec![padding.pad()[r / 3]]);
        let full = model.forward(tokens_tensor(&[row], &device), &pad);
        let full = full.into_data().to_vec::<f32>().unwrap();
        let last = &full[full.len() - vocab..];
        let err = max_abs_diff(&step[r * vocab..(r + 1) * vocab], last, [1, 1, vocab], &[0]);
        assert!(err < TOLERANCE, "forked row {r}: max |Δ| = {err}");
    }
}
