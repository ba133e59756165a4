//! Parity of the fused E1 implementation (forward and gradient) with the plain-Burn reference.
//!
//! The backend under test is chosen by feature (`wgpu` → `Wgpu` CubeCL kernels, `cuda` → `Cuda`
//! CubeCL kernels, neither → the NdArray fallback). The oracle is always
//! `reference::token_logp_entropy` (log_softmax + gather + sum) on `Autodiff<NdArray<f64>>`, with
//! its gradient from Burn's autodiff.

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Int, Tensor, TensorData, TensorPrimitive, backend::Backend};
use epgrpo_kernels::{KernelBackend, reference, token_logp_entropy, token_logp_entropy_grad};

mod common;

use common::{Rng, TestBackend};

type TestAutodiff = Autodiff<TestBackend>;
type Oracle = Autodiff<NdArray<f64>>;

/// Forward tolerance: |a − e| ≤ ATOL + RTOL |e| for logp and H (nats).
const FWD_ATOL: f64 = 2e-4;
const FWD_RTOL: f64 = 1e-4;
/// Gradient tolerance per logit.
const GRAD_ATOL: f64 = 2e-5;
const GRAD_RTOL: f64 = 1e-3;

/// One test input: row-major logits `[n, v]`, targets, and upstream gradients for logp and H.
struct Case {
    n: usize,
    v: usize,
    logits: Vec<f32>,
    targets: Vec<i64>,
    grad_logp: Vec<f32>,
    grad_entropy: Vec<f32>,
}

impl Case {
    /// Logits uniform in `[-scale, scale]`, random targets and upstream gradients in [-1, 1].
    fn random(n: usize, v: usize, scale: f64, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let logits = (0..n * v)
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * scale) as f32)
            .collect();
        let targets = (0..n).map(|_| rng.below(v) as i64).collect();
        let grad_logp = (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect();
        let grad_entropy = (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) as f32).collect();
        Self {
            n,
            v,
            logits,
            targets,
            grad_logp,
            grad_entropy,
        }
    }

    fn set(&mut self, row: usize, col: usize, value: f32) {
        self.logits[row * self.v + col] = value;
    }

    fn mask_row(&mut self, row: usize) {
        for col in 0..self.v {
            self.set(row, col, f32::NEG_INFINITY);
        }
    }

    fn logits<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(self.logits.clone(), [self.n, self.v]),
            device,
        )
    }

    fn targets<B: Backend>(&self, device: &B::Device) -> Tensor<B, 1, Int> {
        Tensor::from_data(TensorData::new(self.targets.clone(), [self.n]), device)
    }

    fn row_vec<B: Backend>(values: &[f32], device: &B::Device) -> Tensor<B, 1> {
        Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
    }
}

/// Forward results and the gradient of `Σ g_lp·logp + Σ g_H·H` with respect to the logits.
struct Outputs {
    logp: Vec<f64>,
    entropy: Vec<f64>,
    grad: Vec<f64>,
}

fn to_f64<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .expect("float data")
}

/// Which outputs the test loss uses (the unused one gets a zero upstream gradient).
#[derive(Clone, Copy, Debug)]
enum Uses {
    Both,
    LogpOnly,
    EntropyOnly,
}

fn weights(case: &Case, uses: Uses) -> (Vec<f32>, Vec<f32>) {
    let zeros = vec![0.0; case.n];
    match uses {
        Uses::Both => (case.grad_logp.clone(), case.grad_entropy.clone()),
        Uses::LogpOnly => (case.grad_logp.clone(), zeros),
        Uses::EntropyOnly => (zeros, case.grad_entropy.clone()),
    }
}

