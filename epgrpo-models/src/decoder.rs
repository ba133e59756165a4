//! `Decoder`: a Llama/Qwen2-family decoder-only transformer (pre-norm RMSNorm, grouped-query
//! attention with `rotate_half` RoPE, SwiGLU MLP, tied or separate output head). Field names
//! mirror HF checkpoint names so that loading is name identity plus a transpose.

use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;

use crate::attention::Attention;
use crate::config::DecoderConfig;
use crate::kv_cache::KvCache;
use crate::mlp::Mlp;
use crate::padding::LeftPadding;
use crate::rope::{RopeTables, RotaryEmbedding};

/// Vocabulary entries per block of the output head when no gradient flows to it (see
/// [`Decoder::logits`]): 2.4 MB blocks at SmolLM2's width, smaller than the projection weights,
/// whose copies glibc already serves from the heap.
const HEAD_BLOCK_ROWS: usize = 1024;

/// One pre-norm transformer block (`model.layers.{i}` in HF checkpoints).
#[derive(Module, Debug)]
pub struct DecoderLayer<B: Backend> {
    /// Self-attention.
    pub self_attn: Attention<B>,
    /// SwiGLU feed-forward.
    pub mlp: Mlp<B>,
    /// RMSNorm before attention.
    pub input_layernorm: RmsNorm<B>,
    /// RMSNorm before the MLP.
    pub post_attention_layernorm: RmsNorm<B>,
}

impl<B: Backend> DecoderLayer<B> {
    /// Randomly initialised block for `config`.
    pub fn init(config: &DecoderConfig, device: &B::Device) -> Self {
        let norm = || RmsNormConfig::new(config.hidden_size).with_epsilon(config.rms_norm_eps);
        Self {
            self_attn: Attention::init(config, device),
            mlp: Mlp::init(config.hidden_size, config.intermediate_size, device),
            input_layernorm: norm().init(device),
            post_attention_layernorm: norm().init(device),
        }
    }

    /// `x + attn(norm(x))`, then `+ mlp(norm(·))`.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]` → `[batch, seq, hidden]`
    fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        bias: Tensor<B, 4>,
        cache: Option<(&mut crate::kv_cache::LayerCache<B>, usize)>,
    ) -> Tensor<B, 3> {
        let attn =
            self.self_attn
                .forward(self.input_layernorm.forward(x.clone()), rope, bias, cache);
        let x = x + attn;
        let mlp = self
            .mlp
            .forward(self.post_attention_layernorm.forward(x.clone()));
        x + mlp
    }
}

/// The whole decoder (`model.*` and `lm_head` in HF checkpoints).
#[derive(Module, Debug)]
pub struct Decoder<B: Backend> {
    /// Token embedding, `[vocab, hidden]`.
    pub embed_tokens: Embedding<B>,
    /// Transformer blocks.
    pub layers: Vec<DecoderLayer<B>>,
    /// Final RMSNorm.
    pub norm: RmsNorm<B>,
    /// Output head `[hidden, vocab]`; `None` when tied to `embed_tokens`.
    pub lm_head: Option<Linear<B>>,
    /// RoPE frequencies (derived from the config, not a parameter).
    #[module(skip)]
    pub rope: RotaryEmbedding,
}

impl<B: Backend> Decoder<B> {
    /// Randomly initialised decoder (Burn's default initialisers) for `config`.
    ///
    /// # Panics
    /// If `config` does not pass [`DecoderConfig::validate`]'s RoPE check.
    pub fn init(config: &DecoderConfig, device: &B::Device) -> Self {
        let (d, v) = (config.hidden_size, config.vocab_size);
        Self {
            embed_tokens: EmbeddingConfig::new(v, d).init(device),
            layers: (0..config.num_hidden_layers)
                .map(|_| DecoderLayer::init(config, device))
                .collect(),
            norm: RmsNormConfig::new(d)
                .with_epsilon(config.rms_norm_eps)
                .init(device),
            lm_head: (!config.tie_word_embeddings)
                .then(|| LinearConfig::new(d, v).with_bias(false).init(device)),
            rope: RotaryEmbedding::from_config(config),
        }
    }

    /// Logits of every position of a (possibly left-padded) batch, without a cache.
    /// Logits at filler positions are finite but meaningless.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]`
    /// - output: `[batch, seq, vocab]`
    pub fn forward(&self, tokens: Tensor<B, 2, Int>, padding: &LeftPadding) -> Tensor<B, 3> {
        self.logits(self.hidden_states(tokens, padding))
    }

