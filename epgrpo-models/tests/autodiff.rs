//! The loaded decoder is trainable: on an autodiff backend every parameter receives a
//! gradient, and `valid()` (the no-graph copy used for generation) computes the same logits.

#[allow(dead_code)] // shared by several test binaries; each uses a part of it
mod reference;

use burn::backend::Autodiff;
use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use epgrpo_models::{LeftPadding, load_decoder};
use reference::{TestBackend, fixture_dir, tokens_tensor};

type AdBackend = Autodiff<TestBackend>;

/// Counts float parameters and those whose gradient is present and not all zero.
struct GradCheck<'a, B: AutodiffBackend> {
    grads: &'a B::Gradients,
    params: usize,
    with_grad: usize,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for GradCheck<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.params += 1;
        if let Some(g) = param.grad(self.grads) {
            let norm: f32 = g.abs().sum().into_scalar().elem();
            if norm > 0.0 {
                self.with_grad += 1;
            }
        }
    }
}

fn assert_all_parameters_get_gradients(fixture: &str, expected_params: usize) {
    let device = Default::default();
    let (_, model) = load_decoder::<AdBackend>(&fixture_dir(fixture), &device).unwrap();
    let rows = vec![vec![0, 0, 1, 40, 41, 42], vec![1, 7, 8, 9, 10, 11]];
    let padding = LeftPadding::new(vec![2, 0]);
    let tokens = Tensor::<AdBackend, 2, Int>::from_inner(tokens_tensor(&rows, &device));
    let logits = model.forward(tokens.clone(), &padding);
    let inner = model.valid().forward(tokens.inner(), &padding);
    assert_eq!(
        logits.clone().inner().into_data().to_vec::<f32>().unwrap(),
        inner.into_data().to_vec::<f32>().unwrap()
    );
    let grads = logits.powf_scalar(2.0).mean().backward();
    let mut check = GradCheck::<AdBackend> {
        grads: &grads,
        params: 0,
        with_grad: 0,
    };
    model.visit(&mut check);
    assert_eq!(
        check.params, expected_params,
        "{fixture}: parameter tensors"
    );
    assert_eq!(
        check.with_grad, check.params,
        "{fixture}: parameters with a gradient"
    );
}

#[test]
fn every_llama_parameter_gets_a_gradient() {
    // embed + 2 × (q, k, v, o, gate, up, down, 2 norms) + final norm; head tied.
    assert_all_parameters_get_gradients("llama", 1 + 2 * 9 + 1);
}

#[test]
fn every_qwen2_parameter_gets_a_gradient() {
    // As Llama plus q/k/v biases per layer and a separate head.
    assert_all_parameters_get_gradients("qwen2", 1 + 2 * 12 + 1 + 1);
}

#[test]
fn every_qwen3_parameter_gets_a_gradient() {
    // As Llama plus the per-head q/k norms of each layer; head tied.
    assert_all_parameters_get_gradients("qwen3", 1 + 2 * 11 + 1);
}
