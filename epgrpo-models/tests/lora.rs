//! LoRA on the transformers-checked Llama fixture: fresh adapters (B = 0) leave the logits
//! unchanged, an optimizer step on a toy loss moves only adapter parameters (the base weights stay
//! bit-identical and receive no gradient), the adapted model then differs from its adapters-off
//! reference, which still equals the base model, and dropout acts only under autodiff.

#[allow(dead_code)] // shared by several test binaries; each uses a part of it
mod reference;

use std::collections::BTreeMap;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::nn::Dropout;
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::Distribution;
use epgrpo_models::{Decoder, LeftPadding, LoraConfig, LoraError, LoraTarget, load_decoder};
use reference::{TestBackend, fixture_dir, tokens_tensor};

type AdBackend = Autodiff<TestBackend>;

/// Every float parameter by its module path (`layers.0.self_attn.q_proj.base.weight`, …).
#[derive(Default)]
struct Snapshot {
    path: Vec<String>,
    values: BTreeMap<String, Vec<f32>>,
}

impl<B: Backend> ModuleVisitor<B> for Snapshot {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let values = param
            .val()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap();
        self.values.insert(self.path.join("."), values);
    }
}

fn snapshot<B: Backend, M: Module<B>>(model: &M) -> BTreeMap<String, Vec<f32>> {
    let mut s = Snapshot::default();
    model.visit(&mut s);
    s.values
}

fn batch() -> (Vec<Vec<i64>>, LeftPadding) {
    (
        vec![vec![0, 0, 1, 40, 41, 42], vec![1, 7, 8, 9, 10, 11]],
        LeftPadding::new(vec![2, 0]),
    )
}

fn logits<B: epgrpo_kernels::KernelBackend>(model: &Decoder<B>) -> Vec<f32> {
    let (rows, padding) = batch();
    let device = Default::default();
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    let tokens = Tensor::<B, 2, Int>::from_data(TensorData::new(flat, [2, 6]), &device);
    model
        .forward(tokens, &padding)
        .into_data()
        .convert::<f32>()
        .to_vec()
        .unwrap()
}

fn all_targets(rank: usize) -> LoraConfig {
    let names: Vec<&str> = LoraTarget::ALL.iter().map(|t| t.name()).collect();
    LoraConfig::from_names(rank, 16.0, &names).unwrap()
}

#[test]
fn fresh_adapters_leave_the_logits_unchanged() {
    let device = Default::default();
    let base = load_decoder::<TestBackend>(&fixture_dir("llama"), &device)
        .unwrap()
        .1;
    let want = logits(&base);
    let adapted = base.with_lora(&all_targets(4), &device).unwrap();
    assert!(adapted.has_adapters());
    assert_eq!(logits(&adapted), want);
    assert_eq!(logits(&adapted.with_adapters_enabled(false)), want);
}

#[test]
fn an_optimizer_step_moves_only_the_adapters() {
    let device = Default::default();
    let base = load_decoder::<AdBackend>(&fixture_dir("llama"), &device)
        .unwrap()
        .1;
    let base_logits = logits(&base.valid());
    let config = LoraConfig::from_names(2, 4.0, &["q_proj", "v_proj", "down_proj"]).unwrap();
    let model = base.with_lora(&config, &device).unwrap();
    let before = snapshot(&model);
    // 2 layers × 3 targets × (A, B) adapter tensors next to the 20 base tensors.
    let adapters = before.keys().filter(|k| k.contains("lora_")).count();
    assert_eq!((before.len(), adapters), (20 + 12, 12));

    let (rows, padding) = batch();
    let tokens = Tensor::<AdBackend, 2, Int>::from_inner(tokens_tensor(&rows, &device));
    let loss = model.forward(tokens, &padding).powf_scalar(2.0).mean();
    let grads = loss.backward();
    let mut with_grad = Vec::new();
    struct Grads<'a>(
        &'a <AdBackend as burn::tensor::backend::AutodiffBackend>::Gradients,
        &'a mut Vec<bool>,
    );
    impl ModuleVisitor<AdBackend> for Grads<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AdBackend, D>>) {
            self.1.push(param.grad(self.0).is_some());
        }
    }
    model.visit(&mut Grads(&grads, &mut with_grad));
    assert_eq!(
        with_grad.iter().filter(|&&g| g).count(),
        12,
        "only adapters get gradients"
    );

    let grads = GradientsParams::from_grads(grads, &model);
    let mut optim = AdamConfig::new().init::<AdBackend, Decoder<AdBackend>>();
    let model = optim.step(1e-2, model, grads);
    let after = snapshot(&model);
    for (name, values) in &before {
        let moved = &after[name] != values;
        if name.contains("lora_b") {
            assert!(moved, "{name} should change");
        } else if !name.contains("lora_a") {
            assert!(
                !moved,
                "{name} is a base weight and must stay bit-identical"
            );
        }
    }
    let reference = model.valid().with_adapters_enabled(false);
    assert_eq!(logits(&reference), base_logits, "adapters off = base model");
    assert_ne!(
        logits(&model.valid()),
        base_logits,
        "trained adapters change the logits"
    );
}

#[test]
fn adapter_dropout_acts_only_under_autodiff() {
    let device = Default::default();
    let mut config = all_targets(3);
    config.dropout = 0.5;
    let mut model = load_decoder::<AdBackend>(&fixture_dir("llama"), &device)
        .unwrap()
        .1
        .with_lora(&config, &device)
        .unwrap();
    // Non-zero B so that the adapters (and their dropout) matter.
    for layer in &mut model.layers {
        for p in [&mut layer.self_attn.q_proj, &mut layer.mlp.up_proj] {
            let adapter = p.adapter.as_mut().unwrap();
            let [r, out] = adapter.lora_b.shape().dims();
            adapter.lora_b = Param::from_tensor(Tensor::random(
                [r, out],
                Distribution::Normal(0.0, 0.5),
                &device,
            ));
        }
    }
    let mut no_dropout = model.clone();
    for layer in &mut no_dropout.layers {
        for p in [&mut layer.self_attn.q_proj, &mut layer.mlp.up_proj] {
            p.adapter.as_mut().unwrap().dropout = Dropout { prob: 0.0 };
        }
    }
    let eval = logits(&model.valid());
    assert_eq!(logits(&model.valid()), eval, "eval is deterministic");
    assert_eq!(eval, logits(&no_dropout.valid()), "no dropout in eval");
    assert_ne!(eval, logits(&model.valid().with_adapters_enabled(false)));
    assert_ne!(logits(&model), eval, "dropout is active in training");
}

#[test]
fn bad_settings_are_refused() {
    let err = LoraConfig::from_names(4, 8.0, &["q_proj", "qkv"]).unwrap_err();
    assert_eq!(err, LoraError::UnknownTarget { name: "qkv".into() });
    assert!(err.to_string().contains("gate_proj"));
    let device = Default::default();
    let model = load_decoder::<TestBackend>(&fixture_dir("llama"), &device)
        .unwrap()
        .1;
    let mut config = all_targets(0);
    assert!(matches!(
        model.clone().with_lora(&config, &device),
        Err(LoraError::InvalidSetting { field: "rank", .. })
    ));
    config.rank = 2;
    config.dropout = 1.0;
    assert!(matches!(
        model.with_lora(&config, &device),
        Err(LoraError::InvalidSetting {
            field: "dropout",
            ..
        })
    ));
}
