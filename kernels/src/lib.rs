//! `epgrpo-kernels`: fused kernels for the EP-GRPO hot path.
//!
//! [`KernelBackend`] is a Burn backend extension. Model and loss code calls the Tensor-level
//! wrappers ([`token_logp_entropy`], [`token_logp_entropy_grad`] for E1,
//! [`advantage::group_advantages`] for E2–E12); the backend decides how the work is done:
//!
//! | backend | implementation |
//! |---|---|
//! | `CubeBackend<R, F, I, BT>` (wgpu, CUDA; feature `wgpu` / `cuda`) | CubeCL kernels in `cube/` |
//! | `NdArray` (always built) | E1 as fused row loops on the rayon pool (`cpu_e1.rs`, tested against [`reference`](mod@reference)), E2–E12 as plain Burn ops ([`advantage::plain`]) |
//! | `Autodiff<B, C>` | the inner backend's forward plus a hand-written backward node (E1); the inner backend's advantages, untracked (E2–E12) |
//!
//! [`head_logp_entropy`] is E1 through the output head without `[N, V]` logits: the head
//! product and E1 in chunks of rows, with an autodiff node that recomputes each chunk's logits in
//! the backward and returns the gradients of the hidden states and the head weight (`head.rs`).
//!
//! [`matmul`], the product behind the decoder's projections, attention and head, is Burn's own
//! on the CubeCL backends and the `gemm` crate's strided micro-kernels on NdArray (see
//! `gemm.rs`: no operand copies, AVX-512 where the CPU has it), with a backward node of two
//! more products on `Autodiff<B, C>`.
//!
//! # E1 semantics (all implementations)
//!
//! With `z = logits / T`: `logp = z[target] − logsumexp(z)`, `H = −Σ_v p_v log p_v`,
//! `p = softmax(z)`. Terms with `p_v = 0` (including `-inf` logits) count 0 in `H`.
//! A *masked row* (every logit `-inf`) gives `logp = 0`, `H = 0`, a log-normaliser of `-inf` and
//! a zero gradient, so padding rows never produce NaN. Preconditions: `V ≥ 1`, targets in
//! `[0, V)`, no `+inf` or NaN logits, `T > 0`.
//!
//! Fusion must stay off for the CubeCL backends: a `Fusion<CubeBackend>` does not implement
//! [`KernelBackend`] (see `docs/kernels.md`).

pub mod advantage;
pub mod bench;
pub mod reference;

mod attention_probs;
mod autodiff;
mod binary_node;
mod cpu;
mod cpu_e1;
mod cpu_float;
#[cfg(feature = "cube")]
mod cube;
mod gemm;
mod head;
mod matmul_backward;
mod rms_norm;
mod rope;
mod swiglu;
mod unary_node;

use std::num::NonZeroUsize;

use advantage::{AdvantageParams, GroupAdvantages, GroupInputs};
use burn::tensor::{
    Int, Tensor, TensorPrimitive,
    backend::Backend,
    ops::{FloatTensor, IntTensor},
};

/// Per-row results of the E1 forward pass, as backend primitives (`[N]` each).
#[derive(Debug, Clone)]
pub struct TokenStats<B: Backend> {
    /// Log-probability of the target token under `softmax(logits / T)`; 0 for masked rows.
    pub logp: FloatTensor<B>,
    /// Entropy of `softmax(logits / T)` in nats; 0 for masked rows.
    pub entropy: FloatTensor<B>,
    /// `logsumexp(logits / T)`; `-inf` for masked rows. Saved for the backward pass.
    pub log_normalizer: FloatTensor<B>,
}

/// Backend extension for the fused EP-GRPO kernels.
///
/// Temperatures are passed as `f32` because the kernels compute in the logits' float type.
pub trait KernelBackend: Backend {
    /// E1 forward: target log-prob, entropy and log-normaliser per row of `logits` `[N, V]`
    /// with `targets` `[N]`, after dividing the logits by `temperature`.
    fn token_stats(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        temperature: f32,
    ) -> TokenStats<Self>;

