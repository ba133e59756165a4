//! Teacher forcing: the log-prob of every response token and the entropy of the distribution it
//! was drawn from (E1), for a batch of prompt + response rows.
//!
//! Rows are laid out as `[left-padded prompt | response, right-padded]`; the logits at position
//! `P − 1 + t` predict response token `t`, so only the `C` response positions go through the
//! output head, fused with E1 in chunks of tokens by default ([`HeadLoss`]) so that neither
//! scoring nor the update holds `[N · C, V]` logits.

use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use epgrpo_kernels::KernelBackend;
use epgrpo_models::{Decoder, HeadLoss, LayerCheckpoints, LeftPadding};

/// Prompt + response rows on the host, ready to become tensors.
#[derive(Debug, Clone)]
pub struct SequenceBatch {
    /// Number of rows N.
    pub rows: usize,
    /// Prompt width P (longest prompt).
    pub prompt_width: usize,
    /// Response width C (longest response, at least 1).
    pub response_width: usize,
    padding: LeftPadding,
    /// `[N, P + C − 1]` input ids.
    input: Vec<i64>,
    /// `[N, C]` response ids (filler past the end).
    targets: Vec<i64>,
    /// `[N, C]` 1.0 on response tokens.
    mask: Vec<f32>,
}

impl SequenceBatch {
    /// Lays out `prompts[i] + responses[i]` for every row; `pad` fills the gaps.
    pub fn new(prompts: &[&[u32]], responses: &[&[u32]], pad: u32) -> Self {
        let rows = prompts.len();
        let p = prompts.iter().map(|x| x.len()).max().unwrap_or(1).max(1);
        let c = responses.iter().map(|x| x.len()).max().unwrap_or(1).max(1);
        let width = p + c - 1;
        let mut input = vec![pad as i64; rows * width];
        let mut targets = vec![pad as i64; rows * c];
        let mut mask = vec![0.0f32; rows * c];
        for (r, (prompt, response)) in prompts.iter().zip(responses).enumerate() {
            let row = &mut input[r * width..(r + 1) * width];
            for (slot, &id) in row[p - prompt.len()..p].iter_mut().zip(prompt.iter()) {
                *slot = id as i64;
            }
            for (t, &id) in response.iter().enumerate() {
                if p + t < width {
                    row[p + t] = id as i64;
                }
                targets[r * c + t] = id as i64;
                mask[r * c + t] = 1.0;
            }
        }
        let lengths: Vec<usize> = prompts.iter().map(|x| x.len()).collect();
        Self {
            rows,
            prompt_width: p,
            response_width: c,
            padding: LeftPadding::from_lengths(&lengths, p),
            input,
            targets,
            mask,
        }
    }

    /// Rows `start..end` as their own batch (same widths).
    pub fn slice(&self, start: usize, end: usize) -> Self {
        let width = self.prompt_width + self.response_width - 1;
        let c = self.response_width;
        Self {
            rows: end - start,
            prompt_width: self.prompt_width,
            response_width: c,
            padding: LeftPadding::new(self.padding.pad()[start..end].to_vec()),
            input: self.input[start * width..end * width].to_vec(),
            targets: self.targets[start * c..end * c].to_vec(),
            mask: self.mask[start * c..end * c].to_vec(),
        }
    }

    /// `[N, C]` response mask on `device`.
    pub fn mask<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(
            TensorData::new(self.mask.clone(), [self.rows, self.response_width]),
            device,
        )
    }

    /// `[N, P + C − 1]` input ids on `device`.
    pub fn input<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2, Int> {
        let width = self.prompt_width + self.response_width - 1;
        Tensor::from_data(
            TensorData::new(self.input.clone(), [self.rows, width]),
            device,
        )
    }

    /// Valid tokens of each response, row by row.
    pub fn response_lengths(&self) -> Vec<usize> {
        self.mask
            .chunks(self.response_width)
            .map(|row| row.iter().filter(|&&m| m > 0.0).count())
            .collect()
    }

    /// Number of response tokens.
    pub fn response_tokens(&self) -> usize {
        self.mask.iter().filter(|&&m| m > 0.0).count()
    }
}

