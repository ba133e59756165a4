//! `load_decoder`: builds a [`Decoder`] from a Hugging Face model directory (`config.json` +
//! safetensors). HF names map one to one onto the decoder's fields; Linear weights are
//! transposed from PyTorch's `[out, in]` to Burn's `[in, out]`. Every tensor the config implies
//! must be present with the implied shape, and every tensor of the checkpoint must be used.
//! [`decoder_from_source`] is shared with the GGUF loader.

use std::path::Path;

use burn::module::Param;
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::prelude::*;

use crate::attention::Attention;
use crate::config::DecoderConfig;
use crate::decoder::{Decoder, DecoderLayer};
use crate::error::ModelError;
use crate::load::safetensors::SafetensorsSource;
use crate::load::source::TensorSource;
use crate::mlp::Mlp;
use crate::rope::RotaryEmbedding;

/// Reads `dir/config.json` and the checkpoint next to it into an f32 decoder on `device`.
///
/// A tied model may still carry an `lm_head.weight` copy; it is ignored. Any other tensor the
/// decoder does not use is an error ([`ModelError::UnusedTensors`]).
pub fn load_decoder<B: Backend>(
    dir: &Path,
    device: &B::Device,
) -> Result<(DecoderConfig, Decoder<B>), ModelError> {
    let config = DecoderConfig::from_file(&dir.join("config.json"))?;
    let mut source = SafetensorsSource::open_dir(dir)?;
    let decoder = decoder_from_source(&config, &mut source, device)?;
    source.finish()?;
    Ok((config, decoder))
}

/// Builds a decoder from the tensors of `source` (which records what was taken).
pub fn decoder_from_source<B: Backend, S: TensorSource>(
    config: &DecoderConfig,
    source: &mut S,
    device: &B::Device,
) -> Result<Decoder<B>, ModelError> {
    let (d, v) = (config.hidden_size, config.vocab_size);
    let mut loader = Loader { source, device };
    let embed = loader.take("model.embed_tokens.weight", &[v, d])?;
    let layers = (0..config.num_hidden_layers)
        .map(|i| loader.layer(config, &format!("model.layers.{i}")))
        .collect::<Result<Vec<_>, _>>()?;
    let norm = loader.norm("model.norm", config)?;
    let lm_head = if config.tie_word_embeddings {
        loader.source.skip("lm_head.weight");
        None
    } else {
        Some(loader.linear("lm_head", d, v, false)?)
    };
    Ok(Decoder {
        embed_tokens: Embedding {
            weight: Param::from_tensor(embed),
        },
        layers,
        norm,
        lm_head,
        rope: RotaryEmbedding::from_config(config),
    })
}

/// Turns named checkpoint tensors into Burn modules.
struct Loader<'a, B: Backend, S: TensorSource> {
    source: &'a mut S,
    device: &'a B::Device,
}

impl<B: Backend, S: TensorSource> Loader<'_, B, S> {
    fn take<const D: usize>(
        &mut self,
        name: &str,
        shape: &[usize; D],
    ) -> Result<Tensor<B, D>, ModelError> {
        let t = self.source.take(name, shape)?;
        Ok(Tensor::from_data(
            TensorData::new(t.values, *shape),
            self.device,
        ))
    }

    /// `{prefix}.weight` `[out, in]` (transposed on the host) and, if `bias`, `{prefix}.bias`.
    fn linear(
        &mut self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Linear<B>, ModelError> {
        let w = self
            .source
            .take(&format!("{prefix}.weight"), &[d_out, d_in])?;
        let mut transposed = vec![0.0f32; w.values.len()];
        for (o, row) in w.values.chunks_exact(d_in).enumerate() {
            for (i, &x) in row.iter().enumerate() {
                transposed[i * d_out + o] = x;
            }
        }
        let weight = Tensor::from_data(TensorData::new(transposed, [d_in, d_out]), self.device);
        let bias = if bias {
            Some(Param::from_tensor(
                self.take(&format!("{prefix}.bias"), &[d_out])?,
            ))
        } else {
            None
        };
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias,
        })
    }

    /// `{prefix}.weight` of width `hidden_size`.
    fn norm(&mut self, prefix: &str, config: &DecoderConfig) -> Result<RmsNorm<B>, ModelError> {
        self.norm_of(prefix, config.hidden_size, config)
    }

    /// `{prefix}.weight` of width `width` (a per-head norm has `head_dim`).
    fn norm_of(
        &mut self,
        prefix: &str,
        width: usize,
        config: &DecoderConfig,
    ) -> Result<RmsNorm<B>, ModelError> {
        let gamma = self.take(&format!("{prefix}.weight"), &[width])?;
        Ok(RmsNorm {
            gamma: Param::from_tensor(gamma),
            epsilon: config.rms_norm_eps,
        })
    }

    fn layer(
        &mut self,
        config: &DecoderConfig,
        prefix: &str,
    ) -> Result<DecoderLayer<B>, ModelError> {
        let (d, hd) = (config.hidden_size, config.head_dim());
        let (heads, kv) = (config.num_attention_heads, config.num_kv_heads());
        let (ff, qkv_bias) = (config.intermediate_size, config.qkv_bias());
        let attn = format!("{prefix}.self_attn");
        // Buffers some older checkpoints carry; recomputed from the config.
        self.source.skip(&format!("{attn}.rotary_emb.inv_freq"));
        let head_norm = |loader: &mut Self, name: &str| {
            config
                .qk_norm()
                .then(|| loader.norm_of(&format!("{attn}.{name}"), hd, config))
                .transpose()
        };
        let self_attn = Attention {
            q_proj: self
                .linear(&format!("{attn}.q_proj"), d, heads * hd, qkv_bias)?
                .into(),
            k_proj: self
                .linear(&format!("{attn}.k_proj"), d, kv * hd, qkv_bias)?
                .into(),
            v_proj: self
                .linear(&format!("{attn}.v_proj"), d, kv * hd, qkv_bias)?
                .into(),
            o_proj: self
                .linear(&format!("{attn}.o_proj"), heads * hd, d, config.o_bias())?
                .into(),
            q_norm: head_norm(self, "q_norm")?,
            k_norm: head_norm(self, "k_norm")?,
            num_heads: heads,
            num_kv_heads: kv,
            head_dim: hd,
        };
        let mlp = Mlp {
            gate_proj: self
                .linear(&format!("{prefix}.mlp.gate_proj"), d, ff, false)?
                .into(),
            up_proj: self
                .linear(&format!("{prefix}.mlp.up_proj"), d, ff, false)?
                .into(),
            down_proj: self
                .linear(&format!("{prefix}.mlp.down_proj"), ff, d, false)?
                .into(),
        };
        Ok(DecoderLayer {
            self_attn,
            mlp,
            input_layernorm: self.norm(&format!("{prefix}.input_layernorm"), config)?,
            post_attention_layernorm: self
                .norm(&format!("{prefix}.post_attention_layernorm"), config)?,
        })
    }
}