    /// E1 backward: gradient `[N, V]` with respect to the (unscaled) logits of
    /// `grad_logp · logp + grad_entropy · H`, i.e. per element
    /// `(grad_logp (onehot − p) − grad_entropy · p (log p + H)) / T`.
    ///
    /// `log_normalizer` and `entropy` are the forward results of [`KernelBackend::token_stats`];
    /// `grad_logp` and `grad_entropy` are `[N]`.
    #[allow(clippy::too_many_arguments)]
    fn token_stats_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        log_normalizer: FloatTensor<Self>,
        entropy: FloatTensor<Self>,
        grad_logp: FloatTensor<Self>,
        grad_entropy: FloatTensor<Self>,
        temperature: f32,
    ) -> FloatTensor<Self>;

    /// E2–E12 for every group of the batch (see [`advantage`]): outcome advantages, entropy
    /// gate, cumulative-entropy buckets, bucket-normalised progress term and final advantages.
    /// The results are constants (no gradient on autodiff backends).
    fn group_advantages(
        inputs: GroupInputs<Self>,
        params: &AdvantageParams,
    ) -> GroupAdvantages<Self>;

    /// Matrix product over the last two axes, `[.., m, k] × [.., k, n] → [.., m, n]`, with
    /// equal leading (batch) axes: no broadcasting. Either operand may be a strided view, such
    /// as a transpose. On NdArray the sums run in a fixed order (the same bits on every call).
    fn matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self>;

    /// E1 through the output head (see [`head_logp_entropy`]): the statistics of
    /// `softmax(hidden · weight / T)` for `hidden` `[N, d]`, `weight` `[d, V]` and `targets`
    /// `[N]`, computed `chunk` rows at a time so that no `[N, V]` buffer exists.
    ///
    /// The default body composes [`KernelBackend::matmul`] and [`KernelBackend::token_stats`]
    /// chunk by chunk; `Autodiff<B, C>` adds a backward node that recomputes each chunk's logits.
    fn head_stats(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
        temperature: f32,
        chunk: NonZeroUsize,
    ) -> TokenStats<Self> {
        head::head_stats_chunked::<Self>(hidden, weight, targets, temperature, chunk)
    }

    /// Attention probabilities `softmax(scale · scores + bias)` over the last axis, for
    /// `scores` `[b, n, q, k]` and a constant `bias` `[b, 1, t, k]` broadcast over the heads,
    /// `q` a multiple of `t` (query row `j` reads bias row `j mod t`; see `attention_probs.rs`).
    /// Default: Burn's ops.
    fn attention_probs(
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        attention_probs::plain::<Self>(scores, bias, scale)
    }

    /// Backward of [`KernelBackend::attention_probs`] from its output `probs` and upstream
    /// `grad`: `scale · p ⊙ (g − Σ_k g ⊙ p)`.
    fn attention_probs_backward(
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        attention_probs::plain_backward::<Self>(probs, grad, scale)
    }

    /// SwiGLU `silu(gate) ⊙ up`, element-wise over equal shapes (see `swiglu.rs`).
    /// Default: Burn's ops.
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        swiglu::plain::<Self>(gate, up)
    }

    /// Backward of [`KernelBackend::swiglu`]: `(d gate, d up)` for the upstream `grad`.
    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        swiglu::plain_backward::<Self>(gate, up, grad)
    }

    /// RMSNorm over the last axis, `x / sqrt(mean(x²) + ε) ⊙ weight`, for `x` `[.., d]` and
    /// `weight` `[d]` (see `rms_norm.rs`). Default: Burn's ops, as `burn::nn::RmsNorm`.
    fn rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        rms_norm::plain::<Self>(x, weight, epsilon)
    }

    /// Backward of [`KernelBackend::rms_norm`]: `(dx, d weight)` for the upstream `grad`.
    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        rms_norm::plain_backward::<Self>(x, weight, grad, epsilon)
    }

    /// Rotary embedding of `x` `[b, t, n, d]` with tables `cos`, `sin` `[b, 1, t, d]`
    /// (Hugging Face's `rotate_half` layout), returned with the heads ahead of the positions:
    /// `[b, n, t, d]` (see `rope.rs`). Default: Burn's ops.
    fn rope_heads(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        rope::plain::<Self>(x, cos, sin)
    }

    /// Backward of [`KernelBackend::rope_heads`]: the `[b, t, n, d]` gradient of `x` for the
    /// upstream `grad` `[b, n, t, d]`.
    fn rope_heads_backward(
        grad: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        rope::plain_backward::<Self>(grad, cos, sin)
    }
}

fn float<B: Backend, const D: usize>(t: FloatTensor<B>) -> Tensor<B, D> {
    Tensor::from_primitive(TensorPrimitive::Float(t))
}

/// `lhs · rhs` over the last two axes (see [`KernelBackend::matmul`]): `[.., m, k] ×
/// [.., k, n] → [.., m, n]` with equal leading axes. Differentiable on an autodiff backend.
///
/// # Panics
/// When the leading axes or the inner sizes differ.
pub fn matmul<B: KernelBackend, const D: usize>(
    lhs: Tensor<B, D>,
    rhs: Tensor<B, D>,
) -> Tensor<B, D> {
    float(B::matmul(
        lhs.into_primitive().tensor(),
        rhs.into_primitive().tensor(),
    ))
}

/// Attention probabilities `softmax(scale · scores + bias)` over the keys (see
/// [`KernelBackend::attention_probs`]). Differentiable with respect to `scores` on an autodiff
/// backend; `bias` is a constant.
///
/// # Shapes
/// - `scores`: `[b, n, q, k]`, `bias`: `[b, 1, t, k]` with `q = g · t` → `[b, n, q, k]`;
///   query row `j` reads bias row `j mod t` (grouped-query heads stacked along the query axis)
pub fn attention_probs<B: KernelBackend>(
    scores: Tensor<B, 4>,
    bias: Tensor<B, 4>,
    scale: f32,
) -> Tensor<B, 4> {
    float(B::attention_probs(
        scores.into_primitive().tensor(),
        bias.into_primitive().tensor(),
        scale,
    ))
}

