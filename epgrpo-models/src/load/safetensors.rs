//! `SafetensorsSource`: the tensors of one `model.safetensors` file or of a sharded checkpoint
//! (`model.safetensors.index.json` + shards), handed out by HF name as f32 host buffers
//! (F32, BF16 and F16 are read) and checked against the shape the config implies. It remembers
//! which tensors were taken, so that leftovers can be reported.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, Metadata, SafeTensors};
use serde::Deserialize;

use crate::error::ModelError;
use crate::load::source::{HostTensor, TensorSource};

/// Name of a single-file checkpoint inside a model directory.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Name of the shard index of a sharded checkpoint inside a model directory.
pub const SHARD_INDEX: &str = "model.safetensors.index.json";

/// One opened `.safetensors` file.
#[derive(Debug)]
struct Shard {
    path: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    metadata: Metadata,
}

/// The `weight_map` of a shard index.
#[derive(Debug, Deserialize)]
struct ShardIndex {
    weight_map: HashMap<String, String>,
}

/// Tensors of a checkpoint, looked up by HF name.
#[derive(Debug)]
pub struct SafetensorsSource {
    origin: PathBuf,
    shards: Vec<Shard>,
    location: HashMap<String, usize>,
    untaken: BTreeSet<String>,
}

impl SafetensorsSource {
    /// Opens the checkpoint of an HF model directory: the shard index if present, otherwise
    /// `model.safetensors`.
    pub fn open_dir(dir: &Path) -> Result<Self, ModelError> {
        let index = dir.join(SHARD_INDEX);
        if index.exists() {
            Self::open_index(&index)
        } else {
            Self::open_file(&dir.join(SINGLE_FILE))
        }
    }

    /// Opens one `.safetensors` file.
    pub fn open_file(path: &Path) -> Result<Self, ModelError> {
        let shard = Shard::open(path)?;
        let location = shard.names().map(|n| (n, 0)).collect();
        Ok(Self::from_parts(path.to_path_buf(), vec![shard], location))
    }

    /// Opens a sharded checkpoint from its `model.safetensors.index.json`; every tensor of every
    /// listed shard is available, and each `weight_map` entry must be in its shard.
    pub fn open_index(index_path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(index_path).map_err(|source| ModelError::Io {
            file: index_path.to_path_buf(),
            source,
        })?;
        let index: ShardIndex = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            file: index_path.to_path_buf(),
            source,
        })?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let files: BTreeSet<&String> = index.weight_map.values().collect();
        let mut shards = Vec::new();
        let mut location = HashMap::new();
        for file in files {
            let shard = Shard::open(&dir.join(file))?;
            for name in shard.names() {
                location.insert(name, shards.len());
            }
            shards.push(shard);
        }
        let mut entries: Vec<_> = index.weight_map.iter().collect();
        entries.sort();
        for (tensor, file) in entries {
            let listed = dir.join(file);
            let found = location.get(tensor).map(|&i| &shards[i].path);
            if found != Some(&listed) {
                return Err(ModelError::MissingTensor {
                    file: listed,
                    tensor: tensor.clone(),
                });
            }
        }
        Ok(Self::from_parts(index_path.to_path_buf(), shards, location))
    }

    fn from_parts(origin: PathBuf, shards: Vec<Shard>, location: HashMap<String, usize>) -> Self {
        let untaken = location.keys().cloned().collect();
        Self {
            origin,
            shards,
            location,
            untaken,
        }
    }

    /// The file (or shard index) errors about missing and unused tensors name.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// Whether the checkpoint holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.location.contains_key(name)
    }

    /// Names that were never taken, sorted.
    pub fn untaken(&self) -> Vec<String> {
        self.untaken.iter().cloned().collect()
    }
}

impl TensorSource for SafetensorsSource {
    /// Takes tensor `name`, requires shape `expected` and converts it to f32.
    fn take(&mut self, name: &str, expected: &[usize]) -> Result<HostTensor, ModelError> {
        let shard = match self.location.get(name) {
            Some(&i) => &self.shards[i],
            None => {
                return Err(ModelError::MissingTensor {
                    file: self.origin.clone(),
                    tensor: name.to_string(),
                });
            }
        };
        let tensor = shard.read(name, expected)?;
        self.untaken.remove(name);
        Ok(tensor)
    }

    /// Marks `name` as used without reading it (e.g. a tied `lm_head.weight` copy).
    fn skip(&mut self, name: &str) {
        self.untaken.remove(name);
    }

    /// Fails with [`ModelError::UnusedTensors`] if any tensor was never taken.
    fn finish(self) -> Result<(), ModelError> {
        if self.untaken.is_empty() {
            Ok(())
        } else {
            Err(ModelError::UnusedTensors {
                file: self.origin,
                tensors: self.untaken.into_iter().collect(),
            })
        }
    }
}

impl Shard {
    fn open(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        let (header_len, metadata) =
            SafeTensors::read_metadata(&bytes).map_err(|e| ModelError::Safetensors {
                file: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            data_start: 8 + header_len,
            metadata,
        })
    }

    fn names(&self) -> impl Iterator<Item = String> + '_ {
        self.metadata.tensors().into_keys()
    }

    fn read(&self, name: &str, expected: &[usize]) -> Result<HostTensor, ModelError> {
        let err_file = || self.path.clone();
        let info = self
            .metadata
            .info(name)
            .ok_or_else(|| ModelError::MissingTensor {
                file: err_file(),
                tensor: name.to_string(),
            })?;
        if info.shape != expected {
            return Err(ModelError::ShapeMismatch {
                file: err_file(),
                tensor: name.to_string(),
                expected: expected.to_vec(),
                got: info.shape.clone(),
            });
        }
        let (start, end) = info.data_offsets;
        let raw = self
            .bytes
            .get(self.data_start + start..self.data_start + end)
            .ok_or_else(|| ModelError::Safetensors {
                file: err_file(),
                reason: format!("data of `{name}` lies outside the file"),
            })?;
        let values: Vec<f32> = match info.dtype {
            Dtype::F32 => raw
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::BF16 => raw
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::F16 => raw
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(ModelError::UnsupportedDtype {
                    file: err_file(),
                    tensor: name.to_string(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        let count: usize = expected.iter().product();
        if values.len() != count {
            return Err(ModelError::Safetensors {
                file: err_file(),
                reason: format!(
                    "`{name}` holds {} values, its shape needs {count}",
                    values.len()
                ),
            });
        }
        Ok(HostTensor {
            values,
            shape: info.shape.clone(),
        })
    }
}