    /// Final-norm hidden states of every position, without a cache.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn hidden_states(&self, tokens: Tensor<B, 2, Int>, padding: &LeftPadding) -> Tensor<B, 3> {
        let [_, t] = tokens.dims();
        let device = tokens.device();
        let rope = self.rope.tables(&padding.positions(0, t), &device);
        let bias = padding.attention_bias(0, t, &device);
        let mut x = self.embed_tokens.forward(tokens);
        for layer in &self.layers {
            x = layer.forward(x, &rope, bias.clone(), None);
        }
        self.norm.forward(x)
    }

    /// Runs `tokens` at the next free slots of `cache` (prefill with the whole prompt, then one
    /// token per step), writes their keys/values and returns their logits.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]` with `batch = cache.padding().batch()`
    /// - output: `[batch, seq, vocab]`
    ///
    /// # Panics
    /// If the cache has fewer than `seq` free slots or the batch sizes differ.
    pub fn forward_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
    ) -> Tensor<B, 3> {
        self.logits(self.hidden_states_cached(tokens, cache))
    }

    /// [`Decoder::forward_cached`] without the output head: the final-norm hidden states, so
    /// that a caller needing logits of some positions only (the last one of a prefill) applies
    /// the head to those.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]` with `batch = cache.padding().batch()`
    /// - output: `[batch, seq, hidden]`
    ///
    /// # Panics
    /// If the cache has fewer than `seq` free slots or the batch sizes differ.
    pub fn hidden_states_cached(
        &self,
        tokens: Tensor<B, 2, Int>,
        cache: &mut KvCache<B>,
    ) -> Tensor<B, 3> {
        let [b, t] = tokens.dims();
        let start = cache.len();
        assert_eq!(b, cache.padding().batch(), "token rows vs cache rows");
        assert!(
            start + t <= cache.max_len(),
            "KV cache full: {start} + {t} > {}",
            cache.max_len()
        );
        let device = tokens.device();
        let rope = self
            .rope
            .tables(&cache.padding().positions(start, t), &device);
        let bias = cache.padding().attention_bias(start, t, &device);
        let mut x = self.embed_tokens.forward(tokens);
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x, &rope, bias.clone(), Some((cache.layer_mut(i), start)));
        }
        cache.advance(t);
        self.norm.forward(x)
    }

    /// Output head applied to final-norm hidden states.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`
    /// - output: `[batch, seq, vocab]`
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3> {
        let [b, t, d] = hidden.dims();
        let rows = hidden.reshape([b * t, d]);
        // Without a gradient to the head, multiply it in blocks of vocabulary entries: the CPU
        // backend copies both operands of every matmul into fresh buffers, and a copy of the
        // whole head (113 MB for SmolLM2) is an `mmap` of new pages on every call (≈0.1 s of
        // page faults per decode step), while blocks of a few MB reuse heap memory. With a
        // gradient, the backward of each block would build a zero tensor the size of the whole
        // head, so the product stays in one piece there (and unsliced).
        let blocks = |v: usize, grad: bool| {
            let block = if grad { v.max(1) } else { HEAD_BLOCK_ROWS };
            (0..v)
                .step_by(block)
                .map(move |start| start..(start + block).min(v))
        };
        let logits = match &self.lm_head {
            Some(head) => {
                let weight = head.weight.val();
                let v = weight.dims()[1];
                let parts: Vec<Tensor<B, 2>> = blocks(v, weight.is_require_grad())
                    .map(|cols| {
                        if cols.len() == v {
                            rows.clone().matmul(weight.clone())
                        } else {
                            rows.clone().matmul(weight.clone().slice([0..d, cols]))
                        }
                    })
                    .collect();
                let logits = Tensor::cat(parts, 1);
                match &head.bias {
                    Some(bias) => logits + bias.val().unsqueeze(),
                    None => logits,
                }
            }
            None => {
                let weight = self.embed_tokens.weight.val();
                let v = weight.dims()[0];
                // `E · hᵀ` reads the `[vocab, hidden]` embedding row-major; `h · Eᵀ` made the
                // CPU backend walk the large matrix against its layout (≈5× slower).
                let columns = rows.transpose();
                let parts: Vec<Tensor<B, 2>> = blocks(v, weight.is_require_grad())
                    .map(|vocab| {
                        if vocab.len() == v {
                            weight.clone().matmul(columns.clone())
                        } else {
                            weight.clone().slice([vocab, 0..d]).matmul(columns.clone())
                        }
                    })
                    .collect();
                Tensor::cat(parts, 0).transpose()
            }
        };
        let v = logits.dims()[1];
        logits.reshape([b, t, v])
    }

    /// An empty KV cache sized for this decoder.
    pub fn new_cache(
        &self,
        padding: LeftPadding,
        max_len: usize,
        device: &B::Device,
    ) -> KvCache<B> {
        let (kv_heads, head_dim) = self
            .layers
            .first()
            .map_or((0, 0), |l| (l.self_attn.num_kv_heads, l.self_attn.head_dim));
        KvCache::new(
            self.layers.len(),
            kv_heads,
            head_dim,
            padding,
            max_len,
            device,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use burn::backend::{Autodiff, NdArray};
    use burn::module::AutodiffModule;

    use super::*;

    type TestBackend = NdArray<f32>;

    /// A vocabulary spanning several head blocks, the last one partial.
    fn wide_vocab_decoder(tied: bool) -> Decoder<Autodiff<TestBackend>> {
        let json = format!(
            r#"{{"model_type": "llama", "vocab_size": {}, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "max_position_embeddings": 64, "tie_word_embeddings": {tied}}}"#,
            2 * HEAD_BLOCK_ROWS + 37
        );
        let config = DecoderConfig::from_json_str(&json, Path::new("config.json")).unwrap();
        Decoder::init(&config, &Default::default())
    }

    #[test]
    fn blocked_head_equals_the_single_product() {
        for tied in [true, false] {
            let model = wide_vocab_decoder(tied);
            let hidden = Tensor::<Autodiff<TestBackend>, 3>::random(
                [2, 3, 16],
                burn::tensor::Distribution::Default,
                &Default::default(),
            );
            // Autodiff parameters take gradients: one product. `valid()`: blocks.
            let whole = model.logits(hidden.clone()).inner();
            let blocked = model.valid().logits(hidden.inner());
            assert_eq!(blocked.dims(), [2, 3, 2 * HEAD_BLOCK_ROWS + 37]);
            let diff = (whole - blocked).abs().max().into_scalar();
            assert!(diff < 1e-6, "tied {tied}: max |Δ| = {diff}");
        }
    }
}
