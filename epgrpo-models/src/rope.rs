//! Rotary position embeddings in the Hugging Face `rotate_half` layout: the two halves of each
//! head (not adjacent pairs, which is what `burn::nn::RotaryEncoding` rotates) form the complex
//! pairs. For position `p` and `i < d/2`, the angle is `p · θ^(-2i/d)` and
//! `rope(x) = x ⊙ cos + rotate_half(x) ⊙ sin` with `rotate_half([x1, x2]) = [-x2, x1]`.

use std::borrow::Cow;

use burn::prelude::*;

/// How the rotary frequencies are rescaled for contexts longer than the model was trained on,
/// as Hugging Face's `rope_scaling` / `rope_parameters` blocks name the kinds (`rope_type`).
/// The formulas follow transformers' `modeling_rope_utils` (f32 arithmetic in the same order).
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// `default`: `θ^(-2i/d)` unchanged.
    Default,
    /// `linear` (position interpolation): every frequency divided by `factor`.
    Linear {
        /// Divisor of every frequency.
        factor: f64,
    },
    /// `dynamic` (dynamic NTK): when a call reaches positions past `original_max_positions`,
    /// the base becomes `θ · (factor · L / L₀ − (factor − 1))^(d / (d − 2))` for that call's
    /// length `L` (largest position + 1 over the batch), as transformers recomputes it.
    Dynamic {
        /// Scaling factor.
        factor: f64,
        /// `L₀`: the config's `max_position_embeddings`.
        original_max_positions: usize,
    },
    /// `llama3`: wavelengths longer than `L₀ / low_freq_factor` divided by `factor`, shorter
    /// than `L₀ / high_freq_factor` kept, a smooth blend between.
    Llama3 {
        /// Divisor of the low frequencies.
        factor: f64,
        /// `L₀ / low_freq_factor` is the longest wavelength left unblended.
        low_freq_factor: f64,
        /// `L₀ / high_freq_factor` is the shortest wavelength that is blended.
        high_freq_factor: f64,
        /// `L₀`: `original_max_position_embeddings`.
        original_max_positions: usize,
    },
    /// `yarn`: interpolated and extrapolated frequencies blended by a linear ramp over the
    /// dimensions between the correction range of `beta_fast` / `beta_slow`, and cos/sin
    /// multiplied by `attention_factor`.
    Yarn(YarnScaling),
}

/// Parameters of [`RopeScaling::Yarn`], with the defaults and derived values resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct YarnScaling {
    /// Divisor of the interpolated frequencies.
    pub factor: f64,
    /// Context length the correction range is computed for.
    pub original_max_positions: usize,
    /// Rotations bounding the extrapolated (high-frequency) dimensions (32 by default).
    pub beta_fast: f64,
    /// Rotations bounding the interpolated (low-frequency) dimensions (1 by default).
    pub beta_slow: f64,
    /// Multiplier of cos and sin (`0.1 · ln(factor) + 1` unless given or derived from
    /// `mscale` / `mscale_all_dim`).
    pub attention_factor: f64,
    /// Whether the correction range is rounded outwards to whole dimensions.
    pub truncate: bool,
}

/// Frequencies of the rotary embedding of one head width.
#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    head_dim: usize,
    theta: f64,
    scaling: RopeScaling,
    /// Frequencies for calls within the original context (all calls unless `Dynamic`).
    inv_freq: Vec<f32>,
    /// Multiplier of the cos/sin tables (yarn's attention factor, else 1).
    attention_factor: f32,
}

/// Cosine and sine tables for a batch of positions, ready to broadcast over heads.
#[derive(Debug, Clone)]
pub struct RopeTables<B: Backend> {
    /// `cos(angle)` duplicated over both halves, `[batch, 1, seq, head_dim]`.
    pub cos: Tensor<B, 4>,
    /// `sin(angle)` duplicated over both halves, `[batch, 1, seq, head_dim]`.
    pub sin: Tensor<B, 4>,
}

/// `θ^(-2i/d)`, `i < d/2`, in f32 as transformers computes it.
fn default_inv_freq(head_dim: usize, theta: f32) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| 1.0 / theta.powf((2 * i) as f32 / head_dim as f32))
        .collect()
}

/// Llama 3's per-frequency blend (transformers' `_compute_llama3_parameters`).
fn llama3_inv_freq(
    base: &[f32],
    factor: f64,
    low_freq_factor: f64,
    high_freq_factor: f64,
    original: usize,
) -> Vec<f32> {
    let (factor, low, high) = (
        factor as f32,
        low_freq_factor as f32,
        high_freq_factor as f32,
    );
    let old = original as f32;
    let (low_wavelen, high_wavelen) = (old / low, old / high);
    base.iter()
        .map(|&f| {
            let wavelen = 2.0 * std::f32::consts::PI / f;
            if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / factor
            } else {
                let smooth = (old / wavelen - low) / (high - low);
                (1.0 - smooth) * f / factor + smooth * f
            }
        })
        .collect()
}

