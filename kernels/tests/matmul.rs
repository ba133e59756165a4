//! `epgrpo_kernels::matmul` (the `gemm` product on NdArray, Burn's on CubeCL backends) against an
//! f64 triple loop on the host, forward and gradients, on odd shapes and on strided views
//! (transposes, the layouts of the decoder's `x · W`, `h · Eᵀ` and weight gradients `xᵀ · dy`).

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Element, Tensor, TensorData, backend::Backend};
use epgrpo_kernels::{KernelBackend, matmul};

mod common;

use common::TestBackend;

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    common::values(n, seed, 1.0)
}

/// A host matrix batch: `batch × rows × cols`, row-major.
#[derive(Clone)]
struct Host {
    batch: usize,
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Host {
    fn random(batch: usize, rows: usize, cols: usize, seed: u64) -> Self {
        Self {
            batch,
            rows,
            cols,
            data: values(batch * rows * cols, seed),
        }
    }

    fn at(&self, b: usize, r: usize, c: usize) -> f64 {
        self.data[(b * self.rows + r) * self.cols + c]
    }

    fn transpose(&self) -> Self {
        let mut data = Vec::with_capacity(self.data.len());
        for b in 0..self.batch {
            for c in 0..self.cols {
                for r in 0..self.rows {
                    data.push(self.at(b, r, c));
                }
            }
        }
        Self {
            batch: self.batch,
            rows: self.cols,
            cols: self.rows,
            data,
        }
    }

    /// `self · other` in f64.
    fn product(&self, other: &Host) -> Self {
        let mut data = vec![0.0; self.batch * self.rows * other.cols];
        for b in 0..self.batch {
            for r in 0..self.rows {
                for c in 0..other.cols {
                    data[(b * self.rows + r) * other.cols + c] = (0..self.cols)
                        .map(|i| self.at(b, r, i) * other.at(b, i, c))
                        .sum();
                }
            }
        }
        Self {
            batch: self.batch,
            rows: self.rows,
            cols: other.cols,
            data,
        }
    }

    /// As a tensor of the backend's float type. (Burn 0.21 keeps one default float type per
    /// device: once an `NdArray<f32>` tensor exists, `from_data` on `NdArray<f64>` makes f32
    /// tensors unless the type is named.)
    fn tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 3> {
        let data = TensorData::new(self.data.clone(), [self.batch, self.rows, self.cols]);
        Tensor::<B, 3>::from_data(data, (device, B::FloatElem::dtype()))
    }

    /// The same values stored transposed, handed over as a transposed (strided) view.
    fn strided<B: Backend>(&self, device: &B::Device) -> Tensor<B, 3> {
        self.transpose().tensor::<B>(device).swap_dims(1, 2)
    }
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data().convert::<f64>().to_vec().expect("float data")
}

fn assert_close(actual: &[f64], expected: &[f64], tol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tol * (1.0 + e.abs()),
            "{what}[{i}]: {a} vs {e} (tolerance {tol})"
        );
    }
}

/// Both operands contiguous, either transposed, both transposed; odd sizes.
fn check_forward<B: KernelBackend>(tol: f64) {
    let device = B::Device::default();
    for (batch, m, k, n) in [
        (1, 1, 1, 1),
        (1, 37, 19, 53),
        (3, 5, 70, 9),
        (2, 130, 33, 65),
        (1, 8, 40, 300),
    ] {
        let a = Host::random(batch, m, k, 1 + m as u64);
        let b = Host::random(batch, k, n, 2 + n as u64);
        let expected = a.product(&b).data;
        let cases = [
            ("contiguous", a.tensor::<B>(&device), b.tensor::<B>(&device)),
            (
                "lhs strided",
                a.strided::<B>(&device),
                b.tensor::<B>(&device),
            ),
            (
                "rhs strided",
                a.tensor::<B>(&device),
                b.strided::<B>(&device),
            ),
            (
                "both strided",
                a.strided::<B>(&device),
                b.strided::<B>(&device),
            ),
        ];
        for (label, lhs, rhs) in cases {
            let got = host(matmul(lhs, rhs));
            assert_close(
                &got,
                &expected,
                tol,
                &format!("{label} {batch}×{m}×{k}×{n}"),
            );
        }
    }
}

#[test]
fn forward_matches_f64_loop_in_f32() {
    check_forward::<TestBackend>(1e-5);
}

#[test]
fn forward_matches_f64_loop_in_f64() {
    check_forward::<NdArray<f64>>(1e-12);
}

