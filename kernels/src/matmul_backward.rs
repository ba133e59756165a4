//! The autodiff node of [`KernelBackend::matmul`]: for `C = A · B` over the last two axes,
//! `dA = dC · Bᵀ` and `dB = Aᵀ · dC`, both through the inner backend's `matmul` (on NdArray
//! the transposes are strided views, read in place).
//!
//! An operand is kept for the backward pass only when the other one needs a gradient: a frozen
//! weight keeps nothing of the activations alive, and the activations of a frozen layer are not
//! kept for a weight gradient that will never be asked for.

use burn::backend::{
    Autodiff,
    autodiff::{
        NodeId,
        checkpoint::{base::Checkpointer, strategy::CheckpointStrategy},
        grads::Gradients,
        ops::{Backward, Ops, OpsKind},
    },
};
use burn::tensor::ops::FloatTensor;

use crate::KernelBackend;

/// Backward node of the product.
#[derive(Debug)]
struct MatmulBackward;

/// The checkpointed operands: `lhs` when `rhs` needs a gradient, `rhs` when `lhs` does.
type MatmulState = (Option<NodeId>, Option<NodeId>);

impl<B: KernelBackend> Backward<B, 2> for MatmulBackward {
    type State = MatmulState;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let (lhs, rhs) = ops.state;
        let [lhs_parent, rhs_parent] = ops.parents;
        let grad: FloatTensor<B> = grads.consume::<B>(&ops.node);
        let lhs: Option<FloatTensor<B>> = lhs.map(|id| checkpointer.retrieve_node_output(id));
        let rhs: Option<FloatTensor<B>> = rhs.map(|id| checkpointer.retrieve_node_output(id));
        if let (Some(parent), Some(rhs)) = (lhs_parent, rhs) {
            let grad_lhs = B::matmul(grad.clone(), B::float_transpose(rhs));
            grads.register::<B>(parent.id, grad_lhs);
        }
        if let (Some(parent), Some(lhs)) = (rhs_parent, lhs) {
            let grad_rhs = B::matmul(B::float_transpose(lhs), grad);
            grads.register::<B>(parent.id, grad_rhs);
        }
    }
}

/// The tracked product of two autodiff tensors.
pub(crate) fn matmul<B: KernelBackend, C: CheckpointStrategy>(
    lhs: FloatTensor<Autodiff<B, C>>,
    rhs: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    let (lhs_tracked, rhs_tracked) = (lhs.is_tracked(), rhs.is_tracked());
    match MatmulBackward
        .prepare::<C>([lhs.node.clone(), rhs.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let lhs_state = rhs_tracked.then(|| prep.checkpoint(&lhs));
            let rhs_state = lhs_tracked.then(|| prep.checkpoint(&rhs));
            let product = B::matmul(lhs.primitive, rhs.primitive);
            prep.finish((lhs_state, rhs_state), product)
        }
        OpsKind::UnTracked(prep) => prep.finish(B::matmul(lhs.primitive, rhs.primitive)),
    }
}
