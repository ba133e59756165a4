//! RMSNorm over the last axis, `y = x / sqrt(mean(x²) + ε) ⊙ w`, as one operation: the
//! plain-Burn composition of `burn::nn::RmsNorm` (the default and the oracle), fused row loops
//! on NdArray, and the autodiff node.
//!
//! Backward: with `r = 1 / sqrt(mean(x²) + ε)`, `x̂ = x r`, `g` the upstream gradient and
//! `gw = g ⊙ w`: `dx = r (gw − x̂ · mean(gw ⊙ x̂))` per row and `dw = Σ_rows g ⊙ x̂`.

use burn::backend::{
    Autodiff, autodiff::checkpoint::strategy::CheckpointStrategy, ndarray::NdArrayTensor,
};
use burn::tensor::{Shape, Tensor, TensorMetadata, backend::Backend, ops::FloatTensor};
use rayon::prelude::*;

use crate::binary_node::{self, BinaryOp};
use crate::cpu_float::{CpuFloat, FloatKind, kind, row_major, tensor_of};
use crate::{KernelBackend, float};

/// Rows per rayon task. Fixed, so that the per-task partial sums of `dw` (added in task order)
/// give the same bits for any number of threads.
const ROWS_PER_TASK: usize = 32;

/// A tensor `[.., d]` as its `[rows, d]` matrix (free for contiguous CubeCL tensors).
fn matrix<B: Backend>(tensor: FloatTensor<B>) -> Tensor<B, 2> {
    let shape = tensor.shape();
    let d = shape[shape.num_dims() - 1];
    let rows = shape.num_elements() / d.max(1);
    float(B::float_reshape(tensor, Shape::new([rows, d])))
}

/// RMSNorm in plain Burn operations, as `burn::nn::RmsNorm` computes it.
pub(crate) fn plain<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    epsilon: f32,
) -> FloatTensor<B> {
    let shape = x.shape();
    let x = matrix::<B>(x);
    let weight: Tensor<B, 1> = float(weight);
    let rms = (x.clone().square().mean_dim(1) + f64::from(epsilon)).sqrt();
    let y = (x / rms) * weight.unsqueeze();
    B::float_reshape(y.into_primitive().tensor(), shape)
}

/// The plain backward: `(dx, dw)`.
pub(crate) fn plain_backward<B: Backend>(
    x: FloatTensor<B>,
    weight: FloatTensor<B>,
    grad: FloatTensor<B>,
    epsilon: f32,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let shape = x.shape();
    let x = matrix::<B>(x);
    let weight: Tensor<B, 1> = float(weight);
    let grad = matrix::<B>(grad);
    let r = (x.clone().square().mean_dim(1) + f64::from(epsilon))
        .sqrt()
        .recip();
    let normed = x * r.clone();
    let gw = grad.clone() * weight.unsqueeze();
    let dot = (gw.clone() * normed.clone()).mean_dim(1);
    let dx = (gw - normed.clone() * dot) * r;
    let dw = (grad * normed).sum_dim(0).squeeze_dim::<1>(0);
    (
        B::float_reshape(dx.into_primitive().tensor(), shape),
        dw.into_primitive().tensor(),
    )
}

/// `[rows, d]` of `x` (any rank ≥ 1, the last axis normalised) checked against `weight` `[d]`.
fn rows_and_width(x: &[usize], weight: &[usize]) -> (usize, usize) {
    let d = x.last().copied().unwrap_or(0);
    assert!(
        weight == [d],
        "RMSNorm needs a weight of the input's last size {d}, got {weight:?}"
    );
    (x.iter().product::<usize>() / d.max(1), d)
}

/// `1 / sqrt(mean(x²) + ε)` of one row.
fn inverse_rms<E: CpuFloat>(row: &[E], epsilon: E) -> E {
    let squares = row.iter().fold(E::zero(), |acc, &x| acc + x * x);
    let d = E::from(row.len()).expect("a row length is a float");
    (squares / d + epsilon).sqrt().recip()
}

/// The fused CPU forward (f32 or f64), any shape `[.., d]`.
pub(crate) fn cpu(x: NdArrayTensor, weight: NdArrayTensor, epsilon: f32) -> NdArrayTensor {
    match kind(&x) {
        FloatKind::F32 => cpu_forward::<f32>(x, weight, epsilon),
        FloatKind::F64 => cpu_forward::<f64>(x, weight, epsilon),
    }
}

