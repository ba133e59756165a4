//! `LeftPadding`: how a batch of sequences of different lengths is laid out. Each row is
//! right-aligned; row `b` starts with `pad[b]` filler tokens that get no position and that no
//! query attends to. From it come the per-row RoPE positions and the additive attention bias
//! (causal + padding).

use burn::prelude::*;

/// Additive bias for masked attention scores: large enough that `exp` underflows to 0, finite
/// so that a fully masked query row (a filler position) stays finite instead of NaN.
pub const MASKED_SCORE: f32 = -1.0e9;

/// Per-row count of leading filler tokens in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftPadding {
    pad: Vec<usize>,
}

impl LeftPadding {
    /// A batch of `batch` rows without padding.
    pub fn none(batch: usize) -> Self {
        Self {
            pad: vec![0; batch],
        }
    }

    /// Padding given as the number of leading filler tokens per row.
    pub fn new(pad: Vec<usize>) -> Self {
        Self { pad }
    }

    /// Padding of right-aligned rows of the given true lengths in a `seq`-wide batch.
    ///
    /// # Panics
    /// If a length exceeds `seq`.
    pub fn from_lengths(lengths: &[usize], seq: usize) -> Self {
        assert!(
            lengths.iter().all(|&l| l <= seq),
            "a length exceeds the batch width {seq}"
        );
        Self {
            pad: lengths.iter().map(|&l| seq - l).collect(),
        }
    }

    /// Number of rows.
    pub fn batch(&self) -> usize {
        self.pad.len()
    }

    /// Leading filler tokens per row.
    pub fn pad(&self) -> &[usize] {
        &self.pad
    }

    /// Each row repeated `times` times in place (row `b` becomes rows `b*times .. (b+1)*times`).
    pub fn repeat_rows(&self, times: usize) -> Self {
        Self {
            pad: self
                .pad
                .iter()
                .flat_map(|&p| std::iter::repeat_n(p, times))
                .collect(),
        }
    }

    /// RoPE positions of the slots `offset .. offset + seq` of every row (filler slots get 0).
    pub fn positions(&self, offset: usize, seq: usize) -> Vec<Vec<usize>> {
        self.pad
            .iter()
            .map(|&p| {
                (offset..offset + seq)
                    .map(|i| i.saturating_sub(p))
                    .collect()
            })
            .collect()
    }

    /// Additive attention bias for queries at slots `offset .. offset + seq` over keys at slots
    /// `0 .. offset + seq`: 0 where the key is at or before the query and is not filler, at
    /// most [`MASKED_SCORE`] elsewhere. Built on the device from a causal `[seq, keys]` part
    /// and a per-row `[batch, keys]` filler part, so the host never writes `batch·seq·keys`
    /// values.
    ///
    /// # Shapes
    /// - output: `[batch, 1, seq, offset + seq]`
    pub fn attention_bias<B: Backend>(
        &self,
        offset: usize,
        seq: usize,
        device: &B::Device,
    ) -> Tensor<B, 4> {
        let keys = offset + seq;
        let masked = |hidden: bool| if hidden { MASKED_SCORE } else { 0.0 };
        let causal: Vec<f32> = (offset..keys)
            .flat_map(|q| (0..keys).map(move |k| masked(k > q)))
            .collect();
        let filler: Vec<f32> = self
            .pad
            .iter()
            .flat_map(|&p| (0..keys).map(move |k| masked(k < p)))
            .collect();
        let causal = Tensor::<B, 4>::from_data(TensorData::new(causal, [1, 1, seq, keys]), device);
        let filler = Tensor::<B, 4>::from_data(
            TensorData::new(filler, [self.pad.len(), 1, 1, keys]),
            device,
        );
        causal + filler
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestBackend = burn::backend::NdArray<f32>;

    #[test]
    fn positions_start_at_zero_after_filler() {
        let p = LeftPadding::from_lengths(&[3, 1], 3);
        assert_eq!(p.positions(0, 3), vec![vec![0, 1, 2], vec![0, 0, 0]]);
        assert_eq!(p.positions(3, 1), vec![vec![3], vec![1]]);
        assert_eq!(p.repeat_rows(2).pad(), &[0, 0, 2, 2]);
    }

    #[test]
    fn bias_masks_future_and_filler_keys() {
        let bias = LeftPadding::new(vec![1])
            .attention_bias::<TestBackend>(0, 3, &Default::default())
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let m = MASKED_SCORE;
        assert_eq!(bias, vec![m, m, m, m, 0.0, m, m, 0.0, 0.0]);
    }
}
