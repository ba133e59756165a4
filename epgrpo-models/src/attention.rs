//! `Attention`: grouped-query self-attention with HF `rotate_half` RoPE, an additive
//! (causal + padding) bias and an optional KV cache. Parameter names follow HF checkpoints
//! (`self_attn.{q,k,v,o}_proj`, Qwen3's `self_attn.{q,k}_norm`); Qwen2 gives q/k/v biases.
//! Each projection may carry a LoRA adapter ([`LoraLinear`]).

use burn::nn::{LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use epgrpo_kernels::{KernelBackend, attention_probs, matmul, rope_heads};

use crate::config::DecoderConfig;
use crate::decoder::rms_norm;
use crate::kv_cache::LayerCache;
use crate::lora::LoraLinear;
use crate::rope::RopeTables;

/// Multi-head self-attention whose key/value heads are shared by groups of query heads.
#[derive(Module, Debug)]
pub struct Attention<B: Backend> {
    /// `[hidden, heads * head_dim]`.
    pub q_proj: LoraLinear<B>,
    /// `[hidden, kv_heads * head_dim]`.
    pub k_proj: LoraLinear<B>,
    /// `[hidden, kv_heads * head_dim]`.
    pub v_proj: LoraLinear<B>,
    /// `[heads * head_dim, hidden]`.
    pub o_proj: LoraLinear<B>,
    /// Qwen3: RMSNorm over each query head (`[head_dim]` weights), before RoPE.
    pub q_norm: Option<RmsNorm<B>>,
    /// Qwen3: RMSNorm over each key head, before RoPE.
    pub k_norm: Option<RmsNorm<B>>,
    /// Query heads.
    pub num_heads: usize,
    /// Key/value heads.
    pub num_kv_heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl<B: Backend> Attention<B> {
    /// Randomly initialised attention for `config`.
    pub fn init(config: &DecoderConfig, device: &B::Device) -> Self {
        let (d, hd) = (config.hidden_size, config.head_dim());
        let (heads, kv) = (config.num_attention_heads, config.num_kv_heads());
        let qkv = |o| {
            LinearConfig::new(d, o)
                .with_bias(config.qkv_bias())
                .init(device)
                .into()
        };
        let head_norm = || {
            config.qk_norm().then(|| {
                RmsNormConfig::new(hd)
                    .with_epsilon(config.rms_norm_eps)
                    .init(device)
            })
        };
        Self {
            q_proj: qkv(heads * hd),
            k_proj: qkv(kv * hd),
            v_proj: qkv(kv * hd),
            o_proj: LinearConfig::new(heads * hd, d)
                .with_bias(config.o_bias())
                .init(device)
                .into(),
            q_norm: head_norm(),
            k_norm: head_norm(),
            num_heads: heads,
            num_kv_heads: kv,
            head_dim: hd,
        }
    }

    /// Attends queries at cache slots `start .. start + seq` over all keys up to them.
    ///
    /// Without a cache `start` must be 0 and the keys are the inputs themselves.
    ///
    /// # Shapes
    /// - `x`: `[batch, seq, hidden]`
    /// - `rope`: tables `[batch, 1, seq, head_dim]`
    /// - `bias`: `[batch, 1, seq, start + seq]` (0 or a large negative number)
    /// - output: `[batch, seq, hidden]`
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        rope: &RopeTables<B>,
        bias: Tensor<B, 4>,
        cache: Option<(&mut LayerCache<B>, usize)>,
    ) -> Tensor<B, 3>
    where
        B: KernelBackend,
    {
        let [b, t, _] = x.dims();
        // `[batch, seq, n · head_dim]` → `[batch, seq, n, head_dim]`, each head normalised
        // where the model has a per-head norm.
        let split = |y: Tensor<B, 3>, n: usize, norm: Option<&RmsNorm<B>>| {
            let y = y.reshape([b, t, n, self.head_dim]);
            match norm {
                Some(norm) => rms_norm(norm, y),
                None => y,
            }
        };
        // Queries and keys rotated and moved to `[batch, n, seq, head_dim]` in one operation.
        let rotated =
            |y, n, norm| rope_heads(split(y, n, norm), rope.cos.clone(), rope.sin.clone());
        let q = rotated(
            self.q_proj.forward(x.clone()),
            self.num_heads,
            self.q_norm.as_ref(),
        );
        let k = rotated(
            self.k_proj.forward(x.clone()),
            self.num_kv_heads,
            self.k_norm.as_ref(),
        );
        let v = split(self.v_proj.forward(x), self.num_kv_heads, None).swap_dims(1, 2);
        let (k, v) = match cache {
            Some((layer, start)) => layer.append(start, k, v),
            None => (k, v),
        };
        // Grouped-query attention without repeating the keys and values per query head: the
        // `group` query heads sharing KV head `j` (heads `j·group ..`, as `h / group` maps
        // them) are stacked along the query axis and attend to that head once.
        let (kv, group, hd) = (
            self.num_kv_heads,
            self.num_heads / self.num_kv_heads,
            self.head_dim,
        );
        let q = q.reshape([b, kv, group * t, hd]);
        let scale = (hd as f32).powf(-0.5);
        let probs = attention_probs(matmul(q, k.swap_dims(2, 3)), bias, scale);
        let context = matmul(probs, v)
            .reshape([b, self.num_heads, t, hd])
            .swap_dims(1, 2)
            .reshape([b, t, self.num_heads * hd]);
        self.o_proj.forward(context)
    }
}
