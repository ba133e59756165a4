//! E1 (token log-prob and entropy, `spec/ep-grpo.md` E1) straight from final hidden states
//! through the output head: with materialised `[N, V]` logits, or fused with the head product
//! in chunks of rows so that no `[N, V]` tensor exists in the forward or the backward
//! ([`epgrpo_kernels::head_logp_entropy`]).

use std::num::NonZeroUsize;

use burn::prelude::*;
use epgrpo_kernels::{KernelBackend, head_logp_entropy, token_logp_entropy};

use crate::decoder::Decoder;

/// How the output head and E1 are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadLoss {
    /// `[N, V]` logits, then E1 (the E1 node keeps the logits for its backward).
    Materialised,
    /// Head product and E1 fused, this many rows (tokens) at a time; the backward recomputes
    /// each chunk's logits.
    Chunked(NonZeroUsize),
}

impl HeadLoss {
    /// Rows per chunk of the default mode. Chosen by measurement (`examples/memory.rs`,
    /// SmolLM2-135M shape, 1,024 scored tokens, CPU): scoring peaked at 1,354 MiB with
    /// materialised logits and at 738 / 630 / 582 MiB with chunks of 256 / 128 / 64 tokens, taking
    /// 24.6 s materialised and 22.7 / 24.8 / 25.5 s chunked; 256 keeps most of the saving, was the
    /// fastest, and keeps the products large enough for a GPU.
    pub const DEFAULT_CHUNK_TOKENS: usize = 256;

    /// The mode of the `[train] head_chunk_tokens` key: 0 is [`HeadLoss::Materialised`], any
    /// other value chunks of that many tokens.
    pub fn from_chunk_tokens(tokens: usize) -> Self {
        match NonZeroUsize::new(tokens) {
            Some(chunk) => Self::Chunked(chunk),
            None => Self::Materialised,
        }
    }
}

impl Default for HeadLoss {
    /// Chunks of [`HeadLoss::DEFAULT_CHUNK_TOKENS`] tokens.
    fn default() -> Self {
        Self::from_chunk_tokens(Self::DEFAULT_CHUNK_TOKENS)
    }
}

impl<B: KernelBackend> Decoder<B> {
    /// E1 of final-norm hidden states through the output head at `temperature`: `(logp [N],
    /// entropy [N])` for `targets [N]`, differentiable with respect to the hidden states and the
    /// head (or the tied embedding) on an autodiff backend.
    ///
    /// A separate head with a bias term always takes the materialised path (the fused product
    /// has no bias; neither [`Decoder::init`] nor the loaders create one).
    ///
    /// # Shapes
    /// - `hidden`: `[N, hidden]`, `targets`: `[N]` → (`[N]`, `[N]`)
    pub fn head_logp_entropy(
        &self,
        hidden: Tensor<B, 2>,
        targets: Tensor<B, 1, Int>,
        temperature: f64,
        mode: HeadLoss,
    ) -> (Tensor<B, 1>, Tensor<B, 1>) {
        let weight = match (&self.lm_head, mode) {
            (_, HeadLoss::Materialised) => None,
            (Some(head), HeadLoss::Chunked(chunk)) => match &head.bias {
                Some(_) => None,
                None => Some((head.weight.val(), chunk)),
            },
            (None, HeadLoss::Chunked(chunk)) => {
                Some((self.embed_tokens.weight.val().transpose(), chunk))
            }
        };
        match weight {
            Some((weight, chunk)) => head_logp_entropy(hidden, weight, targets, temperature, chunk),
            None => {
                let [n, d] = hidden.dims();
                let logits = self.logits(hidden.reshape([1, n, d]));
                let v = logits.dims()[2];
                token_logp_entropy(logits.reshape([n, v]), targets, temperature)
            }
        }
    }
}
