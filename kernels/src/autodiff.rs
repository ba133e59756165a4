//! [`KernelBackend`] for `Autodiff<B, C>`: the inner backend's fused forward plus one
//! hand-written backward node for E1, the inner backend's advantages (E2–E12) as constants, and
//! the product's node from `matmul_backward`.
//!
//! `logp` and `H` come from a single graph node whose output is the `[N, 2]` stack
//! `[logp | H]`; the two public outputs are column slices of it, so when a loss uses both, their
//! upstream gradients arrive together and one backward call (one kernel launch on CubeCL
//! backends) produces the `[N, V]` logits gradient. Nothing of size `[N, V]` is kept between
//! forward and backward besides the logits themselves (checkpointed).
//!
//! The head node (`HeadStatsBackward`) goes one step further: its parents are the hidden states
//! and the head weight, it keeps those two (and `[N]` statistics), and its backward recomputes
//! the logits chunk by chunk (`head.rs`), so no `[N, V]` tensor lives at any point.

use std::num::NonZeroUsize;

use burn::backend::{
    Autodiff,
    autodiff::{
        NodeId,
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind},
    },
};
use burn::tensor::{
    Tensor,
    backend::{AutodiffBackend, Backend},
    ops::{FloatTensor, IntTensor},
};

use crate::advantage::{AdvantageParams, GroupAdvantages, GroupInputs};
use crate::head::{HeadBackwardInputs, head_stats_backward};
use crate::{
    KernelBackend, TokenStats, attention_probs, float, matmul_backward, rms_norm, rope, swiglu,
};

/// Backward node of E1: `d(g_lp · logp + g_H · H)/d logits`.
#[derive(Debug)]
struct TokenStatsBackward;

/// What the backward pass needs besides the checkpointed logits.
#[derive(Debug, Clone)]
struct TokenStatsState<B: Backend> {
    logits: NodeId,
    targets: IntTensor<B>,
    log_normalizer: FloatTensor<B>,
    entropy: FloatTensor<B>,
    temperature: f32,
}

impl<B: KernelBackend> Backward<B, 1> for TokenStatsBackward {
    type State = TokenStatsState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [parent] = ops.parents;
        let grad: Tensor<B, 2> = float(grads.consume::<B>(&ops.node));
        let Some(parent) = parent else {
            return;
        };
        let state = ops.state;
        let logits: FloatTensor<B> = checkpointer.retrieve_node_output(state.logits);
        let grad_logits = B::token_stats_backward(
            logits,
            state.targets,
            state.log_normalizer,
            state.entropy,
            column(grad.clone(), 0),
            column(grad, 1),
            state.temperature,
        );
        grads.register::<B>(parent.id, grad_logits);
    }
}

/// Backward node of E1 through the head: `d(g_lp · logp + g_H · H)` with respect to the hidden
/// states `[N, d]` and the head weight `[d, V]`.
#[derive(Debug)]
struct HeadStatsBackward;

/// What the head's backward pass needs: both (checkpointed) inputs and `[N]` statistics.
#[derive(Debug, Clone)]
struct HeadStatsState<B: Backend> {
    hidden: NodeId,
    weight: NodeId,
    targets: IntTensor<B>,
    log_normalizer: FloatTensor<B>,
    entropy: FloatTensor<B>,
    temperature: f32,
    chunk: NonZeroUsize,
}

impl<B: KernelBackend> Backward<B, 2> for HeadStatsBackward {
    type State = HeadStatsState<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [hidden_parent, weight_parent] = ops.parents;
        let grad: Tensor<B, 2> = float(grads.consume::<B>(&ops.node));
        if hidden_parent.is_none() && weight_parent.is_none() {
            return;
        }
        let state = ops.state;
        let inputs = HeadBackwardInputs {
            hidden: checkpointer.retrieve_node_output(state.hidden),
            weight: checkpointer.retrieve_node_output(state.weight),
            targets: state.targets,
            log_normalizer: state.log_normalizer,
            entropy: state.entropy,
            temperature: state.temperature,
            chunk: state.chunk,
        };
        let (grad_hidden, grad_weight) = head_stats_backward::<B>(
            inputs,
            float(column(grad.clone(), 0)),
            float(column(grad, 1)),
            hidden_parent.is_some(),
            weight_parent.is_some(),
        );
        if let (Some(parent), Some(g)) = (hidden_parent, grad_hidden) {
            grads.register::<B>(parent.id, g);
        }
        if let (Some(parent), Some(g)) = (weight_parent, grad_weight) {
            grads.register::<B>(parent.id, g);
        }
    }
}

