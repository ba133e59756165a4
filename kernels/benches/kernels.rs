//! Benchmark of E1: the fused `token_logp_entropy` against the unfused plain-Burn composition
//! (`reference::token_logp_entropy`: log_softmax + gather + sum), forward and forward+backward,
//! on every backend compiled in (NdArray always; `Wgpu` / `Cuda` with the features).
//!
//! Prints one Markdown table. Environment:
//! - `BENCH_ROWS` (default 8192), `BENCH_VOCABS` (comma list, default `32000,151936`),
//! - `BENCH_ITERS` (timed iterations per cell, default 5; one extra warm-up call is not timed),
//! - `BENCH_BACKENDS` (comma list among `ndarray,wgpu,cuda`; default: all compiled in),
//! - `BENCH_UNFUSED=0` skips the unfused side (it needs several `[N, V]` buffers).
//!
//! Every iteration draws fresh logits on the device (not timed) and waits for the device before
//! and after the timed call. "GB/s" is the bytes of logits (`N·V·4`) divided by the time, for both
//! directions; the backward pass reads them twice more and writes the gradient.

use std::time::Instant;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Distribution, Int, Tensor, TensorData, backend::Backend};
use epgrpo_kernels::{KernelBackend, reference, token_logp_entropy};

/// Benchmark settings read from the environment.
struct Settings {
    rows: usize,
    vocabs: Vec<usize>,
    iters: usize,
    backends: Vec<String>,
    unfused: bool,
}

impl Settings {
    fn from_env() -> Self {
        let var = |name: &str, default: &str| std::env::var(name).unwrap_or(default.to_string());
        let list = |text: String| -> Vec<String> {
            text.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Self {
            rows: var("BENCH_ROWS", "8192").parse().expect("BENCH_ROWS"),
            vocabs: list(var("BENCH_VOCABS", "32000,151936"))
                .iter()
                .map(|v| v.parse().expect("BENCH_VOCABS"))
                .collect(),
            iters: var("BENCH_ITERS", "5").parse().expect("BENCH_ITERS"),
            backends: list(var("BENCH_BACKENDS", "ndarray,wgpu,cuda")),
            unfused: var("BENCH_UNFUSED", "1") != "0",
        }
    }

    fn wants(&self, backend: &str) -> bool {
        self.backends.iter().any(|b| b == backend)
    }
}

/// Which implementation and direction one table row measures.
#[derive(Clone, Copy)]
enum Variant {
    FusedForward,
    UnfusedForward,
    FusedBackward,
    UnfusedBackward,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::FusedForward => "fused fwd",
            Variant::UnfusedForward => "unfused fwd",
            Variant::FusedBackward => "fused fwd+bwd",
            Variant::UnfusedBackward => "unfused fwd+bwd",
        }
    }

    fn fused(self) -> bool {
        matches!(self, Variant::FusedForward | Variant::FusedBackward)
    }

    /// Lower bound of the extra device memory beyond the logits and the `[N]` outputs:
    /// the fused path keeps three `[N]` rows (and the `[N, V]` gradient in the backward pass);
    /// the unfused path holds at least the log-probabilities and probabilities (`2·N·V`), and
    /// under autodiff keeps them, plus the `[N, V]` gradient, for the backward pass.
    fn extra_bytes(self, rows: usize, vocab: usize) -> usize {
        let nv = rows * vocab * 4;
        match self {
            Variant::FusedForward => 3 * rows * 4,
            Variant::FusedBackward => 3 * rows * 4 + nv,
            Variant::UnfusedForward => 2 * nv,
            Variant::UnfusedBackward => 3 * nv,
        }
    }
}

fn targets<B: Backend>(rows: usize, vocab: usize, device: &B::Device) -> Tensor<B, 1, Int> {
    let ids: Vec<i64> = (0..rows).map(|i| ((i * 7919) % vocab) as i64).collect();
    Tensor::from_data(TensorData::new(ids, [rows]), device)
}

fn fresh_logits<B: Backend>(rows: usize, vocab: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::random([rows, vocab], Distribution::Normal(0.0, 3.0), device)
}

/// Median milliseconds of one call of `variant` over `iters` timed iterations.
fn time_variant<B: KernelBackend>(
    variant: Variant,
    rows: usize,
    vocab: usize,
    iters: usize,
    device: &B::Device,
) -> f64 {
    let targets_inner = targets::<B>(rows, vocab, device);
    let targets_ad = targets::<Autodiff<B>>(rows, vocab, device);
    let mut times = Vec::with_capacity(iters);
    for iter in 0..=iters {
        let logits = fresh_logits::<B>(rows, vocab, device);
        B::sync(device).expect("sync");
        let start = Instant::now();
        match variant {
            Variant::FusedForward => {
                let (logp, entropy) = token_logp_entropy(logits, targets_inner.clone(), 1.0);
                drop((logp, entropy));
            }
            Variant::UnfusedForward => {
                let out = reference::token_logp_entropy(logits, targets_inner.clone(), 1.0);
                drop(out);
            }
            Variant::FusedBackward | Variant::UnfusedBackward => {
                let logits = Tensor::<Autodiff<B>, 2>::from_inner(logits).require_grad();
                let (logp, entropy) = if variant.fused() {
                    token_logp_entropy(logits.clone(), targets_ad.clone(), 1.0)
                } else {
                    reference::token_logp_entropy(logits.clone(), targets_ad.clone(), 1.0)
                };
                let grads = (logp.sum() + entropy.sum()).backward();
                drop(logits.grad(&grads));
            }
        }
        B::sync(device).expect("sync");
        if iter > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn run_backend<B: KernelBackend>(name: &str, settings: &Settings) {
    let device = B::Device::default();
    for &vocab in &settings.vocabs {
        let variants = [
            Variant::FusedForward,
            Variant::UnfusedForward,
            Variant::FusedBackward,
            Variant::UnfusedBackward,
        ];
        for variant in variants {
            if !variant.fused() && !settings.unfused {
                continue;
            }
            let ms = time_variant::<B>(variant, settings.rows, vocab, settings.iters, &device);
            let bytes = (settings.rows * vocab * 4) as f64;
            println!(
                "| {name} | {} | {vocab} | {} | {ms:.2} | {:.3} | {:.1} |",
                settings.rows,
                variant.label(),
                bytes / (ms * 1e-3) / 1e9,
                variant.extra_bytes(settings.rows, vocab) as f64 / 1e6,
            );
        }
    }
}

fn main() {
    let settings = Settings::from_env();
    println!(
        "| backend | N | V | variant | ms (median of {}) | GB/s (logits) | extra memory ≥ MB |",
        settings.iters
    );
    println!("|---|---|---|---|---|---|---|");
    if settings.wants("ndarray") {
        run_backend::<NdArray>("ndarray", &settings);
    }
    #[cfg(feature = "wgpu")]
    if settings.wants("wgpu") {
        run_backend::<burn::backend::Wgpu>("wgpu", &settings);
    }
    #[cfg(feature = "cuda")]
    if settings.wants("cuda") {
        run_backend::<burn::backend::Cuda>("cuda", &settings);
    }
}
