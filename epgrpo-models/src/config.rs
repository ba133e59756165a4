//! `DecoderConfig`: the Hugging Face `config.json` of a Llama-, Qwen2- or Qwen3-family decoder,
//! read with the HF field names, plus the validation that turns it into something
//! [`crate::Decoder`] can be built from: every key of the file must be one this crate reads or
//! one known not to change the computation, and the RoPE block must be a scaling kind of
//! [`RopeScaling`].

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::ModelError;
use crate::rope::{RopeScaling, YarnScaling};

/// The decoder families this crate implements (HF `model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Llama / SmolLM2: q/k/v biases only when `attention_bias` is set.
    Llama,
    /// Qwen2 / Qwen2.5: q/k/v projections always carry biases, `o_proj` none.
    Qwen2,
    /// Qwen3: RMSNorm over each query and key head (`q_norm`, `k_norm`) before RoPE;
    /// projection biases only when `attention_bias` is set.
    Qwen3,
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
/// [`DecoderConfig::from_json_str`] refuses keys it neither reads nor knows to be inert
/// (see [`INERT_KEYS`]); fields that change the architecture in ways this crate does not
/// implement (sliding windows, another activation, other RoPE kinds) are refused by
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
    /// Width of one head; defaults to `hidden_size / num_attention_heads` (128 for Qwen3, as
    /// transformers' `Qwen3Config`).
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// RoPE base θ: `rope_theta` (transformers < 5) or `rope_parameters.rope_theta`
    /// (transformers ≥ 5), which wins when both are present; 10 000 when neither is.
    #[serde(default = "default_rope_theta")]
    pub rope_theta: f64,
    /// RoPE scaling block (transformers < 5): `null` or an object with `rope_type` (or `type`)
    /// and the parameters of that kind; see [`DecoderConfig::rope_scaling_kind`].
    #[serde(default)]
    pub rope_scaling: Option<Value>,
    /// RoPE block as transformers ≥ 5 writes it.
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    /// Whether the output head shares the embedding matrix.
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Longest context the model was trained for.
    pub max_position_embeddings: usize,
    /// Llama and Qwen3: q/k/v/o projections carry biases.
    #[serde(default)]
    pub attention_bias: bool,
    /// Llama only: MLP projections carry biases (must be false).
    #[serde(default)]
    pub mlp_bias: bool,
    /// Activation of the MLP gate (must be `silu`).
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    /// Qwen2/Qwen3: sliding-window attention (must be false).
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
    /// Scaling kind (`default`, `linear`, `dynamic`, `llama3`, `yarn`).
    #[serde(default)]
    pub rope_type: Option<String>,
    /// The other keys of the block: the parameters of the scaling kind.
    #[serde(flatten)]
    pub scaling: Map<String, Value>,
}

/// Keys of a `config.json` that this crate does not read because they do not change the
/// decoder's computation: provenance, storage dtype, initialisation, generation defaults and
/// the generic fields every transformers config serialises. Keys read by [`DecoderConfig`] and
/// those checked by value ([`VALUE_CHECKED_KEYS`]) are accepted too; any other key is refused.
pub const INERT_KEYS: &[&str] = &[
    "_name_or_path",
    "architectures",
    "transformers_version",
    "torch_dtype",
    "dtype",
    "use_cache",
    "initializer_range",
    "pad_token_id",
    "sep_token_id",
    "decoder_start_token_id",
    "pretraining_tp",
    "is_llama_config",
    "transformers.js_config",
    "tokenizer_class",
    "output_attentions",
    "output_hidden_states",
    "return_dict",
    "torchscript",
    "use_bfloat16",
    "tf_legacy_loss",
    "tie_encoder_decoder",
    "is_encoder_decoder",
    "is_decoder",
    "add_cross_attention",
    "cross_attention_hidden_size",
    "chunk_size_feed_forward",
    "finetuning_task",
    "id2label",
    "label2id",
    "prefix",
    "problem_type",
    "task_specific_params",
    "max_length",
    "min_length",
    "do_sample",
    "early_stopping",
    "num_beams",
    "num_beam_groups",
    "diversity_penalty",
    "temperature",
    "top_k",
    "top_p",
    "typical_p",
    "repetition_penalty",
    "length_penalty",
    "no_repeat_ngram_size",
    "encoder_no_repeat_ngram_size",
    "bad_words_ids",
    "num_return_sequences",
    "output_scores",
    "return_dict_in_generate",
    "forced_bos_token_id",
    "forced_eos_token_id",
    "remove_invalid_values",
    "exponential_decay_length_penalty",
    "suppress_tokens",
    "begin_suppress_tokens",
];