fn cpu_forward<E: CpuFloat>(
    x: NdArrayTensor,
    weight: NdArrayTensor,
    epsilon: f32,
) -> NdArrayTensor {
    let (x, weight) = (E::array(x), E::array(weight));
    let shape = x.shape().to_vec();
    let (_, d) = rows_and_width(&shape, weight.shape());
    let (x, weight) = (row_major(&x), row_major(&weight));
    let epsilon = E::of(epsilon);
    let mut out = vec![E::zero(); x.len()];
    if d > 0 {
        out.par_chunks_mut(d)
            .zip(x.par_chunks(d))
            .with_min_len(ROWS_PER_TASK)
            .for_each(|(out, row)| {
                let r = inverse_rms(row, epsilon);
                for ((o, &x), &w) in out.iter_mut().zip(row).zip(weight.iter()) {
                    *o = x * r * w;
                }
            });
    }
    tensor_of(shape, out)
}

/// The fused CPU backward (f32 or f64): `(dx, dw)`.
pub(crate) fn cpu_backward(
    x: NdArrayTensor,
    weight: NdArrayTensor,
    grad: NdArrayTensor,
    epsilon: f32,
) -> (NdArrayTensor, NdArrayTensor) {
    match kind(&x) {
        FloatKind::F32 => cpu_backward_of::<f32>(x, weight, grad, epsilon),
        FloatKind::F64 => cpu_backward_of::<f64>(x, weight, grad, epsilon),
    }
}

fn cpu_backward_of<E: CpuFloat>(
    x: NdArrayTensor,
    weight: NdArrayTensor,
    grad: NdArrayTensor,
    epsilon: f32,
) -> (NdArrayTensor, NdArrayTensor) {
    let (x, weight, grad) = (E::array(x), E::array(weight), E::array(grad));
    let shape = x.shape().to_vec();
    assert_eq!(
        shape,
        grad.shape(),
        "RMSNorm's input and gradient differ in shape"
    );
    let (_, d) = rows_and_width(&shape, weight.shape());
    let (x, weight, grad) = (row_major(&x), row_major(&weight), row_major(&grad));
    let epsilon = E::of(epsilon);
    let mut dx = vec![E::zero(); x.len()];
    let mut dw = vec![E::zero(); d];
    if d > 0 {
        let width = E::from(d).expect("a row length is a float");
        let task = ROWS_PER_TASK * d;
        let partials: Vec<Vec<E>> = dx
            .par_chunks_mut(task)
            .zip(x.par_chunks(task).zip(grad.par_chunks(task)))
            .map(|(dx, (x, grad))| {
                let mut dw = vec![E::zero(); d];
                for ((dx, x), g) in dx.chunks_mut(d).zip(x.chunks(d)).zip(grad.chunks(d)) {
                    let r = inverse_rms(x, epsilon);
                    let mut dot = E::zero();
                    for i in 0..d {
                        dot = dot + g[i] * weight[i] * x[i] * r;
                    }
                    let mean = dot / width;
                    for i in 0..d {
                        let normed = x[i] * r;
                        dx[i] = r * (g[i] * weight[i] - normed * mean);
                        dw[i] = dw[i] + g[i] * normed;
                    }
                }
                dw
            })
            .collect();
        for partial in partials {
            for (total, p) in dw.iter_mut().zip(partial) {
                *total = *total + p;
            }
        }
    }
    (tensor_of(shape, dx), tensor_of(vec![d], dw))
}

/// RMSNorm as a [`BinaryOp`] of the input and the weight, with ε as its parameter.
#[derive(Debug)]
struct RmsNorm;

impl BinaryOp for RmsNorm {
    type Param = f32;

    fn forward<B: KernelBackend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        epsilon: &f32,
    ) -> FloatTensor<B> {
        B::rms_norm(x, weight, *epsilon)
    }

    fn backward<B: KernelBackend>(
        x: FloatTensor<B>,
        weight: FloatTensor<B>,
        grad: FloatTensor<B>,
        epsilon: &f32,
    ) -> (FloatTensor<B>, FloatTensor<B>) {
        B::rms_norm_backward(x, weight, grad, *epsilon)
    }
}

/// The tracked RMSNorm: the inner backend's forward and a node keeping input and weight.
pub(crate) fn autodiff<B: KernelBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    weight: FloatTensor<Autodiff<B, C>>,
    epsilon: f32,
) -> FloatTensor<Autodiff<B, C>> {
    binary_node::tracked::<B, C, _>(RmsNorm, x, weight, epsilon)
}
