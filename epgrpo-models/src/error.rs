//! `ModelError`: every failure of config parsing and weight loading, naming the file and the
//! field or tensor involved.

use std::path::PathBuf;

/// Errors raised while reading a model directory (config or weights) or writing one.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Io {
        /// The file that failed.
        file: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A file of an exported model directory could not be written.
    #[error("{file}: cannot write: {source}")]
    Write {
        /// The file (or directory) that failed.
        file: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not valid JSON for the expected schema.
    #[error("{file}: invalid JSON: {source}")]
    Json {
        /// The JSON file.
        file: PathBuf,
        /// The parser error (it carries line and column).
        source: serde_json::Error,
    },
    /// A config field has a value this crate cannot use.
    #[error("{file}: field `{field}`: {reason}")]
    InvalidConfig {
        /// The config file.
        file: PathBuf,
        /// The HF field name.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The safetensors container itself is malformed (header, offsets).
    #[error("{file}: invalid safetensors file: {reason}")]
    Safetensors {
        /// The weights file.
        file: PathBuf,
        /// The parser's description of the problem.
        reason: String,
    },
    /// The GGUF container is malformed or of an unsupported version.
    #[error("{file}: invalid GGUF file: {reason}")]
    Gguf {
        /// The GGUF file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A GGUF metadata key the config needs is absent or of the wrong type.
    #[error("{file}: metadata `{key}` is missing or not a {expected}")]
    MissingMetadata {
        /// The GGUF file.
        file: PathBuf,
        /// The metadata key.
        key: String,
        /// The kind of value that was needed.
        expected: &'static str,
    },
    /// A tensor the config requires is absent.
    #[error("{file}: missing tensor `{tensor}`")]
    MissingTensor {
        /// The weights file (or the shard index) that was searched.
        file: PathBuf,
        /// The HF tensor name.
        tensor: String,
    },
    /// A tensor's shape disagrees with the shape derived from the config.
    #[error("{file}: tensor `{tensor}` has shape {got:?}, the config implies {expected:?}")]
    ShapeMismatch {
        /// The weights file holding the tensor.
        file: PathBuf,
        /// The HF tensor name.
        tensor: String,
        /// Shape implied by the config.
        expected: Vec<usize>,
        /// Shape found in the file.
        got: Vec<usize>,
    },
    /// A tensor is stored in a dtype other than F32, BF16 or F16.
    #[error("{file}: tensor `{tensor}` has unsupported dtype {dtype} (F32, BF16, F16 are read)")]
    UnsupportedDtype {
        /// The weights file holding the tensor.
        file: PathBuf,
        /// The HF tensor name.
        tensor: String,
        /// The dtype as the file names it.
        dtype: String,
    },
    /// The checkpoint holds tensors the decoder does not use.
    #[error("{file}: {} unused tensor(s): {}", tensors.len(), tensors.join(", "))]
    UnusedTensors {
        /// The weights file (or shard index).
        file: PathBuf,
        /// The unused HF tensor names, sorted.
        tensors: Vec<String>,
    },
    /// A tokenizer file (or a GGUF's tokenizer metadata) is not what this crate can use.
    #[error("{file}: tokenizer: {reason}")]
    Tokenizer {
        /// The tokenizer file or GGUF file.
        file: PathBuf,
        /// What was expected and what was found.
        reason: String,
    },
}
