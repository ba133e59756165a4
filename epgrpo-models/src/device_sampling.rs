//! Drawing the next token of every row of a `[rows, vocab]` logits tensor on the device, with
//! plain Burn tensor ops, so that only `[rows]` token ids and log-probs reach the host. It
//! returns what [`Sampling::draw`] (the host oracle) returns for the same uniform draw:
//!
//! - greedy: the lowest id among the row's maximal logits (max, equality mask, min of ids);
//! - random: the kept set of [`Sampling::draw`] (top-k, then the smallest top-p prefix of the
//!   renormalised top-k distribution, ties taken lowest id first), then inverse-CDF sampling
//!   in id order: the first kept token whose cumulative weight, divided by the kept total,
//!   exceeds the row's uniform `u`;
//! - the log-prob of the token under `log_softmax(logits / temperature)` over the whole
//!   vocabulary (temperature 1 for greedy).
//!
//! The device computes in f32 and the oracle in f64, so a draw within rounding (~1e-6) of a
//! cumulative-weight boundary, or a top-p prefix mass within rounding of `top_p`, may go to the
//! neighbouring token. Temperature-only sampling needs no sort; top-k / top-p sort each row's
//! logits once (Burn 0.21's CubeCL backends sort by reading the tensor to the host, so on a GPU
//! a truncated draw still moves the logits once per step; greedy and temperature-only do not).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::sampling::{Draw, Sampling, SamplingError};

/// The draws of a batch of rows, still on the device.
///
/// # Shapes
/// - `tokens`, `logprobs`: `[rows]`
#[derive(Debug, Clone)]
pub struct RowDraws<B: Backend> {
    /// Chosen token id per row.
    pub tokens: Tensor<B, 1, Int>,
    /// Its log-probability per row (see [`Draw::logprob`]).
    pub logprobs: Tensor<B, 1>,
}

impl<B: Backend> RowDraws<B> {
    /// Reads the draws to the host: `2 × rows` numbers.
    pub fn to_host(self) -> Vec<Draw> {
        let tokens = self.tokens.into_data().convert::<i64>();
        let logprobs = self.logprobs.into_data().convert::<f32>();
        tokens
            .iter::<i64>()
            .zip(logprobs.iter::<f32>())
            .map(|(token, logprob)| Draw {
                token: token as u32,
                logprob,
            })
            .collect()
    }
}

/// Draws one token per row of `logits` on their device. `uniforms` holds one draw in `[0, 1)`
/// per row for [`Sampling::Random`] (from each row's [`crate::SequenceRng`]) and is ignored
/// (it may be empty) for [`Sampling::Greedy`].
///
/// # Shapes
/// - `logits`: `[rows, vocab]`
/// - `uniforms`: `rows` values (random sampling)
pub fn draw_rows<B: Backend>(
    sampling: &Sampling,
    logits: Tensor<B, 2>,
    uniforms: &[f64],
) -> Result<RowDraws<B>, SamplingError> {
    sampling.validate()?;
    let [rows, vocab] = logits.dims();
    if rows == 0 || vocab == 0 {
        return Err(SamplingError::EmptyLogits { rows, vocab });
    }
    match sampling {
        Sampling::Greedy => Ok(greedy(logits)),
        Sampling::Random {
            temperature,
            top_k,
            top_p,
        } => {
            if uniforms.len() != rows {
                return Err(SamplingError::DrawCount {
                    rows,
                    got: uniforms.len(),
                });
            }
            if let Some((row, &value)) = uniforms
                .iter()
                .enumerate()
                .find(|(_, u)| !(0.0..1.0).contains(*u))
            {
                return Err(SamplingError::DrawRange { row, value });
            }
            let top_k = top_k.filter(|&k| k < vocab);
            let top_p = top_p.filter(|&p| p < 1.0);
            Ok(random(logits, *temperature, top_k, top_p, uniforms))
        }
    }
}

/// Token ids `0 .. vocab` in every row.
///
/// # Shapes
/// - output: `[rows, vocab]`
fn ids<B: Backend>(rows: usize, vocab: usize, device: &B::Device) -> Tensor<B, 2, Int> {
    Tensor::<B, 1, Int>::arange(0..vocab as i64, device)
        .reshape([1, vocab])
        .expand([rows, vocab])
}