/// Runs `f` (the reference or the fused op) under autodiff and returns values and gradient.
fn run<B: burn::tensor::backend::AutodiffBackend>(
    case: &Case,
    temperature: f64,
    uses: Uses,
    f: impl Fn(Tensor<B, 2>, Tensor<B, 1, Int>, f64) -> (Tensor<B, 1>, Tensor<B, 1>),
) -> Outputs {
    let device = B::Device::default();
    let logits = case.logits::<B>(&device).require_grad();
    let (logp, entropy) = f(logits.clone(), case.targets(&device), temperature);
    let (w_lp, w_h) = weights(case, uses);
    let mut loss = Tensor::<B, 1>::zeros([1], &device);
    if !matches!(uses, Uses::EntropyOnly) {
        loss = loss + (logp.clone() * Case::row_vec::<B>(&w_lp, &device)).sum();
    }
    if !matches!(uses, Uses::LogpOnly) {
        loss = loss + (entropy.clone() * Case::row_vec::<B>(&w_h, &device)).sum();
    }
    let grads = loss.backward();
    let grad = logits.grad(&grads).expect("logits gradient");
    Outputs {
        logp: to_f64(logp.inner()),
        entropy: to_f64(entropy.inner()),
        grad: to_f64(grad),
    }
}

fn oracle(case: &Case, temperature: f64, uses: Uses) -> Outputs {
    run::<Oracle>(case, temperature, uses, reference::token_logp_entropy)
}

fn fused(case: &Case, temperature: f64, uses: Uses) -> Outputs {
    run::<TestAutodiff>(case, temperature, uses, token_logp_entropy)
}

/// Elementwise closeness; infinities must match exactly, NaN never passes.
fn assert_close(what: &str, actual: &[f64], expected: &[f64], atol: f64, rtol: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    let mut worst = (0.0f64, 0usize);
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(!a.is_nan(), "{what}[{i}]: NaN (expected {e})");
        assert!(!e.is_nan(), "{what}[{i}]: oracle NaN");
        if e.is_infinite() || a.is_infinite() {
            assert_eq!(a, e, "{what}[{i}]: infinity mismatch");
            continue;
        }
        let excess = (a - e).abs() - (atol + rtol * e.abs());
        if excess > worst.0 {
            worst = (excess, i);
        }
    }
    let i = worst.1;
    assert!(
        worst.0 <= 0.0,
        "{what}[{i}]: got {}, expected {} (atol {atol}, rtol {rtol})",
        actual[i],
        expected[i]
    );
}

fn check(case: &Case, temperature: f64, uses: Uses) {
    let label = format!("n={} v={} T={temperature} {uses:?}", case.n, case.v);
    let expected = oracle(case, temperature, uses);
    let actual = fused(case, temperature, uses);
    let fwd = |name: &str| format!("{label}: {name}");
    assert_close(
        &fwd("logp"),
        &actual.logp,
        &expected.logp,
        FWD_ATOL,
        FWD_RTOL,
    );
    assert_close(
        &fwd("entropy"),
        &actual.entropy,
        &expected.entropy,
        FWD_ATOL,
        FWD_RTOL,
    );
    assert_close(
        &fwd("grad"),
        &actual.grad,
        &expected.grad,
        GRAD_ATOL,
        GRAD_RTOL,
    );
}

#[test]
fn random_logits_match_reference_at_each_temperature() {
    for (seed, &temperature) in [0.5, 1.0, 2.0].iter().enumerate() {
        let case = Case::random(5, 137, 4.0, 10 + seed as u64);
        check(&case, temperature, Uses::Both);
    }
}

#[test]
fn large_odd_vocabulary_matches_reference() {
    let case = Case::random(3, 32_001, 6.0, 20);
    check(&case, 1.0, Uses::Both);
    check(&case, 0.5, Uses::LogpOnly);
}

#[test]
fn single_row_and_tiny_vocabularies_match_reference() {
    check(&Case::random(1, 137, 3.0, 30), 1.0, Uses::Both);
    check(&Case::random(1, 1, 3.0, 31), 1.0, Uses::Both);
    check(&Case::random(2, 2, 3.0, 32), 2.0, Uses::Both);
    check(&Case::random(4, 33, 3.0, 33), 0.5, Uses::Both);
}

