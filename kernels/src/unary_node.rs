//! One autodiff node for the fused operations of one tracked float input whose backward needs
//! only what the forward left behind as constants (the attention probabilities keep their
//! output, RoPE its tables).

use std::fmt::Debug;

use burn::backend::{
    Autodiff,
    autodiff::{
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind},
    },
};
use burn::tensor::ops::FloatTensor;

use crate::KernelBackend;

/// A fused operation of one input with its backward from a kept state.
pub(crate) trait UnaryOp: Debug + Send + 'static {
    /// What the backward keeps from the forward.
    type State<B: KernelBackend>: Clone + Debug + Send + 'static;

    /// The input's gradient for the upstream `grad`.
    fn backward<B: KernelBackend>(state: Self::State<B>, grad: FloatTensor<B>) -> FloatTensor<B>;
}

/// The backward node of a [`UnaryOp`].
#[derive(Debug)]
struct UnaryBackward<Op>(Op);

impl<B: KernelBackend, Op: UnaryOp> Backward<B, 1> for UnaryBackward<Op> {
    type State = Op::State<B>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(parent) = parent {
            grads.register::<B>(parent.id, Op::backward::<B>(ops.state, grad));
        }
    }
}

/// The tracked operation: `output`, computed by the inner backend from `input`, and, when the
/// input is tracked, a node keeping `state`.
pub(crate) fn tracked<B: KernelBackend, C: CheckpointStrategy, Op: UnaryOp>(
    op: Op,
    input: &FloatTensor<Autodiff<B, C>>,
    output: FloatTensor<B>,
    state: Op::State<B>,
) -> FloatTensor<Autodiff<B, C>> {
    match UnaryBackward(op)
        .prepare::<C>([input.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(prep) => prep.finish(state, output),
        OpsKind::UnTracked(prep) => prep.finish(output),
    }
}