/// `log_softmax(z)` over the vocabulary at `tokens`.
///
/// # Shapes
/// - `z`: `[rows, vocab]`, `tokens`: `[rows, 1]` → `[rows]`
fn logprob_at<B: Backend>(z: Tensor<B, 2>, tokens: Tensor<B, 2, Int>) -> Tensor<B, 1> {
    let rows = tokens.dims()[0];
    log_softmax(z, 1).gather(1, tokens).reshape([rows])
}

fn greedy<B: Backend>(logits: Tensor<B, 2>) -> RowDraws<B> {
    let [rows, vocab] = logits.dims();
    let device = logits.device();
    let max = logits.clone().max_dim(1).expand([rows, vocab]);
    let not_max = logits.clone().equal(max).bool_not();
    // The lowest id among the maxima; a row without a maximum (NaN) gets the last id.
    let tokens = ids::<B>(rows, vocab, &device)
        .mask_fill(not_max, vocab as i64)
        .min_dim(1)
        .clamp_max(vocab as i64 - 1);
    RowDraws {
        logprobs: logprob_at(logits, tokens.clone()),
        tokens: tokens.reshape([rows]),
    }
}

fn random<B: Backend>(
    logits: Tensor<B, 2>,
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    uniforms: &[f64],
) -> RowDraws<B> {
    let [rows, vocab] = logits.dims();
    let device = logits.device();
    let z = logits.clone() / temperature;
    let z_max = z.clone().max_dim(1).expand([rows, vocab]);
    let mut weights = (z.clone() - z_max).exp();
    if top_k.is_some() || top_p.is_some() {
        let kept = kept_mask(logits, temperature, top_k.unwrap_or(vocab), top_p);
        weights = weights.mask_fill(kept.bool_not(), 0.0);
    }
    let cumulative = weights.cumsum(1);
    let total = cumulative.clone().slice([0..rows, vocab - 1..vocab]);
    // Divided by its own last element, the last cumulative value is exactly 1 > u: the first
    // position above `u` always exists and has a positive weight.
    let cdf = cumulative / total.expand([rows, vocab]);
    // f32 rounds values just below 1 up to 1; keep the draw below 1.
    let below_one = 1.0 - f32::EPSILON / 2.0;
    let u: Vec<f32> = uniforms
        .iter()
        .map(|&u| (u as f32).min(below_one))
        .collect();
    let u = Tensor::<B, 2>::from_data(TensorData::new(u, [rows, 1]), &device);
    let tokens = cdf
        .lower_equal(u.expand([rows, vocab]))
        .int()
        .sum_dim(1)
        .clamp_max(vocab as i64 - 1);
    RowDraws {
        logprobs: logprob_at(z, tokens.clone()),
        tokens: tokens.reshape([rows]),
    }
}

/// Which tokens a truncated draw keeps: the first `m` in the order (logit descending, id
/// ascending), where `m = min(k, n + 1)` and `n` is the number of leading top-k tokens whose
/// renormalised cumulative probability stays below `top_p`. Found from the sorted logits
/// alone: the cut value `τ` = the `m`-th largest logit, every token above it, and the lowest-id
/// tokens equal to it up to the count `m` (sorting is unstable, so ids are not read from it).
///
/// # Shapes
/// - `logits`: `[rows, vocab]` → `[rows, vocab]`
fn kept_mask<B: Backend>(
    logits: Tensor<B, 2>,
    temperature: f32,
    k: usize,
    top_p: Option<f32>,
) -> Tensor<B, 2, Bool> {
    let [rows, vocab] = logits.dims();
    let device = logits.device();
    let sorted = logits.clone().sort_descending(1);
    let kept_count = match top_p {
        None => Tensor::<B, 2, Int>::full([rows, 1], k as i64, &device),
        Some(p) => {
            let head = sorted.clone().slice([0..rows, 0..k]) / temperature;
            let first = head.clone().slice([0..rows, 0..1]).expand([rows, k]);
            let cumulative = (head - first).exp().cumsum(1);
            let total = cumulative
                .clone()
                .slice([0..rows, k - 1..k])
                .expand([rows, k]);
            let below = (cumulative / total).lower_elem(p).int().sum_dim(1);
            (below + 1).clamp_max(k as i64)
        }
    };
    let cut = sorted
        .gather(1, kept_count.clone() - 1)
        .expand([rows, vocab]);
    let above = logits.clone().greater(cut.clone());
    let ties = logits.equal(cut);
    let quota = (kept_count - above.clone().int().sum_dim(1)).expand([rows, vocab]);
    let tie_rank = ties.clone().int().cumsum(1);
    above.bool_or(ties.bool_and(tie_rank.lower_equal(quota)))
}
