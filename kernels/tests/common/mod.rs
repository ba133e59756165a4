//! Shared by the kernel tests: the backend under test and a deterministic input generator.

// Each test binary uses a part of this module.
#![allow(dead_code)]

/// The backend under test, chosen by feature: `wgpu` → Wgpu (CubeCL kernels; lavapipe on a
/// machine without a GPU), `cuda` → Cuda, neither → NdArray.
#[cfg(feature = "wgpu")]
pub type TestBackend = burn::backend::Wgpu;
#[cfg(all(feature = "cuda", not(feature = "wgpu")))]
pub type TestBackend = burn::backend::Cuda;
#[cfg(not(any(feature = "wgpu", feature = "cuda")))]
pub type TestBackend = burn::backend::NdArray;

/// SplitMix64, so the tests need no RNG crate and no global seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [-scale, scale), as f32.
    pub fn signed(&mut self, scale: f64) -> f32 {
        ((self.uniform() * 2.0 - 1.0) * scale) as f32
    }
}

/// `n` values uniform in [-scale, scale) from `seed`.
pub fn values(n: usize, seed: u64, scale: f64) -> Vec<f64> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| (rng.uniform() * 2.0 - 1.0) * scale)
        .collect()
}
