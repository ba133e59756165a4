//! GGUF checkpoints as a [`TensorSource`]: the decoder config comes from the GGUF metadata,
//! HF tensor names are translated to llama.cpp names (`blk.{i}.attn_q.weight`, …) and the
//! query/key rows that llama.cpp's converter permuted for its interleaved RoPE (Llama family
//! only; Qwen2 and Qwen3 are stored in HF order) are put back into HF `rotate_half` order.
//! RoPE scaling comes from `{arch}.rope.scaling.*` (`linear`, `yarn`); metadata or tensors
//! that would change the computation in ways not implemented (per-frequency `rope_freqs`,
//! yarn's llama.cpp-only multipliers, partial rotary dimensions) are refused by name.

use std::collections::BTreeSet;
use std::path::Path;

use burn::prelude::*;

use crate::config::{Arch, DecoderConfig, TokenIds};
use crate::decoder::Decoder;
use crate::error::ModelError;
use crate::load::gguf::{GgufFile, GgufValue};
use crate::load::hf_dir::decoder_from_source;
use crate::load::source::{HostTensor, TensorSource};
#[cfg(test)]
use crate::rope::RopeScaling;

/// Per-layer HF name suffixes and their llama.cpp spellings.
const LAYER_NAMES: [(&str, &str); 11] = [
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "ffn_norm"),
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
];

/// Model-level HF names and their llama.cpp spellings.
const MODEL_NAMES: [(&str, &str); 3] = [
    ("model.embed_tokens", "token_embd"),
    ("model.norm", "output_norm"),
    ("lm_head", "output"),
];

/// The llama.cpp name of an HF tensor name, `None` when GGUF has no such tensor.
pub fn gguf_name(hf: &str) -> Option<String> {
    let (stem, kind) = hf.rsplit_once('.')?;
    if let Some(&(_, g)) = MODEL_NAMES.iter().find(|(h, _)| *h == stem) {
        return Some(format!("{g}.{kind}"));
    }
    let rest = stem.strip_prefix("model.layers.")?;
    let (layer, suffix) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let &(_, g) = LAYER_NAMES.iter().find(|(h, _)| *h == suffix)?;
    Some(format!("blk.{layer}.{g}.{kind}"))
}

/// Reads `path` (a GGUF file) into a decoder on `device`, with its config from the metadata.
pub fn load_gguf<B: Backend>(
    path: &Path,
    device: &B::Device,
) -> Result<(DecoderConfig, Decoder<B>), ModelError> {
    let file = GgufFile::open(path)?;
    let config = config_from_gguf(&file)?;
    let mut source = GgufSource::new(file, &config);
    let decoder = decoder_from_source(&config, &mut source, device)?;
    source.finish()?;
    Ok((config, decoder))
}

