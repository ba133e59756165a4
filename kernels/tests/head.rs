//! E1 through the output head, chunked (`head_logp_entropy`): values and gradients with respect
//! to the hidden states and the head weight equal the materialised path's.
//!
//! Oracle: Burn's own `matmul` for the logits, then `reference::token_logp_entropy`
//! (log_softmax + gather + sum), all on `Autodiff<NdArray<f64>>` with gradients from Burn's
//! autodiff. The loss is `Σ_n mask[n] (a[n] · logp[n] + b[n] · H[n])` with random `a`, `b` and
//! some masked (padding) rows, so masked rows must get exactly zero gradient.

use std::num::NonZeroUsize;

use burn::backend::{Autodiff, NdArray};
use burn::module::Param;
use burn::tensor::{Int, Tensor, TensorData, backend::AutodiffBackend, backend::Backend};
use epgrpo_kernels::{head_logp_entropy, reference};

mod common;

use common::Rng;

type TestAutodiff = Autodiff<NdArray>;
type Oracle = Autodiff<NdArray<f64>>;

/// Values: |a − e| ≤ ATOL + RTOL |e| (nats).
const FWD_ATOL: f64 = 1e-4;
const FWD_RTOL: f64 = 1e-4;
/// Gradients per element.
const GRAD_ATOL: f64 = 1e-5;
const GRAD_RTOL: f64 = 1e-3;

/// How the head weight enters.
#[derive(Clone, Copy, Debug)]
enum Head {
    /// A `[d, V]` parameter, trained.
    Separate,
    /// The transpose of a `[V, d]` embedding parameter (tied head), trained.
    Tied,
    /// A `[d, V]` constant (frozen head, e.g. under LoRA): only `hidden` gets a gradient.
    Frozen,
}

struct Case {
    n: usize,
    d: usize,
    v: usize,
    hidden: Vec<f32>,
    /// `[d, V]` row-major (for `Tied` read as the transpose of a `[V, d]` buffer).
    weight: Vec<f32>,
    targets: Vec<i64>,
    grad_logp: Vec<f32>,
    grad_entropy: Vec<f32>,
    mask: Vec<f32>,
}

impl Case {
    fn random(n: usize, d: usize, v: usize, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let hidden = (0..n * d).map(|_| rng.signed(2.0)).collect();
        let weight = (0..d * v).map(|_| rng.signed(1.0)).collect();
        let targets = (0..n)
            .map(|_| ((rng.uniform() * v as f64) as i64).min(v as i64 - 1))
            .collect();
        let grad_logp = (0..n).map(|_| rng.signed(1.0)).collect();
        let grad_entropy = (0..n).map(|_| rng.signed(1.0)).collect();
        // Every third row is padding.
        let mask = (0..n).map(|i| if i % 3 == 2 { 0.0 } else { 1.0 }).collect();
        Self {
            n,
            d,
            v,
            hidden,
            weight,
            targets,
            grad_logp,
            grad_entropy,
            mask,
        }
    }
}

fn to_f64<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .expect("float data")
}

fn vec1<B: Backend>(values: &[f32], device: &B::Device) -> Tensor<B, 1> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len()]), device)
}

/// Values and gradients of one evaluation.
struct Outputs {
    logp: Vec<f64>,
    entropy: Vec<f64>,
    grad_hidden: Vec<f64>,
    /// In the parameter's own layout (`[V, d]` for a tied head); empty for a frozen head.
    grad_weight: Vec<f64>,
}

