//! [`KernelBackend`] for the CPU backend (NdArray): the plain-Burn formulas of
//! [`crate::reference`] (E1, which materialise `[N, V]` intermediates) and
//! [`crate::advantage::plain`] (E2–E12), and the strided `gemm` product of [`crate::gemm`].

use burn::backend::{
    NdArray,
    ndarray::{FloatNdArrayElement, IntNdArrayElement, NdArrayTensor, QuantElement, SharedArray},
};
use burn::tensor::{
    Tensor,
    ops::{FloatTensor, IntTensor},
};

use crate::advantage::{AdvantageParams, GroupAdvantages, GroupInputs, plain};
use crate::{KernelBackend, TokenStats, float, gemm, reference};

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
        let (logp, entropy, log_normalizer) = reference::token_stats::<Self>(
            float(logits),
            Tensor::from_primitive(targets),
            f64::from(temperature),
        );
        TokenStats {
            logp: logp.into_primitive().tensor(),
            entropy: entropy.into_primitive().tensor(),
            log_normalizer: log_normalizer.into_primitive().tensor(),
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
        reference::token_stats_backward::<Self>(
            float(logits),
            Tensor::from_primitive(targets),
            float(log_normalizer),
            float(entropy),
            float(grad_logp),
            float(grad_entropy),
            f64::from(temperature),
        )
        .into_primitive()
        .tensor()
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
}