/// The decoder config a GGUF file's metadata describes.
pub fn config_from_gguf(file: &GgufFile) -> Result<DecoderConfig, ModelError> {
    let missing = |key: &str, expected| ModelError::MissingMetadata {
        file: file.path().to_path_buf(),
        key: key.to_string(),
        expected,
    };
    let arch_name = file
        .metadata
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .ok_or_else(|| missing("general.architecture", "string"))?;
    let model_type = match arch_name {
        "llama" => Arch::Llama,
        "qwen2" => Arch::Qwen2,
        "qwen3" => Arch::Qwen3,
        other => {
            return Err(ModelError::InvalidConfig {
                file: file.path().to_path_buf(),
                field: "general.architecture".into(),
                reason: format!("`{other}` is not supported (llama, qwen2, qwen3)"),
            });
        }
    };
    let refuse = |field: &str, reason: &str| ModelError::InvalidConfig {
        file: file.path().to_path_buf(),
        field: field.to_string(),
        reason: reason.to_string(),
    };
    let get = |key: &str| file.metadata.get(&format!("{arch_name}.{key}"));
    let int = |key: &str| {
        get(key)
            .and_then(GgufValue::as_u64)
            .map(|v| v as usize)
            .ok_or_else(|| missing(&format!("{arch_name}.{key}"), "non-negative integer"))
    };
    let float = |key: &str| {
        get(key)
            .and_then(GgufValue::as_f64)
            .ok_or_else(|| missing(&format!("{arch_name}.{key}"), "number"))
    };
    let token_id = |key: &str| {
        file.metadata
            .get(key)
            .and_then(GgufValue::as_u64)
            .map(|v| v as u32)
    };
    let vocab_size = match (
        get("vocab_size"),
        file.metadata.get("tokenizer.ggml.tokens"),
    ) {
        (Some(v), _) => v.as_u64().map(|v| v as usize),
        (None, Some(GgufValue::Array(tokens))) => Some(tokens.len()),
        (None, _) => file
            .tensors
            .get("token_embd.weight")
            .and_then(|t| t.dims.get(1).copied()),
    }
    .ok_or_else(|| missing(&format!("{arch_name}.vocab_size"), "non-negative integer"))?;
    if file.tensors.contains_key("rope_freqs.weight") {
        return Err(refuse(
            "rope_freqs.weight",
            "per-frequency RoPE factors (how llama.cpp stores Llama 3 scaling) are not \
             implemented; load the Hugging Face checkpoint instead",
        ));
    }
    let rope_scaling = rope_scaling_from_gguf(file, arch_name)?;
    let num_attention_heads = int("attention.head_count")?;
    let config = DecoderConfig {
        model_type,
        vocab_size,
        hidden_size: int("embedding_length")?,
        intermediate_size: int("feed_forward_length")?,
        num_hidden_layers: int("block_count")?,
        num_attention_heads,
        num_key_value_heads: Some(int("attention.head_count_kv").unwrap_or(num_attention_heads)),
        head_dim: match model_type {
            // A Qwen3 GGUF without `key_length` has transformers' default width.
            Arch::Llama | Arch::Qwen2 => int("attention.key_length").ok(),
            Arch::Qwen3 => Some(
                int("attention.key_length")
                    .unwrap_or(int("embedding_length")? / num_attention_heads.max(1)),
            ),
        },
        rms_norm_eps: float("attention.layer_norm_rms_epsilon")?,
        rope_theta: float("rope.freq_base").unwrap_or(10_000.0),
        rope_scaling,
        rope_parameters: None,
        tie_word_embeddings: !file.tensors.contains_key("output.weight"),
        max_position_embeddings: int("context_length")?,
        attention_bias: model_type != Arch::Qwen2 && file.tensors.contains_key("blk.0.attn_q.bias"),
        mlp_bias: false,
        hidden_act: "silu".into(),
        use_sliding_window: false,
        bos_token_id: token_id("tokenizer.ggml.bos_token_id"),
        eos_token_id: token_id("tokenizer.ggml.eos_token_id").map(TokenIds::One),
    };
    config.validate(file.path())?;
    let head_dim = config.head_dim();
    for key in ["attention.value_length", "rope.dimension_count"] {
        if let Some(v) = get(key).and_then(GgufValue::as_u64)
            && v as usize != head_dim
        {
            return Err(refuse(
                &format!("{arch_name}.{key}"),
                &format!("{v} differs from the head width {head_dim}: not implemented"),
            ));
        }
    }
    Ok(config)
}

