//! Finished rows leaving the decode batch changes nothing: compacted decoding (after every
//! stop, and at the default 1/8 threshold) gives the completions of uncompacted decoding —
//! tokens, log-probs, finish reasons and order — with stop tokens that end rows at different
//! steps, on the transformers-checked fixtures (left-padded prompts of different lengths); a
//! KV cache cut to some rows continues as those rows of the whole cache do.

#[allow(dead_code)] // shared by several test binaries; each uses a part of it
mod reference;

use epgrpo_models::{
    Compaction, Completion, FinishReason, GenerationConfig, KvCache, LeftPadding, RowOutOfRange,
    Sampling, generate_with_compaction, load_decoder,
};
use reference::{TestBackend, fixture_dir, tokens_tensor};

fn prompts() -> Vec<Vec<u32>> {
    vec![vec![1, 23, 45, 67, 89], vec![1, 200, 13], vec![5, 6, 7, 8]]
}

fn run(fixture: &str, config: &GenerationConfig, compaction: Compaction) -> Vec<Completion> {
    let device = Default::default();
    let (_, model) = load_decoder::<TestBackend>(&fixture_dir(fixture), &device).unwrap();
    generate_with_compaction(&model, &prompts(), 2, config, compaction, &device).unwrap()
}

fn assert_compaction_changes_nothing(fixture: &str, sampling: Sampling) {
    let free = GenerationConfig {
        samples_per_prompt: 4,
        max_new_tokens: 9,
        sampling,
        stop_tokens: Vec::new(),
        seed: 17,
        pad_token: 0,
    };
    let unstopped = run(fixture, &free, Compaction::Off);
    // Stop tokens taken from rows at different steps, so rows end at several steps.
    let stop_tokens: Vec<u32> = [(0, 1), (5, 3), (10, 5)]
        .iter()
        .map(|&(row, step)| unstopped[row].tokens[step])
        .collect();
    let config = GenerationConfig {
        stop_tokens,
        ..free
    };
    let reference = run(fixture, &config, Compaction::Off);
    let mut ends: Vec<usize> = reference
        .iter()
        .filter(|c| c.finish == FinishReason::Stop)
        .map(|c| c.tokens.len())
        .collect();
    ends.sort_unstable();
    ends.dedup();
    assert!(
        ends.len() >= 2 && reference.iter().any(|c| c.finish == FinishReason::Length),
        "{fixture}: rows should stop at several steps and some run to the limit: {reference:?}"
    );
    for compaction in [Compaction::EveryStop, Compaction::Eighth] {
        assert_eq!(
            run(fixture, &config, compaction),
            reference,
            "{fixture}, {compaction:?}"
        );
    }
}

#[test]
fn compacted_random_decoding_equals_uncompacted_decoding() {
    let sampling = Sampling::Random {
        temperature: 1.0,
        top_k: None,
        top_p: None,
    };
    assert_compaction_changes_nothing("qwen2", sampling);
}

#[test]
fn compacted_truncated_decoding_equals_uncompacted_decoding() {
    let sampling = Sampling::Random {
        temperature: 1.2,
        top_k: Some(40),
        top_p: Some(0.9),
    };
    assert_compaction_changes_nothing("qwen2", sampling);
}

#[test]
fn selected_cache_rows_continue_like_their_source_rows() {
    let device = Default::default();
    let (_, model) = load_decoder::<TestBackend>(&fixture_dir("qwen2"), &device).unwrap();
    let prompts = vec![
        vec![0, 0, 1, 40, 41],
        vec![1, 7, 8, 9, 10],
        vec![0, 3, 4, 5, 6],
    ];
    let mut cache = model.new_cache(LeftPadding::new(vec![2, 0, 1]), 7, &device);
    model.forward_cached(tokens_tensor(&prompts, &device), &mut cache);
    let mut selected = cache.select_rows(&[2, 0]).unwrap();
    assert_eq!(selected.padding().pad(), &[1, 2]);
    let step = |rows: Vec<Vec<i64>>, cache: &mut KvCache<TestBackend>| {
        let out = model.forward_cached(tokens_tensor(&rows, &device), cache);
        out.into_data().to_vec::<f32>().unwrap()
    };
    let all = step(vec![vec![100], vec![101], vec![102]], &mut cache);
    let some = step(vec![vec![102], vec![100]], &mut selected);
    let vocab = all.len() / 3;
    for (i, source) in [2, 0].into_iter().enumerate() {
        let (a, b) = (
            &all[source * vocab..(source + 1) * vocab],
            &some[i * vocab..(i + 1) * vocab],
        );
        let err = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-5, "row {source}: max |Δ| = {err}");
    }
    assert_eq!(
        cache.select_rows(&[0, 3]).unwrap_err(),
        RowOutOfRange { row: 3, batch: 3 }
    );
}
