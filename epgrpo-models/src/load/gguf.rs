//! A reader for GGUF files (version 2 and 3, little-endian): metadata key/values, tensor
//! infos and tensor data, dequantised to f32 by [`crate::load::dequant`]. Layout per the GGUF
//! specification in ggml's `docs/gguf.md`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::ModelError;
use crate::load::dequant::dequantize;

/// Default alignment of the tensor data section when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    /// Unsigned integer of any width.
    Uint(u64),
    /// Signed integer of any width.
    Int(i64),
    /// f32 or f64.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// UTF-8 string (invalid bytes replaced).
    String(String),
    /// Array of values.
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The value as a non-negative integer, if it is one.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            GgufValue::Uint(v) => Some(*v),
            GgufValue::Int(v) => u64::try_from(*v).ok(),
            GgufValue::Float(_) | GgufValue::Bool(_) | GgufValue::String(_) => None,
            GgufValue::Array(_) => None,
        }
    }

    /// The value as a float, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            GgufValue::Uint(v) => Some(*v as f64),
            GgufValue::Int(v) => Some(*v as f64),
            GgufValue::Float(v) => Some(*v),
            GgufValue::Bool(_) | GgufValue::String(_) | GgufValue::Array(_) => None,
        }
    }

    /// The value as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }
}

/// Storage type of a GGUF tensor (the `ggml_type` codes this reader knows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
    /// Blocks of 32: f16 scale, 32 × i8.
    Q8_0,
    /// Blocks of 32: f16 scale, 32 × 4-bit (offset 8).
    Q4_0,
    /// Blocks of 32: f16 scale, f16 minimum, 32 × 4-bit.
    Q4_1,
    /// Blocks of 32: f16 scale, 32 × 5-bit (offset 16).
    Q5_0,
    /// Blocks of 32: f16 scale, f16 minimum, 32 × 5-bit.
    Q5_1,
    /// Super-blocks of 256: 8 × 32 4-bit values with 6-bit scales and minima.
    Q4K,
    /// Super-blocks of 256: 8 × 32 5-bit values with 6-bit scales and minima.
    Q5K,
    /// Super-blocks of 256: 16 × 16 6-bit values with 8-bit scales.
    Q6K,
    /// Any other code (Q2_K, Q3_K, Q8_K, i-quants, integers): listed but not readable.
    Other(u32),
}

impl GgmlType {
    fn from_code(code: u32) -> Self {
        match code {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            7 => GgmlType::Q5_1,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4K,
            13 => GgmlType::Q5K,
            14 => GgmlType::Q6K,
            30 => GgmlType::Bf16,
            other => GgmlType::Other(other),
        }
    }

    /// `(elements per block, bytes per block)`, `None` for unreadable types.
    fn block(self) -> Option<(usize, usize)> {
        match self {
            GgmlType::F32 => Some((1, 4)),
            GgmlType::F16 | GgmlType::Bf16 => Some((1, 2)),
            GgmlType::Q8_0 => Some((32, 34)),
            GgmlType::Q4_0 => Some((32, 18)),
            GgmlType::Q4_1 => Some((32, 20)),
            GgmlType::Q5_0 => Some((32, 22)),
            GgmlType::Q5_1 => Some((32, 24)),
            GgmlType::Q4K => Some((256, 144)),
            GgmlType::Q5K => Some((256, 176)),
            GgmlType::Q6K => Some((256, 210)),
            GgmlType::Other(_) => None,
        }
    }
}

/// Where a tensor lies and how it is stored.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufTensorInfo {
    /// Dimensions in ggml order (fastest-varying first), i.e. the reverse of the PyTorch shape.
    pub dims: Vec<usize>,
    /// Storage type.
    pub ggml_type: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: usize,
}

impl GgufTensorInfo {
    /// Shape in PyTorch / row-major order.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().copied().collect()
    }
}

/// An opened GGUF file.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    bytes: Vec<u8>,
    data_start: usize,
    /// Metadata key/values.
    pub metadata: HashMap<String, GgufValue>,
    /// Tensor infos by GGUF name.
    pub tensors: HashMap<String, GgufTensorInfo>,
}

