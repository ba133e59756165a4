//! The CPU matrix product behind [`KernelBackend::matmul`](crate::KernelBackend::matmul) on
//! NdArray: the `gemm` crate's micro-kernels (AVX-512 where the CPU has it, else AVX2/FMA)
//! reading both operands in place through their strides.
//!
//! Burn's own NdArray matmul first copies a non-contiguous operand (a transposed weight, the
//! `xᵀ` of a weight gradient) and allocates a zeroed output, then lets `matrixmultiply` repack
//! both operands. Here a transposed view costs nothing: `gemm` packs the panels it needs
//! straight from the strided source.
//!
//! # Summation order
//! Each output element is one `gemm` dot product whose `k` blocking depends on the shapes and
//! the cache sizes only; the threads of the rayon pool split the output (or the batch of
//! products), not the sum. The same product on the same machine therefore gives the same bits on
//! every call and for any number of threads.

use burn::backend::ndarray::{NdArrayTensor, SharedArray};
use burn::tensor::TensorMetadata;
use rayon::prelude::*;

/// `lhs · rhs` over the last two axes, `[.., m, k] × [.., k, n] → [.., m, n]` (row-major),
/// for `f32` and `f64` tensors of any strides. The leading (batch) axes must be equal.
///
/// # Panics
/// On different float types, ranks, batch axes or inner sizes, or a non-float tensor.
pub(crate) fn matmul(lhs: NdArrayTensor, rhs: NdArrayTensor) -> NdArrayTensor {
    match (lhs, rhs) {
        (NdArrayTensor::F32(lhs), NdArrayTensor::F32(rhs)) => {
            let (lhs, rhs) = (lhs.view(), rhs.view());
            product::<f32>(
                Operand::of(lhs.shape(), lhs.strides(), lhs.as_ptr()),
                Operand::of(rhs.shape(), rhs.strides(), rhs.as_ptr()),
                1.0,
            )
            .into()
        }
        (NdArrayTensor::F64(lhs), NdArrayTensor::F64(rhs)) => {
            let (lhs, rhs) = (lhs.view(), rhs.view());
            product::<f64>(
                Operand::of(lhs.shape(), lhs.strides(), lhs.as_ptr()),
                Operand::of(rhs.shape(), rhs.strides(), rhs.as_ptr()),
                1.0,
            )
            .into()
        }
        (lhs, rhs) => panic!(
            "matmul needs two f32 or two f64 tensors, got {:?} and {:?}",
            lhs.dtype(),
            rhs.dtype()
        ),
    }
}

/// A borrowed strided array: shape, element strides and the address of element `[0, …, 0]`.
struct Operand<'a, E> {
    shape: &'a [usize],
    strides: &'a [isize],
    ptr: *const E,
}

impl<'a, E> Operand<'a, E> {
    fn of(shape: &'a [usize], strides: &'a [isize], ptr: *const E) -> Self {
        assert!(shape.len() >= 2, "matmul needs tensors of rank ≥ 2");
        Self {
            shape,
            strides,
            ptr,
        }
    }

    /// (rows, columns) and their (row, column) strides.
    fn matrix(&self) -> ([usize; 2], [isize; 2]) {
        let r = self.shape.len();
        (
            [self.shape[r - 2], self.shape[r - 1]],
            [self.strides[r - 2], self.strides[r - 1]],
        )
    }

    /// Element offset of matrix `batch` (row-major over the leading axes).
    fn batch_offset(&self, mut batch: usize) -> isize {
        let lead = self.shape.len() - 2;
        let mut offset = 0;
        for axis in (0..lead).rev() {
            let size = self.shape[axis];
            offset += (batch % size) as isize * self.strides[axis];
            batch /= size;
        }
        offset
    }
}

/// An operand's base address, shared read-only by the tasks of one product.
struct SendPtr<E>(*const E);

// SAFETY: the tasks only read through the pointer, while the views it comes from are alive.
unsafe impl<E: Sync> Sync for SendPtr<E> {}

/// The product of two operands of element type `E` (`f32` or `f64`, whose `1` is `one`).
fn product<E: Copy + Default + Send + Sync + 'static>(
    lhs: Operand<'_, E>,
    rhs: Operand<'_, E>,
    one: E,
) -> SharedArray<E> {
    let rank = lhs.shape.len();
    assert_eq!(rank, rhs.shape.len(), "matmul operands differ in rank");
    let lead = &lhs.shape[..rank - 2];
    assert_eq!(lead, &rhs.shape[..rank - 2], "matmul batch axes differ");
    let ([m, k], [lhs_rs, lhs_cs]) = lhs.matrix();
    let ([k_rhs, n], [rhs_rs, rhs_cs]) = rhs.matrix();
    assert_eq!(k, k_rhs, "matmul inner sizes differ: {k} and {k_rhs}");
    let batches: usize = lead.iter().product();
    let mut out = vec![E::default(); batches * m * n];
    if k > 0 && m > 0 && n > 0 {
        // One product per batch: a batch of products (attention) splits over the rayon pool one
        // product per task, each product on one thread; a single product splits its output.
        let parallelism = if batches > 1 {
            gemm::Parallelism::None
        } else {
            gemm::Parallelism::Rayon(0)
        };
        let (lhs_ptr, rhs_ptr) = (SendPtr(lhs.ptr), SendPtr(rhs.ptr));
        let lhs_offsets: Vec<isize> = (0..batches).map(|b| lhs.batch_offset(b)).collect();
        let rhs_offsets: Vec<isize> = (0..batches).map(|b| rhs.batch_offset(b)).collect();
        out.par_chunks_mut(m * n)
            .enumerate()
            .for_each(|(batch, dst)| {
                let (lhs_ptr, rhs_ptr) = (&lhs_ptr, &rhs_ptr);
                // SAFETY: `dst` is the `m × n` row-major block `batch` of `out`; the operand
                // pointers come from live ndarray views whose shapes and strides describe
                // every element addressed from them, so the offsets stay inside their buffers,
                // which nothing writes to while the products run.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        k,
                        dst.as_mut_ptr(),
                        1,
                        n as isize,
                        false,
                        lhs_ptr.0.offset(lhs_offsets[batch]),
                        lhs_cs,
                        lhs_rs,
                        rhs_ptr.0.offset(rhs_offsets[batch]),
                        rhs_cs,
                        rhs_rs,
                        E::default(),
                        one,
                        false,
                        false,
                        false,
                        parallelism,
                    );
                }
            });
    }
    let mut shape = lead.to_vec();
    shape.extend([m, n]);
    SharedArray::from_shape_vec(shape, out).expect("the output buffer has the output's size")
}
