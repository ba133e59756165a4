//! The optimiser side of a step: AdamW, the warm-up + cosine learning-rate schedule, and
//! clipping of the global gradient norm (all parameters together, as `clip_grad_norm_` does;
//! Burn's own clipping is per parameter).

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// AdamW with the given weight decay (β = 0.9 / 0.999, ε = 1e-8) and no per-parameter clipping.
pub fn adamw(weight_decay: f64) -> AdamWConfig {
    AdamWConfig::new()
        .with_weight_decay(weight_decay as f32)
        .with_epsilon(1e-8)
}

/// Learning rate at optimiser step `step` (0-based) of `total`: linear warm-up over `warmup`
/// steps to `peak`, then cosine decay to `peak × min_ratio` at the last step.
pub fn learning_rate(step: usize, total: usize, warmup: usize, peak: f64, min_ratio: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    let floor = peak * min_ratio;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Scales all gradients of `module` so that their global L2 norm is at most `max_norm`
/// (no-op for `max_norm` = 0) and returns the norm before clipping (one host sync).
pub fn clip_global_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    let mut squares = SquaredNorm::<B> { grads, total: None };
    module.visit(&mut squares);
    let norm = squares
        .total
        .map_or(0.0, |t| t.sqrt().into_scalar().to_f64());
    if max_norm > 0.0 && norm > max_norm {
        module.visit(&mut Rescale {
            grads,
            scale: max_norm / (norm + 1e-6),
        });
    }
    norm
}

/// Sums the squared gradient entries of every float parameter.
struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let squares = grad.powi_scalar(2).sum();
            self.total = Some(match self.total.take() {
                Some(total) => total + squares,
                None => squares,
            });
        }
    }
}

/// Multiplies the gradient of every float parameter by `scale`.
struct Rescale<'a> {
    grads: &'a mut GradientsParams,
    scale: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Rescale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(grad) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads
                .register::<B::InnerBackend, D>(param.id, grad.mul_scalar(self.scale));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        let lr = |s| learning_rate(s, 100, 10, 1.0, 0.1);
        assert!((lr(0) - 0.1).abs() < 1e-12);
        assert!((lr(9) - 1.0).abs() < 1e-12);
        assert!((lr(10) - 1.0).abs() < 1e-12);
        assert!((lr(55) - 0.55).abs() < 1e-12, "{}", lr(55));
        assert!((lr(100) - 0.1).abs() < 1e-12);
        assert!(lr(30) > lr(60));
    }

    #[test]
    fn global_norm_clipping_scales_every_gradient_by_one_factor() {
        type B = burn::backend::Autodiff<burn::backend::NdArray<f32>>;
        let device = Default::default();
        let linear = burn::nn::LinearConfig::new(3, 2).init::<B>(&device);
        let x = Tensor::<B, 2>::from_floats([[1.0, 2.0, 3.0]], &device);
        let loss = linear.forward(x).sum().mul_scalar(10.0);
        let mut grads = GradientsParams::from_grads(loss.backward(), &linear);
        let weight = grads
            .get::<burn::backend::NdArray<f32>, 2>(linear.weight.id)
            .unwrap();
        let bias = grads
            .get::<burn::backend::NdArray<f32>, 1>(linear.bias.as_ref().unwrap().id)
            .unwrap();
        // d/dW = 10·x per output column, d/db = 10: norm² = 100·(14·2 + 2) = 3000.
        let expected = 3000f64.sqrt();
        let norm = clip_global_norm(&linear, &mut grads, 1.0);
        assert!((norm - expected).abs() < 1e-3, "{norm}");
        let clipped_weight = grads
            .get::<burn::backend::NdArray<f32>, 2>(linear.weight.id)
            .unwrap();
        let clipped_bias = grads
            .get::<burn::backend::NdArray<f32>, 1>(linear.bias.as_ref().unwrap().id)
            .unwrap();
        let ratio_w = clipped_weight.sum().into_scalar() / weight.sum().into_scalar();
        let ratio_b = clipped_bias.sum().into_scalar() / bias.sum().into_scalar();
        assert!((ratio_w as f64 - 1.0 / expected).abs() < 1e-5 && (ratio_b - ratio_w).abs() < 1e-6);
        assert!((clip_global_norm(&linear, &mut grads, 1.0) - 1.0).abs() < 1e-4);
    }
}
