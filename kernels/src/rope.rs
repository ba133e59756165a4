//! Rotary position embedding of queries or keys, fused with the move of the heads ahead of the
//! positions: `x` `[b, t, n, d]` (a projection's output split into heads) becomes
//! `y = x ⊙ cos + rotate_half(x) ⊙ sin` laid out `[b, n, t, d]`, with `rotate_half([x1, x2]) =
//! [-x2, x1]` over the two halves of each head (Hugging Face's layout) and tables `[b, 1, t, d]`.
//! The plain-Burn composition is the default and the oracle; NdArray runs one parallel pass
//! that writes the output in its final layout (no slices, concatenation or transposed copy).
//!
//! Backward: the rotation is linear in `x`, so with `g` the upstream gradient (`[b, n, t, d]`)
//! `dx = g ⊙ cos + rotate_halfᵀ(g ⊙ sin)`, `rotate_halfᵀ([u1, u2]) = [u2, -u1]`, moved back to
//! `[b, t, n, d]`. The tables are constants.

use burn::backend::{
    Autodiff, autodiff::checkpoint::strategy::CheckpointStrategy, ndarray::NdArrayTensor,
};
use burn::tensor::{Shape, Tensor, TensorMetadata, backend::Backend, ops::FloatTensor};
use rayon::prelude::*;

use crate::cpu_float::{CpuFloat, FloatKind, kind, row_major, tensor_of};
use crate::unary_node::{self, UnaryOp};
use crate::{KernelBackend, float};

/// Output rows (one head at one position, `d` values) per rayon task.
const ROWS_PER_TASK: usize = 64;

/// `[b, t, n, d]` of `x`, checked against tables `[b, 1, t, d]` of the same `d` (even).
fn checked_dims(x: &[usize], table: &[usize]) -> [usize; 4] {
    assert!(
        x.len() == 4 && table.len() == 4,
        "RoPE needs x [b, t, n, d] and tables [b, 1, t, d], got {x:?} and {table:?}"
    );
    let [b, t, n, d] = [x[0], x[1], x[2], x[3]];
    assert!(
        table == [b, 1, t, d] && d % 2 == 0,
        "RoPE tables must be [{b}, 1, {t}, {d}] with an even head width, got {table:?}"
    );
    [b, t, n, d]
}

/// The sizes of a shape.
fn dims_of(shape: &Shape) -> Vec<usize> {
    (0..shape.num_dims()).map(|axis| shape[axis]).collect()
}

/// `[x1, x2] → [-x2, x1]` over the last axis.
fn rotate_half<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    let [b, n, t, d] = x.dims();
    let x1 = x.clone().slice([0..b, 0..n, 0..t, 0..d / 2]);
    let x2 = x.slice([0..b, 0..n, 0..t, d / 2..d]);
    Tensor::cat(vec![x2.neg(), x1], 3)
}

/// The rotation in plain Burn operations: `[b, t, n, d]` → `[b, n, t, d]`.
pub(crate) fn plain<B: Backend>(
    x: FloatTensor<B>,
    cos: FloatTensor<B>,
    sin: FloatTensor<B>,
) -> FloatTensor<B> {
    checked_dims(&dims_of(&x.shape()), &dims_of(&cos.shape()));
    let x: Tensor<B, 4> = float::<B, 4>(x).swap_dims(1, 2);
    let (cos, sin): (Tensor<B, 4>, Tensor<B, 4>) = (float(cos), float(sin));
    let y = x.clone() * cos + rotate_half(x) * sin;
    y.into_primitive().tensor()
}

/// The plain backward: `[b, n, t, d]` gradient → `[b, t, n, d]`.
pub(crate) fn plain_backward<B: Backend>(
    grad: FloatTensor<B>,
    cos: FloatTensor<B>,
    sin: FloatTensor<B>,
) -> FloatTensor<B> {
    let grad: Tensor<B, 4> = float(grad);
    let [b, n, t, d] = grad.dims();
    let (cos, sin): (Tensor<B, 4>, Tensor<B, 4>) = (float(cos), float(sin));
    let scaled = grad.clone() * sin;
    let u1 = scaled.clone().slice([0..b, 0..n, 0..t, 0..d / 2]);
    let u2 = scaled.slice([0..b, 0..n, 0..t, d / 2..d]);
    let dx = grad * cos + Tensor::cat(vec![u2, u1.neg()], 3);
    dx.swap_dims(1, 2).into_primitive().tensor()
}

/// The fused CPU forward (f32 or f64).
pub(crate) fn cpu(x: NdArrayTensor, cos: NdArrayTensor, sin: NdArrayTensor) -> NdArrayTensor {
    match kind(&x) {
        FloatKind::F32 => cpu_pass::<f32>(x, cos, sin, Direction::Forward),
        FloatKind::F64 => cpu_pass::<f64>(x, cos, sin, Direction::Forward),
    }
}