/// E1 by teacher forcing: `(logp, entropy)` of every response token under `model` at
/// `temperature`, zero on padding, with the default [`HeadLoss`]. Differentiable when `model`
/// lives on an autodiff backend.
///
/// # Shapes
/// - output: (`[N, C]`, `[N, C]`)
pub fn response_logp_entropy<B: KernelBackend>(
    model: &Decoder<B>,
    batch: &SequenceBatch,
    temperature: f64,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    response_logp_entropy_with(model, batch, temperature, HeadLoss::default(), device)
}

/// [`response_logp_entropy`] with the output head applied as `head` says.
///
/// # Shapes
/// - output: (`[N, C]`, `[N, C]`)
pub fn response_logp_entropy_with<B: KernelBackend>(
    model: &Decoder<B>,
    batch: &SequenceBatch,
    temperature: f64,
    head: HeadLoss,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let hidden = model.hidden_states(batch.input(device), &batch.padding);
    response_stats(model, batch, hidden, temperature, head)
}

/// [`response_logp_entropy_with`] with activation checkpointing per decoder layer: also returns
/// the layer inputs that `Decoder::backward_checkpointed` needs to turn a loss of these
/// log-probs into parameter gradients.
///
/// # Shapes
/// - output: (`[N, C]`, `[N, C]`, checkpoints)
pub fn response_logp_entropy_checkpointed<B>(
    model: &Decoder<B>,
    batch: &SequenceBatch,
    temperature: f64,
    head: HeadLoss,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>, LayerCheckpoints<B>)
where
    B: AutodiffBackend + KernelBackend,
    B::InnerBackend: KernelBackend,
{
    let (hidden, checkpoints) =
        model.hidden_states_checkpointed(batch.input(device), &batch.padding);
    let (logp, entropy) = response_stats(model, batch, hidden, temperature, head);
    (logp, entropy, checkpoints)
}

/// E1 of the response positions of `hidden` (the final-norm hidden states of `batch`), masked.
fn response_stats<B: KernelBackend>(
    model: &Decoder<B>,
    batch: &SequenceBatch,
    hidden: Tensor<B, 3>,
    temperature: f64,
    head: HeadLoss,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let (n, p, c) = (batch.rows, batch.prompt_width, batch.response_width);
    let device = hidden.device();
    let d = hidden.dims()[2];
    let response = hidden
        .slice([0..n, p - 1..p + c - 1, 0..d])
        .reshape([n * c, d]);
    let targets =
        Tensor::<B, 1, Int>::from_data(TensorData::new(batch.targets.clone(), [n * c]), &device);
    let (logp, entropy) = model.head_logp_entropy(response, targets, temperature, head);
    let mask = batch.mask::<B>(&device);
    (
        logp.reshape([n, c]) * mask.clone(),
        entropy.reshape([n, c]) * mask,
    )
}

/// [`response_logp_entropy_with`] of a batch scored `rows` rows at a time and concatenated, for
/// scoring without a graph: peak memory is one chunk's activations, not the whole rollout's.
pub fn response_logp_entropy_chunked<B: KernelBackend>(
    model: &Decoder<B>,
    batch: &SequenceBatch,
    temperature: f64,
    rows: usize,
    head: HeadLoss,
    device: &B::Device,
) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let rows = rows.max(1);
    if rows >= batch.rows {
        return response_logp_entropy_with(model, batch, temperature, head, device);
    }
    let (logps, entropies): (Vec<_>, Vec<_>) = (0..batch.rows)
        .step_by(rows)
        .map(|start| {
            let part = batch.slice(start, (start + rows).min(batch.rows));
            response_logp_entropy_with(model, &part, temperature, head, device)
        })
        .unzip();
    (Tensor::cat(logps, 0), Tensor::cat(entropies, 0))
}
