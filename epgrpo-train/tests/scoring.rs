//! Teacher-forced scoring agrees with the sampler: the log-prob that generation recorded for
//! each sampled token equals the one `response_logp_entropy` recomputes (E1 at the sampling
//! temperature), row by row, including padded prompts and answers of different lengths.

use burn::backend::NdArray;
use burn::tensor::Tensor;
use epgrpo_eval::{TaskKind, Verifier, VerifierConfig};
use epgrpo_models::{Decoder, HeadLoss};
use epgrpo_train::codec::Codec;
use epgrpo_train::config::{ModelConfig, RolloutConfig, TaskConfig};
use epgrpo_train::policy::decoder_config;
use epgrpo_train::rollout::{generation_config, rollout};
use epgrpo_train::scoring::{response_logp_entropy, response_logp_entropy_chunked};
use epgrpo_train::task::{ArithmeticTask, Split};

type B = NdArray<f32>;

#[test]
fn teacher_forcing_recomputes_the_sampling_log_probs() {
    let device = Default::default();
    let model_config = ModelConfig {
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        ..ModelConfig::default()
    };
    let model = Decoder::<B>::init(&decoder_config(&model_config).unwrap(), &device);
    let task = ArithmeticTask::new(&TaskConfig::default());
    let problems = (0..5).map(|i| task.problem(Split::Train, 3, i)).collect();
    let rollout_config = RolloutConfig {
        temperature: 0.7,
        max_new_tokens: 5,
        ..RolloutConfig::default()
    };
    let codec = Codec::chars("{question}=");
    let generation = generation_config(&rollout_config, &codec, 3, 11, false);
    let verifier = Verifier::new(TaskKind::Math, VerifierConfig::default()).unwrap();
    let batch = rollout(&model, &codec, problems, &generation, &verifier, &device).unwrap();
    let sequences = batch.sequences();
    let (logp, entropy) = response_logp_entropy(&model, &sequences, 0.7, &device);
    let c = sequences.response_width;
    let logp = logp.to_data().convert::<f32>().to_vec::<f32>().unwrap();
    let entropy = entropy.to_data().convert::<f32>().to_vec::<f32>().unwrap();
    let lengths: std::collections::HashSet<usize> =
        batch.completions.iter().map(|c| c.tokens.len()).collect();
    assert!(
        lengths.len() > 1 || c == 5,
        "answers of several lengths or all at the limit"
    );
    for (row, completion) in batch.completions.iter().enumerate() {
        for (t, sampled) in completion.logprobs.iter().enumerate() {
            let scored = logp[row * c + t];
            assert!(
                (scored - sampled).abs() < 1e-4,
                "row {row} token {t}: scored {scored}, sampled {sampled}"
            );
            assert!(entropy[row * c + t] > 0.0);
        }
        for t in completion.tokens.len()..c {
            assert_eq!(
                (logp[row * c + t], entropy[row * c + t]),
                (0.0, 0.0),
                "padding row {row} token {t}"
            );
        }
    }
    // Scoring in chunks of 4 rows (15 = 4 + 4 + 4 + 3) gives the same numbers.
    let (chunked_logp, chunked_entropy) =
        response_logp_entropy_chunked(&model, &sequences, 0.7, 4, HeadLoss::default(), &device);
    let close = |a: &[f32], b: Tensor<B, 2>| {
        let b = b.to_data().to_vec::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-5)
    };
    assert!(close(&logp, chunked_logp) && close(&entropy, chunked_entropy));
}