/// The fused CPU backward (f32 or f64).
pub(crate) fn cpu_backward(
    grad: NdArrayTensor,
    cos: NdArrayTensor,
    sin: NdArrayTensor,
) -> NdArrayTensor {
    match kind(&grad) {
        FloatKind::F32 => cpu_pass::<f32>(grad, cos, sin, Direction::Backward),
        FloatKind::F64 => cpu_pass::<f64>(grad, cos, sin, Direction::Backward),
    }
}

/// Which way a CPU pass goes.
#[derive(Debug, Clone, Copy)]
enum Direction {
    /// `x` `[b, t, n, d]` → `y` `[b, n, t, d]`.
    Forward,
    /// `g` `[b, n, t, d]` → `dx` `[b, t, n, d]`.
    Backward,
}

/// One parallel pass over the output rows; each reads its input row and the table row of its
/// batch and position.
fn cpu_pass<E: CpuFloat>(
    input: NdArrayTensor,
    cos: NdArrayTensor,
    sin: NdArrayTensor,
    direction: Direction,
) -> NdArrayTensor {
    let (input, cos, sin) = (E::array(input), E::array(cos), E::array(sin));
    let dims = input.shape().to_vec();
    // The `[b, t, n, d]` side: the forward's input, the backward's output.
    let [b, t, n, d] = match direction {
        Direction::Forward => checked_dims(&dims, cos.shape()),
        Direction::Backward => {
            assert!(
                dims.len() == 4,
                "RoPE's gradient must be [b, n, t, d], got {dims:?}"
            );
            checked_dims(&[dims[0], dims[2], dims[1], dims[3]], cos.shape())
        }
    };
    let (input, cos, sin) = (row_major(&input), row_major(&cos), row_major(&sin));
    let half = d / 2;
    let mut out = vec![E::zero(); input.len()];
    if d > 0 {
        out.par_chunks_mut(d)
            .enumerate()
            .with_min_len(ROWS_PER_TASK)
            .for_each(|(row, out)| {
                // Batch, position and head of this output row, and where its input row lies.
                let (batch, position, source) = match direction {
                    Direction::Forward => {
                        let (batch, head, position) = (row / (n * t), row / t % n, row % t);
                        (batch, position, ((batch * t + position) * n + head) * d)
                    }
                    Direction::Backward => {
                        let (batch, position, head) = (row / (t * n), row / n % t, row % n);
                        (batch, position, ((batch * n + head) * t + position) * d)
                    }
                };
                let x = &input[source..source + d];
                let table = (batch * t + position) * d;
                let (c, s) = (&cos[table..table + d], &sin[table..table + d]);
                for i in 0..half {
                    let (x1, x2) = (x[i], x[i + half]);
                    match direction {
                        // y1 = x1 c1 − x2 s1, y2 = x2 c2 + x1 s2.
                        Direction::Forward => {
                            out[i] = x1 * c[i] - x2 * s[i];
                            out[i + half] = x2 * c[i + half] + x1 * s[i + half];
                        }
                        // dx1 = g1 c1 + g2 s2, dx2 = g2 c2 − g1 s1.
                        Direction::Backward => {
                            out[i] = x1 * c[i] + x2 * s[i + half];
                            out[i + half] = x2 * c[i + half] - x1 * s[i];
                        }
                    }
                }
            });
    }
    let shape = match direction {
        Direction::Forward => vec![b, n, t, d],
        Direction::Backward => vec![b, t, n, d],
    };
    tensor_of(shape, out)
}

/// The rotation as a [`UnaryOp`]: the backward keeps the two tables.
#[derive(Debug)]
struct Rope;

impl UnaryOp for Rope {
    type State<B: KernelBackend> = (FloatTensor<B>, FloatTensor<B>);

    fn backward<B: KernelBackend>(
        (cos, sin): Self::State<B>,
        grad: FloatTensor<B>,
    ) -> FloatTensor<B> {
        B::rope_heads_backward(grad, cos, sin)
    }
}

/// The tracked rotation: the inner backend's forward, a node keeping the tables.
pub(crate) fn autodiff<B: KernelBackend, C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<B, C>>,
    cos: FloatTensor<Autodiff<B, C>>,
    sin: FloatTensor<Autodiff<B, C>>,
) -> FloatTensor<Autodiff<B, C>> {
    let (cos, sin) = (cos.primitive, sin.primitive);
    let y = B::rope_heads(x.primitive.clone(), cos.clone(), sin.clone());
    unary_node::tracked::<B, C, _>(Rope, &x, y, (cos, sin))
}
