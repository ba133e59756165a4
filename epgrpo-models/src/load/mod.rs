//! Loading decoders from Hugging Face model directories.

mod hf_dir;
mod safetensors;

pub use hf_dir::{decoder_from_source, load_decoder};
pub use safetensors::{HostTensor, SHARD_INDEX, SINGLE_FILE, SafetensorsSource};
