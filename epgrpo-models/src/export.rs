//! `save_hf_dir`: writes a [`Decoder`] as a Hugging Face model directory that transformers and
//! [`crate::load_decoder`] load: `model.safetensors` (f32, HF names, PyTorch `[out, in]` layout,
//! LoRA adapters merged), `config.json` and, when a tokenizer is given, `tokenizer.json` and
//! `tokenizer_config.json`. The directory is written next to its final place and renamed into
//! it, so that a crash leaves either the old export or the new one.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use burn::nn::Linear;
use burn::prelude::*;
use safetensors::tensor::{Dtype, SafeTensorError, View};

use crate::config::DecoderConfig;
use crate::decoder::{Decoder, DecoderLayer};
use crate::error::ModelError;
use crate::load::SINGLE_FILE;
use crate::lora::LoraLinear;
use crate::tokenizer::{TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, TextTokenizer};

/// File name of the model config inside a model directory.
pub const CONFIG_FILE: &str = "config.json";

/// The files [`save_hf_dir`] writes; an existing target holding only these is replaced.
const EXPORT_FILES: [&str; 4] = [
    SINGLE_FILE,
    CONFIG_FILE,
    TOKENIZER_FILE,
    TOKENIZER_CONFIG_FILE,
];

/// Writes `decoder` (described by `config`) as a Hugging Face model directory `dir`:
///
/// * `model.safetensors`: every parameter in f32 under its HF name (`model.embed_tokens.weight`,
///   `model.layers.{i}.self_attn.q_proj.weight`, …, `lm_head.weight` only when the head is not
///   tied), Linear weights transposed to PyTorch's `[out, in]`. A projection whose LoRA adapter
///   is present and enabled is written merged, `W + scale · A·B`, so the export computes what
///   the adapted model computes; disabled adapters are left out (export
///   `decoder.with_adapters_enabled(false)` to get the base model).
/// * `config.json`: [`DecoderConfig::to_hf_json`].
/// * with `tokenizer`: `tokenizer.json` and `tokenizer_config.json`
///   ([`TextTokenizer::save_dir`]).
///
/// `dir` must not exist, or be an earlier export (a directory holding only the files above),
/// which is replaced. The files are written into `{dir}.tmp` and renamed to `dir` at the end.
/// The decoder must have the shapes `config` implies (checked before anything is written).
pub fn save_hf_dir<B: Backend>(
    decoder: &Decoder<B>,
    config: &DecoderConfig,
    tokenizer: Option<&TextTokenizer>,
    dir: &Path,
) -> Result<(), ModelError> {
    config.validate(&dir.join(CONFIG_FILE))?;
    let tensors = hf_tensors(decoder, config, &dir.join(SINGLE_FILE))?;
    check_replaceable(dir)?;
    let tmp = sibling(dir, "tmp")?;
    remove_dir(&tmp)?;
    fs::create_dir_all(&tmp).map_err(write_error(&tmp))?;

    let path = tmp.join(SINGLE_FILE);
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(tensors, Some(metadata), &path).map_err(|e| match e {
        SafeTensorError::IoError(source) => ModelError::Write {
            file: path.clone(),
            source,
        },
        other => ModelError::Safetensors {
            file: path.clone(),
            reason: other.to_string(),
        },
    })?;
    let path = tmp.join(CONFIG_FILE);
    fs::write(&path, format!("{:#}", config.to_hf_json())).map_err(write_error(&path))?;
    if let Some(tokenizer) = tokenizer {
        tokenizer.save_dir(&tmp)?;
    }

    let old = sibling(dir, "old")?;
    remove_dir(&old)?;
    if dir.exists() {
        fs::rename(dir, &old).map_err(write_error(dir))?;
    }
    fs::rename(&tmp, dir).map_err(write_error(dir))?;
    remove_dir(&old)
}

/// A tensor to write: a `[rows, cols]` device tensor (vectors as one row), plus the LoRA update
/// `scale · A·B` to add, written transposed or not. The host copy is made only when the
/// serializer asks for the bytes, one tensor at a time.
struct HfTensor<B: Backend> {
    value: Tensor<B, 2>,
    update: Option<(Tensor<B, 2>, Tensor<B, 2>, f64)>,
    transpose: bool,
    shape: Vec<usize>,
}

impl<B: Backend> View for HfTensor<B> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let mut value = self.value.clone();
        if let Some((a, b, scale)) = &self.update {
            value = value + a.clone().matmul(b.clone()) * *scale;
        }
        if self.transpose {
            value = value.transpose();
        }
        let data = value.into_data();
        Cow::Owned(data.iter::<f32>().flat_map(f32::to_le_bytes).collect())
    }

    fn data_len(&self) -> usize {
        self.shape.iter().product::<usize>() * size_of::<f32>()
    }
}

