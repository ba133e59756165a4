//! The fused, chunked output head ([`HeadLoss::Chunked`]) through a whole tiny decoder gives the
//! same response log-probs, entropies and parameter gradients as the materialised head
//! ([`HeadLoss::Materialised`]: `[N, V]` logits, then E1), for tied and separate heads, chunk
//! sizes that do not divide the token count, and padded prompts and responses.

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData, backend::AutodiffBackend};
use epgrpo_models::{Decoder, DecoderConfig, HeadLoss};
use epgrpo_train::scoring::{SequenceBatch, response_logp_entropy_with};

type B = Autodiff<NdArray<f32>>;

/// Values: |a − e| ≤ TOL; gradients: |a − e| ≤ TOL + 1e-3 |e| (f32 sums in another order).
const TOL: f64 = 2e-5;

fn decoder(tied: bool) -> Decoder<B> {
    let json = format!(
        r#"{{"model_type": "qwen2", "vocab_size": 53, "hidden_size": 16,
        "intermediate_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "max_position_embeddings": 64, "tie_word_embeddings": {tied}}}"#
    );
    let config = DecoderConfig::from_json_str(&json, Path::new("config.json")).unwrap();
    Decoder::init(&config, &Default::default())
}

/// Five rows with prompts of 1–4 tokens and responses of 1–6 tokens: 5 × 6 = 30 positions,
/// 11 of them padding.
fn batch() -> SequenceBatch {
    let prompts: Vec<Vec<u32>> = vec![
        vec![3, 9],
        vec![4],
        vec![5, 6, 7, 8],
        vec![10, 11, 12],
        vec![13, 2],
    ];
    let responses: Vec<Vec<u32>> = vec![
        vec![20, 21, 22],
        vec![30, 31, 32, 33, 34, 35],
        vec![40],
        vec![41, 42, 43, 44],
        vec![50, 51, 52, 1, 2],
    ];
    let p: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let r: Vec<&[u32]> = responses.iter().map(Vec::as_slice).collect();
    SequenceBatch::new(&p, &r, 0)
}

/// `(label, gradient)` of every float parameter, in the module's structural order.
type ParamGrads = Vec<(String, Vec<f64>)>;

/// Collects [`ParamGrads`].
struct Collect<'a> {
    grads: &'a <B as AutodiffBackend>::Gradients,
    out: ParamGrads,
}

impl ModuleVisitor<B> for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let grad = param.val().grad(self.grads).map(to_f64).unwrap_or_default();
        self.out.push((
            format!("param {} {:?}", self.out.len(), param.shape()),
            grad,
        ));
    }
}

fn to_f64<BB: burn::tensor::backend::Backend, const D: usize>(t: Tensor<BB, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().into_vec::<f64>().unwrap()
}

/// `(logp, H, gradients)` of `Σ a·logp + b·H` over the response tokens.
fn run(
    model: &Decoder<B>,
    batch: &SequenceBatch,
    head: HeadLoss,
) -> (Vec<f64>, Vec<f64>, ParamGrads) {
    let device = Default::default();
    let (logp, entropy) = response_logp_entropy_with(model, batch, 0.8, head, &device);
    let [n, c] = logp.dims();
    let a: Vec<f32> = (0..n * c)
        .map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0)
        .collect();
    let b: Vec<f32> = (0..n * c)
        .map(|i| ((i * 5 % 13) as f32 - 6.0) / 6.0)
        .collect();
    let a = Tensor::<B, 2>::from_data(TensorData::new(a, [n, c]), &device);
    let b = Tensor::<B, 2>::from_data(TensorData::new(b, [n, c]), &device);
    let grads = (logp.clone() * a + entropy.clone() * b).sum().backward();
    let mut collect = Collect {
        grads: &grads,
        out: Vec::new(),
    };
    model.visit(&mut collect);
    (to_f64(logp.inner()), to_f64(entropy.inner()), collect.out)
}

fn assert_same(tied: bool, chunk: usize) {
    let model = decoder(tied);
    let batch = batch();
    let (lp0, h0, g0) = run(&model, &batch, HeadLoss::Materialised);
    let (lp1, h1, g1) = run(&model, &batch, HeadLoss::from_chunk_tokens(chunk));
    let label = format!("tied {tied}, chunk {chunk}");
    for (what, x, y) in [("logp", &lp1, &lp0), ("H", &h1, &h0)] {
        for (i, (a, e)) in x.iter().zip(y.iter()).enumerate() {
            assert!((a - e).abs() <= TOL, "{label}: {what}[{i}] {a} vs {e}");
        }
    }
    assert_eq!(g0.len(), g1.len());
    for ((name, expected), (_, actual)) in g0.iter().zip(&g1) {
        assert!(!expected.is_empty(), "{label}: {name} has a gradient");
        assert_eq!(actual.len(), expected.len(), "{label}: {name}");
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            assert!(
                (a - e).abs() <= TOL + 1e-3 * e.abs(),
                "{label}: {name}[{i}] {a} vs {e}"
            );
        }
    }
}

#[test]
fn separate_head_chunked_equals_materialised() {
    for chunk in [1, 7, 30, 1000] {
        assert_same(false, chunk);
    }
}

#[test]
fn tied_head_chunked_equals_materialised() {
    for chunk in [4, 30] {
        assert_same(true, chunk);
    }
}