/// SwiGLU `silu(gate) ⊙ up` (see [`KernelBackend::swiglu`]). Differentiable on an autodiff
/// backend.
///
/// # Panics
/// When the shapes differ.
pub fn swiglu<B: KernelBackend, const D: usize>(
    gate: Tensor<B, D>,
    up: Tensor<B, D>,
) -> Tensor<B, D> {
    float(B::swiglu(
        gate.into_primitive().tensor(),
        up.into_primitive().tensor(),
    ))
}

/// RMSNorm over the last axis (see [`KernelBackend::rms_norm`]), as `burn::nn::RmsNorm`
/// computes it. Differentiable with respect to `x` and `weight` on an autodiff backend.
///
/// # Shapes
/// - `x`: `[.., d]`, `weight`: `[d]` → `[.., d]`
pub fn rms_norm<B: KernelBackend, const D: usize>(
    x: Tensor<B, D>,
    weight: Tensor<B, 1>,
    epsilon: f64,
) -> Tensor<B, D> {
    float(B::rms_norm(
        x.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        epsilon as f32,
    ))
}

/// Rotary position embedding of queries or keys split into heads (see
/// [`KernelBackend::rope_heads`]): `x ⊙ cos + rotate_half(x) ⊙ sin`, heads moved ahead of the
/// positions. Differentiable with respect to `x` on an autodiff backend; the tables are
/// constants.
///
/// # Shapes
/// - `x`: `[b, t, n, d]`, `cos` and `sin`: `[b, 1, t, d]` → `[b, n, t, d]`
///
/// # Panics
/// When the shapes disagree or `d` is odd.
pub fn rope_heads<B: KernelBackend>(
    x: Tensor<B, 4>,
    cos: Tensor<B, 4>,
    sin: Tensor<B, 4>,
) -> Tensor<B, 4> {
    float(B::rope_heads(
        x.into_primitive().tensor(),
        cos.into_primitive().tensor(),
        sin.into_primitive().tensor(),
    ))
}

/// E1, fused: `(logp [N], entropy [N])` of `logits [N, V]` at temperature `T`, with
/// `targets [N]` (see the crate docs for masked rows).
///
/// Differentiable with respect to `logits` on an autodiff backend; the backward pass recomputes
/// the softmax on the fly instead of storing an `[N, V]` buffer.
pub fn token_logp_entropy<B: KernelBackend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    temperature: f64,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let stats = B::token_stats(
        logits.into_primitive().tensor(),
        targets.into_primitive(),
        temperature as f32,
    );
    (float(stats.logp), float(stats.entropy))
}

/// E1 through the output head, without `[N, V]` logits: `(logp [N], entropy [N])` of
/// `softmax(hidden · weight / T)` with `hidden [N, d]`, `weight [d, V]` (a strided view such as
/// a tied embedding's transpose is read in place) and `targets [N]`.
///
/// The head product and E1 run `chunk` rows at a time in the forward and, on an autodiff
/// backend, again in the backward (logits recomputed from the kept `hidden` and `weight`), so
/// peak memory holds `[chunk, V]` logits instead of `[N, V]`. The results equal
/// `token_logp_entropy(matmul(hidden, weight), targets, T)` up to rounding; gradients reach both
/// `hidden` and `weight`.
pub fn head_logp_entropy<B: KernelBackend>(
    hidden: Tensor<B, 2>,
    weight: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    temperature: f64,
    chunk: NonZeroUsize,
) -> (Tensor<B, 1>, Tensor<B, 1>) {
    let stats = B::head_stats(
        hidden.into_primitive().tensor(),
        weight.into_primitive().tensor(),
        targets.into_primitive(),
        temperature as f32,
        chunk,
    );
    (float(stats.logp), float(stats.entropy))
}

/// E1 backward without autodiff: gradient `[N, V]` of `Σ_n grad_logp[n] · logp[n] +
/// grad_entropy[n] · H[n]` with respect to `logits`, recomputing the forward statistics first.
pub fn token_logp_entropy_grad<B: KernelBackend>(
    logits: Tensor<B, 2>,
    targets: Tensor<B, 1, Int>,
    temperature: f64,
    grad_logp: Tensor<B, 1>,
    grad_entropy: Tensor<B, 1>,
) -> Tensor<B, 2> {
    let logits = logits.into_primitive().tensor();
    let targets = targets.into_primitive();
    let temperature = temperature as f32;
    let stats = B::token_stats(logits.clone(), targets.clone(), temperature);
    float(B::token_stats_backward(
        logits,
        targets,
        stats.log_normalizer,
        stats.entropy,
        grad_logp.into_primitive().tensor(),
        grad_entropy.into_primitive().tensor(),
        temperature,
    ))
}
