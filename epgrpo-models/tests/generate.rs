//! Generation on the transformers-checked fixtures: greedy decoding equals the argmax of full
//! forward passes, seeds make samples reproducible, limits and stop tokens are honoured, and
//! the reported log-probs equal `log_softmax(logits / T)` of a teacher-forced full forward.

#[allow(dead_code)] // shared by several test binaries; each uses a part of it
mod reference;

use burn::tensor::activation::log_softmax;
use epgrpo_models::{
    Completion, Decoder, FinishReason, GenerateError, GenerationConfig, LeftPadding, Sampling,
    generate, load_decoder,
};
use reference::{TestBackend, fixture_dir, tokens_tensor};

const PROMPTS: [&[u32]; 2] = [&[1, 23, 45, 67, 89], &[1, 200, 13]];

fn model(fixture: &str) -> Decoder<TestBackend> {
    load_decoder::<TestBackend>(&fixture_dir(fixture), &Default::default())
        .unwrap()
        .1
}

fn prompts() -> Vec<Vec<u32>> {
    PROMPTS.iter().map(|p| p.to_vec()).collect()
}

fn config(sampling: Sampling, samples: usize, max_new: usize, seed: u64) -> GenerationConfig {
    GenerationConfig {
        samples_per_prompt: samples,
        max_new_tokens: max_new,
        sampling,
        stop_tokens: Vec::new(),
        seed,
        pad_token: 0,
    }
}

fn random(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> Sampling {
    Sampling::Random {
        temperature,
        top_k,
        top_p,
    }
}

/// `log_softmax(logits / temperature)` of a full, unpadded forward over prompt + completion,
/// at the positions that predicted each completion token.
fn teacher_forced_logprobs(
    model: &Decoder<TestBackend>,
    prompt: &[u32],
    completion: &Completion,
    temperature: f32,
) -> Vec<f32> {
    let device = Default::default();
    let row: Vec<i64> = prompt
        .iter()
        .chain(&completion.tokens)
        .map(|&t| i64::from(t))
        .collect();
    let logits = model.forward(
        tokens_tensor(std::slice::from_ref(&row), &device),
        &LeftPadding::none(1),
    );
    let logp = log_softmax(logits / temperature, 2);
    let [_, t, v] = logp.dims();
    let logp = logp.into_data().to_vec::<f32>().unwrap();
    (prompt.len()..t)
        .map(|pos| logp[(pos - 1) * v + row[pos] as usize])
        .collect()
}

#[test]
fn greedy_generation_is_deterministic_and_follows_full_forward_argmax() {
    let model = model("llama");
    let cfg = config(Sampling::Greedy, 2, 6, 0);
    let device = Default::default();
    let a = generate(&model, &prompts(), &cfg, &device).unwrap();
    let b = generate(&model, &prompts(), &cfg, &device).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 4);
    for c in &a {
        assert_eq!(
            c.tokens,
            a[c.prompt * 2].tokens,
            "greedy samples of one prompt agree"
        );
        let prompt = PROMPTS[c.prompt];
        let row: Vec<i64> = prompt
            .iter()
            .chain(&c.tokens)
            .map(|&t| i64::from(t))
            .collect();
        let logits = model.forward(
            tokens_tensor(std::slice::from_ref(&row), &device),
            &LeftPadding::none(1),
        );
        let [_, t, v] = logits.dims();
        let logits = logits.into_data().to_vec::<f32>().unwrap();
        for pos in prompt.len()..t {
            let step = &logits[(pos - 1) * v..pos * v];
            let best = step
                .iter()
                .enumerate()
                .fold(0, |b, (i, &x)| if x > step[b] { i } else { b });
            assert_eq!(best as i64, row[pos], "prompt {} position {pos}", c.prompt);
        }
    }
}

#[test]
fn same_seed_gives_same_samples_and_other_seed_differs() {
    let model = model("qwen2");
    let device = Default::default();
    let sampling = random(1.0, None, None);
    let run = |seed| {
        generate(
            &model,
            &prompts(),
            &config(sampling.clone(), 3, 8, seed),
            &device,
        )
    };
    let a = run(11).unwrap();
    assert_eq!(a, run(11).unwrap());
    let b = run(12).unwrap();
    let tokens = |cs: &[Completion]| cs.iter().map(|c| c.tokens.clone()).collect::<Vec<_>>();
    assert_ne!(tokens(&a), tokens(&b));
    // The G samples of one prompt are different draws.
    assert_ne!(a[0].tokens, a[1].tokens);
}

#[test]
fn max_new_tokens_and_stop_tokens_are_honoured() {
    let model = model("qwen2");
    let device = Default::default();
    let cfg = config(random(1.0, Some(20), None), 4, 5, 3);
    let free = generate(&model, &prompts(), &cfg, &device).unwrap();
    for c in &free {
        assert_eq!(c.tokens.len(), 5);
        assert_eq!(c.logprobs.len(), 5);
        assert_eq!(c.finish, FinishReason::Length);
    }
    // Stop on the third token of the first completion: that row must end there.
    let stop = free[0].tokens[2];
    let cfg = GenerationConfig {
        stop_tokens: vec![stop],
        ..cfg
    };
    let stopped = generate(&model, &prompts(), &cfg, &device).unwrap();
    let first_stop = free[0].tokens.iter().position(|&t| t == stop).unwrap();
    assert_eq!(stopped[0].tokens, free[0].tokens[..=first_stop].to_vec());
    assert_eq!(stopped[0].finish, FinishReason::Stop);
    for (s, f) in stopped.iter().zip(&free) {
        // Each row is the unstopped row cut after its first stop token.
        match f.tokens.iter().position(|&t| t == stop) {
            Some(i) => {
                assert_eq!(s.tokens, f.tokens[..=i].to_vec());
                assert_eq!(s.finish, FinishReason::Stop);
            }
            None => {
                assert_eq!(s.tokens, f.tokens);
                assert_eq!(s.finish, FinishReason::Length);
            }
        }
    }
}

#[test]
fn sampled_logprobs_equal_tempered_log_softmax_of_full_forward() {
    let model = model("qwen2");
    let device = Default::default();
    let temperature = 0.7;
    let cfg = config(random(temperature, Some(50), Some(0.95)), 2, 6, 5);
    let completions = generate(&model, &prompts(), &cfg, &device).unwrap();
    for c in &completions {
        let want = teacher_forced_logprobs(&model, PROMPTS[c.prompt], c, temperature);
        assert_eq!(want.len(), c.logprobs.len());
        for (g, w) in c.logprobs.iter().zip(&want) {
            assert!(
                (g - w).abs() < 1e-4,
                "prompt {} sample {}: {g} vs {w}",
                c.prompt,
                c.sample
            );
        }
    }
}

#[test]
fn invalid_requests_are_refused() {
    let model = model("llama");
    let device = Default::default();
    let cfg = config(Sampling::Greedy, 1, 3, 0);
    let err = generate(&model, &[vec![1, 2], vec![]], &cfg, &device).unwrap_err();
    assert_eq!(err, GenerateError::EmptyPrompt { index: 1 });
    let cfg = config(random(0.0, None, None), 1, 3, 0);
    let err = generate(&model, &prompts(), &cfg, &device).unwrap_err();
    assert!(matches!(
        err,
        GenerateError::InvalidSetting {
            field: "temperature",
            ..
        }
    ));
}
