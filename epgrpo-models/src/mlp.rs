//! `Mlp`: the SwiGLU feed-forward block of Llama/Qwen2, `down(silu(gate(x)) ⊙ up(x))`, with HF
//! parameter names; each projection may carry a LoRA adapter.

use burn::nn::LinearConfig;
use burn::prelude::*;
use epgrpo_kernels::{KernelBackend, swiglu};

use crate::lora::LoraLinear;

/// SwiGLU MLP (`mlp.{gate,up,down}_proj` in HF checkpoints).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// `[hidden, intermediate]` gate projection.
    pub gate_proj: LoraLinear<B>,
    /// `[hidden, intermediate]` up projection.
    pub up_proj: LoraLinear<B>,
    /// `[intermediate, hidden]` down projection.
    pub down_proj: LoraLinear<B>,
}

impl<B: Backend> Mlp<B> {
    /// Randomly initialised MLP (bias-free, as in Llama/Qwen2).
    pub fn init(hidden: usize, intermediate: usize, device: &B::Device) -> Self {
        let linear = |i, o| LinearConfig::new(i, o).with_bias(false).init(device).into();
        Self {
            gate_proj: linear(hidden, intermediate),
            up_proj: linear(hidden, intermediate),
            down_proj: linear(intermediate, hidden),
        }
    }

    /// Applies the block.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3>
    where
        B: KernelBackend,
    {
        let gate = self.gate_proj.forward(x.clone());
        self.down_proj
            .forward(swiglu(gate, self.up_proj.forward(x)))
    }
}
