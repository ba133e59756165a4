//! The attention probabilities `softmax(scale · scores + bias)` over the keys, as one operation:
//! the plain-Burn composition (the default and the oracle), fused row loops on NdArray, and the
//! autodiff node.
//!
//! Shapes: `scores` `[b, n, q, k]` (n heads, q query rows, k keys), `bias` `[b, 1, t, k]`
//! with `q` a multiple of `t` (the causal and padding mask: 0 or a large negative number),
//! broadcast over the heads; query row `j` reads bias row `j mod t`, so the query heads that
//! share a key/value head can be stacked along the query axis (`q = group · t`). The bias is a
//! constant: it gets no gradient.
//!
//! Backward: with `p` the probabilities and `g` their upstream gradient,
//! `d scores = scale · p ⊙ (g − Σ_k g ⊙ p)` per row.

use burn::backend::{
    Autodiff, autodiff::checkpoint::strategy::CheckpointStrategy, ndarray::NdArrayTensor,
};
use burn::tensor::{Tensor, activation::softmax, backend::Backend, ops::FloatTensor};
use rayon::prelude::*;

use crate::cpu_float::{CpuFloat, FloatKind, kind, row_major, tensor_of};
use crate::unary_node::{self, UnaryOp};
use crate::{KernelBackend, float};

/// Below this shifted logit `e^x` is under f32's smallest normal number: the probability is
/// taken as 0 without calling `exp` (whose underflow path is slow), which changes no sum.
const UNDERFLOW: f32 = -87.0;

/// Rows handed to one rayon task at least (a decode step has few, short rows).
const MIN_ROWS_PER_TASK: usize = 16;

/// `softmax(scale · scores + bias)` in plain Burn operations.
pub(crate) fn plain<B: Backend>(
    scores: FloatTensor<B>,
    bias: FloatTensor<B>,
    scale: f32,
) -> FloatTensor<B> {
    let scores: Tensor<B, 4> = float(scores);
    let bias: Tensor<B, 4> = float(bias);
    let [b, n, q, k] = scores.dims();
    let t = bias.dims()[2];
    let scores = scores.mul_scalar(scale).reshape([b, n, q / t, t, k]);
    softmax(scores + bias.unsqueeze_dim::<5>(2), 4)
        .reshape([b, n, q, k])
        .into_primitive()
        .tensor()
}

/// The plain backward: `scale · p ⊙ (g − Σ_k g ⊙ p)`.
pub(crate) fn plain_backward<B: Backend>(
    probs: FloatTensor<B>,
    grad: FloatTensor<B>,
    scale: f32,
) -> FloatTensor<B> {
    let probs: Tensor<B, 4> = float(probs);
    let grad: Tensor<B, 4> = float(grad);
    let dot = grad.clone().mul(probs.clone()).sum_dim(3);
    (probs * (grad - dot) * scale).into_primitive().tensor()
}

/// `[b, n, q, k]` of the scores and `t` of the bias `[b, 1, t, k]`, checked against them.
fn shapes(scores: &[usize], bias: &[usize]) -> ([usize; 4], usize) {
    assert!(
        scores.len() == 4
            && bias.len() == 4
            && bias[0] == scores[0]
            && bias[1] == 1
            && bias[2] > 0
            && scores[2].is_multiple_of(bias[2])
            && bias[3] == scores[3],
        "attention probabilities need scores [b, n, q, k] and a bias [b, 1, t, k] with q a multiple of t, got {scores:?} and {bias:?}"
    );
    ([scores[0], scores[1], scores[2], scores[3]], bias[2])
}

/// The fused CPU forward (f32 or f64).
pub(crate) fn cpu(scores: NdArrayTensor, bias: NdArrayTensor, scale: f32) -> NdArrayTensor {
    match kind(&scores) {
        FloatKind::F32 => cpu_forward::<f32>(scores, bias, scale),
        FloatKind::F64 => cpu_forward::<f64>(scores, bias, scale),
    }
}

