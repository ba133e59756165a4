//! `Decoder`: a Llama/Qwen2-family decoder-only transformer (pre-norm RMSNorm, grouped-query
//! attention with `rotate_half` RoPE, SwiGLU MLP, tied or separate output head). Field names
//! mirror HF checkpoint names so that loading is name identity plus a transpose.

use burn::nn::{Embedding, EmbeddingConfig, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use epgrpo_kernels::{KernelBackend, matmul};

use crate::attention::Attention;
use crate::config::DecoderConfig;
use crate::kv_cache::KvCache;
use crate::mlp::Mlp;
use crate::padding::LeftPadding;
use crate::rope::{RopeTables, RotaryEmbedding};

/// `norm` applied through the kernels' fused RMSNorm ([`epgrpo_kernels::rms_norm`], the
/// formula of `RmsNorm::forward`).
pub(crate) fn rms_norm<B: KernelBackend, const D: usize>(
    norm: &RmsNorm<B>,
    x: Tensor<B, D>,
) -> Tensor<B, D> {
    epgrpo_kernels::rms_norm(x, norm.gamma.val(), norm.epsilon)
}

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
    pub(crate) fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        bias: Tensor<B, 4>,
        cache: Option<(&mut crate::kv_cache::LayerCache<B>, usize)>,
    ) -> Tensor<B, 3>
    where
        B: KernelBackend,
    {
        let attn = self.self_attn.forward(
            rms_norm(&self.input_layernorm, x.clone()),
            rope,
            bias,
            cache,
        );
        let x = x + attn;
        let mlp = self
            .mlp
            .forward(rms_norm(&self.post_attention_layernorm, x.clone()));
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
    pub fn forward(&self, tokens: Tensor<B, 2, Int>, padding: &LeftPadding) -> Tensor<B, 3>
    where
        B: KernelBackend,
    {
        self.logits(self.hidden_states(tokens, padding))
    }

    /// Final-norm hidden states of every position, without a cache.
    ///
    /// # Shapes
    /// - `tokens`: `[batch, seq]`
    /// - output: `[batch, seq, hidden]`
    pub fn hidden_states(&self, tokens: Tensor<B, 2, Int>, padding: &LeftPadding) -> Tensor<B, 3>
    where
        B: KernelBackend,
    {
        let [_, t] = tokens.dims();
        let device = tokens.device();
        let rope = self.rope.tables(&padding.positions(0, t), &device);
        let bias = padding.attention_bias(0, t, &device);
        let mut x = self.embed_tokens.forward(tokens);
        for layer in &self.layers {
            x = layer.forward(x, &rope, bias.clone(), None);
        }
        rms_norm(&self.norm, x)
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
    pub fn forward_cached(&self, tokens: Tensor<B, 2, Int>, cache: &mut KvCache<B>) -> Tensor<B, 3>
    where
        B: KernelBackend,
    {
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
    ) -> Tensor<B, 3>
    where
        B: KernelBackend,
    {
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
        rms_norm(&self.norm, x)
    }

    /// Output head applied to final-norm hidden states: `h · W` with a separate head
    /// `[hidden, vocab]`, `h · Eᵀ` with the tied embedding `[vocab, hidden]`. The kernels'
    /// product reads `Eᵀ` as a strided view: nothing of the head's size is copied.
    ///
    /// # Shapes
    /// - `hidden`: `[batch, seq, hidden]`
    /// - output: `[batch, seq, vocab]`
    pub fn logits(&self, hidden: Tensor<B, 3>) -> Tensor<B, 3>
    where
        B: KernelBackend,
    {
        let [b, t, d] = hidden.dims();
        let rows = hidden.reshape([b * t, d]);
        let logits = match &self.lm_head {
            Some(head) => {
                let logits = matmul(rows, head.weight.val());
                match &head.bias {
                    Some(bias) => logits + bias.val().unsqueeze(),
                    None => logits,
                }
            }
            None => matmul(rows, self.embed_tokens.weight.val().transpose()),
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

    fn small_decoder(tied: bool) -> Decoder<Autodiff<TestBackend>> {
        let json = format!(
            r#"{{"model_type": "llama", "vocab_size": 301, "hidden_size": 16,
            "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
            "max_position_embeddings": 64, "tie_word_embeddings": {tied}}}"#
        );
        let config = DecoderConfig::from_json_str(&json, Path::new("config.json")).unwrap();
        Decoder::init(&config, &Default::default())
    }

    #[test]
    fn head_equals_burns_product_with_and_without_a_graph() {
        for tied in [true, false] {
            let model = small_decoder(tied);
            let hidden = Tensor::<Autodiff<TestBackend>, 3>::random(
                [2, 3, 16],
                burn::tensor::Distribution::Default,
                &Default::default(),
            );
            let rows = hidden.clone().inner().reshape([6, 16]);
            let expected = match &model.lm_head {
                Some(head) => rows.matmul(head.weight.val().inner()),
                None => rows.matmul(model.embed_tokens.weight.val().inner().transpose()),
            };
            for logits in [
                model.logits(hidden.clone()).inner(),
                model.valid().logits(hidden.inner()),
            ] {
                assert_eq!(logits.dims(), [2, 3, 301]);
                let diff = (logits.reshape([6, 301]) - expected.clone())
                    .abs()
                    .max()
                    .into_scalar();
                assert!(diff < 1e-5, "tied {tied}: max |Δ| = {diff}");
            }
        }
    }
}
