//! `DecoderConfig`: the Hugging Face `config.json` of a Llama- or Qwen2-family decoder, read with
//! the HF field names, plus the validation that turns it into something [`crate::Decoder`] can
//! be built from.

use std::path::Path;

use serde::Deserialize;

use crate::error::ModelError;

/// The decoder families this crate implements (HF `model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Llama / SmolLM2: q/k/v biases only when `attention_bias` is set.
    Llama,
    /// Qwen2 / Qwen2.5: q/k/v projections always carry biases, `o_proj` none.
    Qwen2,
}

/// `eos_token_id` as HF writes it: a single id or a list of ids.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TokenIds {
    /// One id.
    One(u32),
    /// Several ids (any of them ends a sequence).
    Many(Vec<u32>),
}

/// Hyperparameters of a decoder, field for field as in an HF `config.json`.
///
/// Unknown fields of the file are ignored; fields that change the architecture in ways this
/// crate does not implement (`rope_scaling`, sliding windows, another activation) are refused by
/// [`DecoderConfig::validate`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DecoderConfig {
    /// Architecture family.
    pub model_type: Arch,
    /// Vocabulary size (rows of `embed_tokens`).
    pub vocab_size: usize,
    /// Model width `d`.
    pub hidden_size: usize,
    /// Inner width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (grouped-query attention); defaults to the query heads.
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    /// Width of one head; defaults to `hidden_size / num_attention_heads`.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// RoPE base θ: `rope_theta` (transformers < 5) or `rope_parameters.rope_theta`
    /// (transformers ≥ 5), which wins when both are present; 10 000 when neither is.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RoPE scaling block (transformers < 5); only `null` or `rope_type: "default"` is supported.
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// RoPE block as transformers ≥ 5 writes it.
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// Whether the output head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Longest context the model was trained for.
    pub max_position_embeddings: usize,
    /// Llama only: q/k/v/o projections carry biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// Llama only: MLP projections carry biases (must be false).
    #[serde(default)]
    pub mlp_bias: bool,
    /// Activation of the MLP gate (must be `silu`).
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Qwen2 only: sliding-window attention (must be false).
    #[serde(default)]
    pub use_sliding_window: bool,
    /// Beginning-of-sequence token id.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token id(s).
    #[serde(default)]
    pub eos_token_id: Option<TokenIds>,
}

/// `rope_parameters` of a transformers ≥ 5 config.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RopeParameters {
    /// RoPE base θ.
    #[serde(default)]
    pub rope_theta: Option<f64>,
    /// Scaling kind; only `default` (no scaling) is supported.
    #[serde(default)]
    pub rope_type: Option<String>,
}

fn default_rope_theta() -> f64 {
    10_000.0
}

fn default_hidden_act() -> String {
    "silu".to_string()
}

impl DecoderConfig {
    /// Reads and validates a `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parses and validates config JSON; `origin` is the file name used in errors.
    pub fn from_json_str(text: &str, origin: &Path) -> Result<Self, ModelError> {
        let mut config: Self = serde_json::from_str(text).map_err(|source| ModelError::Json {
            file: origin.to_path_buf(),
            source,
        })?;
        if let Some(theta) = config.rope_parameters.as_ref().and_then(|p| p.rope_theta) {
            config.rope_theta = theta;
        }
        config.validate(origin)?;
        Ok(config)
    }

