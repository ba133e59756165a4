//! The device sampler (`draw_rows`, plain tensor ops) against the host sampler
//! (`Sampling::draw_with_uniform`, the oracle): the same token for greedy and for the same
//! uniform draw over many random logit rows with ties and `-inf` entries, log-probs within
//! f32 rounding, and top-k / top-p frequencies that pass a chi-square test against the exact
//! renormalised distribution computed here.

use burn::prelude::*;
use epgrpo_models::{Sampling, SamplingError, SequenceRng, draw_rows};

// The backend under test by feature: `wgpu` → Wgpu (lavapipe in CI), `cuda` → Cuda, neither →
// NdArray.
#[cfg(feature = "wgpu")]
type TestBackend = burn::backend::Wgpu;
#[cfg(all(feature = "cuda", not(feature = "wgpu")))]
type TestBackend = burn::backend::Cuda;
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
type TestBackend = burn::backend::NdArray<f32>;

/// Log-probs of the device (f32) and the host (f64, then rounded) agree this closely.
const LOGPROB_TOLERANCE: f32 = 1e-5;

/// How far a uniform draw or `top_p` is moved to tell whether the host's answer sits at a
/// rounding boundary, where the f32 device may pick the neighbour.
const BOUNDARY: f64 = 1e-5;

fn random(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> Sampling {
    Sampling::Random {
        temperature,
        top_k,
        top_p,
    }
}

/// `rows × vocab` logits from a small set of values (many ties), about one in eight `-inf`,
/// never a whole row of `-inf`.
fn logit_rows(rng: &mut SequenceRng, rows: usize, vocab: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * vocab);
    for _ in 0..rows {
        for i in 0..vocab {
            let r = rng.next_u64();
            if i > 0 && r.is_multiple_of(8) {
                out.push(f32::NEG_INFINITY);
            } else {
                // Multiples of 0.25 in [-4, 4): ties are common.
                out.push(((r >> 8) % 32) as f32 * 0.25 - 4.0);
            }
        }
    }
    out
}

fn tensor(values: &[f32], rows: usize, vocab: usize) -> Tensor<TestBackend, 2> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [rows, vocab]),
        &Default::default(),
    )
}

/// The same sampling with `top_p` moved by `delta` (kept inside `(0, 1]`).
fn nudged(sampling: &Sampling, delta: f64) -> Sampling {
    match sampling {
        Sampling::Random {
            temperature,
            top_k,
            top_p,
        } => random(
            *temperature,
            *top_k,
            top_p.map(|p| (f64::from(p) + delta).clamp(1e-6, 1.0) as f32),
        ),
        Sampling::Greedy => Sampling::Greedy,
    }
}

#[test]
fn greedy_device_draws_equal_host_draws_with_ties_and_infinities() {
    let mut rng = SequenceRng::for_sequence(1, 0, 0);
    for vocab in [1, 2, 7, 50, 301] {
        let rows = 64;
        let logits = logit_rows(&mut rng, rows, vocab);
        let device = draw_rows(&Sampling::Greedy, tensor(&logits, rows, vocab), &[])
            .unwrap()
            .to_host();
        for (r, got) in device.iter().enumerate() {
            let row = &logits[r * vocab..(r + 1) * vocab];
            let want = Sampling::Greedy.draw_with_uniform(row, 0.0);
            assert_eq!(got.token, want.token, "vocab {vocab} row {r}: {row:?}");
            assert!(
                (got.logprob - want.logprob).abs() < LOGPROB_TOLERANCE,
                "vocab {vocab} row {r}: {} vs {}",
                got.logprob,
                want.logprob
            );
        }
    }
}

#[test]
fn random_device_draws_equal_host_draws_for_the_same_uniforms() {
    let samplings = [
        random(1.0, None, None),
        random(0.7, None, None),
        random(2.0, Some(1), None),
        random(1.0, Some(3), None),
        random(1.3, Some(10), None),
        random(1.0, None, Some(0.37)),
        random(0.8, None, Some(0.83)),
        random(1.0, None, Some(1.0)),
        random(1.0, Some(5), Some(0.61)),
        random(0.5, Some(40), Some(0.93)),
    ];
    let mut rng = SequenceRng::for_sequence(2, 0, 0);
    let (mut checked, mut at_boundary) = (0usize, 0usize);
    for sampling in &samplings {
        for vocab in [1, 3, 17, 64, 257] {
            let rows = 48;
            let logits = logit_rows(&mut rng, rows, vocab);
            let uniforms: Vec<f64> = (0..rows).map(|_| rng.next_f64()).collect();
            let device = draw_rows(sampling, tensor(&logits, rows, vocab), &uniforms)
                .unwrap()
                .to_host();
            for (r, got) in device.iter().enumerate() {
                let row = &logits[r * vocab..(r + 1) * vocab];
                let u = uniforms[r];
                let want = sampling.draw_with_uniform(row, u);
                // Skip draws whose host answer changes within BOUNDARY of `u` or of `top_p`.
                let stable = [
                    sampling.draw_with_uniform(row, (u - BOUNDARY).max(0.0)),
                    sampling.draw_with_uniform(row, (u + BOUNDARY).min(1.0 - 1e-12)),
                    nudged(sampling, -BOUNDARY).draw_with_uniform(row, u),
                    nudged(sampling, BOUNDARY).draw_with_uniform(row, u),
                ]
                .iter()
                .all(|d| d.token == want.token);
                if !stable {
                    at_boundary += 1;
                    continue;
                }
                checked += 1;
                assert_eq!(
                    got.token, want.token,
                    "{sampling:?}, vocab {vocab}, row {r}, u = {u}: {row:?}"
                );
                assert!(
                    (got.logprob - want.logprob).abs() < LOGPROB_TOLERANCE,
                    "{sampling:?}, vocab {vocab}, row {r}: {} vs {}",
                    got.logprob,
                    want.logprob
                );
            }
        }
    }
    // The boundary cases are a small minority: the comparison above covers almost all draws.
    assert!(
        at_boundary * 50 < checked,
        "{at_boundary} boundary cases vs {checked} checked"
    );
}

