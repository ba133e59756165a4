//! Benchmark tables of the fused kernels against the unfused plain-Burn formulations, shared by
//! the benchmark binary (`benches/kernels.rs`) and `epgrpo bench kernels`. The functions hand
//! each Markdown row to a callback as soon as it is measured; the callers print them.
//!
//! Every timed call gets fresh inputs drawn on the device (not timed), and the device is synced
//! before and after it; the reported time is the median over the timed calls, after one untimed
//! warm-up call (which includes JIT compilation). The memory columns are lower bounds of the
//! device memory each path must hold beyond its inputs and outputs, from the sizes of its
//! buffers (not measured).

use std::time::Instant;

use burn::backend::Autodiff;
use burn::tensor::{Distribution, Int, Tensor, TensorData, backend::Backend};

use crate::advantage::{
    AdvantageParams, BucketNormalization, GroupInputs, OutcomeScale, ProgressParams, SignOrder,
    group_advantages, plain,
};
use crate::{KernelBackend, reference, token_logp_entropy};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// E1: rows N of the logits.
    pub rows: usize,
    /// E1: vocabulary sizes V, one table row group each.
    pub vocabs: Vec<usize>,
    /// Timed calls per cell.
    pub iters: usize,
    /// Whether to time the unfused side too (it needs several `[N, V]` buffers).
    pub unfused: bool,
    /// E2–E12: groups B, responses per group G, padded length L, buckets K.
    pub groups: usize,
    /// G.
    pub group_size: usize,
    /// L.
    pub length: usize,
    /// K.
    pub buckets: usize,
}

impl BenchConfig {
    /// Sizes for a CPU: N = 512 rows with V = 32,000 and 151,936; B = 16 groups of G = 8
    /// responses of L = 1,024 tokens with K = 10 buckets; 3 timed calls. The whole run takes
    /// about a minute on two cores (the GPU sizes of [`BenchConfig::default`] took over ten).
    pub fn cpu() -> Self {
        Self {
            rows: 512,
            iters: 3,
            groups: 16,
            ..Self::default()
        }
    }
}

impl Default for BenchConfig {
    /// GPU sizes: N = 8,192 rows with V = 32,000 and 151,936; B = 64 groups of G = 8 responses
    /// of L = 1,024 tokens with K = 10 buckets; 5 timed calls.
    fn default() -> Self {
        Self {
            rows: 8192,
            vocabs: vec![32_000, 151_936],
            iters: 5,
            unfused: true,
            groups: 64,
            group_size: 8,
            length: 1024,
            buckets: 10,
        }
    }
}

/// Header of the E1 table (two Markdown lines).
pub fn logp_entropy_header(iters: usize) -> [String; 2] {
    [
        format!(
            "| backend | N | V | variant | ms (median of {iters}) | GB/s (logits) | extra memory ≥ MB |"
        ),
        "|---|---|---|---|---|---|---|".to_string(),
    ]
}

/// Header of the E2–E12 table (two Markdown lines).
pub fn advantages_header(iters: usize) -> [String; 2] {
    [
        format!(
            "| backend | B × G × L | K | variant | ms (median of {iters}) | M tokens/s | extra memory ≥ MB |"
        ),
        "|---|---|---|---|---|---|---|".to_string(),
    ]
}

/// Which implementation and direction one E1 row measures.
#[derive(Clone, Copy)]
enum LogpVariant {
    FusedForward,
    UnfusedForward,
    FusedBackward,
    UnfusedBackward,
}

impl LogpVariant {
    const ALL: [LogpVariant; 4] = [
        LogpVariant::FusedForward,
        LogpVariant::UnfusedForward,
        LogpVariant::FusedBackward,
        LogpVariant::UnfusedBackward,
    ];