/// Builds the inputs on `B`, applies `f(hidden, weight [d, V], targets)` and differentiates the
/// masked weighted sum.
fn run<B: AutodiffBackend>(
    case: &Case,
    head: Head,
    f: impl Fn(Tensor<B, 2>, Tensor<B, 2>, Tensor<B, 1, Int>) -> (Tensor<B, 1>, Tensor<B, 1>),
) -> Outputs {
    let device = Default::default();
    let hidden = Tensor::<B, 2>::from_data(
        TensorData::new(case.hidden.clone(), [case.n, case.d]),
        &device,
    )
    .require_grad();
    let (param, weight) = match head {
        Head::Separate => {
            let w = Param::from_tensor(Tensor::<B, 2>::from_data(
                TensorData::new(case.weight.clone(), [case.d, case.v]),
                &device,
            ));
            (Some(w.clone()), w.val())
        }
        Head::Tied => {
            // The same numbers as `weight`, stored as its `[V, d]` transpose.
            let mut embedding = vec![0.0f32; case.v * case.d];
            for i in 0..case.d {
                for j in 0..case.v {
                    embedding[j * case.d + i] = case.weight[i * case.v + j];
                }
            }
            let e = Param::from_tensor(Tensor::<B, 2>::from_data(
                TensorData::new(embedding, [case.v, case.d]),
                &device,
            ));
            (Some(e.clone()), e.val().transpose())
        }
        Head::Frozen => (
            None,
            Tensor::from_data(
                TensorData::new(case.weight.clone(), [case.d, case.v]),
                &device,
            ),
        ),
    };
    let targets =
        Tensor::<B, 1, Int>::from_data(TensorData::new(case.targets.clone(), [case.n]), &device);
    let (logp, entropy) = f(hidden.clone(), weight, targets);
    let mask = vec1::<B>(&case.mask, &device);
    let loss = (logp.clone() * vec1::<B>(&case.grad_logp, &device)
        + entropy.clone() * vec1::<B>(&case.grad_entropy, &device))
        * mask.clone();
    let grads = loss.sum().backward();
    Outputs {
        logp: to_f64((logp * mask.clone()).inner()),
        entropy: to_f64((entropy * mask).inner()),
        grad_hidden: to_f64(hidden.grad(&grads).expect("hidden gradient")),
        grad_weight: param
            .map(|p| to_f64(p.val().grad(&grads).expect("weight gradient")))
            .unwrap_or_default(),
    }
}

fn oracle(case: &Case, head: Head) -> Outputs {
    run::<Oracle>(case, head, |h, w, t| {
        reference::token_logp_entropy(h.matmul(w), t, 0.7)
    })
}

fn fused(case: &Case, head: Head, chunk: usize) -> Outputs {
    let chunk = NonZeroUsize::new(chunk).expect("chunk > 0");
    run::<TestAutodiff>(case, head, |h, w, t| head_logp_entropy(h, w, t, 0.7, chunk))
}

fn assert_close(what: &str, actual: &[f64], expected: &[f64], atol: f64, rtol: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= atol + rtol * e.abs(),
            "{what}[{i}]: {a} vs {e} (|Δ| = {})",
            (a - e).abs()
        );
    }
}

fn check(case: &Case, head: Head, chunk: usize) {
    let expected = oracle(case, head);
    let actual = fused(case, head, chunk);
    let label = |what: &str| format!("{head:?}, chunk {chunk}: {what}");
    assert_close(
        &label("logp"),
        &actual.logp,
        &expected.logp,
        FWD_ATOL,
        FWD_RTOL,
    );
    assert_close(
        &label("H"),
        &actual.entropy,
        &expected.entropy,
        FWD_ATOL,
        FWD_RTOL,
    );
    assert_close(
        &label("d hidden"),
        &actual.grad_hidden,
        &expected.grad_hidden,
        GRAD_ATOL,
        GRAD_RTOL,
    );
    assert_close(
        &label("d weight"),
        &actual.grad_weight,
        &expected.grad_weight,
        GRAD_ATOL,
        GRAD_RTOL,
    );
    // Padding rows: nothing flows back into their hidden state.
    for (row, &m) in case.mask.iter().enumerate() {
        if m == 0.0 {
            let g = &actual.grad_hidden[row * case.d..(row + 1) * case.d];
            assert!(
                g.iter().all(|&x| x == 0.0),
                "{head:?}: padding row {row} got {g:?}"
            );
        }
    }
}

