//! E1 through the output head without `[N, V]` logits: the head product `z = h · W` and the
//! fused log-prob + entropy of [`KernelBackend::token_stats`] run `chunk` rows at a time, so the
//! largest vocabulary-sized buffer is `[chunk, V]`, whatever N is.
//!
//! The backward pass (used by the autodiff node in `autodiff.rs`) recomputes each chunk's logits
//! from the kept `h` and `W`, turns the upstream `(g_lp, g_H)` into the chunk's logits gradient
//! `G` with [`KernelBackend::token_stats_backward`] (E1's derivative), then
//! `dh = G · Wᵀ` (the chunk's rows) and `dW += hᵀ · G` (summed over chunks). All products go
//! through [`KernelBackend::matmul`].

use std::num::NonZeroUsize;

use burn::tensor::{
    Int, Tensor,
    ops::{FloatTensor, IntTensor},
};

use crate::{KernelBackend, TokenStats, float};

/// Row ranges `(start, len)` of `n` rows in chunks of at most `chunk` rows (one empty chunk when
/// `n = 0`, so that the outputs still have a `[0]` shape).
fn chunks(n: usize, chunk: NonZeroUsize) -> Vec<(usize, usize)> {
    if n == 0 {
        return vec![(0, 0)];
    }
    (0..n)
        .step_by(chunk.get())
        .map(|start| (start, chunk.get().min(n - start)))
        .collect()
}

/// Forward of the chunked head: per-row E1 statistics of `softmax(h · W / T)`.
///
/// # Shapes
/// - `hidden`: `[N, d]`, `weight`: `[d, V]` (may be a strided view), `targets`: `[N]`
/// - output: `[N]` each
pub(crate) fn head_stats_chunked<B: KernelBackend>(
    hidden: FloatTensor<B>,
    weight: FloatTensor<B>,
    targets: IntTensor<B>,
    temperature: f32,
    chunk: NonZeroUsize,
) -> TokenStats<B> {
    let hidden: Tensor<B, 2> = float(hidden);
    let weight: Tensor<B, 2> = float(weight);
    let targets: Tensor<B, 1, Int> = Tensor::from_primitive(targets);
    let mut logp = Vec::new();
    let mut entropy = Vec::new();
    let mut log_normalizer = Vec::new();
    for (start, len) in chunks(hidden.dims()[0], chunk) {
        let logits = crate::matmul(hidden.clone().narrow(0, start, len), weight.clone());
        let stats = B::token_stats(
            logits.into_primitive().tensor(),
            targets.clone().narrow(0, start, len).into_primitive(),
            temperature,
        );
        logp.push(float::<B, 1>(stats.logp));
        entropy.push(float::<B, 1>(stats.entropy));
        log_normalizer.push(float::<B, 1>(stats.log_normalizer));
    }
    let cat = |parts: Vec<Tensor<B, 1>>| Tensor::cat(parts, 0).into_primitive().tensor();
    TokenStats {
        logp: cat(logp),
        entropy: cat(entropy),
        log_normalizer: cat(log_normalizer),
    }
}

/// What [`head_stats_backward`] reads: the forward's inputs and per-row results.
pub(crate) struct HeadBackwardInputs<B: KernelBackend> {
    /// `[N, d]` final hidden states.
    pub hidden: FloatTensor<B>,
    /// `[d, V]` head weight.
    pub weight: FloatTensor<B>,
    /// `[N]` target ids.
    pub targets: IntTensor<B>,
    /// `[N]` `logsumexp(z / T)` of the forward.
    pub log_normalizer: FloatTensor<B>,
    /// `[N]` entropies of the forward.
    pub entropy: FloatTensor<B>,
    /// Sampling temperature T.
    pub temperature: f32,
    /// Rows per chunk.
    pub chunk: NonZeroUsize,
}

/// Backward of the chunked head: `(d hidden [N, d], d weight [d, V])` of
/// `Σ_n g_lp[n] · logp[n] + g_H[n] · H[n]`; each is computed only when asked for.
pub(crate) fn head_stats_backward<B: KernelBackend>(
    inputs: HeadBackwardInputs<B>,
    grad_logp: Tensor<B, 1>,
    grad_entropy: Tensor<B, 1>,
    want_hidden: bool,
    want_weight: bool,
) -> (Option<FloatTensor<B>>, Option<FloatTensor<B>>) {
    let hidden: Tensor<B, 2> = float(inputs.hidden);
    let weight: Tensor<B, 2> = float(inputs.weight);
    let targets: Tensor<B, 1, Int> = Tensor::from_primitive(inputs.targets);
    let log_normalizer: Tensor<B, 1> = float(inputs.log_normalizer);
    let entropy: Tensor<B, 1> = float(inputs.entropy);
    let weight_t = weight.clone().transpose();
    let mut grad_hidden = Vec::new();
    let mut grad_weight: Option<Tensor<B, 2>> = None;
    for (start, len) in chunks(hidden.dims()[0], inputs.chunk) {
        let rows = hidden.clone().narrow(0, start, len);
        let logits = crate::matmul(rows.clone(), weight.clone());
        let chunk_of = |t: &Tensor<B, 1>| t.clone().narrow(0, start, len).into_primitive().tensor();
        let grad_logits: Tensor<B, 2> = float(B::token_stats_backward(
            logits.into_primitive().tensor(),
            targets.clone().narrow(0, start, len).into_primitive(),
            chunk_of(&log_normalizer),
            chunk_of(&entropy),
            chunk_of(&grad_logp),
            chunk_of(&grad_entropy),
            inputs.temperature,
        ));
        if want_hidden {
            grad_hidden.push(crate::matmul(grad_logits.clone(), weight_t.clone()));
        }
        if want_weight {
            let part = crate::matmul(rows.transpose(), grad_logits);
            grad_weight = Some(match grad_weight {
                Some(sum) => sum + part,
                None => part,
            });
        }
    }
    let grad_hidden = want_hidden.then(|| Tensor::cat(grad_hidden, 0).into_primitive().tensor());
    (
        grad_hidden,
        grad_weight.map(|g| g.into_primitive().tensor()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_once() {
        let three = NonZeroUsize::new(3).unwrap();
        assert_eq!(chunks(7, three), vec![(0, 3), (3, 3), (6, 1)]);
        assert_eq!(chunks(6, three), vec![(0, 3), (3, 3)]);
        assert_eq!(chunks(2, three), vec![(0, 2)]);
        assert_eq!(chunks(0, three), vec![(0, 0)]);
    }
}
