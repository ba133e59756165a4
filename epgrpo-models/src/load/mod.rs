//! Loading decoders from Hugging Face model directories (safetensors) and GGUF files.

mod dequant;
mod gguf;
mod gguf_source;
mod hf_dir;
mod safetensors;
mod source;

pub use gguf::{GgmlType, GgufFile, GgufTensorInfo, GgufValue};
pub use gguf_source::{GgufSource, config_from_gguf, gguf_name, load_gguf};
pub use hf_dir::{decoder_from_source, load_decoder};
pub use safetensors::{SHARD_INDEX, SINGLE_FILE, SafetensorsSource};
pub use source::{HostTensor, TensorSource};