/// The HF `rope_scaling` block equivalent to `{arch}.rope.scaling.*`, `None` without scaling.
fn rope_scaling_from_gguf(
    file: &GgufFile,
    arch: &str,
) -> Result<Option<serde_json::Value>, ModelError> {
    let prefix = format!("{arch}.rope.scaling.");
    let refuse = |key: &str, reason: String| ModelError::InvalidConfig {
        file: file.path().to_path_buf(),
        field: format!("{prefix}{key}"),
        reason,
    };
    let kind = file
        .metadata
        .get(&format!("{prefix}type"))
        .map(|v| {
            v.as_str()
                .ok_or_else(|| refuse("type", format!("{v:?} is not a string")))
        })
        .transpose()?;
    let mut block = serde_json::Map::new();
    for (key, value) in &file.metadata {
        let Some(key) = key.strip_prefix(&prefix) else {
            continue;
        };
        let hf_key = match key {
            "type" | "finetuned" => continue,
            "factor" => "factor",
            "original_context_length" => "original_max_position_embeddings",
            "yarn_beta_fast" => "beta_fast",
            "yarn_beta_slow" => "beta_slow",
            other => {
                return Err(refuse(
                    other,
                    "this llama.cpp RoPE scaling parameter is not implemented".into(),
                ));
            }
        };
        let number = value
            .as_f64()
            .ok_or_else(|| refuse(key, format!("{value:?} is not a number")))?;
        block.insert(hf_key.into(), number.into());
    }
    match kind {
        None | Some("none") => {
            if let Some(key) = block.keys().next() {
                return Err(refuse(
                    "type",
                    format!("is missing or `none` but `{key}` is given"),
                ));
            }
            Ok(None)
        }
        Some(kind @ ("linear" | "yarn")) => {
            block.insert("rope_type".into(), kind.into());
            Ok(Some(serde_json::Value::Object(block)))
        }
        Some(other) => Err(refuse(
            "type",
            format!("`{other}` is not implemented (none, linear, yarn)"),
        )),
    }
}

/// Tensors of a GGUF file, asked for by HF name.
#[derive(Debug)]
pub struct GgufSource {
    file: GgufFile,
    /// `(query heads, kv heads)` when q/k rows must be un-permuted (Llama family).
    unpermute: Option<(usize, usize)>,
    untaken: BTreeSet<String>,
}

impl GgufSource {
    /// Wraps an opened file whose metadata gave `config`.
    pub fn new(file: GgufFile, config: &DecoderConfig) -> Self {
        let unpermute = match config.model_type {
            Arch::Llama => Some((config.num_attention_heads, config.num_kv_heads())),
            Arch::Qwen2 | Arch::Qwen3 => None,
        };
        let untaken = file.tensors.keys().cloned().collect();
        Self {
            file,
            unpermute,
            untaken,
        }
    }
}

impl TensorSource for GgufSource {
    fn take(&mut self, name: &str, expected: &[usize]) -> Result<HostTensor, ModelError> {
        let missing = || ModelError::MissingTensor {
            file: self.file.path().to_path_buf(),
            tensor: name.to_string(),
        };
        let gguf = gguf_name(name).ok_or_else(missing)?;
        let info = self.file.tensors.get(&gguf).ok_or_else(missing)?;
        let shape = info.shape();
        if shape != expected {
            return Err(ModelError::ShapeMismatch {
                file: self.file.path().to_path_buf(),
                tensor: format!("{gguf} ({name})"),
                expected: expected.to_vec(),
                got: shape,
            });
        }
        let mut values = self.file.read_f32(&gguf)?;
        let heads = match (self.unpermute, name) {
            (Some((q, _)), n) if n.contains(".self_attn.q_proj.") => Some(q),
            (Some((_, kv)), n) if n.contains(".self_attn.k_proj.") => Some(kv),
            _ => None,
        };
        if let Some(heads) = heads {
            values = unpermute_rows(&values, expected, heads);
        }
        self.untaken.remove(&gguf);
        Ok(HostTensor { values, shape })
    }

    fn skip(&mut self, name: &str) {
        if let Some(gguf) = gguf_name(name) {
            self.untaken.remove(&gguf);
        }
    }

    fn finish(self) -> Result<(), ModelError> {
        if self.untaken.is_empty() {
            Ok(())
        } else {
            Err(ModelError::UnusedTensors {
                file: self.file.path().to_path_buf(),
                tensors: self.untaken.into_iter().collect(),
            })
        }
    }
}