impl GgufFile {
    /// Reads and parses a whole GGUF file.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, bytes)
    }

    /// Parses GGUF bytes; `path` names the file in errors.
    pub fn parse(path: &Path, bytes: Vec<u8>) -> Result<Self, ModelError> {
        let mut r = Reader {
            bytes: &bytes,
            pos: 0,
            path,
        };
        if r.take(4)? != b"GGUF" {
            return Err(r.error("missing GGUF magic"));
        }
        let version = r.u32()?;
        if !(2..=3).contains(&version) {
            return Err(r.error(&format!("version {version} is not supported (2, 3)")));
        }
        let tensor_count = r.u64()?;
        let kv_count = r.u64()?;
        let mut metadata = HashMap::new();
        for _ in 0..kv_count {
            let key = r.string()?;
            let kind = r.u32()?;
            metadata.insert(key, r.value(kind)?);
        }
        let mut tensors = HashMap::new();
        for _ in 0..tensor_count {
            let name = r.string()?;
            let n_dims = r.u32()?;
            let dims = (0..n_dims)
                .map(|_| r.usize())
                .collect::<Result<Vec<_>, _>>()?;
            let ggml_type = GgmlType::from_code(r.u32()?);
            let offset = r.usize()?;
            tensors.insert(
                name,
                GgufTensorInfo {
                    dims,
                    ggml_type,
                    offset,
                },
            );
        }
        let alignment = metadata
            .get("general.alignment")
            .and_then(GgufValue::as_u64)
            .unwrap_or(DEFAULT_ALIGNMENT)
            .max(1) as usize;
        let data_start = r.pos.div_ceil(alignment) * alignment;
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            data_start,
            metadata,
            tensors,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Dequantises tensor `name` to f32, row-major (PyTorch order).
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        let info = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor {
                file: self.path.clone(),
                tensor: name.to_string(),
            })?;
        let count: usize = info.dims.iter().product();
        let (per_block, block_bytes) =
            info.ggml_type
                .block()
                .ok_or_else(|| ModelError::UnsupportedDtype {
                    file: self.path.clone(),
                    tensor: name.to_string(),
                    dtype: format!("{:?}", info.ggml_type),
                })?;
        if !count.is_multiple_of(per_block) {
            return Err(self.gguf_error(&format!("`{name}`: {count} values are not whole blocks")));
        }
        let start = self.data_start + info.offset;
        let len = count / per_block * block_bytes;
        let raw = self
            .bytes
            .get(start..start + len)
            .ok_or_else(|| self.gguf_error(&format!("data of `{name}` lies outside the file")))?;
        Ok(dequantize(info.ggml_type, raw, count))
    }

    fn gguf_error(&self, reason: &str) -> ModelError {
        ModelError::Gguf {
            file: self.path.clone(),
            reason: reason.to_string(),
        }
    }
}

/// A bounds-checked little-endian cursor over the file bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Reader<'a> {
    fn error(&self, reason: &str) -> ModelError {
        ModelError::Gguf {
            file: self.path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| self.error(&format!("truncated at byte {}", self.pos)))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ModelError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn usize(&mut self) -> Result<usize, ModelError> {
        let v = self.u64()?;
        usize::try_from(v).map_err(|_| self.error(&format!("value {v} does not fit in usize")))
    }

    fn string(&mut self) -> Result<String, ModelError> {
        let len = self.usize()?;
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }

    fn value(&mut self, kind: u32) -> Result<GgufValue, ModelError> {
        Ok(match kind {
            0 => GgufValue::Uint(u64::from(self.array::<1>()?[0])),
            1 => GgufValue::Int(i64::from(i8::from_le_bytes(self.array()?))),
            2 => GgufValue::Uint(u64::from(u16::from_le_bytes(self.array()?))),
            3 => GgufValue::Int(i64::from(i16::from_le_bytes(self.array()?))),
            4 => GgufValue::Uint(u64::from(self.u32()?)),
            5 => GgufValue::Int(i64::from(i32::from_le_bytes(self.array()?))),
            6 => GgufValue::Float(f64::from(f32::from_le_bytes(self.array()?))),
            7 => GgufValue::Bool(self.array::<1>()?[0] != 0),
            8 => GgufValue::String(self.string()?),
            9 => {
                let inner = self.u32()?;
                let n = self.usize()?;
                let items = (0..n)
                    .map(|_| self.value(inner))
                    .collect::<Result<Vec<_>, _>>()?;
                GgufValue::Array(items)
            }
            10 => GgufValue::Uint(self.u64()?),
            11 => GgufValue::Int(i64::from_le_bytes(self.array()?)),
            12 => GgufValue::Float(f64::from_le_bytes(self.array()?)),
            other => return Err(self.error(&format!("unknown metadata type {other}"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_file_is_an_error_naming_it() {
        let err = GgufFile::parse(Path::new("x.gguf"), b"GGUF\x03\0\0\0\x01".to_vec()).unwrap_err();
        assert!(err.to_string().contains("x.gguf") && err.to_string().contains("truncated"));
    }
}