#[test]
fn rank_two_and_rank_four_products() {
    let device = Default::default();
    let a = Host::random(1, 17, 23, 5);
    let b = Host::random(1, 23, 11, 6);
    let lhs: Tensor<TestBackend, 2> = a.tensor(&device).squeeze_dim(0);
    let rhs: Tensor<TestBackend, 2> = b.tensor(&device).squeeze_dim(0);
    assert_close(&host(matmul(lhs, rhs)), &a.product(&b).data, 1e-5, "rank 2");

    // [2, 3, m, k] × [2, 3, k, n], the right operand a transposed view (attention's `q · kᵀ`).
    let a = Host::random(6, 9, 8, 7);
    let b = Host::random(6, 8, 10, 8);
    let lhs: Tensor<TestBackend, 4> = a.tensor(&device).reshape([2, 3, 9, 8]);
    let rhs: Tensor<TestBackend, 4> = b.transpose().tensor(&device).reshape([2, 3, 10, 8]);
    let got = matmul(lhs, rhs.swap_dims(2, 3));
    assert_eq!(got.dims(), [2, 3, 9, 10]);
    assert_close(&host(got), &a.product(&b).data, 1e-5, "rank 4");
}

#[test]
fn empty_inner_size_gives_zeros() {
    let device = Default::default();
    let lhs = Tensor::<TestBackend, 2>::zeros([3, 0], &device);
    let rhs = Tensor::<TestBackend, 2>::zeros([0, 4], &device);
    let got = matmul(lhs, rhs);
    assert_eq!(got.dims(), [3, 4]);
    assert!(host(got).iter().all(|&v| v == 0.0));
}

#[test]
fn same_product_gives_the_same_bits() {
    // Large enough for the rayon pool to split the output between threads.
    let device = Default::default();
    let a = Host::random(1, 300, 200, 9).tensor::<TestBackend>(&device);
    let b = Host::random(1, 200, 400, 10).strided::<TestBackend>(&device);
    let first = matmul(a.clone(), b.clone()).into_data();
    let second = matmul(a, b).into_data();
    assert_eq!(first.as_bytes(), second.as_bytes());
}

#[test]
fn a_batch_of_products_gives_the_bits_of_each_product_alone() {
    // A batch runs one product per thread, a single product splits over the threads: the
    // summation order, and so the bits, must not depend on which.
    let device = Default::default();
    let a = Host::random(1, 300, 200, 11).tensor::<TestBackend>(&device);
    let b = Host::random(1, 200, 400, 12).tensor::<TestBackend>(&device);
    let alone = matmul(a.clone(), b.clone()).into_data();
    let batch = matmul(
        Tensor::cat(vec![a.clone(), a], 0),
        Tensor::cat(vec![b.clone(), b], 0),
    );
    for i in 0..2 {
        let one = batch
            .clone()
            .narrow(0, i, 1)
            .reshape([300, 400])
            .into_data();
        assert_eq!(one.as_bytes(), alone.as_bytes(), "batch entry {i}");
    }
}

/// Gradients of `Σ w ⊙ (A · B)` against `dA = W · Bᵀ`, `dB = Aᵀ · W` in f64, with the weight
/// gradient taken through a transposed activation as the decoder's layers do.
#[test]
fn gradients_match_f64_loop() {
    type Ad = Autodiff<TestBackend>;
    let device = Default::default();
    let (batch, m, k, n) = (2, 13, 21, 17);
    let a = Host::random(batch, m, k, 11);
    let b = Host::random(batch, k, n, 12);
    let w = Host::random(batch, m, n, 13);
    let lhs = a.strided::<Ad>(&device).require_grad();
    let rhs = b.tensor::<Ad>(&device).require_grad();
    let loss = (matmul(lhs.clone(), rhs.clone()) * w.tensor::<Ad>(&device)).sum();
    let grads = loss.backward();
    let grad_lhs = host(lhs.grad(&grads).expect("lhs gradient"));
    let grad_rhs = host(rhs.grad(&grads).expect("rhs gradient"));
    assert_close(&grad_lhs, &w.product(&b.transpose()).data, 1e-5, "dA");
    assert_close(&grad_rhs, &a.transpose().product(&w).data, 1e-5, "dB");
}

#[test]
fn frozen_operand_gets_no_gradient_and_the_other_still_does() {
    type Ad = Autodiff<TestBackend>;
    let device = Default::default();
    let a = Host::random(1, 6, 5, 14);
    let b = Host::random(1, 5, 4, 15);
    let lhs = a.tensor::<Ad>(&device).require_grad();
    let rhs = b.tensor::<Ad>(&device);
    let grads = matmul(lhs.clone(), rhs.clone()).sum().backward();
    assert!(rhs.grad(&grads).is_none());
    let ones = Host {
        data: vec![1.0; 6 * 4],
        ..Host::random(1, 6, 4, 0)
    };
    let expected = ones.product(&b.transpose()).data;
    assert_close(
        &host(lhs.grad(&grads).expect("lhs gradient")),
        &expected,
        1e-5,
        "dA",
    );
}