/// YaRN's blend of interpolated and extrapolated frequencies (transformers'
/// `_compute_yarn_parameters`).
fn yarn_inv_freq(head_dim: usize, theta: f64, yarn: &YarnScaling) -> Vec<f32> {
    let d = head_dim as f64;
    let original = yarn.original_max_positions as f64;
    let correction_dim = |rotations: f64| {
        d * (original / (rotations * 2.0 * std::f64::consts::PI)).ln() / (2.0 * theta.ln())
    };
    let (mut low, mut high) = (
        correction_dim(yarn.beta_fast),
        correction_dim(yarn.beta_slow),
    );
    if yarn.truncate {
        (low, high) = (low.floor(), high.ceil());
    }
    let (low, mut high) = (low.max(0.0), high.min(d - 1.0));
    if low == high {
        high += 0.001;
    }
    let (low, high) = (low as f32, high as f32);
    let factor = yarn.factor as f32;
    (0..head_dim / 2)
        .map(|i| {
            let pos_freq = (theta as f32).powf((2 * i) as f32 / head_dim as f32);
            let extrapolated = 1.0 / pos_freq;
            let interpolated = 1.0 / (factor * pos_freq);
            let ramp = ((i as f32 - low) / (high - low)).clamp(0.0, 1.0);
            let extrapolation = 1.0 - ramp;
            interpolated * (1.0 - extrapolation) + extrapolated * extrapolation
        })
        .collect()
}

/// Dynamic NTK frequencies for a call reaching length `seq_len` (> `original`).
fn dynamic_inv_freq(
    head_dim: usize,
    theta: f64,
    factor: f64,
    original: usize,
    seq_len: usize,
) -> Vec<f32> {
    let factor = factor as f32;
    let d = head_dim as f32;
    let grown = factor * seq_len as f32 / original as f32 - (factor - 1.0);
    let base = theta as f32 * grown.powf(d / (d - 2.0));
    default_inv_freq(head_dim, base)
}

impl RotaryEmbedding {
    /// Frequencies `θ^(-2i/d)`, `i < d/2`, rescaled as `scaling` says.
    pub fn new(head_dim: usize, theta: f64, scaling: RopeScaling) -> Self {
        let base = default_inv_freq(head_dim, theta as f32);
        let (inv_freq, attention_factor) = match &scaling {
            RopeScaling::Default | RopeScaling::Dynamic { .. } => (base, 1.0),
            RopeScaling::Linear { factor } => {
                let factor = *factor as f32;
                (base.iter().map(|f| f / factor).collect(), 1.0)
            }
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_positions,
            } => (
                llama3_inv_freq(
                    &base,
                    *factor,
                    *low_freq_factor,
                    *high_freq_factor,
                    *original_max_positions,
                ),
                1.0,
            ),
            RopeScaling::Yarn(yarn) => (
                yarn_inv_freq(head_dim, theta, yarn),
                yarn.attention_factor as f32,
            ),
        };
        Self {
            head_dim,
            theta,
            scaling,
            inv_freq,
            attention_factor,
        }
    }

    /// The embedding a validated config describes (head width, `rope_theta`, scaling).
    ///
    /// # Panics
    /// If the config's RoPE block does not parse ([`crate::DecoderConfig::validate`] refuses
    /// such configs).
    pub fn from_config(config: &crate::DecoderConfig) -> Self {
        let scaling = config
            .rope_scaling_kind()
            .unwrap_or_else(|(field, reason)| panic!("unvalidated config: {field} {reason}"));
        Self::new(config.head_dim(), config.rope_theta, scaling)
    }

    /// The scaling these frequencies were built with.
    pub fn scaling(&self) -> &RopeScaling {
        &self.scaling
    }

    /// Frequencies for a call whose largest position is `max_position`.
    fn inv_freq_for(&self, max_position: usize) -> Cow<'_, [f32]> {
        match self.scaling {
            RopeScaling::Dynamic {
                factor,
                original_max_positions,
            } if max_position + 1 > original_max_positions => Cow::Owned(dynamic_inv_freq(
                self.head_dim,
                self.theta,
                factor,
                original_max_positions,
                max_position + 1,
            )),
            _ => Cow::Borrowed(&self.inv_freq),
        }
    }

    /// Builds the tables for per-row positions. Under [`RopeScaling::Dynamic`] the frequencies
    /// depend on the largest position of the whole call (all rows), as in transformers.
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
        let max_position = positions.iter().flatten().copied().max().unwrap_or(0);
        let inv_freq = self.inv_freq_for(max_position);
        let half = inv_freq.len();
        let scale = self.attention_factor;
        let mut cos = Vec::with_capacity(batch * seq * 2 * half);
        let mut sin = Vec::with_capacity(batch * seq * 2 * half);
        for row in positions {
            for &p in row {
                let angles: Vec<f32> = inv_freq.iter().map(|f| p as f32 * f).collect();
                for _ in 0..2 {
                    cos.extend(angles.iter().map(|a| a.cos() * scale));
                    sin.extend(angles.iter().map(|a| a.sin() * scale));
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

#[cfg(test)]
mod tests {
    use super::*;

    type TestBackend = burn::backend::NdArray<f32>;

    #[test]
    fn rotation_matches_hand_computed_pairs() {
        let device = Default::default();
        let rope = RotaryEmbedding::new(4, 100.0, RopeScaling::Default);
        // head_dim 4: inv_freq = [1, 100^(-1/2) = 0.1]; position 3.
        let tables = rope.tables::<TestBackend>(&[vec![3]], &device);
        let x = Tensor::<TestBackend, 4>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 1, 4]),
            &device,
        );
        let got = epgrpo_kernels::rope_heads(x, tables.cos, tables.sin)
            .into_data()
            .to_vec::<f32>()
            .unwrap();
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