fn cpu_forward<E: CpuFloat>(
    scores: NdArrayTensor,
    bias: NdArrayTensor,
    scale: f32,
) -> NdArrayTensor {
    let (scores, bias) = (E::array(scores), E::array(bias));
    let ([b, n, q, k], t) = shapes(scores.shape(), bias.shape());
    let (scores, bias) = (row_major(&scores), row_major(&bias));
    let (scale, underflow) = (E::of(scale), E::of(UNDERFLOW));
    let mut probs = vec![E::zero(); b * n * q * k];
    if k > 0 {
        probs
            .par_chunks_mut(k)
            .zip(scores.par_chunks(k))
            .with_min_len(MIN_ROWS_PER_TASK)
            .enumerate()
            .for_each(|(row, (out, s))| {
                // Row `row` is (batch, head, query row) = (row / (n q), ·, row mod q); its bias
                // row is (batch, query row mod t).
                let bias_row = (row / (n * q)) * t + row % t;
                let bias = &bias[bias_row * k..(bias_row + 1) * k];
                let mut max = E::neg_infinity();
                for ((o, &x), &c) in out.iter_mut().zip(s).zip(bias) {
                    *o = x * scale + c;
                    max = max.max(*o);
                }
                let mut sum = E::zero();
                for o in out.iter_mut() {
                    let shifted = *o - max;
                    *o = if shifted < underflow {
                        E::zero()
                    } else {
                        shifted.exp()
                    };
                    sum = sum + *o;
                }
                let inv = sum.recip();
                for o in out.iter_mut() {
                    *o = *o * inv;
                }
            });
    }
    tensor_of(vec![b, n, q, k], probs)
}

/// The fused CPU backward (f32 or f64).
pub(crate) fn cpu_backward(probs: NdArrayTensor, grad: NdArrayTensor, scale: f32) -> NdArrayTensor {
    match kind(&probs) {
        FloatKind::F32 => cpu_backward_of::<f32>(probs, grad, scale),
        FloatKind::F64 => cpu_backward_of::<f64>(probs, grad, scale),
    }
}

fn cpu_backward_of<E: CpuFloat>(
    probs: NdArrayTensor,
    grad: NdArrayTensor,
    scale: f32,
) -> NdArrayTensor {
    let (probs, grad) = (E::array(probs), E::array(grad));
    let shape = probs.shape().to_vec();
    assert_eq!(
        shape,
        grad.shape(),
        "attention probabilities and their gradient differ in shape"
    );
    let k = shape.last().copied().unwrap_or(0);
    let (probs, grad) = (row_major(&probs), row_major(&grad));
    let scale = E::of(scale);
    let mut out = vec![E::zero(); probs.len()];
    if k > 0 {
        out.par_chunks_mut(k)
            .zip(probs.par_chunks(k).zip(grad.par_chunks(k)))
            .with_min_len(MIN_ROWS_PER_TASK)
            .for_each(|(out, (p, g))| {
                let dot = p.iter().zip(g).fold(E::zero(), |acc, (&p, &g)| acc + p * g);
                for ((o, &p), &g) in out.iter_mut().zip(p).zip(g) {
                    *o = scale * p * (g - dot);
                }
            });
    }
    tensor_of(shape, out)
}

/// The probabilities as a [`UnaryOp`]: the backward keeps the forward's output and the scale.
#[derive(Debug)]
struct AttentionProbs;

impl UnaryOp for AttentionProbs {
    type State<B: KernelBackend> = (FloatTensor<B>, f32);

    fn backward<B: KernelBackend>(
        (probs, scale): Self::State<B>,
        grad: FloatTensor<B>,
    ) -> FloatTensor<B> {
        B::attention_probs_backward(probs, grad, scale)
    }
}

/// The tracked probabilities: the inner backend's forward, a node keeping its output.
pub(crate) fn autodiff<B: KernelBackend, C: CheckpointStrategy>(
    scores: FloatTensor<Autodiff<B, C>>,
    bias: FloatTensor<Autodiff<B, C>>,
    scale: f32,
) -> FloatTensor<Autodiff<B, C>> {
    let probs = B::attention_probs(scores.primitive.clone(), bias.primitive, scale);
    unary_node::tracked::<B, C, _>(AttentionProbs, &scores, probs.clone(), (probs, scale))
}
