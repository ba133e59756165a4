//! Reads the `reference.json` files written by `fixtures/make_fixtures.py` and turns their token
//! batches into Burn tensors.

use std::path::PathBuf;

use burn::prelude::*;
use epgrpo_models::LeftPadding;
use serde::Deserialize;

/// The CPU test backend.
// The backend under test by feature: `wgpu` → Wgpu (lavapipe in CI), `cuda` → Cuda, neither →
// NdArray.
#[cfg(feature = "wgpu")]
pub type TestBackend = burn::backend::Wgpu;
#[cfg(all(feature = "cuda", not(feature = "wgpu")))]
pub type TestBackend = burn::backend::Cuda;
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
pub type TestBackend = burn::backend::NdArray<f32>;

/// Its device.
pub type Device = <TestBackend as burn::tensor::backend::BackendTypes>::Device;

/// One token batch and the logits transformers computed for it.
#[derive(Debug, Deserialize)]
pub struct Case {
    pub name: String,
    pub tokens: Vec<Vec<i64>>,
    pub left_pad: Vec<usize>,
    pub shape: [usize; 3],
    pub logits: Vec<f32>,
}

#[derive(Debug, Deserialize)]
struct Reference {
    cases: Vec<Case>,
}

/// The directory of fixture `name` (e.g. `"llama"`).
pub fn fixture_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The cases of fixture `name`.
pub fn cases(name: &str) -> Vec<Case> {
    let path = fixture_dir(name).join("reference.json");
    let text = std::fs::read_to_string(&path).expect("fixture reference.json is readable");
    let reference: Reference = serde_json::from_str(&text).expect("reference.json parses");
    reference.cases
}

impl Case {
    /// The token batch as an Int tensor `[batch, seq]`.
    pub fn token_tensor(&self, device: &Device) -> Tensor<TestBackend, 2, Int> {
        tokens_tensor(&self.tokens, device)
    }

    /// The batch layout.
    pub fn padding(&self) -> LeftPadding {
        LeftPadding::new(self.left_pad.clone())
    }
}

/// Rows of equal length as an Int tensor `[batch, seq]`.
pub fn tokens_tensor(rows: &[Vec<i64>], device: &Device) -> Tensor<TestBackend, 2, Int> {
    let seq = rows.first().map_or(0, Vec::len);
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [rows.len(), seq]), device)
}

/// Largest absolute difference between `got` and `want` (both `[batch, seq, vocab]`, flattened)
/// over the non-filler positions of `padding`.
pub fn max_abs_diff(got: &[f32], want: &[f32], shape: [usize; 3], pad: &[usize]) -> f32 {
    let [b, t, v] = shape;
    assert_eq!(got.len(), b * t * v);
    assert_eq!(want.len(), b * t * v);
    let mut worst = 0.0f32;
    for (row, &first) in pad.iter().enumerate().take(b) {
        for pos in first..t {
            let at = (row * t + pos) * v;
            for i in at..at + v {
                let d = (got[i] - want[i]).abs();
                assert!(d.is_finite(), "non-finite logit at row {row} pos {pos}");
                worst = worst.max(d);
            }
        }
    }
    worst
}
