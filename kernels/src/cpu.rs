//! [`KernelBackend`] for the CPU backend (NdArray): E1 as the fused row loops of
//! [`crate::cpu_e1`] (checked against the plain-Burn formulas of [`crate::reference`]),
//! [`crate::advantage::plain`] (E2–E12), the strided `gemm` product of [`crate::gemm`], and
//! fused row-parallel loops for the attention probabilities, SwiGLU and RMSNorm.

use burn::backend::{
    NdArray,
    ndarray::{FloatNdArrayElement, IntNdArrayElement, NdArrayTensor, QuantElement, SharedArray},
};
use burn::tensor::{
    Int, Tensor,
    ops::{FloatTensor, IntTensor},
};

use crate::advantage::{AdvantageParams, GroupAdvantages, GroupInputs, plain};
use crate::{KernelBackend, TokenStats, attention_probs, cpu_e1, gemm, rms_norm, rope, swiglu};

/// Target ids `[N]` as indices.
///
/// # Panics
/// On a negative id.
fn indices<B: burn::tensor::backend::Backend>(targets: IntTensor<B>) -> Vec<usize> {
    Tensor::<B, 1, Int>::from_primitive(targets)
        .into_data()
        .convert::<i64>()
        .iter::<i64>()
        .map(|t| usize::try_from(t).expect("E1 targets are token ids ≥ 0"))
        .collect()
}

impl<E: FloatNdArrayElement, I: IntNdArrayElement, Q: QuantElement> KernelBackend
    for NdArray<E, I, Q>
where
    NdArrayTensor: From<SharedArray<E>>,
    NdArrayTensor: From<SharedArray<I>>,
{
    fn token_stats(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        temperature: f32,
    ) -> TokenStats<Self> {
        let [logp, entropy, log_normalizer] =
            cpu_e1::token_stats(logits, &indices::<Self>(targets), temperature);
        TokenStats {
            logp,
            entropy,
            log_normalizer,
        }
    }

    fn token_stats_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        log_normalizer: FloatTensor<Self>,
        entropy: FloatTensor<Self>,
        grad_logp: FloatTensor<Self>,
        grad_entropy: FloatTensor<Self>,
        temperature: f32,
    ) -> FloatTensor<Self> {
        cpu_e1::token_stats_backward(
            logits,
            &indices::<Self>(targets),
            [log_normalizer, entropy, grad_logp, grad_entropy],
            temperature,
        )
    }

    fn group_advantages(
        inputs: GroupInputs<Self>,
        params: &AdvantageParams,
    ) -> GroupAdvantages<Self> {
        plain::group_advantages(inputs, params)
    }

    fn matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        gemm::matmul(lhs, rhs)
    }

    fn attention_probs(
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        attention_probs::cpu(scores, bias, scale)
    }

    fn attention_probs_backward(
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        attention_probs::cpu_backward(probs, grad, scale)
    }

    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        swiglu::cpu(gate, up)
    }

    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        swiglu::cpu_backward(gate, up, grad)
    }

    fn rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        rms_norm::cpu(x, weight, epsilon)
    }

    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        rms_norm::cpu_backward(x, weight, grad, epsilon)
    }

    fn rope_heads(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        rope::cpu(x, cos, sin)
    }

    fn rope_heads_backward(
        grad: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        rope::cpu_backward(grad, cos, sin)
    }
}