impl<B: KernelBackend, C: CheckpointStrategy> KernelBackend for Autodiff<B, C> {
    /// Tracks `logp` and `entropy`; `log_normalizer` is returned as a constant (no gradient).
    fn token_stats(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        temperature: f32,
    ) -> TokenStats<Self> {
        let prep = TokenStatsBackward
            .prepare::<C>([logits.node.clone()])
            .compute_bound()
            .stateful();
        match prep {
            OpsKind::Tracked(mut prep) => {
                let logits_id = prep.checkpoint(&logits);
                let inner = B::token_stats(logits.primitive, targets.clone(), temperature);
                let stacked = stack_logp_entropy(&inner);
                let state = TokenStatsState {
                    logits: logits_id,
                    targets,
                    log_normalizer: inner.log_normalizer.clone(),
                    entropy: inner.entropy,
                    temperature,
                };
                split_logp_entropy(prep.finish(state, stacked), inner.log_normalizer)
            }
            OpsKind::UnTracked(prep) => {
                let inner = B::token_stats(logits.primitive, targets, temperature);
                TokenStats {
                    logp: prep.finish(inner.logp),
                    entropy: Self::from_inner(inner.entropy),
                    log_normalizer: Self::from_inner(inner.log_normalizer),
                }
            }
        }
    }

