//! Rotary position embeddings in the Hugging Face `rotate_half` layout: the two halves of each
//! head (not adjacent pairs, which is what `burn::nn::RotaryEncoding` rotates) form the complex
//! pairs. For position `p` and `i < d/2`, the angle is `p · θ^(-2i/d)` and
//! `rope(x) = x ⊙ cos + rotate_half(x) ⊙ sin` with `rotate_half([x1, x2]) = [-x2, x1]`.

use burn::prelude::*;

/// Frequencies of the rotary embedding of one head width.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    inv_freq: Vec<f32>,
}

/// Cosine and sine tables for a batch of positions, ready to broadcast over heads.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    /// `cos(angle)` duplicated over both halves, `[batch, 1, seq, head_dim]`.
    pub cos: Tensor<B, 4>,
    /// `sin(angle)` duplicated over both halves, `[batch, 1, seq, head_dim]`.
    pub sin: Tensor<B, 4>,
}

impl RotaryEmbedding {
    /// Frequencies `θ^(-2i/d)`, `i < d/2`, computed in f32 as transformers does.
    pub fn new(head_dim: usize, theta: f64) -> Self {
        let theta = theta as f32;
        let inv_freq = (0..head_dim / 2)
            .map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        Self { inv_freq }
    }

    /// Builds the tables for per-row positions.
    ///
    /// # Shapes
    /// - `positions`: `batch` rows of `seq` positions each
    /// - returned tables: `[batch, 1, seq, head_dim]`
    pub fn tables<B: Backend>(
        &self,
        positions: &[Vec<usize>],
        device: &B::Device,
    ) -> RopeTables<B> {
        let batch = positions.len();
        let seq = positions.first().map_or(0, Vec::len);
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(batch * seq * 2 * half);
        let mut sin = Vec::with_capacity(batch * seq * 2 * half);
        for row in positions {
            for &p in row {
                let angles: Vec<f32> = self.inv_freq.iter().map(|f| p as f32 * f).collect();
                for _ in 0..2 {
                    cos.extend(angles.iter().map(|a| a.cos()));
                    sin.extend(angles.iter().map(|a| a.sin()));
                }
            }
        }
        let shape = [batch, 1, seq, 2 * half];
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }
}

/// Rotates queries or keys.
///
/// # Shapes
/// - `x`: `[batch, heads, seq, head_dim]`
/// - tables: `[batch, 1, seq, head_dim]`
/// - output: `[batch, heads, seq, head_dim]`
pub fn apply_rope<B: Backend>(x: Tensor<B, 4>, tables: &RopeTables<B>) -> Tensor<B, 4> {
    let [b, h, t, d] = x.dims();
    let x1 = x.clone().slice([0..b, 0..h, 0..t, 0..d / 2]);
    let x2 = x.clone().slice([0..b, 0..h, 0..t, d / 2..d]);
    let rotated = Tensor::cat(vec![x2.neg(), x1], 3);
    x * tables.cos.clone() + rotated * tables.sin.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestBackend = burn::backend::NdArray<f32>;

    #[test]
    fn rotation_matches_hand_computed_pairs() {
        let device = Default::default();
        let rope = RotaryEmbedding::new(4, 100.0);
        // head_dim 4: inv_freq = [1, 100^(-1/2) = 0.1]; position 3.
        let tables = rope.tables::<TestBackend>(&[vec![3]], &device);
        let x = Tensor::<TestBackend, 4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 1, 4]),
            &device,
        );
        let got = apply_rope(x, &tables).into_data().to_vec::<f32>().unwrap();
        // Pairs are (x0, x2) at angle 3 and (x1, x3) at angle 0.3.
        let (a, b) = (3.0f32, 0.3f32);
        let want = [
            1.0 * a.cos() - 3.0 * a.sin(),
            2.0 * b.cos() - 4.0 * b.sin(),
            3.0 * a.cos() + 1.0 * a.sin(),
            4.0 * b.cos() + 2.0 * b.sin(),
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }
}