#[test]
fn chunked_head_equals_the_materialised_head_for_every_chunk_size() {
    // 13 rows: chunks of 1, 4 (does not divide 13), 13 (one chunk) and 64 (larger than N).
    let case = Case::random(13, 8, 37, 1);
    for chunk in [1, 4, 13, 64] {
        check(&case, Head::Separate, chunk);
    }
}

#[test]
fn a_tied_head_gets_its_gradient_through_the_transpose() {
    let case = Case::random(10, 6, 29, 2);
    for chunk in [3, 10] {
        check(&case, Head::Tied, chunk);
    }
}

#[test]
fn a_frozen_head_gives_the_hidden_gradient_only() {
    let case = Case::random(9, 5, 23, 3);
    check(&case, Head::Frozen, 4);
}

#[test]
fn without_a_graph_the_chunked_head_equals_the_materialised_one() {
    let case = Case::random(11, 7, 31, 4);
    let device = Default::default();
    let hidden = Tensor::<NdArray, 2>::from_data(
        TensorData::new(case.hidden.clone(), [case.n, case.d]),
        &device,
    );
    let weight = Tensor::<NdArray, 2>::from_data(
        TensorData::new(case.weight.clone(), [case.d, case.v]),
        &device,
    );
    let targets = Tensor::<NdArray, 1, Int>::from_data(
        TensorData::new(case.targets.clone(), [case.n]),
        &device,
    );
    let expected =
        reference::token_logp_entropy(hidden.clone().matmul(weight.clone()), targets.clone(), 0.7);
    let (logp, entropy) =
        head_logp_entropy(hidden, weight, targets, 0.7, NonZeroUsize::new(5).unwrap());
    assert_close(
        "logp",
        &to_f64(logp),
        &to_f64(expected.0),
        FWD_ATOL,
        FWD_RTOL,
    );
    assert_close(
        "H",
        &to_f64(entropy),
        &to_f64(expected.1),
        FWD_ATOL,
        FWD_RTOL,
    );
}

/// The point of the chunking: forward + backward of a chunked head never holds `[N, V]` logits.
/// Peak resident memory (growth of VmHWM, Linux) stays under a quarter of one `[N, V]` f32
/// buffer. With the whole batch in one chunk the same code grew by about 840 MB (6× the logits:
/// E1's temporaries on NdArray); with chunks of 64 rows it stays under 32 MB. The other tests of
/// this binary are tiny, so running them in parallel does not move the high-water mark.
#[cfg(target_os = "linux")]
#[test]
fn a_chunked_head_does_not_allocate_tokens_by_vocabulary() {
    let (n, d, v) = (4096, 16, 8192);
    let logits_bytes = (n * v * 4) as f64; // 128 MiB
    let device = Default::default();
    let hidden = Tensor::<TestAutodiff, 2>::random(
        [n, d],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &device,
    )
    .require_grad();
    let weight = Param::from_tensor(Tensor::<TestAutodiff, 2>::random(
        [d, v],
        burn::tensor::Distribution::Uniform(-1.0, 1.0),
        &device,
    ));
    let targets = Tensor::<TestAutodiff, 1, Int>::zeros([n], &device);
    let before = peak_rss_bytes();
    let (logp, entropy) = head_logp_entropy(
        hidden.clone(),
        weight.val(),
        targets,
        1.0,
        NonZeroUsize::new(64).unwrap(),
    );
    let grads = (logp + entropy).sum().backward();
    let dh = hidden.grad(&grads).expect("hidden gradient");
    assert_eq!(dh.dims(), [n, d]);
    let growth = peak_rss_bytes() - before;
    assert!(
        growth < 0.25 * logits_bytes,
        "peak RSS grew by {growth} bytes, logits would be {logits_bytes}"
    );
}

#[cfg(target_os = "linux")]
fn peak_rss_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM line");
    kb * 1024.0
}