#[test]
fn more_rows_than_one_grid_axis_match_reference() {
    let mut case = Case::random(70_000, 5, 3.0, 40);
    case.mask_row(65_535);
    case.mask_row(69_999);
    check(&case, 1.0, Uses::Both);
}

#[test]
fn peaked_logits_match_reference() {
    // Large magnitudes: most probabilities underflow to 0 in f32, the maximum dominates.
    let case = Case::random(4, 1000, 80.0, 50);
    check(&case, 1.0, Uses::Both);
}

#[test]
fn negative_infinity_logits_count_zero() {
    let mut case = Case::random(6, 137, 4.0, 60);
    for col in (0..137).step_by(3) {
        case.set(0, col, f32::NEG_INFINITY);
    }
    // Row 1: only the target and one other token are finite.
    let target = case.targets[1] as usize;
    for col in 0..137 {
        if col != target && col != (target + 1) % 137 {
            case.set(1, col, f32::NEG_INFINITY);
        }
    }
    // Row 2: the target itself is -inf, so logp = -inf.
    let target = case.targets[2] as usize;
    case.set(2, target, f32::NEG_INFINITY);
    // Row 3: a single finite logit, which is the target: logp = 0, H = 0.
    let target = case.targets[3] as usize;
    case.mask_row(3);
    case.set(3, target, 1.5);
    // Row 4: the first thread-strided block is entirely -inf.
    for col in 0..64 {
        case.set(4, col, f32::NEG_INFINITY);
    }
    for temperature in [0.5, 1.0, 2.0] {
        check(&case, temperature, Uses::Both);
    }
    let fused = fused(&case, 1.0, Uses::Both);
    assert_eq!(fused.logp[2], f64::NEG_INFINITY);
    assert_eq!(fused.logp[3], 0.0);
    assert_eq!(fused.entropy[3], 0.0);
}

#[test]
fn masked_rows_give_zero_outputs_and_zero_gradient() {
    let mut case = Case::random(4, 137, 4.0, 70);
    case.mask_row(0);
    case.mask_row(2);
    for uses in [Uses::Both, Uses::LogpOnly, Uses::EntropyOnly] {
        check(&case, 1.0, uses);
        let out = fused(&case, 1.0, uses);
        for row in [0, 2] {
            assert_eq!(out.logp[row], 0.0, "masked row {row}: logp");
            assert_eq!(out.entropy[row], 0.0, "masked row {row}: entropy");
            let grads = &out.grad[row * 137..(row + 1) * 137];
            assert!(grads.iter().all(|&g| g == 0.0), "masked row {row}: grad");
        }
    }
}

#[test]
fn one_used_output_gives_its_own_gradient() {
    let case = Case::random(3, 300, 4.0, 80);
    check(&case, 1.0, Uses::LogpOnly);
    check(&case, 2.0, Uses::EntropyOnly);
}

#[test]
fn entropy_is_bounded_and_uniform_rows_reach_log_v() {
    let mut case = Case::random(3, 500, 4.0, 90);
    for col in 0..500 {
        case.set(1, col, 0.25);
    }
    let out = fused(&case, 1.0, Uses::Both);
    let log_v = (500f64).ln();
    assert!(
        (out.entropy[1] - log_v).abs() < 1e-4,
        "uniform row: {}",
        out.entropy[1]
    );
    assert!(
        (out.logp[1] + log_v).abs() < 1e-4,
        "uniform row logp: {}",
        out.logp[1]
    );
    for (&h, &lp) in out.entropy.iter().zip(&out.logp) {
        assert!(
            (0.0..=log_v + 1e-4).contains(&h),
            "entropy {h} outside [0, ln V]"
        );
        assert!(lp <= 1e-6, "logp {lp} > 0");
    }
}

