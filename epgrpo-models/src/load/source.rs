//! `TensorSource`: what the decoder builder needs from a checkpoint format. Tensors are asked
//! for by their Hugging Face name and shape (PyTorch layout) and come back as f32 host
//! buffers; the source remembers what was taken so that unused tensors can be reported.

use crate::error::ModelError;

/// A tensor converted to f32, row-major, with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Values, row-major.
    pub values: Vec<f32>,
    /// Shape (HF / PyTorch layout).
    pub shape: Vec<usize>,
}

/// A checkpoint whose tensors are looked up by HF name.
pub trait TensorSource {
    /// Takes tensor `name` (HF spelling), requires shape `expected` and converts it to f32.
    fn take(&mut self, name: &str, expected: &[usize]) -> Result<HostTensor, ModelError>;

    /// Marks `name` as used without reading it (a tied `lm_head.weight` copy, RoPE buffers).
    fn skip(&mut self, name: &str);

    /// Fails with [`ModelError::UnusedTensors`] if the checkpoint holds tensors never taken.
    fn finish(self) -> Result<(), ModelError>;
}
