//! One autodiff node for the fused operations of two float inputs (SwiGLU, RMSNorm): the inner
//! backend's forward, both inputs checkpointed, and a backward that hands each tracked parent
//! its gradient from the operation's own backward method.

use std::fmt::Debug;

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

/// A fused operation `y = f(a, b; param)` with its backward `(da, db)`.
pub(crate) trait BinaryOp: Debug + Send + 'static {
    /// A constant of the operation (RMSNorm's ε), kept for the backward.
    type Param: Clone + Debug + Send + 'static;

    /// The inner backend's forward.
    fn forward<B: KernelBackend>(
        a: FloatTensor<B>,
        b: FloatTensor<B>,
        param: &Self::Param,
    ) -> FloatTensor<B>;

    /// The inner backend's backward for the upstream `grad`.
    fn backward<B: KernelBackend>(
        a: FloatTensor<B>,
        b: FloatTensor<B>,
        grad: FloatTensor<B>,
        param: &Self::Param,
    ) -> (FloatTensor<B>, FloatTensor<B>);
}

/// The backward node of a [`BinaryOp`].
#[derive(Debug)]
struct BinaryBackward<Op>(Op);

impl<B: KernelBackend, Op: BinaryOp> Backward<B, 2> for BinaryBackward<Op> {
    type State = (NodeId, NodeId, Op::Param);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [a_parent, b_parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (a, b, param) = ops.state;
        let a: FloatTensor<B> = checkpointer.retrieve_node_output(a);
        let b: FloatTensor<B> = checkpointer.retrieve_node_output(b);
        let (da, db) = Op::backward::<B>(a, b, grad, &param);
        if let Some(parent) = a_parent {
            grads.register::<B>(parent.id, da);
        }
        if let Some(parent) = b_parent {
            grads.register::<B>(parent.id, db);
        }
    }
}

/// The tracked operation: the inner backend's forward and, when an input is tracked, a node
/// keeping both inputs.
pub(crate) fn tracked<B: KernelBackend, C: CheckpointStrategy, Op: BinaryOp>(
    op: Op,
    a: FloatTensor<Autodiff<B, C>>,
    b: FloatTensor<Autodiff<B, C>>,
    param: Op::Param,
) -> FloatTensor<Autodiff<B, C>> {
    match BinaryBackward(op)
        .prepare::<C>([a.node.clone(), b.node.clone()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let ids = (prep.checkpoint(&a), prep.checkpoint(&b));
            let output = Op::forward::<B>(a.primitive, b.primitive, &param);
            prep.finish((ids.0, ids.1, param), output)
        }
        OpsKind::UnTracked(prep) => prep.finish(Op::forward::<B>(a.primitive, b.primitive, &param)),
    }
}