/// The exact distribution of a truncated draw, computed from the definition: sort by logit
/// (descending, ties lower id first), keep `top_k`, renormalise `softmax(logits / T)`, keep
/// the shortest prefix with mass ≥ `top_p`, renormalise.
fn truncated_distribution(logits: &[f32], temperature: f64, top_k: usize, top_p: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order.truncate(top_k);
    let weights: Vec<f64> = order
        .iter()
        .map(|&i| (f64::from(logits[i]) / temperature).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let mut mass = 0.0;
    let mut keep = order.len();
    for (n, w) in weights.iter().enumerate() {
        mass += w / total;
        if mass >= top_p {
            keep = n + 1;
            break;
        }
    }
    let kept_total: f64 = weights[..keep].iter().sum();
    let mut p = vec![0.0; logits.len()];
    for (&i, &w) in order[..keep].iter().zip(&weights) {
        p[i] = w / kept_total;
    }
    p
}

/// Upper `1e-6` quantile of a chi-square distribution with `df` degrees of freedom
/// (Wilson–Hilferty approximation; z = 4.753 is the standard normal's upper 1e-6 quantile).
fn chi_square_critical(df: usize) -> f64 {
    let k = df as f64;
    let z = 4.753;
    k * (1.0 - 2.0 / (9.0 * k) + z * (2.0 / (9.0 * k)).sqrt()).powi(3)
}

/// Pearson's statistic of `counts` against `p`; `None` when a token outside the support
/// (p = 0) was drawn.
fn chi_square(counts: &[usize], p: &[f64], n: usize) -> Option<f64> {
    let mut stat = 0.0;
    for (&c, &q) in counts.iter().zip(p) {
        if q == 0.0 {
            if c > 0 {
                return None;
            }
            continue;
        }
        let e = q * n as f64;
        stat += (c as f64 - e).powi(2) / e;
    }
    Some(stat)
}

#[test]
fn truncated_device_frequencies_pass_chi_square_against_the_exact_distribution() {
    // Ties at 1.0 (ids 1, 2, 3, 7) straddle the top-k and top-p cuts; id 6 is -inf.
    let logits = [
        2.0f32,
        1.0,
        1.0,
        1.0,
        0.5,
        3.0,
        f32::NEG_INFINITY,
        1.0,
        0.0,
        -1.0,
        2.5,
        0.5,
    ];
    let vocab = logits.len();
    // (temperature, top_k, top_p): the cut falls inside the tie group in each case.
    let cases = [
        (1.0f32, Some(4usize), None),
        (1.5, Some(5), None),
        (1.0, None, Some(0.8f32)),
        (2.0, Some(8), Some(0.7)),
        (0.7, None, None),
    ];
    let n = 40_000;
    // Five tests, each with false-failure probability ≈ 1e-6: together < 1e-5. Fixed seeds,
    // so a pass is reproducible.
    for (case, &(temperature, top_k, top_p)) in cases.iter().enumerate() {
        let sampling = random(temperature, top_k, top_p);
        let mut rng = SequenceRng::for_sequence(3, case, 0);
        let uniforms: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        let rows: Vec<f32> = (0..n).flat_map(|_| logits).collect();
        let draws = draw_rows(&sampling, tensor(&rows, n, vocab), &uniforms)
            .unwrap()
            .to_host();
        let mut counts = vec![0usize; vocab];
        for d in &draws {
            counts[d.token as usize] += 1;
        }
        let p = truncated_distribution(
            &logits,
            f64::from(temperature),
            top_k.unwrap_or(vocab),
            top_p.map_or(1.0, f64::from),
        );
        let support = p.iter().filter(|&&q| q > 0.0).count();
        let stat = chi_square(&counts, &p, n)
            .unwrap_or_else(|| panic!("{sampling:?}: drew outside the support: {counts:?}"));
        let critical = chi_square_critical(support - 1);
        assert!(
            stat < critical,
            "{sampling:?}: chi² = {stat:.1} ≥ {critical:.1} (df {}), counts {counts:?}, p {p:?}",
            support - 1
        );
    }
}

#[test]
fn bad_sampler_inputs_are_refused() {
    let logits = tensor(&[0.0, 1.0, 2.0, 3.0], 2, 2);
    let sampling = random(1.0, None, None);
    let err = draw_rows(&sampling, logits.clone(), &[0.5]).unwrap_err();
    assert_eq!(err, SamplingError::DrawCount { rows: 2, got: 1 });
    let err = draw_rows(&sampling, logits.clone(), &[0.5, 1.0]).unwrap_err();
    assert_eq!(err, SamplingError::DrawRange { row: 1, value: 1.0 });
    let err = draw_rows(&random(0.0, None, None), logits.clone(), &[0.5, 0.5]).unwrap_err();
    assert!(matches!(
        err,
        SamplingError::InvalidSetting {
            field: "temperature",
            ..
        }
    ));
    let empty = Tensor::<TestBackend, 2>::zeros([2, 0], &Default::default());
    let err = draw_rows(&Sampling::Greedy, empty, &[]).unwrap_err();
    assert_eq!(err, SamplingError::EmptyLogits { rows: 2, vocab: 0 });
}