/// Every tensor of the HF checkpoint of `decoder`, checked against the shapes `config` implies;
/// `file` is the safetensors file errors name.
fn hf_tensors<B: Backend>(
    decoder: &Decoder<B>,
    config: &DecoderConfig,
    file: &Path,
) -> Result<Vec<(String, HfTensor<B>)>, ModelError> {
    let config_file = file.with_file_name(CONFIG_FILE);
    let mismatch = |field: &str, reason: String| ModelError::InvalidConfig {
        file: config_file.clone(),
        field: field.to_string(),
        reason,
    };
    if decoder.layers.len() != config.num_hidden_layers {
        return Err(mismatch(
            "num_hidden_layers",
            format!("the decoder has {} layers", decoder.layers.len()),
        ));
    }
    if decoder.lm_head.is_none() != config.tie_word_embeddings {
        let head = if decoder.lm_head.is_some() {
            "a separate output head"
        } else {
            "its head tied to the embedding"
        };
        return Err(mismatch(
            "tie_word_embeddings",
            format!("the decoder has {head}"),
        ));
    }
    let mut out = Tensors {
        file,
        tensors: Vec::new(),
    };
    let (d, v) = (config.hidden_size, config.vocab_size);
    out.push(
        "model.embed_tokens.weight",
        decoder.embed_tokens.weight.val(),
        &[v, d],
    )?;
    for (i, layer) in decoder.layers.iter().enumerate() {
        out.layer(config, &format!("model.layers.{i}"), layer)?;
    }
    out.vector("model.norm.weight", decoder.norm.gamma.val(), d)?;
    if let Some(head) = &decoder.lm_head {
        out.linear("lm_head", head, None, [v, d], false)?;
    }
    Ok(out.tensors)
}

/// The tensors collected so far and the file errors name.
struct Tensors<'a, B: Backend> {
    file: &'a Path,
    tensors: Vec<(String, HfTensor<B>)>,
}

