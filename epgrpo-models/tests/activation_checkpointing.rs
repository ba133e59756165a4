//! Activation checkpointing per layer (`Decoder::hidden_states_checkpointed` +
//! `Decoder::backward_checkpointed`) gives the parameter gradients of the plain graph
//! (`hidden_states` + `backward`), for tied and separate heads, with left padding, through the
//! fused chunked head and E1.

use std::num::NonZeroUsize;
use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor, TensorData};
use epgrpo_kernels::head_logp_entropy;
use epgrpo_models::{Decoder, DecoderConfig, LeftPadding};

type B = Autodiff<NdArray<f32>>;
type Inner = NdArray<f32>;

fn decoder(tied: bool) -> Decoder<B> {
    let json = format!(
        r#"{{"model_type": "qwen2", "vocab_size": 41, "hidden_size": 16,
        "intermediate_size": 24, "num_hidden_layers": 3, "num_attention_heads": 4,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "max_position_embeddings": 64, "tie_word_embeddings": {tied}}}"#
    );
    let config = DecoderConfig::from_json_str(&json, Path::new("config.json")).unwrap();
    Decoder::init(&config, &Default::default())
}

/// Every float parameter's gradient, in the module's structural order.
struct Collect<'a> {
    grads: &'a GradientsParams,
    out: Vec<Vec<f32>>,
}

impl ModuleVisitor<B> for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let grad = self
            .grads
            .get::<Inner, D>(param.id)
            .map(|g| g.into_data().to_vec::<f32>().unwrap())
            .unwrap_or_default();
        self.out.push(grad);
    }
}

/// `Σ a · logp + b · H` over every position of a left-padded batch of 3 rows × 6 tokens.
fn loss(model: &Decoder<B>, hidden: Tensor<B, 3>) -> Tensor<B, 1> {
    let [b, t, d] = hidden.dims();
    let device = Default::default();
    let targets: Vec<i64> = (0..b * t).map(|i| (i * 7 % 41) as i64).collect();
    let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(targets, [b * t]), &device);
    let weight = match &model.lm_head {
        Some(head) => head.weight.val(),
        None => model.embed_tokens.weight.val().transpose(),
    };
    let (logp, entropy) = head_logp_entropy(
        hidden.reshape([b * t, d]),
        weight,
        targets,
        0.9,
        NonZeroUsize::new(5).unwrap(),
    );
    let a: Vec<f32> = (0..b * t).map(|i| ((i % 5) as f32 - 2.0) / 2.0).collect();
    let a = Tensor::<B, 1>::from_data(TensorData::new(a, [b * t]), &device);
    (logp * a + entropy * 0.3).sum()
}

fn grads(model: &Decoder<B>, checkpointed: bool) -> Vec<Vec<f32>> {
    let device = Default::default();
    let ids: Vec<i64> = vec![0, 0, 3, 4, 5, 6, 0, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17];
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [3, 6]), &device);
    let padding = LeftPadding::new(vec![2, 1, 0]);
    let grads = if checkpointed {
        let (hidden, checkpoints) = model.hidden_states_checkpointed(tokens, &padding);
        model.backward_checkpointed(loss(model, hidden), checkpoints)
    } else {
        let hidden = model.hidden_states(tokens, &padding);
        GradientsParams::from_grads(loss(model, hidden).backward(), model)
    };
    let mut collect = Collect {
        grads: &grads,
        out: Vec::new(),
    };
    model.visit(&mut collect);
    collect.out
}

#[test]
fn checkpointed_gradients_equal_the_plain_graphs() {
    for tied in [false, true] {
        let model = decoder(tied);
        let plain = grads(&model, false);
        let checkpointed = grads(&model, true);
        assert_eq!(plain.len(), checkpointed.len());
        for (i, (p, c)) in plain.iter().zip(&checkpointed).enumerate() {
            assert!(!p.is_empty(), "tied {tied}: parameter {i} has a gradient");
            assert_eq!(p.len(), c.len(), "tied {tied}: parameter {i}");
            for (j, (x, y)) in p.iter().zip(c).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-6 + 1e-5 * x.abs(),
                    "tied {tied}: parameter {i}[{j}]: plain {x}, checkpointed {y}"
                );
            }
        }
    }
}