/// Undoes llama.cpp's q/k permutation: within each head, GGUF row `2i + j` holds HF row
/// `j·(d/2) + i` (`j ∈ {0, 1}`, `i < d/2`, `d` = rows per head).
fn unpermute_rows(values: &[f32], shape: &[usize], heads: usize) -> Vec<f32> {
    let rows = shape.first().copied().unwrap_or(0);
    let cols = values.len() / rows.max(1);
    let per_head = rows / heads.max(1);
    let half = per_head / 2;
    let mut out = vec![0.0f32; values.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let src = (h * per_head + 2 * i + j) * cols;
                let dst = (h * per_head + j * half + i) * cols;
                out[dst..dst + cols].copy_from_slice(&values[src..src + cols]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A metadata value for [`gguf_bytes`].
    enum Meta {
        Str(&'static str),
        U32(u32),
        F32(f32),
    }

    /// A GGUF v3 file of `qwen3` metadata (a valid tiny config plus `extra`) and F32 tensor
    /// infos named `tensors` (no data: the config is read from the metadata alone).
    fn gguf_bytes(extra: &[(&str, Meta)], tensors: &[&str]) -> Vec<u8> {
        let base = [
            ("general.architecture", Meta::Str("qwen3")),
            ("qwen3.block_count", Meta::U32(1)),
            ("qwen3.context_length", Meta::U32(64)),
            ("qwen3.embedding_length", Meta::U32(16)),
            ("qwen3.feed_forward_length", Meta::U32(32)),
            ("qwen3.attention.head_count", Meta::U32(2)),
            ("qwen3.attention.key_length", Meta::U32(8)),
            ("qwen3.attention.layer_norm_rms_epsilon", Meta::F32(1e-6)),
            ("qwen3.vocab_size", Meta::U32(10)),
        ];
        let string = |out: &mut Vec<u8>, s: &str| {
            out.extend((s.len() as u64).to_le_bytes());
            out.extend(s.as_bytes());
        };
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend((tensors.len() as u64).to_le_bytes());
        out.extend(((base.len() + extra.len()) as u64).to_le_bytes());
        for (key, value) in base.iter().chain(extra) {
            string(&mut out, key);
            match value {
                Meta::Str(s) => {
                    out.extend(8u32.to_le_bytes());
                    string(&mut out, s);
                }
                Meta::U32(v) => {
                    out.extend(4u32.to_le_bytes());
                    out.extend(v.to_le_bytes());
                }
                Meta::F32(v) => {
                    out.extend(6u32.to_le_bytes());
                    out.extend(v.to_le_bytes());
                }
            }
        }
        for name in tensors {
            string(&mut out, name);
            out.extend(1u32.to_le_bytes());
            out.extend(4u64.to_le_bytes());
            out.extend(0u32.to_le_bytes());
            out.extend(0u64.to_le_bytes());
        }
        out
    }

    fn config(extra: &[(&str, Meta)], tensors: &[&str]) -> Result<DecoderConfig, ModelError> {
        let file = GgufFile::parse(Path::new("m.gguf"), gguf_bytes(extra, tensors)).unwrap();
        config_from_gguf(&file)
    }

    fn refused_field(extra: &[(&str, Meta)], tensors: &[&str]) -> String {
        match config(extra, tensors) {
            Err(ModelError::InvalidConfig { field, .. }) => field,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn qwen3_metadata_gives_head_dim_norms_and_scaling() {
        let c = config(&[], &[]).unwrap();
        assert_eq!(
            (c.model_type, c.head_dim(), c.qk_norm()),
            (Arch::Qwen3, 8, true)
        );
        assert_eq!(c.rope_scaling_kind().unwrap(), RopeScaling::Default);
        let yarn = [
            ("qwen3.rope.scaling.type", Meta::Str("yarn")),
            ("qwen3.rope.scaling.factor", Meta::F32(4.0)),
            ("qwen3.rope.scaling.original_context_length", Meta::U32(32)),
            ("qwen3.rope.scaling.yarn_beta_fast", Meta::F32(16.0)),
        ];
        let RopeScaling::Yarn(y) = config(&yarn, &[]).unwrap().rope_scaling_kind().unwrap() else {
            panic!("not yarn");
        };
        assert_eq!((y.factor, y.original_max_positions), (4.0, 32));
        assert_eq!((y.beta_fast, y.beta_slow), (16.0, 1.0));
        let linear = [
            ("qwen3.rope.scaling.type", Meta::Str("linear")),
            ("qwen3.rope.scaling.factor", Meta::F32(2.0)),
        ];
        assert_eq!(
            config(&linear, &[]).unwrap().rope_scaling_kind().unwrap(),
            RopeScaling::Linear { factor: 2.0 }
        );
    }

    #[test]
    fn unimplemented_rope_metadata_is_refused_by_name() {
        let longrope = [("qwen3.rope.scaling.type", Meta::Str("longrope"))];
        assert_eq!(refused_field(&longrope, &[]), "qwen3.rope.scaling.type");
        let attn = [
            ("qwen3.rope.scaling.type", Meta::Str("yarn")),
            ("qwen3.rope.scaling.factor", Meta::F32(4.0)),
            ("qwen3.rope.scaling.attn_factor", Meta::F32(1.2)),
        ];
        assert_eq!(refused_field(&attn, &[]), "qwen3.rope.scaling.attn_factor");
        let orphan = [("qwen3.rope.scaling.factor", Meta::F32(4.0))];
        assert_eq!(refused_field(&orphan, &[]), "qwen3.rope.scaling.type");
        let partial = [("qwen3.rope.dimension_count", Meta::U32(4))];
        assert_eq!(refused_field(&partial, &[]), "qwen3.rope.dimension_count");
        assert_eq!(
            refused_field(&[], &["rope_freqs.weight"]),
            "rope_freqs.weight"
        );
        let other = [("general.architecture", Meta::Str("gemma3"))];
        let file = GgufFile::parse(Path::new("m.gguf"), gguf_bytes(&other, &[])).unwrap();
        // The later duplicate key wins in the metadata map.
        assert!(matches!(
            config_from_gguf(&file),
            Err(ModelError::InvalidConfig { field, .. }) if field == "general.architecture"
        ));
    }

    #[test]
    fn names_translate_to_llama_cpp() {
        let pairs = [
            ("model.embed_tokens.weight", "token_embd.weight"),
            (
                "model.layers.3.self_attn.o_proj.weight",
                "blk.3.attn_output.weight",
            ),
            (
                "model.layers.12.self_attn.q_proj.bias",
                "blk.12.attn_q.bias",
            ),
            (
                "model.layers.0.post_attention_layernorm.weight",
                "blk.0.ffn_norm.weight",
            ),
            ("lm_head.weight", "output.weight"),
            (
                "model.layers.1.self_attn.k_norm.weight",
                "blk.1.attn_k_norm.weight",
            ),
        ];
        for (hf, gguf) in pairs {
            assert_eq!(gguf_name(hf).as_deref(), Some(gguf));
        }
        assert_eq!(
            gguf_name("model.layers.0.self_attn.rotary_emb.inv_freq"),
            None
        );
    }

    #[test]
    fn unpermute_restores_half_split_rows() {
        // One head of 4 rows, 1 column: HF rows [a0, a1, b0, b1] are stored as [a0, b0, a1, b1].
        let gguf = [0.0, 2.0, 1.0, 3.0];
        assert_eq!(unpermute_rows(&gguf, &[4, 1], 1), vec![0.0, 1.0, 2.0, 3.0]);
        // Two heads of 2 rows stay as they are (d/2 = 1).
        assert_eq!(unpermute_rows(&gguf, &[4, 1], 2), gguf.to_vec());
    }
}