impl<B: Backend> Tensors<'_, B> {
    fn check(&self, name: &str, got: &[usize], expected: &[usize]) -> Result<(), ModelError> {
        if got == expected {
            Ok(())
        } else {
            Err(ModelError::ShapeMismatch {
                file: self.file.to_path_buf(),
                tensor: name.to_string(),
                expected: expected.to_vec(),
                got: got.to_vec(),
            })
        }
    }

    /// A matrix already in HF layout.
    fn push(
        &mut self,
        name: &str,
        value: Tensor<B, 2>,
        expected: &[usize; 2],
    ) -> Result<(), ModelError> {
        self.check(name, &value.dims(), expected)?;
        self.add(name, value, None, false, expected.to_vec());
        Ok(())
    }

    fn vector(&mut self, name: &str, value: Tensor<B, 1>, len: usize) -> Result<(), ModelError> {
        self.check(name, &value.dims(), &[len])?;
        self.add(name, value.unsqueeze(), None, false, vec![len]);
        Ok(())
    }

    fn add(
        &mut self,
        name: &str,
        value: Tensor<B, 2>,
        update: Option<(Tensor<B, 2>, Tensor<B, 2>, f64)>,
        transpose: bool,
        shape: Vec<usize>,
    ) {
        let tensor = HfTensor {
            value,
            update,
            transpose,
            shape,
        };
        self.tensors.push((name.to_string(), tensor));
    }

    /// `{prefix}.weight` `[out, in]` (Burn's `[in, out]` transposed, plus the LoRA update of
    /// `adapted` when it is present and enabled) and `{prefix}.bias` when `bias` is set; a
    /// bias the config does not imply (or a missing one) is an error.
    fn linear(
        &mut self,
        prefix: &str,
        linear: &Linear<B>,
        adapted: Option<&LoraLinear<B>>,
        [d_out, d_in]: [usize; 2],
        bias: bool,
    ) -> Result<(), ModelError> {
        let name = format!("{prefix}.weight");
        let [rows, cols] = linear.weight.dims();
        self.check(&name, &[cols, rows], &[d_out, d_in])?;
        let update = match adapted {
            Some(LoraLinear {
                adapter: Some(adapter),
                enabled: true,
                ..
            }) => {
                let (a, b) = (adapter.lora_a.val(), adapter.lora_b.val());
                let rank = a.dims()[1];
                self.check(&format!("{prefix}.lora_a"), &a.dims(), &[d_in, rank])?;
                self.check(&format!("{prefix}.lora_b"), &b.dims(), &[rank, d_out])?;
                Some((a, b, adapter.scale))
            }
            _ => None,
        };
        self.add(&name, linear.weight.val(), update, true, vec![d_out, d_in]);
        let name = format!("{prefix}.bias");
        match (&linear.bias, bias) {
            (Some(b), true) => self.vector(&name, b.val(), d_out),
            (None, false) => Ok(()),
            (Some(_), false) => Err(ModelError::UnusedTensors {
                file: self.file.to_path_buf(),
                tensors: vec![name],
            }),
            (None, true) => Err(ModelError::MissingTensor {
                file: self.file.to_path_buf(),
                tensor: name,
            }),
        }
    }

    fn projection(
        &mut self,
        prefix: &str,
        p: &LoraLinear<B>,
        shape: [usize; 2],
        bias: bool,
    ) -> Result<(), ModelError> {
        self.linear(prefix, &p.base, Some(p), shape, bias)
    }

    fn layer(
        &mut self,
        config: &DecoderConfig,
        prefix: &str,
        layer: &DecoderLayer<B>,
    ) -> Result<(), ModelError> {
        let (d, hd, ff) = (
            config.hidden_size,
            config.head_dim(),
            config.intermediate_size,
        );
        let (q, kv) = (config.num_attention_heads * hd, config.num_kv_heads() * hd);
        let (attn, mlp) = (&layer.self_attn, &layer.mlp);
        let a = format!("{prefix}.self_attn");
        let qkv_bias = config.qkv_bias();
        self.projection(&format!("{a}.q_proj"), &attn.q_proj, [q, d], qkv_bias)?;
        self.projection(&format!("{a}.k_proj"), &attn.k_proj, [kv, d], qkv_bias)?;
        self.projection(&format!("{a}.v_proj"), &attn.v_proj, [kv, d], qkv_bias)?;
        self.projection(
            &format!("{a}.o_proj"),
            &attn.o_proj,
            [d, q],
            config.o_bias(),
        )?;
        let m = format!("{prefix}.mlp");
        self.projection(&format!("{m}.gate_proj"), &mlp.gate_proj, [ff, d], false)?;
        self.projection(&format!("{m}.up_proj"), &mlp.up_proj, [ff, d], false)?;
        self.projection(&format!("{m}.down_proj"), &mlp.down_proj, [d, ff], false)?;
        let head_norms = [("q_norm", &attn.q_norm), ("k_norm", &attn.k_norm)];
        for (name, norm) in head_norms {
            match (norm, config.qk_norm()) {
                (Some(norm), true) => {
                    self.vector(&format!("{a}.{name}.weight"), norm.gamma.val(), hd)?
                }
                (None, false) => {}
                (norm, _) => {
                    return Err(ModelError::InvalidConfig {
                        file: self.file.with_file_name(CONFIG_FILE),
                        field: "model_type".into(),
                        reason: format!(
                            "{:?} {} per-head norms but the decoder {} `{name}`",
                            config.model_type,
                            if config.qk_norm() { "has" } else { "has no" },
                            if norm.is_some() { "has" } else { "lacks" },
                        ),
                    });
                }
            }
        }
        self.vector(
            &format!("{prefix}.input_layernorm.weight"),
            layer.input_layernorm.gamma.val(),
            d,
        )?;
        self.vector(
            &format!("{prefix}.post_attention_layernorm.weight"),
            layer.post_attention_layernorm.gamma.val(),
            d,
        )
    }
}

fn write_error(path: &Path) -> impl Fn(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Write {
        file: path.to_path_buf(),
        source,
    }
}

/// `{dir}.{suffix}` next to `dir` (same file system, so that renames are atomic).
fn sibling(dir: &Path, suffix: &str) -> Result<PathBuf, ModelError> {
    let name = dir.file_name().ok_or_else(|| ModelError::Write {
        file: dir.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the export directory needs a name",
        ),
    })?;
    let mut name = name.to_os_string();
    name.push(format!(".{suffix}"));
    Ok(dir.with_file_name(name))
}

/// Removes a leftover temporary directory, if any.
fn remove_dir(path: &Path) -> Result<(), ModelError> {
    if path.exists() {
        fs::remove_dir_all(path).map_err(write_error(path))?;
    }
    Ok(())
}

/// Refuses to replace `dir` unless it is absent or an earlier export.
fn check_replaceable(dir: &Path) -> Result<(), ModelError> {
    if !dir.exists() {
        return Ok(());
    }
    let refuse = |reason: String| ModelError::Write {
        file: dir.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, reason),
    };
    if !dir.is_dir() {
        return Err(refuse("exists and is not a directory".into()));
    }
    for entry in fs::read_dir(dir).map_err(write_error(dir))? {
        let entry = entry.map_err(write_error(dir))?;
        let name = entry.file_name();
        if !EXPORT_FILES.iter().any(|f| name == *f) {
            return Err(refuse(format!(
                "exists and holds `{}`, which an export does not write; not replacing it",
                name.to_string_lossy()
            )));
        }
    }
    Ok(())
}