    /// Checks that the values describe a decoder this crate can build; `origin` names the file
    /// in the error.
    pub fn validate(&self, origin: &Path) -> Result<(), ModelError> {
        let bad = |field: &str, reason: String| ModelError::InvalidConfig {
            file: origin.to_path_buf(),
            field: field.to_string(),
            reason,
        };
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.num_kv_heads()),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(bad(field, "must be at least 1".to_string()));
            }
        }
        if self.head_dim.is_none() && !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(bad(
                "hidden_size",
                format!(
                    "{} is not divisible by num_attention_heads ({}) and head_dim is not given",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        let head_dim = self.head_dim();
        if head_dim == 0 || !head_dim.is_multiple_of(2) {
            return Err(bad(
                "head_dim",
                format!("{head_dim} must be even and positive (RoPE)"),
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.num_kv_heads()) {
            return Err(bad(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads ({})",
                    self.num_kv_heads(),
                    self.num_attention_heads
                ),
            ));
        }
        if self.rms_norm_eps.is_nan() || self.rms_norm_eps <= 0.0 {
            return Err(bad(
                "rms_norm_eps",
                format!("{} must be positive", self.rms_norm_eps),
            ));
        }
        if self.rope_theta.is_nan() || self.rope_theta <= 0.0 {
            return Err(bad(
                "rope_theta",
                format!("{} must be positive", self.rope_theta),
            ));
        }
        let scaling_kind = |v: &serde_json::Value| {
            let kind = v.get("rope_type").or_else(|| v.get("type"));
            kind.and_then(|k| k.as_str()).map(str::to_string)
        };
        if let Some(scaling) = self.rope_scaling.as_ref().filter(|v| !v.is_null())
            && scaling_kind(scaling).as_deref() != Some("default")
        {
            return Err(bad(
                "rope_scaling",
                "RoPE scaling is not implemented".to_string(),
            ));
        }
        if let Some(kind) = self
            .rope_parameters
            .as_ref()
            .and_then(|p| p.rope_type.as_deref())
            && kind != "default"
        {
            return Err(bad(
                "rope_parameters.rope_type",
                format!("`{kind}` is not implemented"),
            ));
        }
        if self.hidden_act != "silu" {
            return Err(bad(
                "hidden_act",
                format!("`{}` is not supported (silu)", self.hidden_act),
            ));
        }
        if self.mlp_bias {
            return Err(bad(
                "mlp_bias",
                "MLP biases are not implemented".to_string(),
            ));
        }
        if self.use_sliding_window {
            return Err(bad(
                "use_sliding_window",
                "sliding windows are not implemented".into(),
            ));
        }
        Ok(())
    }

    /// The config as a Hugging Face `config.json` in f32 (`architectures`, `dtype` and
    /// `torch_dtype` added) that transformers and [`DecoderConfig::from_json_str`] read back:
    /// the latter gives a config equal to `self`. Optional fields left unset here
    /// (`num_key_value_heads`, `head_dim`, `rope_parameters`, token ids) stay unset, and
    /// transformers derives the same defaults for them as [`DecoderConfig::head_dim`] and
    /// [`DecoderConfig::num_kv_heads`]. The RoPE base is written as `rope_theta` (read by
    /// transformers < 5) and, when the config has it, inside `rope_parameters` (≥ 5).
    pub fn to_hf_json(&self) -> serde_json::Value {
        use serde_json::{Map, Value, json};
        let (model_type, architecture) = match self.model_type {
            Arch::Llama => ("llama", "LlamaForCausalLM"),
            Arch::Qwen2 => ("qwen2", "Qwen2ForCausalLM"),
        };
        let mut map = Map::new();
        let mut put = |key: &str, value: Value| {
            map.insert(key.to_string(), value);
        };
        put("architectures", json!([architecture]));
        put("model_type", model_type.into());
        put("vocab_size", self.vocab_size.into());
        put("hidden_size", self.hidden_size.into());
        put("intermediate_size", self.intermediate_size.into());
        put("num_hidden_layers", self.num_hidden_layers.into());
        put("num_attention_heads", self.num_attention_heads.into());
        put("hidden_act", self.hidden_act.clone().into());
        put("rms_norm_eps", self.rms_norm_eps.into());
        put("rope_theta", self.rope_theta.into());
        put(
            "max_position_embeddings",
            self.max_position_embeddings.into(),
        );
        put("tie_word_embeddings", self.tie_word_embeddings.into());
        put("dtype", "float32".into());
        put("torch_dtype", "float32".into());
        put("use_cache", true.into());
        if let Some(kv) = self.num_key_value_heads {
            put("num_key_value_heads", kv.into());
        }
        if let Some(head_dim) = self.head_dim {
            put("head_dim", head_dim.into());
        }
        if let Some(p) = &self.rope_parameters {
            let mut rope = Map::new();
            if let Some(theta) = p.rope_theta {
                rope.insert("rope_theta".into(), theta.into());
            }
            if let Some(kind) = &p.rope_type {
                rope.insert("rope_type".into(), kind.clone().into());
            }
            put("rope_parameters", Value::Object(rope));
        }
        if let Some(scaling) = &self.rope_scaling {
            put("rope_scaling", scaling.clone());
        }
        // Qwen2 has no `attention_bias` / `mlp_bias` (its q/k/v biases are fixed) and Llama no
        // sliding window: those are written only where the family has them or they are set.
        if self.model_type == Arch::Llama || self.attention_bias {
            put("attention_bias", self.attention_bias.into());
        }
        if self.model_type == Arch::Llama || self.mlp_bias {
            put("mlp_bias", self.mlp_bias.into());
        }
        if self.model_type == Arch::Qwen2 || self.use_sliding_window {
            put("use_sliding_window", self.use_sliding_window.into());
        }
        if let Some(bos) = self.bos_token_id {
            put("bos_token_id", bos.into());
        }
        match &self.eos_token_id {
            Some(TokenIds::One(id)) => put("eos_token_id", (*id).into()),
            Some(TokenIds::Many(ids)) => put("eos_token_id", ids.clone().into()),
            None => {}
        }
        Value::Object(map)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Number of key/value heads.
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Whether q/k/v projections carry biases (always for Qwen2, `attention_bias` for Llama).
    pub fn qkv_bias(&self) -> bool {
        match self.model_type {
            Arch::Llama => self.attention_bias,
            Arch::Qwen2 => true,
        }
    }

    /// Whether `o_proj` carries a bias (Llama with `attention_bias` only).
    pub fn o_bias(&self) -> bool {
        match self.model_type {
            Arch::Llama => self.attention_bias,
            Arch::Qwen2 => false,
        }
    }

    /// End-of-sequence ids as a list (empty when the config names none).
    pub fn eos_token_ids(&self) -> Vec<u32> {
        match &self.eos_token_id {
            None => Vec::new(),
            Some(TokenIds::One(id)) => vec![*id],
            Some(TokenIds::Many(ids)) => ids.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LLAMA: &str = r#"{"model_type": "llama", "vocab_size": 300, "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
        "max_position_embeddings": 64, "tie_word_embeddings": true, "eos_token_id": [2, 5],
        "torch_dtype": "float32"}"#;

    #[test]
    fn llama_config_parses_with_derived_fields() {
        let c = DecoderConfig::from_json_str(LLAMA, Path::new("config.json")).unwrap();
        assert_eq!(c.model_type, Arch::Llama);
        assert_eq!(c.head_dim(), 16);
        assert_eq!(c.num_kv_heads(), 2);
        assert!(!c.qkv_bias());
        assert_eq!(c.eos_token_ids(), vec![2, 5]);
    }

    #[test]
    fn qwen2_has_qkv_bias_and_single_eos() {
        let text = LLAMA
            .replace("\"llama\"", "\"qwen2\"")
            .replace("[2, 5]", "7");
        let c = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap();
        assert!(c.qkv_bias());
        assert!(!c.o_bias());
        assert_eq!(c.eos_token_ids(), vec![7]);
    }

    #[test]
    fn invalid_kv_heads_names_file_and_field() {
        let text = LLAMA.replace("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
        let err = DecoderConfig::from_json_str(&text, Path::new("dir/config.json")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("dir/config.json"), "{msg}");
        assert!(msg.contains("num_key_value_heads"), "{msg}");
    }

    #[test]
    fn unknown_model_type_is_a_json_error() {
        let text = LLAMA.replace("\"llama\"", "\"gpt2\"");
        let err = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap_err();
        assert!(matches!(err, ModelError::Json { .. }), "{err}");
    }

    #[test]
    fn transformers5_rope_parameters_give_theta() {
        let text = LLAMA.replace(
            "\"rope_theta\": 100000.0",
            "\"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}",
        );
        let c = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap();
        assert_eq!(c.rope_theta, 1.0e6);
        let text = text.replace("\"default\"", "\"yarn\"");
        let err = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap_err();
        assert!(
            err.to_string().contains("rope_parameters.rope_type"),
            "{err}"
        );
    }

    #[test]
    fn rope_scaling_is_refused() {
        let text = LLAMA.replace(
            "\"torch_dtype\"",
            "\"rope_scaling\": {\"type\": \"linear\"}, \"x\"",
        );
        let err = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap_err();
        assert!(err.to_string().contains("rope_scaling"), "{err}");
    }
}