#[test]
fn explicit_backward_matches_reference_gradient() {
    let mut case = Case::random(4, 211, 4.0, 100);
    case.mask_row(1);
    case.set(2, 7, f32::NEG_INFINITY);
    let expected = oracle(&case, 0.5, Uses::Both);
    let device = Default::default();
    let grad = token_logp_entropy_grad::<TestBackend>(
        case.logits(&device),
        case.targets(&device),
        0.5,
        Case::row_vec(&case.grad_logp, &device),
        Case::row_vec(&case.grad_entropy, &device),
    );
    assert_close("grad", &to_f64(grad), &expected.grad, GRAD_ATOL, GRAD_RTOL);
}

#[test]
fn non_contiguous_logits_are_accepted() {
    // Build [V, N] and transpose: the op must not assume a row-major input.
    let case = Case::random(6, 137, 4.0, 110);
    let device = Default::default();
    let transposed: Vec<f32> = (0..case.v)
        .flat_map(|col| (0..case.n).map(move |row| (row, col)))
        .map(|(row, col)| case.logits[row * case.v + col])
        .collect();
    let logits =
        Tensor::<TestBackend, 2>::from_data(TensorData::new(transposed, [case.v, case.n]), &device)
            .transpose();
    let (logp, entropy) = token_logp_entropy(logits, case.targets(&device), 1.0);
    let expected = oracle(&case, 1.0, Uses::Both);
    assert_close("logp", &to_f64(logp), &expected.logp, FWD_ATOL, FWD_RTOL);
    assert_close(
        "entropy",
        &to_f64(entropy),
        &expected.entropy,
        FWD_ATOL,
        FWD_RTOL,
    );
}

#[test]
fn logits_produced_on_device_are_accepted() {
    // The output of a device op (here x · 1) is allocated by the backend, which may pad its rows
    // (CUDA does); the kernels must address rows by stride.
    let case = Case::random(5, 211, 4.0, 120);
    let device = Default::default();
    let logits = case.logits::<TestBackend>(&device).mul_scalar(1.0);
    let (logp, entropy) = token_logp_entropy(logits.clone(), case.targets(&device), 0.5);
    let expected = oracle(&case, 0.5, Uses::Both);
    assert_close("logp", &to_f64(logp), &expected.logp, FWD_ATOL, FWD_RTOL);
    assert_close(
        "entropy",
        &to_f64(entropy),
        &expected.entropy,
        FWD_ATOL,
        FWD_RTOL,
    );
    let grad = token_logp_entropy_grad::<TestBackend>(
        logits,
        case.targets(&device),
        0.5,
        Case::row_vec(&case.grad_logp, &device),
        Case::row_vec(&case.grad_entropy, &device),
    );
    assert_close("grad", &to_f64(grad), &expected.grad, GRAD_ATOL, GRAD_RTOL);
}

#[test]
fn log_normalizer_is_logsumexp_and_neg_infinity_on_masked_rows() {
    let mut case = Case::random(5, 137, 4.0, 130);
    case.mask_row(1);
    let temperature = 0.5;
    let device = Default::default();
    let stats = TestBackend::token_stats(
        case.logits::<TestBackend>(&device)
            .into_primitive()
            .tensor(),
        case.targets::<TestBackend>(&device).into_primitive(),
        temperature as f32,
    );
    let actual = to_f64(Tensor::<TestBackend, 1>::from_primitive(
        TensorPrimitive::Float(stats.log_normalizer),
    ));
    // Host logsumexp in f64 of the finite logits / T.
    let expected: Vec<f64> = case
        .logits
        .chunks(case.v)
        .map(|row| {
            let z: Vec<f64> = row.iter().map(|&x| f64::from(x) / temperature).collect();
            let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if max == f64::NEG_INFINITY {
                return max;
            }
            max + z.iter().map(|&v| (v - max).exp()).sum::<f64>().ln()
        })
        .collect();
    assert_eq!(actual[1], f64::NEG_INFINITY);
    assert_close("log_normalizer", &actual, &expected, FWD_ATOL, FWD_RTOL);
}
