//! SwiGLU, `silu(gate) ⊙ up` (the Llama/Qwen MLP's activation), as one operation: the
//! plain-Burn composition (the default and the oracle), a fused loop on NdArray, and the
//! autodiff node.
//!
//! Backward: with `s = σ(gate)` and `g` the upstream gradient,
//! `d gate = g ⊙ up ⊙ s ⊙ (1 + gate (1 − s))` and `d up = g ⊙ gate ⊙ s`.

use burn::backend::{
    Autodiff, autodiff::checkpoint::strategy::CheckpointStrategy, ndarray::NdArrayTensor,
};
use burn::tensor::{
    Shape, Tensor, TensorMetadata,
    activation::{sigmoid, silu},
    backend::Backend,
    ops::FloatTensor,
};
use rayon::prelude::*;

use crate::binary_node::{self, BinaryOp};
use crate::cpu_float::{CpuFloat, FloatKind, kind, row_major, tensor_of};
use crate::{KernelBackend, float};

/// Elements handed to one rayon task.
const CHUNK: usize = 4096;

/// A tensor of any rank as its `[elements]` vector (free for contiguous CubeCL tensors).
fn flat<B: Backend>(tensor: FloatTensor<B>) -> Tensor<B, 1> {
    let n = tensor.shape().num_elements();
    float(B::float_reshape(tensor, Shape::new([n])))
}

/// A vector back in `shape`.
fn shaped<B: Backend>(vector: Tensor<B, 1>, shape: Shape) -> FloatTensor<B> {
    B::float_reshape(vector.into_primitive().tensor(), shape)
}

/// `silu(gate) ⊙ up` in plain Burn operations.
pub(crate) fn plain<B: Backend>(gate: FloatTensor<B>, up: FloatTensor<B>) -> FloatTensor<B> {
    let shape = gate.shape();
    shaped(silu(flat::<B>(gate)) * flat::<B>(up), shape)
}

/// The plain backward: `(d gate, d up)`.
pub(crate) fn plain_backward<B: Backend>(
    gate: FloatTensor<B>,
    up: FloatTensor<B>,
    grad: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let shape = gate.shape();
    let (gate, up, grad) = (flat::<B>(gate), flat::<B>(up), flat::<B>(grad));
    let s = sigmoid(gate.clone());
    let d_up = grad.clone() * gate.clone() * s.clone();
    let d_gate = grad * up * s.clone() * (gate * (s.neg() + 1.0) + 1.0);
    (shaped(d_gate, shape.clone()), shaped(d_up, shape))
}

/// The fused CPU forward (f32 or f64); the inputs have equal shapes.
pub(crate) fn cpu(gate: NdArrayTensor, up: NdArrayTensor) -> NdArrayTensor {
    match kind(&gate) {
        FloatKind::F32 => cpu_forward::<f32>(gate, up),
        FloatKind::F64 => cpu_forward::<f64>(gate, up),
    }
}

/// `σ(x) = 1 / (1 + e^-x)` (0 for large negative x, where `e^-x` overflows to infinity).
fn sigma<E: CpuFloat>(x: E) -> E {
    (E::one() + (-x).exp()).recip()
}

fn cpu_forward<E: CpuFloat>(gate: NdArrayTensor, up: NdArrayTensor) -> NdArrayTensor {
    let (gate, up) = (E::array(gate), E::array(up));
    let shape = gate.shape().to_vec();
    assert_eq!(shape, up.shape(), "SwiGLU's gate and up differ in shape");
    let (gate, up) = (row_major(&gate), row_major(&up));
    let mut out = vec![E::zero(); gate.len()];
    out.par_chunks_mut(CHUNK)
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .for_each(|(out, (gate, up))| {
            for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
                *o = g * sigma(g) * u;
            }
        });
    tensor_of(shape, out)
}

/// The fused CPU backward (f32 or f64): `(d gate, d up)`.
pub(crate) fn cpu_backward(
    gate: NdArrayTensor,
    up: NdArrayTensor,
    grad: NdArrayTensor,
) -> (NdArrayTensor, NdArrayTensor) {
    match kind(&gate) {
        FloatKind::F32 => cpu_backward_of::<f32>(gate, up, grad),
        FloatKind::F64 => cpu_backward_of::<f64>(gate, up, grad),
    }
}

fn cpu_backward_of<E: CpuFloat>(
    gate: NdArrayTensor,
    up: NdArrayTensor,
    grad: NdArrayTensor,
) -> (NdArrayTensor, NdArrayTensor) {
    let (gate, up, grad) = (E::array(gate), E::array(up), E::array(grad));
    let shape = gate.shape().to_vec();
    assert!(
        shape == up.shape() && shape == grad.shape(),
        "SwiGLU's gate, up and gradient differ in shape"
    );
    let (gate, up, grad) = (row_major(&gate), row_major(&up), row_major(&grad));
    let mut d_gate = vec![E::zero(); gate.len()];
    let mut d_up = vec![E::zero(); gate.len()];
    d_gate
        .par_chunks_mut(CHUNK)
        .zip(d_up.par_chunks_mut(CHUNK))
        .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
        .zip(grad.par_chunks(CHUNK))
        .for_each(|(((d_gate, d_up), (gate, up)), grad)| {
            for i in 0..gate.len() {
                let (x, u, g) = (gate[i], up[i], grad[i]);
                let s = sigma(x);
                d_up[i] = g * x * s;
                d_gate[i] = g * u * s * (E::one() + x * (E::one() - s));
            }
        });
    (tensor_of(shape.clone(), d_gate), tensor_of(shape, d_up))
}

/// SwiGLU as a [`BinaryOp`] (no parameter).
#[derive(Debug)]
struct Swiglu;

impl BinaryOp for Swiglu {
    type Param = ();

    fn forward<B: KernelBackend>(
        gate: FloatTensor<B>,
        up: FloatTensor<B>,
        _: &(),
    ) -> FloatTensor<B> {
        B::swiglu(gate, up)
    }

    fn backward<B: KernelBackend>(
        gate: FloatTensor<B>,
        up: FloatTensor<B>,
        grad: FloatTensor<B>,
        _: &(),
    ) -> (FloatTensor<B>, FloatTensor<B>) {
        B::swiglu_backward(gate, up, grad)
    }
}

/// The tracked SwiGLU: the inner backend's forward and a node keeping both inputs.
pub(crate) fn autodiff<B: KernelBackend, C: CheckpointStrategy>(
    gate: FloatTensor<Autodiff<B, C>>,
    up: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    binary_node::tracked::<B, C, _>(Swiglu, gate, up, ())
}