/// Keys accepted only with the value that leaves the computation as this crate implements it:
/// `attention_dropout` 0, `rope_interleaved` false, `layer_types` all `full_attention`,
/// `partial_rotary_factor` 1, `pruned_heads` empty, and `sliding_window` / `max_window_layers`,
/// which only matter when `use_sliding_window` is set (refused on its own).
pub const VALUE_CHECKED_KEYS: &[&str] = &[
    "attention_dropout",
    "rope_interleaved",
    "layer_types",
    "partial_rotary_factor",
    "pruned_heads",
    "sliding_window",
    "max_window_layers",
];

/// Keys [`DecoderConfig`] reads.
const READ_KEYS: &[&str] = &[
    "model_type",
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "rms_norm_eps",
    "rope_theta",
    "rope_scaling",
    "rope_parameters",
    "tie_word_embeddings",
    "max_position_embeddings",
    "attention_bias",
    "mlp_bias",
    "hidden_act",
    "use_sliding_window",
    "bos_token_id",
    "eos_token_id",
];

/// Checks the keys of a config object: each is read, inert or has an acceptable value.
fn check_keys(object: &Map<String, Value>, origin: &Path) -> Result<(), ModelError> {
    let bad = |field: &str, reason: String| ModelError::InvalidConfig {
        file: origin.to_path_buf(),
        field: field.to_string(),
        reason,
    };
    for (key, value) in object {
        let key = key.as_str();
        if READ_KEYS.contains(&key) || INERT_KEYS.contains(&key) {
            continue;
        }
        let acceptable = match key {
            "attention_dropout" => value.as_f64() == Some(0.0),
            "rope_interleaved" => value.as_bool() == Some(false),
            "layer_types" => value
                .as_array()
                .is_some_and(|kinds| kinds.iter().all(|k| k == "full_attention")),
            "partial_rotary_factor" => value.as_f64() == Some(1.0),
            "pruned_heads" => value.as_object().is_some_and(Map::is_empty),
            "sliding_window" | "max_window_layers" => true,
            _ => {
                return Err(bad(
                    key,
                    "unknown key: it is not read by this crate and not known to leave the \
                     computation unchanged"
                        .to_string(),
                ));
            }
        };
        if !acceptable {
            return Err(bad(
                key,
                format!("{value} changes the computation in a way that is not implemented"),
            ));
        }
    }
    Ok(())
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
        let json_error = |source| ModelError::Json {
            file: origin.to_path_buf(),
            source,
        };
        let value: Value = serde_json::from_str(text).map_err(json_error)?;
        if let Some(kind) = value.get("model_type").and_then(Value::as_str)
            && !matches!(kind, "llama" | "qwen2" | "qwen3")
        {
            return Err(ModelError::InvalidConfig {
                file: origin.to_path_buf(),
                field: "model_type".into(),
                reason: format!("`{kind}` is not supported (llama, qwen2, qwen3)"),
            });
        }
        if let Some(object) = value.as_object() {
            check_keys(object, origin)?;
        }
        let mut config: Self = serde_json::from_value(value).map_err(json_error)?;
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
        self.rope_scaling_kind()
            .map_err(|(field, reason)| bad(&field, reason))?;
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
        use serde_json::json;
        let (model_type, architecture) = match self.model_type {
            Arch::Llama => ("llama", "LlamaForCausalLM"),
            Arch::Qwen2 => ("qwen2", "Qwen2ForCausalLM"),
            Arch::Qwen3 => ("qwen3", "Qwen3ForCausalLM"),
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
            rope.extend(p.scaling.clone());
            put("rope_parameters", Value::Object(rope));
        }
        if let Some(scaling) = &self.rope_scaling {
            put("rope_scaling", scaling.clone());
        }
        // Qwen2 has no `attention_bias` (its q/k/v biases are fixed), Qwen2/3 no `mlp_bias`
        // and Llama no sliding window: those are written only where the family has them or
        // they are set.
        if self.model_type != Arch::Qwen2 || self.attention_bias {
            put("attention_bias", self.attention_bias.into());
        }
        if self.model_type == Arch::Llama || self.mlp_bias {
            put("mlp_bias", self.mlp_bias.into());
        }
        if self.model_type != Arch::Llama || self.use_sliding_window {
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
        self.head_dim.unwrap_or(match self.model_type {
            Arch::Llama | Arch::Qwen2 => self.hidden_size / self.num_attention_heads.max(1),
            Arch::Qwen3 => QWEN3_DEFAULT_HEAD_DIM,
        })
    }

    /// Whether every query and key head is RMS-normalised before RoPE (Qwen3).
    pub fn qk_norm(&self) -> bool {
        match self.model_type {
            Arch::Llama | Arch::Qwen2 => false,
            Arch::Qwen3 => true,
        }
    }

    /// The RoPE scaling the config describes: `rope_parameters` (transformers ≥ 5) when it
    /// names a `rope_type`, else `rope_scaling` (< 5; `rope_type` or its older spelling
    /// `type`), else none. Defaults are transformers': yarn's `beta_fast` 32, `beta_slow` 1,
    /// `truncate` true and `original_max_position_embeddings` = `max_position_embeddings`;
    /// dynamic NTK's original context is `max_position_embeddings`, llama3's and yarn's
    /// `original_max_position_embeddings` defaults to it. A top-level
    /// `original_max_position_embeddings` key (which transformers lets override the block's) is
    /// refused as an unknown key.
    ///
    /// # Errors
    /// `(field, reason)` for an unknown kind, a missing or invalid parameter, or a key of the
    /// block that the kind does not read.
    pub fn rope_scaling_kind(&self) -> Result<RopeScaling, (String, String)> {
        // A `rope_parameters` block holding only `rope_theta` leaves the kind to `rope_scaling`;
        // one with parameters but no `rope_type` is `default` (as transformers reads it), so
        // its parameters are refused below rather than ignored.
        let v5 = self
            .rope_parameters
            .as_ref()
            .filter(|p| p.rope_type.is_some() || !p.scaling.is_empty());
        let (block, kind, params) = match (v5, self.rope_scaling.as_ref()) {
            (Some(p), _) => {
                let kind = p.rope_type.clone().unwrap_or_else(|| "default".into());
                ("rope_parameters", kind, p.scaling.clone())
            }
            (None, Some(Value::Object(map))) => {
                let kind = map.get("rope_type").or_else(|| map.get("type"));
                let Some(kind) = kind.and_then(Value::as_str) else {
                    return Err((
                        "rope_scaling".into(),
                        "names no `rope_type` (or `type`)".into(),
                    ));
                };
                let mut params = map.clone();
                params.remove("rope_type");
                params.remove("type");
                ("rope_scaling", kind.to_string(), params)
            }
            (None, None | Some(Value::Null)) => return Ok(RopeScaling::Default),
            (None, Some(other)) => {
                return Err((
                    "rope_scaling".into(),
                    format!("{other} is neither null nor an object"),
                ));
            }
        };
        RopeBlock {
            block,
            params,
            max_position_embeddings: self.max_position_embeddings,
        }
        .scaling(&kind)
    }

    /// Number of key/value heads.
    pub fn num_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Whether q/k/v projections carry biases (always for Qwen2, `attention_bias` for Llama
    /// and Qwen3).
    pub fn qkv_bias(&self) -> bool {
        match self.model_type {
            Arch::Llama | Arch::Qwen3 => self.attention_bias,
            Arch::Qwen2 => true,
        }
    }

    /// Whether `o_proj` carries a bias (Llama and Qwen3 with `attention_bias` only).
    pub fn o_bias(&self) -> bool {
        match self.model_type {
            Arch::Llama | Arch::Qwen3 => self.attention_bias,
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

/// `head_dim` of a Qwen3 config that does not give it (transformers' `Qwen3Config` default).
const QWEN3_DEFAULT_HEAD_DIM: usize = 128;

/// The parameters of one RoPE block, read key by key; every key must be read by the kind.
struct RopeBlock {
    block: &'static str,
    params: Map<String, Value>,
    max_position_embeddings: usize,
}

impl RopeBlock {
    fn error(&self, key: &str, reason: impl Into<String>) -> (String, String) {
        (format!("{}.{key}", self.block), reason.into())
    }

    /// Removes `key` and reads it as a positive number.
    fn positive(&mut self, key: &str) -> Result<Option<f64>, (String, String)> {
        match self.params.remove(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x > 0.0 && x.is_finite() => Ok(Some(x)),
                _ => Err(self.error(key, format!("{v} must be a positive number"))),
            },
        }
    }

    fn required(&mut self, key: &str) -> Result<f64, (String, String)> {
        self.positive(key)?
            .ok_or_else(|| self.error(key, "is required by this RoPE type"))
    }

    /// `original_max_position_embeddings` as a whole number of positions
    /// (`max_position_embeddings` when absent, as transformers ≥ 5 defaults it).
    fn original(&mut self) -> Result<usize, (String, String)> {
        let key = "original_max_position_embeddings";
        match self.positive(key)? {
            Some(x) if x.fract() == 0.0 => Ok(x as usize),
            Some(x) => Err(self.error(key, format!("{x} must be a whole number"))),
            None => Ok(self.max_position_embeddings),
        }
    }

    fn scaling(mut self, kind: &str) -> Result<RopeScaling, (String, String)> {
        // `rope_theta` is read by the config itself; a factor of 1 is the identity.
        self.params.remove("rope_theta");
        if let Some(v) = self.params.remove("partial_rotary_factor")
            && v.as_f64() != Some(1.0)
        {
            return Err(self.error("partial_rotary_factor", format!("{v} is not implemented")));
        }
        let scaling = match kind {
            "default" => RopeScaling::Default,
            "linear" => RopeScaling::Linear {
                factor: self.required("factor")?,
            },
            "dynamic" => RopeScaling::Dynamic {
                factor: self.required("factor")?,
                original_max_positions: self.max_position_embeddings,
            },
            "llama3" => {
                let scaling = RopeScaling::Llama3 {
                    factor: self.required("factor")?,
                    low_freq_factor: self.required("low_freq_factor")?,
                    high_freq_factor: self.required("high_freq_factor")?,
                    original_max_positions: self.original()?,
                };
                if let RopeScaling::Llama3 {
                    low_freq_factor,
                    high_freq_factor,
                    ..
                } = scaling
                    && high_freq_factor <= low_freq_factor
                {
                    return Err(self.error(
                        "high_freq_factor",
                        format!(
                            "{high_freq_factor} must exceed low_freq_factor ({low_freq_factor})"
                        ),
                    ));
                }
                scaling
            }
            "yarn" => RopeScaling::Yarn(self.yarn()?),
            other => {
                return Err(self.error(
                    "rope_type",
                    format!(
                        "`{other}` is not implemented (default, linear, dynamic, llama3, yarn)"
                    ),
                ));
            }
        };
        if let Some(key) = self.params.keys().next() {
            return Err(self.error(key, format!("is not a parameter of RoPE type `{kind}`")));
        }
        Ok(scaling)
    }

    /// Yarn's parameters with transformers' defaults (a missing `factor` is
    /// `max_position_embeddings / original_max_position_embeddings`); the attention factor is
    /// resolved.
    fn yarn(&mut self) -> Result<YarnScaling, (String, String)> {
        let given_factor = self.positive("factor")?;
        let original_max_positions = self.original()?;
        let factor = given_factor
            .unwrap_or(self.max_position_embeddings as f64 / original_max_positions as f64);
        let beta_fast = self.positive("beta_fast")?.unwrap_or(32.0);
        let beta_slow = self.positive("beta_slow")?.unwrap_or(1.0);
        let mscale = self.positive("mscale")?;
        let mscale_all_dim = self.positive("mscale_all_dim")?;
        let given = self.positive("attention_factor")?;
        let truncate = match self.params.remove("truncate") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => b,
            Some(v) => return Err(self.error("truncate", format!("{v} must be true or false"))),
        };
        let get_mscale = |scale: f64, m: f64| {
            if scale <= 1.0 {
                1.0
            } else {
                0.1 * m * scale.ln() + 1.0
            }
        };
        let attention_factor = match (given, mscale, mscale_all_dim) {
            (Some(a), _, _) => a,
            (None, Some(m), Some(all)) => get_mscale(factor, m) / get_mscale(factor, all),
            (None, _, _) => get_mscale(factor, 1.0),
        };
        Ok(YarnScaling {
            factor,
            original_max_positions,
            beta_fast,
            beta_slow,
            attention_factor,
            truncate,
        })
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
    fn unknown_model_type_is_refused_by_name() {
        let text = LLAMA.replace("\"llama\"", "\"gpt2\"");
        let err = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap_err();
        assert!(
            matches!(&err, ModelError::InvalidConfig { field, .. } if field == "model_type"),
            "{err}"
        );
        assert!(err.to_string().contains("gpt2"), "{err}");
    }

    #[test]
    fn transformers5_rope_parameters_give_theta() {
        let text = LLAMA.replace(
            "\"rope_theta\": 100000.0",
            "\"rope_parameters\": {\"rope_theta\": 1000000.0, \"rope_type\": \"default\"}",
        );
        let c = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap();
        assert_eq!(c.rope_theta, 1.0e6);
        let text = text.replace("\"default\"", "\"longrope\"");
        let err = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap_err();
        assert!(
            err.to_string().contains("rope_parameters.rope_type"),
            "{err}"
        );
    }

    fn refusal(text: &str) -> String {
        let err = DecoderConfig::from_json_str(text, Path::new("config.json")).unwrap_err();
        match err {
            ModelError::InvalidConfig { field, .. } => field,
            other => panic!("not an InvalidConfig: {other}"),
        }
    }

    fn with(extra: &str) -> String {
        LLAMA.replace("\"torch_dtype\"", &format!("{extra}, \"torch_dtype\""))
    }

    #[test]
    fn rope_scaling_kinds_parse_with_transformers_defaults() {
        let parse = |extra: &str| {
            DecoderConfig::from_json_str(&with(extra), Path::new("config.json"))
                .unwrap()
                .rope_scaling_kind()
                .unwrap()
        };
        assert_eq!(
            parse(r#""rope_scaling": {"type": "linear", "factor": 2.0}"#),
            RopeScaling::Linear { factor: 2.0 }
        );
        assert_eq!(
            parse(r#""rope_scaling": {"rope_type": "dynamic", "factor": 4}"#),
            RopeScaling::Dynamic {
                factor: 4.0,
                original_max_positions: 64
            }
        );
        let RopeScaling::Yarn(yarn) = parse(r#""rope_scaling": {"type": "yarn", "factor": 4.0}"#)
        else {
            panic!("not yarn")
        };
        assert_eq!((yarn.beta_fast, yarn.beta_slow), (32.0, 1.0));
        assert_eq!(yarn.original_max_positions, 64);
        assert!(yarn.truncate);
        assert!((yarn.attention_factor - (0.1 * 4.0f64.ln() + 1.0)).abs() < 1e-12);
        assert_eq!(parse(r#""rope_scaling": null"#), RopeScaling::Default);
    }

    #[test]
    fn rope_blocks_are_refused_by_the_key_at_fault() {
        let cases = [
            (
                r#""rope_scaling": {"type": "linear"}"#,
                "rope_scaling.factor",
            ),
            (
                r#""rope_scaling": {"type": "longrope", "factor": 2}"#,
                "rope_scaling.rope_type",
            ),
            (
                r#""rope_scaling": {"type": "linear", "factor": 2, "beta_fast": 3}"#,
                "rope_scaling.beta_fast",
            ),
            (
                r#""rope_scaling": {"rope_type": "llama3", "factor": 8, "high_freq_factor": 4}"#,
                "rope_scaling.low_freq_factor",
            ),
            (
                r#""rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 4,
                   "high_freq_factor": 1}"#,
                "rope_scaling.high_freq_factor",
            ),
            (
                r#""rope_scaling": {"type": "yarn", "factor": 4, "truncate": 1}"#,
                "rope_scaling.truncate",
            ),
            (
                r#""original_max_position_embeddings": 32"#,
                "original_max_position_embeddings",
            ),
            (r#""rope_scaling": {"factor": 2}"#, "rope_scaling"),
            (
                r#""rope_parameters": {"rope_theta": 10000.0, "factor": 2}"#,
                "rope_parameters.factor",
            ),
            (
                r#""rope_scaling": {"type": "linear", "factor": -1}"#,
                "rope_scaling.factor",
            ),
        ];
        for (extra, field) in cases {
            assert_eq!(refusal(&with(extra)), field, "{extra}");
        }
    }

    #[test]
    fn keys_that_change_the_computation_are_refused_by_name() {
        let cases = [
            (r#""quantization_config": {}"#, "quantization_config"),
            (r#""attention_dropout": 0.1"#, "attention_dropout"),
            (r#""rope_interleaved": true"#, "rope_interleaved"),
            (
                r#""layer_types": ["full_attention", "sliding_attention"]"#,
                "layer_types",
            ),
            (r#""use_sliding_window": true"#, "use_sliding_window"),
        ];
        for (extra, field) in cases {
            assert_eq!(refusal(&with(extra)), field, "{extra}");
        }
        // Inert keys and neutral values pass.
        let ok = with(
            r#""attention_dropout": 0.0, "rope_interleaved": false, "initializer_range": 0.02,
               "layer_types": ["full_attention", "full_attention"], "sliding_window": null,
               "transformers_version": "4.45.0", "architectures": ["LlamaForCausalLM"]"#,
        );
        DecoderConfig::from_json_str(&ok, Path::new("config.json")).unwrap();
    }

    /// The keys of published configs (values shrunk where they size the model) load: Llama
    /// 3.2-1B-Instruct, Qwen2.5-0.5B-Instruct with the yarn block Qwen documents, Qwen3-0.6B
    /// and SmolLM2-135M-Instruct.
    #[test]
    fn published_config_keys_are_accepted() {
        let llama32 = r#"{"architectures": ["LlamaForCausalLM"], "attention_bias": false,
            "attention_dropout": 0.0, "bos_token_id": 128000,
            "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu",
            "hidden_size": 256, "initializer_range": 0.02, "intermediate_size": 512,
            "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
            "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
            "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 32.0,
            "high_freq_factor": 4.0, "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
            "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 1000}"#;
        let qwen25 = r#"{"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0,
            "bos_token_id": 151643, "eos_token_id": 151645, "hidden_act": "silu",
            "hidden_size": 64, "initializer_range": 0.02, "intermediate_size": 128,
            "max_position_embeddings": 32768, "max_window_layers": 21, "model_type": "qwen2",
            "num_attention_heads": 2, "num_hidden_layers": 2, "num_key_value_heads": 1,
            "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768,
            "tie_word_embeddings": true, "torch_dtype": "bfloat16",
            "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
            "vocab_size": 1000, "rope_scaling": {"factor": 4.0,
            "original_max_position_embeddings": 32768, "type": "yarn"}}"#;
        let qwen3 = r#"{"architectures": ["Qwen3ForCausalLM"], "attention_bias": false,
            "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
            "head_dim": 128, "hidden_act": "silu", "hidden_size": 64,
            "initializer_range": 0.02, "intermediate_size": 128,
            "max_position_embeddings": 40960, "max_window_layers": 28, "model_type": "qwen3",
            "num_attention_heads": 2, "num_hidden_layers": 2, "num_key_value_heads": 1,
            "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 1000000,
            "sliding_window": null, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
            "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
            "vocab_size": 1000}"#;
        let smollm2 = r#"{"architectures": ["LlamaForCausalLM"], "attention_bias": false,
            "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
            "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.041666666666666664,
            "intermediate_size": 128, "is_llama_config": true, "max_position_embeddings": 8192,
            "mlp_bias": false, "model_type": "llama", "num_attention_heads": 4,
            "num_hidden_layers": 2, "num_key_value_heads": 2, "pad_token_id": 2,
            "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_interleaved": false,
            "rope_scaling": null, "rope_theta": 100000, "tie_word_embeddings": true,
            "torch_dtype": "bfloat16", "transformers_version": "4.42.3",
            "transformers.js_config": {"kv_cache_dtype": {"q4f16": "float16"}},
            "use_cache": true, "vocab_size": 1000}"#;
        for (name, text) in [
            ("llama32", llama32),
            ("qwen25", qwen25),
            ("qwen3", qwen3),
            ("smollm2", smollm2),
        ] {
            let c = DecoderConfig::from_json_str(text, Path::new(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let kind = c.rope_scaling_kind().unwrap();
            match name {
                "llama32" => assert!(matches!(kind, RopeScaling::Llama3 { .. }), "{kind:?}"),
                "qwen25" => assert!(matches!(kind, RopeScaling::Yarn(_)), "{kind:?}"),
                _ => assert_eq!(kind, RopeScaling::Default),
            }
        }
    }

    #[test]
    fn qwen3_reads_attention_bias_and_default_head_dim() {
        let text = LLAMA.replace("\"llama\"", "\"qwen3\"");
        let c = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap();
        assert_eq!(c.head_dim(), 128);
        assert!(c.qk_norm() && !c.qkv_bias() && !c.o_bias());
        let text = with(r#""attention_bias": true"#).replace("\"llama\"", "\"qwen3\"");
        let c = DecoderConfig::from_json_str(&text, Path::new("config.json")).unwrap();
        assert!(c.qkv_bias() && c.o_bias());
    }
}
