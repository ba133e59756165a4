//! The decoder's fused operations (attention probabilities, SwiGLU, RMSNorm, RoPE) against their
//! definitions written as plain Burn ops on `Autodiff<NdArray<f64>>`: values and the gradients
//! of a random linear loss, from Burn's own autodiff.
//!
//! The backend under test is chosen by feature as in `parity.rs` (neither → NdArray, whose
//! fused row loops these are; on the CubeCL backends the operations are Burn's ops).

use burn::backend::{Autodiff, NdArray};
use burn::tensor::activation::{silu, softmax};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use epgrpo_kernels::{attention_probs, rms_norm, rope_heads, swiglu};

mod common;

use common::{TestBackend, values};

type TestAutodiff = Autodiff<TestBackend>;
type Oracle = Autodiff<NdArray<f64>>;

/// |a − e| ≤ ATOL + RTOL |e|, for f32 values against the f64 oracle.
const ATOL: f64 = 2e-5;
const RTOL: f64 = 2e-4;

fn tensor<B: Backend, const D: usize>(data: &[f64], shape: [usize; D]) -> Tensor<B, D> {
    let device = Default::default();
    Tensor::from_data(TensorData::new(data.to_vec(), shape), &device)
}

fn host<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .into_vec::<f64>()
        .expect("float data")
}

fn assert_close(what: &str, actual: &[f64], expected: &[f64]) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= ATOL + RTOL * e.abs(),
            "{what}[{i}]: {a} vs {e}"
        );
    }
}

/// Causal bias `[b, 1, t, k]` over `k = t` keys with the first `pad[row]` keys of each batch row
/// masked (left padding), as `LeftPadding::attention_bias` builds it: 0 or −1e9.
fn causal_bias(b: usize, t: usize, pad: &[usize]) -> Vec<f64> {
    let mut bias = Vec::with_capacity(b * t * t);
    for &p in pad.iter().take(b) {
        for query in 0..t {
            for key in 0..t {
                let masked = key > query || (key < p && query >= p);
                bias.push(if masked { -1e9 } else { 0.0 });
            }
        }
    }
    bias
}

#[test]
fn attention_probabilities_and_their_gradient_match_softmax() {
    // b = 2, 3 key/value heads, group 2 stacked along the query axis, t = k = 5.
    let (b, n, group, t) = (2, 3, 2, 5);
    let scale = 0.35;
    let scores = values(b * n * group * t * t, 1, 4.0);
    let bias = causal_bias(b, t, &[0, 2]);
    let upstream = values(scores.len(), 2, 1.0);
    let shape = [b, n, group * t, t];

    let s = tensor::<TestAutodiff, 4>(&scores, shape).require_grad();
    let probs = attention_probs(s.clone(), tensor(&bias, [b, 1, t, t]), scale);
    let loss = (probs.clone() * tensor::<TestAutodiff, 4>(&upstream, shape)).sum();
    let grad = s.grad(&loss.backward()).expect("scores gradient");

    let so = tensor::<Oracle, 4>(&scores, shape).require_grad();
    let z = so.clone().reshape([b, n, group, t, t]) * scale as f64
        + tensor::<Oracle, 4>(&bias, [b, 1, t, t]).unsqueeze_dim::<5>(2);
    let expected = softmax(z, 4).reshape(shape);
    let loss_o = (expected.clone() * tensor::<Oracle, 4>(&upstream, shape)).sum();
    let grad_o = so.grad(&loss_o.backward()).expect("oracle gradient");

    assert_close("probabilities", &host(probs), &host(expected));
    assert_close("d scores", &host(grad), &host(grad_o));
}

#[test]
fn swiglu_and_its_gradients_match_silu_times_up() {
    let shape = [2, 3, 7];
    let gate = values(42, 3, 6.0);
    let up = values(42, 4, 2.0);
    let upstream = values(42, 5, 1.0);

    let (g, u) = (
        tensor::<TestAutodiff, 3>(&gate, shape).require_grad(),
        tensor::<TestAutodiff, 3>(&up, shape).require_grad(),
    );
    let y = swiglu(g.clone(), u.clone());
    let grads = (y.clone() * tensor::<TestAutodiff, 3>(&upstream, shape))
        .sum()
        .backward();

    let (go, uo) = (
        tensor::<Oracle, 3>(&gate, shape).require_grad(),
        tensor::<Oracle, 3>(&up, shape).require_grad(),
    );
    let yo = silu(go.clone()) * uo.clone();
    let grads_o = (yo.clone() * tensor::<Oracle, 3>(&upstream, shape))
        .sum()
        .backward();

    assert_close("swiglu", &host(y), &host(yo));
    assert_close(
        "d gate",
        &host(g.grad(&grads).unwrap()),
        &host(go.grad(&grads_o).unwrap()),
    );
    assert_close(
        "d up",
        &host(u.grad(&grads).unwrap()),
        &host(uo.grad(&grads_o).unwrap()),
    );
}