    fn label(self) -> &'static str {
        match self {
            LogpVariant::FusedForward => "fused fwd",
            LogpVariant::UnfusedForward => "unfused fwd",
            LogpVariant::FusedBackward => "fused fwd+bwd",
            LogpVariant::UnfusedBackward => "unfused fwd+bwd",
        }
    }

    fn fused(self) -> bool {
        matches!(self, LogpVariant::FusedForward | LogpVariant::FusedBackward)
    }

    /// The fused path keeps three `[N]` rows (and the `[N, V]` gradient in the backward pass);
    /// the unfused path holds at least the log-probabilities and probabilities (`2·N·V`), and
    /// under autodiff keeps them, plus the `[N, V]` gradient, for the backward pass.
    fn extra_bytes(self, rows: usize, vocab: usize) -> usize {
        let nv = rows * vocab * 4;
        match self {
            LogpVariant::FusedForward => 3 * rows * 4,
            LogpVariant::FusedBackward => 3 * rows * 4 + nv,
            LogpVariant::UnfusedForward => 2 * nv,
            LogpVariant::UnfusedBackward => 3 * nv,
        }
    }
}

/// Median milliseconds of `call` over `iters` timed calls after one warm-up; `fresh` makes the
/// inputs of each call (not timed).
fn median_ms<B: Backend, T>(
    iters: usize,
    device: &B::Device,
    mut fresh: impl FnMut() -> T,
    mut call: impl FnMut(T),
) -> f64 {
    let mut times = Vec::with_capacity(iters);
    for iter in 0..=iters {
        let input = fresh();
        B::sync(device).expect("device sync");
        let start = Instant::now();
        call(input);
        B::sync(device).expect("device sync");
        if iter > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn targets<B: Backend>(rows: usize, vocab: usize, device: &B::Device) -> Tensor<B, 1, Int> {
    let ids: Vec<i64> = (0..rows).map(|i| ((i * 7919) % vocab) as i64).collect();
    Tensor::from_data(TensorData::new(ids, [rows]), device)
}

fn time_logp_entropy<B: KernelBackend>(
    variant: LogpVariant,
    rows: usize,
    vocab: usize,
    iters: usize,
    device: &B::Device,
) -> f64 {
    let targets_inner = targets::<B>(rows, vocab, device);
    let targets_ad = targets::<Autodiff<B>>(rows, vocab, device);
    let fresh = || Tensor::<B, 2>::random([rows, vocab], Distribution::Normal(0.0, 3.0), device);
    median_ms::<B, _>(iters, device, fresh, |logits| match variant {
        LogpVariant::FusedForward => {
            drop(token_logp_entropy(logits, targets_inner.clone(), 1.0));
        }
        LogpVariant::UnfusedForward => {
            drop(reference::token_logp_entropy(
                logits,
                targets_inner.clone(),
                1.0,
            ));
        }
        LogpVariant::FusedBackward | LogpVariant::UnfusedBackward => {
            let logits = Tensor::<Autodiff<B>, 2>::from_inner(logits).require_grad();
            let (logp, entropy) = if variant.fused() {
                token_logp_entropy(logits.clone(), targets_ad.clone(), 1.0)
            } else {
                reference::token_logp_entropy(logits.clone(), targets_ad.clone(), 1.0)
            };
            let grads = (logp.sum() + entropy.sum()).backward();
            drop(logits.grad(&grads));
        }
    })
}

/// E1 rows: fused `token_logp_entropy` against `log_softmax` + `gather` + `sum`, forward and
/// forward + backward, for every vocabulary of `config`, on backend `B` named `backend`; `emit`
/// receives each row as soon as it is measured.
pub fn logp_entropy_rows<B: KernelBackend>(
    backend: &str,
    config: &BenchConfig,
    emit: &mut impl FnMut(String),
) {
    let device = B::Device::default();
    for &vocab in &config.vocabs {
        for variant in LogpVariant::ALL {
            if !variant.fused() && !config.unfused {
                continue;
            }
            let ms = time_logp_entropy::<B>(variant, config.rows, vocab, config.iters, &device);
            let bytes = (config.rows * vocab * 4) as f64;
            emit(format!(
                "| {backend} | {} | {vocab} | {} | {ms:.2} | {:.3} | {:.1} |",
                config.rows,
                variant.label(),
                bytes / (ms * 1e-3) / 1e9,
                variant.extra_bytes(config.rows, vocab) as f64 / 1e6,
            ));
        }
    }
}

/// EP-GRPO's default hyperparameters (spec §5) with K buckets.
fn ep_grpo_params(buckets: usize) -> AdvantageParams {
    AdvantageParams {
        outcome_scale: OutcomeScale::GroupStd,
        eps_adv: 1e-4,
        zero_var_tol: 1e-8,
        num_buckets: buckets,
        progress: Some(ProgressParams {
            gamma: 1.0,
            lambda: 1.0,
            alpha: 1.0,
            theta_reward: 0.5,
            eps_entropy: 1e-6,
            eps_bucket: 1e-3,
            sign_order: SignOrder::NormalizeThenSign,
            gate_progress: true,
            normalization: BucketNormalization::ZScore,
        }),
    }
}

/// Random `[B, G, L]` advantage inputs: H in [0, 2), lp_ref in [−3, 0), drift ±0.2, binary
/// rewards; `mask` (response lengths from L/2 to L) is fixed.
fn advantage_inputs<B: Backend>(mask: &Tensor<B, 3>, device: &B::Device) -> GroupInputs<B> {
    let [b, g, l] = mask.dims();
    let uniform = |low, high| {
        Tensor::<B, 3>::random([b, g, l], Distribution::Uniform(low, high), device) * mask.clone()
    };
    let logp_ref = uniform(-3.0, 0.0);
    GroupInputs {
        rewards: Tensor::random([b, g], Distribution::Bernoulli(0.5), device),
        entropy: uniform(0.0, 2.0),
        logp_old: logp_ref.clone() + uniform(-0.2, 0.2),
        logp_ref,
        mask: mask.clone(),
    }
}

fn advantage_mask<B: Backend>(b: usize, g: usize, l: usize, device: &B::Device) -> Tensor<B, 3> {
    let values: Vec<f32> = (0..b * g)
        .flat_map(|row| {
            let len = l / 2 + (row * 7919) % (l - l / 2 + 1);
            (0..l).map(move |t| if t < len { 1.0 } else { 0.0 })
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [b, g, l]), device)
}

/// E2–E12 rows: the backend's `group_advantages` (one CubeCL kernel on the GPU backends)
/// against the plain-Burn composition, for EP-GRPO with the spec's defaults, on backend `B`
/// named `backend`; `emit` receives each row as soon as it is measured.
pub fn advantages_rows<B: KernelBackend>(
    backend: &str,
    config: &BenchConfig,
    emit: &mut impl FnMut(String),
) {
    let device = B::Device::default();
    let (b, g, l, k) = (
        config.groups,
        config.group_size,
        config.length.max(2),
        config.buckets,
    );
    let mask = advantage_mask::<B>(b, g, l, &device);
    let params = ep_grpo_params(k);
    let tokens = b * g * l;
    for fused in [true, false] {
        if !fused && !config.unfused {
            continue;
        }
        let fresh = || advantage_inputs(&mask, &device);
        let ms = median_ms::<B, _>(config.iters, &device, fresh, |inputs| {
            let out = if fused {
                group_advantages(inputs, &params)
            } else {
                plain::group_advantages(inputs, &params)
            };
            drop(out);
        });
        // Fused: the four [B, G, L] outputs. Plain: at least the [B, G, L, K] one-hot
        // membership and one product with it.
        let extra = if fused {
            4 * tokens * 4
        } else {
            2 * tokens * k * 4
        };
        emit(format!(
            "| {backend} | {b} × {g} × {l} | {k} | {} | {ms:.2} | {:.3} | {:.1} |",
            if fused { "fused" } else { "plain Burn ops" },
            tokens as f64 / (ms * 1e-3) / 1e6,
            extra as f64 / 1e6,
        ));
    }
}
