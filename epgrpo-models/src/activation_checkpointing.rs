//! Activation checkpointing per decoder layer: the forward runs without a graph and keeps only
//! each layer's input `[batch, seq, hidden]`; the backward recomputes one layer at a time with
//! a graph, from the last to the first, and chains the gradients by hand:
//!
//! ```text
//! g_L = ∂loss/∂x_L                       (one backward through the final norm, head and loss)
//! g_l = ∂(Σ layer_l(x_l) · g_{l+1})/∂x_l  (and the layer's parameter gradients), l = L−1 … 0
//! embedding:  ∂(Σ embed(tokens) · g_0)/∂E
//! ```
//!
//! Peak memory holds `L` layer inputs plus one layer's graph instead of every layer's graph; the
//! price is a second forward pass. The gradients are those of the plain graph (the same
//! products, chained in the same order). Every layer must be deterministic: a layer with active
//! dropout would draw other masks when recomputed (the trainer's LoRA adapters have none).

use burn::module::AutodiffModule;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use epgrpo_kernels::KernelBackend;

use crate::decoder::Decoder;
use crate::padding::LeftPadding;

/// What the checkpointed forward keeps for [`Decoder::backward_checkpointed`].
#[derive(Debug)]
pub struct LayerCheckpoints<B: AutodiffBackend> {
    tokens: Tensor<B, 2, Int>,
    padding: LeftPadding,
    /// The input of every layer, without a graph.
    inputs: Vec<Tensor<B::InnerBackend, 3>>,
    /// The last layer's output as a graph leaf (the input of the final norm).
    last: Tensor<B, 3>,
}

impl<B> Decoder<B>
where
    B: AutodiffBackend + KernelBackend,
    B::InnerBackend: KernelBackend,
{
    /// [`Decoder::hidden_states`] with activation checkpointing: the final-norm hidden states,
    /// tracked from the final norm on only, and the layer inputs that
    /// [`Decoder::backward_checkpointed`] recomputes the layers from.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn hidden_states_checkpointed(
        &self,
        tokens: Tensor<B, 2, Int>,
        padding: &LeftPadding,
    ) -> (Tensor<B, 3>, LayerCheckpoints<B>) {
        let [_, t] = tokens.dims();
        let inner = self.valid();
        let mut x = inner.embed_tokens.forward(tokens.clone().inner());
        let device = x.device();
        let rope = inner.rope.tables(&padding.positions(0, t), &device);
        let bias = padding.attention_bias(0, t, &device);
        let mut inputs = Vec::with_capacity(inner.layers.len());
        for layer in &inner.layers {
            inputs.push(x.clone());
            x = layer.forward(x, &rope, bias.clone(), None);
        }
        let last = Tensor::<B, 3>::from_inner(x).require_grad();
        let hidden = crate::decoder::rms_norm(&self.norm, last.clone());
        let checkpoints = LayerCheckpoints {
            tokens,
            padding: padding.clone(),
            inputs,
            last,
        };
        (hidden, checkpoints)
    }

    /// The parameter gradients of `loss`, a function of the hidden states returned by
    /// [`Decoder::hidden_states_checkpointed`] (and of the head), layer by layer (see the module
    /// docs). Replaces `GradientsParams::from_grads(loss.backward(), self)`.
    pub fn backward_checkpointed(
        &self,
        loss: Tensor<B, 1>,
        checkpoints: LayerCheckpoints<B>,
    ) -> GradientsParams {
        let LayerCheckpoints {
            tokens,
            padding,
            inputs,
            last,
        } = checkpoints;
        let mut accumulator = GradientsAccumulator::<Decoder<B>>::new();
        let grads = loss.backward();
        let mut upstream = last
            .grad(&grads)
            .unwrap_or_else(|| last.clone().inner().zeros_like());
        accumulator.accumulate(self, GradientsParams::from_grads(grads, self));
        let [_, t] = tokens.dims();
        let device = tokens.device();
        let rope = self.rope.tables(&padding.positions(0, t), &device);
        let bias = padding.attention_bias(0, t, &device);
        for (layer, input) in self.layers.iter().zip(inputs).rev() {
            let x = Tensor::<B, 3>::from_inner(input).require_grad();
            let y = layer.forward(x.clone(), &rope, bias.clone(), None);
            let grads = (y * Tensor::from_inner(upstream)).sum().backward();
            upstream = x
                .grad(&grads)
                .unwrap_or_else(|| x.clone().inner().zeros_like());
            accumulator.accumulate(self, GradientsParams::from_grads(grads, self));
        }
        let embedded = self.embed_tokens.forward(tokens);
        let grads = (embedded * Tensor::from_inner(upstream)).sum().backward();
        accumulator.accumulate(self, GradientsParams::from_grads(grads, self));
        accumulator.grads()
    }
}