#[test]
fn rms_norm_and_its_gradients_match_the_definition() {
    let (shape, d) = ([2, 5, 6], 6);
    let x = values(60, 6, 3.0);
    let w = values(d, 7, 1.5);
    let upstream = values(60, 8, 1.0);
    let epsilon = 1e-5;

    let (xt, wt) = (
        tensor::<TestAutodiff, 3>(&x, shape).require_grad(),
        tensor::<TestAutodiff, 1>(&w, [d]).require_grad(),
    );
    let y = rms_norm(xt.clone(), wt.clone(), epsilon);
    let grads = (y.clone() * tensor::<TestAutodiff, 3>(&upstream, shape))
        .sum()
        .backward();

    let (xo, wo) = (
        tensor::<Oracle, 3>(&x, shape).require_grad(),
        tensor::<Oracle, 1>(&w, [d]).require_grad(),
    );
    let rms = (xo.clone().square().mean_dim(2) + epsilon).sqrt();
    let yo = xo.clone() / rms * wo.clone().unsqueeze::<3>();
    let grads_o = (yo.clone() * tensor::<Oracle, 3>(&upstream, shape))
        .sum()
        .backward();

    assert_close("rms_norm", &host(y), &host(yo));
    assert_close(
        "dx",
        &host(xt.grad(&grads).unwrap()),
        &host(xo.grad(&grads_o).unwrap()),
    );
    assert_close(
        "dw",
        &host(wt.grad(&grads).unwrap()),
        &host(wo.grad(&grads_o).unwrap()),
    );
}

#[test]
fn rope_and_its_gradient_match_the_rotation_of_the_two_halves() {
    // x [b, t, n, d] → [b, n, t, d]; per batch row and position one angle table of width d
    // whose halves are equal, as `RotaryEmbedding::tables` builds them.
    let (b, t, n, d) = (2, 5, 3, 8);
    let x = values(b * t * n * d, 11, 2.0);
    let upstream = values(b * n * t * d, 12, 1.0);
    let angles = values(b * t * d / 2, 13, 3.0);
    let table = |f: fn(f64) -> f64| -> Vec<f64> {
        angles
            .chunks(d / 2)
            .flat_map(|row| row.iter().chain(row).map(|&a| f(a)).collect::<Vec<_>>())
            .collect()
    };
    let (cos, sin) = (table(f64::cos), table(f64::sin));

    let xt = tensor::<TestAutodiff, 4>(&x, [b, t, n, d]).require_grad();
    let y = rope_heads(
        xt.clone(),
        tensor(&cos, [b, 1, t, d]),
        tensor(&sin, [b, 1, t, d]),
    );
    let grads = (y.clone() * tensor::<TestAutodiff, 4>(&upstream, [b, n, t, d]))
        .sum()
        .backward();

    // The definition: pairs (x_i, x_{i + d/2}) rotated by the angle of frequency i.
    let xo = tensor::<Oracle, 4>(&x, [b, t, n, d]).require_grad();
    let heads = xo.clone().swap_dims(1, 2);
    let x1 = heads.clone().slice([0..b, 0..n, 0..t, 0..d / 2]);
    let x2 = heads.slice([0..b, 0..n, 0..t, d / 2..d]);
    let c = tensor::<Oracle, 4>(&cos, [b, 1, t, d]).slice([0..b, 0..1, 0..t, 0..d / 2]);
    let s = tensor::<Oracle, 4>(&sin, [b, 1, t, d]).slice([0..b, 0..1, 0..t, 0..d / 2]);
    let yo = Tensor::cat(
        vec![
            x1.clone() * c.clone() - x2.clone() * s.clone(),
            x2 * c + x1 * s,
        ],
        3,
    );
    let grads_o = (yo.clone() * tensor::<Oracle, 4>(&upstream, [b, n, t, d]))
        .sum()
        .backward();

    assert_close("rope", &host(y), &host(yo));
    assert_close(
        "dx",
        &host(xt.grad(&grads).unwrap()),
        &host(xo.grad(&grads_o).unwrap()),
    );
}

#[test]
fn fused_operations_without_autodiff_match_the_tracked_ones() {
    // The inner backend's forward (generation, scoring) gives the same values as the tracked
    // forward of training.
    let (b, n, t) = (1, 2, 4);
    let scores = values(b * n * t * t, 9, 3.0);
    let bias = causal_bias(b, t, &[1]);
    let plain = attention_probs(
        tensor::<TestBackend, 4>(&scores, [b, n, t, t]),
        tensor(&bias, [b, 1, t, t]),
        0.5,
    );
    let tracked = attention_probs(
        tensor::<TestAutodiff, 4>(&scores, [b, n, t, t]).require_grad(),
        tensor(&bias, [b, 1, t, t]),
        0.5,
    );
    assert_eq!(host(plain), host(tracked));
}
