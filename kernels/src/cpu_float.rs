//! Float buffers of NdArray tensors for the fused CPU loops: the element types they run on
//! (f32, f64), row-major views of a tensor's elements, and the way back to a tensor.

use std::borrow::Cow;

use burn::backend::ndarray::{NdArrayTensor, SharedArray};
use burn::tensor::{DType, TensorMetadata};
use num_traits::Float;

/// An element type of the fused CPU loops.
pub(crate) trait CpuFloat: Float + Send + Sync + std::fmt::Debug + 'static {
    /// The tensor's array.
    ///
    /// # Panics
    /// When the tensor holds another element type.
    fn array(tensor: NdArrayTensor) -> SharedArray<Self>;

    /// The array as a tensor.
    fn tensor(array: SharedArray<Self>) -> NdArrayTensor;

    /// `x` in this type.
    fn of(x: f32) -> Self;
}

impl CpuFloat for f32 {
    fn array(tensor: NdArrayTensor) -> SharedArray<Self> {
        match tensor {
            NdArrayTensor::F32(storage) => storage.into_shared(),
            other => panic!("expected an f32 tensor, got {:?}", other.dtype()),
        }
    }

    fn tensor(array: SharedArray<Self>) -> NdArrayTensor {
        array.into()
    }

    fn of(x: f32) -> Self {
        x
    }
}

impl CpuFloat for f64 {
    fn array(tensor: NdArrayTensor) -> SharedArray<Self> {
        match tensor {
            NdArrayTensor::F64(storage) => storage.into_shared(),
            other => panic!("expected an f64 tensor, got {:?}", other.dtype()),
        }
    }

    fn tensor(array: SharedArray<Self>) -> NdArrayTensor {
        array.into()
    }

    fn of(x: f32) -> Self {
        f64::from(x)
    }
}

/// Which element type a float tensor holds, for dispatching to the generic loops.
pub(crate) enum FloatKind {
    /// `f32`.
    F32,
    /// `f64`.
    F64,
}

/// The float kind of `tensor`.
///
/// # Panics
/// On a tensor that is neither f32 nor f64.
pub(crate) fn kind(tensor: &NdArrayTensor) -> FloatKind {
    match tensor.dtype() {
        DType::F32 => FloatKind::F32,
        DType::F64 => FloatKind::F64,
        other => panic!("the fused CPU kernels run on f32 or f64 tensors, got {other:?}"),
    }
}

/// The elements of `array` in row-major order: borrowed when it is already laid out that way,
/// copied from a strided view otherwise.
pub(crate) fn row_major<E: Clone>(array: &SharedArray<E>) -> Cow<'_, [E]> {
    match array.as_slice() {
        Some(slice) => Cow::Borrowed(slice),
        None => Cow::Owned(array.iter().cloned().collect()),
    }
}

/// A row-major buffer of `shape` as a tensor.
pub(crate) fn tensor_of<E: CpuFloat>(shape: Vec<usize>, values: Vec<E>) -> NdArrayTensor {
    E::tensor(SharedArray::from_shape_vec(shape, values).expect("the buffer has the shape's size"))
}