    /// Runs the inner backend's backward; the result is a constant (no second-order graph).
    fn token_stats_backward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        log_normalizer: FloatTensor<Self>,
        entropy: FloatTensor<Self>,
        grad_logp: FloatTensor<Self>,
        grad_entropy: FloatTensor<Self>,
        temperature: f32,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::token_stats_backward(
            logits.primitive,
            targets,
            log_normalizer.primitive,
            entropy.primitive,
            grad_logp.primitive,
            grad_entropy.primitive,
            temperature,
        ))
    }

    /// Runs the inner backend on the untracked values; the results are constants.
    fn group_advantages(
        inputs: GroupInputs<Self>,
        params: &AdvantageParams,
    ) -> GroupAdvantages<Self> {
        let inner = B::group_advantages(
            GroupInputs {
                rewards: inputs.rewards.inner(),
                entropy: inputs.entropy.inner(),
                logp_old: inputs.logp_old.inner(),
                logp_ref: inputs.logp_ref.inner(),
                mask: inputs.mask.inner(),
            },
            params,
        );
        GroupAdvantages {
            advantages: Tensor::from_inner(inner.advantages),
            token_weight: Tensor::from_inner(inner.token_weight),
            progress: Tensor::from_inner(inner.progress),
            bucket: Tensor::from_inner(inner.bucket),
            outcome: Tensor::from_inner(inner.outcome),
            zero_variance: Tensor::from_inner(inner.zero_variance),
        }
    }

    /// The inner backend's product plus a backward node of two more products.
    fn matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        matmul_backward::matmul::<B, C>(lhs, rhs)
    }

    /// The inner backend's forward plus a node keeping the probabilities.
    fn attention_probs(
        scores: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        attention_probs::autodiff::<B, C>(scores, bias, scale)
    }

    /// Runs the inner backend's backward; the result is a constant.
    fn attention_probs_backward(
        probs: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::attention_probs_backward(
            probs.primitive,
            grad.primitive,
            scale,
        ))
    }

    /// The inner backend's forward plus a node keeping both inputs.
    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        swiglu::autodiff::<B, C>(gate, up)
    }

    /// Runs the inner backend's backward; the results are constants.
    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (d_gate, d_up) = B::swiglu_backward(gate.primitive, up.primitive, grad.primitive);
        (Self::from_inner(d_gate), Self::from_inner(d_up))
    }

    /// The inner backend's forward plus a node keeping the input and the weight.
    fn rms_norm(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        epsilon: f32,
    ) -> FloatTensor<Self> {
        rms_norm::autodiff::<B, C>(x, weight, epsilon)
    }

    /// Runs the inner backend's backward; the results are constants.
    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        epsilon: f32,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let (dx, dw) = B::rms_norm_backward(x.primitive, weight.primitive, grad.primitive, epsilon);
        (Self::from_inner(dx), Self::from_inner(dw))
    }

    /// The inner backend's forward plus a node keeping the tables.
    fn rope_heads(
        x: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        rope::autodiff::<B, C>(x, cos, sin)
    }

    /// Runs the inner backend's backward; the result is a constant.
    fn rope_heads_backward(
        grad: FloatTensor<Self>,
        cos: FloatTensor<Self>,
        sin: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::rope_heads_backward(
            grad.primitive,
            cos.primitive,
            sin.primitive,
        ))
    }

    /// Tracks `logp` and `entropy` (one `[N, 2]` node, as in `token_stats`) with respect to
    /// `hidden` and `weight`; `log_normalizer` is a constant.
    fn head_stats(
        hidden: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        targets: IntTensor<Self>,
        temperature: f32,
        chunk: NonZeroUsize,
    ) -> TokenStats<Self> {
        let prep = HeadStatsBackward
            .prepare::<C>([hidden.node.clone(), weight.node.clone()])
            .compute_bound()
            .stateful();
        match prep {
            OpsKind::Tracked(mut prep) => {
                let hidden_id = prep.checkpoint(&hidden);
                let weight_id = prep.checkpoint(&weight);
                let inner = B::head_stats(
                    hidden.primitive,
                    weight.primitive,
                    targets.clone(),
                    temperature,
                    chunk,
                );
                let stacked = stack_logp_entropy(&inner);
                let state = HeadStatsState {
                    hidden: hidden_id,
                    weight: weight_id,
                    targets,
                    log_normalizer: inner.log_normalizer.clone(),
                    entropy: inner.entropy,
                    temperature,
                    chunk,
                };
                split_logp_entropy(prep.finish(state, stacked), inner.log_normalizer)
            }
            OpsKind::UnTracked(prep) => {
                let inner = B::head_stats(
                    hidden.primitive,
                    weight.primitive,
                    targets,
                    temperature,
                    chunk,
                );
                TokenStats {
                    logp: prep.finish(inner.logp),
                    entropy: Self::from_inner(inner.entropy),
                    log_normalizer: Self::from_inner(inner.log_normalizer),
                }
            }
        }
    }
}

/// The inner forward's `logp` and `H` as the one `[N, 2]` output `[logp | H]` of an E1 node.
fn stack_logp_entropy<B: Backend>(inner: &TokenStats<B>) -> FloatTensor<B> {
    let stacked: Tensor<B, 2> = Tensor::stack(
        vec![
            float::<B, 1>(inner.logp.clone()),
            float::<B, 1>(inner.entropy.clone()),
        ],
        1,
    );
    stacked.into_primitive().tensor()
}

/// The tracked `[logp | H]` output of an E1 node split into its two columns, with the
/// log-normaliser as a constant.
fn split_logp_entropy<B: Backend, C: CheckpointStrategy>(
    stacked: FloatTensor<Autodiff<B, C>>,
    log_normalizer: FloatTensor<B>,
) -> TokenStats<Autodiff<B, C>> {
    let stacked: Tensor<Autodiff<B, C>, 2> = float(stacked);
    TokenStats {
        logp: column(stacked.clone(), 0),
        entropy: column(stacked, 1),
        log_normalizer: Autodiff::<B, C>::from_inner(log_normalizer),
    }
}

/// Column `index` of an `[N, 2]` tensor as an `[N]` primitive (a tracked slice on autodiff).
fn column<B: Backend>(stacked: Tensor<B, 2>, index: usize) -> FloatTensor<B> {
    stacked
        .narrow(1, index, 1)
        .squeeze_dim::<1>(1)
        .into_primitive()
        .tensor()
}
