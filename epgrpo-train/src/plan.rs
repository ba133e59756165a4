//! Memory plan of a training config: the bytes of weights, gradients, AdamW state, the
//! rollout's KV cache, the activations of a training micro-batch and the logits, per precision
//! of the decoder's compute and per option (activation checkpointing, chunked output head).
//!
//! The three phases of an RL step run one after another, so the peak is the memory that lives
//! through the whole step (weights, reference, gradients, AdamW moments) plus the largest phase:
//! the rollout (KV cache), scoring (one chunk's transient activations and logits, no graph) or
//! the update (a micro-batch's activations and logits with a graph).
//!
//! The per-layer activation counts model this implementation's autodiff graph (what its
//! backward nodes keep), not an ideal one; `tests/plan_memory.rs` checks the total against the
//! measured peak resident memory of a real run.

use epgrpo_models::{DecoderConfig, HeadLoss};

use crate::config::Precision;

/// Bytes of an f32.
const F32: u64 = 4;
/// Tokens per head chunk of the default mode.
const DEFAULT_CHUNK: u64 = HeadLoss::DEFAULT_CHUNK_TOKENS as u64;

/// Values a decoder layer keeps for the backward pass, per token, in units of the hidden width
/// `d`: the two fused RMSNorms' inputs and outputs, the attention context (and its reshaped
/// copy) and the residual sum.
const KEPT_PER_TOKEN_D: u64 = 6;
/// ... in units of the MLP width: gate and up (kept by the fused SwiGLU) and the gated product.
const KEPT_PER_TOKEN_MLP: u64 = 3;
/// ... in units of the query + key + value width: the projections and their RoPE rotations.
const KEPT_PER_TOKEN_QKV: u64 = 3;
/// Attention score matrices `[heads, S, S]` kept per sequence: the probabilities (the fused
/// softmax keeps its output, not its input).
const KEPT_SCORE_MATRICES: u64 = 1;
/// `[tokens, V]` f32 buffers alive at once when E1 runs on materialised logits with a backward
/// (the logits, their gradient and the softmax temporaries; measured 6.3 on NdArray).
const LOGIT_BUFFERS_TRAIN: u64 = 6;
/// The same without a graph (scoring).
const LOGIT_BUFFERS_SCORE: u64 = 4;

/// What the plan needs to know about a run.
#[derive(Debug, Clone)]
pub struct PlanInputs {
    /// The decoder's architecture.
    pub model: DecoderConfig,
    /// LoRA rank (0: full fine-tuning).
    pub lora_rank: usize,
    /// LoRA target names (`q_proj`, …).
    pub lora_targets: Vec<String>,
    /// Responses of a rollout (prompts × group size).
    pub rollout_rows: usize,
    /// Longest prompt in tokens.
    pub prompt_tokens: usize,
    /// Longest response in tokens.
    pub max_new_tokens: usize,
    /// Rows of a training micro-batch and of a scoring chunk.
    pub micro_rows: usize,
    /// `[train] head_chunk_tokens` (0: materialised logits).
    pub head_chunk_tokens: usize,
    /// `[train] activation_checkpointing`.
    pub activation_checkpointing: bool,
}

/// One row of the table: a component and its bytes per precision (in [`Precision::ALL`] order).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    /// What the bytes are for.
    pub component: String,
    /// Bytes for f32, bf16, f16.
    pub bytes: [u64; 3],
}

/// The whole plan.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    /// Components, then peaks.
    pub rows: Vec<PlanRow>,
    /// Peak bytes of the config as given (its head mode and checkpointing), per precision.
    pub peak: [u64; 3],
}

/// Parameter counts of a decoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamCounts {
    /// Every weight.
    pub total: u64,
    /// The weights AdamW updates (LoRA: the adapters).
    pub trainable: u64,
}

/// `(in, out)` of every projection of one layer, by HF name.
fn projections(m: &DecoderConfig) -> [(&'static str, u64, u64); 7] {
    let (d, i) = (m.hidden_size as u64, m.intermediate_size as u64);
    let q = (m.num_attention_heads * m.head_dim()) as u64;
    let kv = (m.num_kv_heads() * m.head_dim()) as u64;
    [
        ("q_proj", d, q),
        ("k_proj", d, kv),
        ("v_proj", d, kv),
        ("o_proj", q, d),
        ("gate_proj", d, i),
        ("up_proj", d, i),
        ("down_proj", i, d),
    ]
}

/// Parameter counts of `inputs`' model.
pub fn param_counts(inputs: &PlanInputs) -> ParamCounts {
    let m = &inputs.model;
    let (d, v, layers) = (
        m.hidden_size as u64,
        m.vocab_size as u64,
        m.num_hidden_layers as u64,
    );
    let projections = projections(m);
    let q = (m.num_attention_heads * m.head_dim()) as u64;
    let kv = (m.num_kv_heads() * m.head_dim()) as u64;
    let biases = if m.qkv_bias() { q + 2 * kv } else { 0 } + if m.o_bias() { d } else { 0 };
    let qk_norm = if m.qk_norm() {
        2 * m.head_dim() as u64
    } else {
        0
    };
    let per_layer: u64 =
        projections.iter().map(|(_, a, b)| a * b).sum::<u64>() + biases + qk_norm + 2 * d;
    let head = if m.tie_word_embeddings { 0 } else { d * v };
    let total = v * d + head + d + layers * per_layer;
    let trainable = if inputs.lora_rank == 0 {
        total
    } else {
        let r = inputs.lora_rank as u64;
        layers
            * projections
                .iter()
                .filter(|(name, _, _)| inputs.lora_targets.iter().any(|t| t == name))
                .map(|(_, a, b)| r * (a + b))
                .sum::<u64>()
    };
    ParamCounts { total, trainable }
}

/// Bytes per precision of `f(precision)`.
fn per_precision(f: impl Fn(Precision) -> u64) -> [u64; 3] {
    Precision::ALL.map(f)
}

/// The plan of `inputs`.
pub fn plan(inputs: &PlanInputs) -> MemoryPlan {
    let m = &inputs.model;
    let counts = param_counts(inputs);
    let lora = inputs.lora_rank > 0;
    let (d, i, v) = (
        m.hidden_size as u64,
        m.intermediate_size as u64,
        m.vocab_size as u64,
    );
    let layers = m.num_hidden_layers as u64;
    let heads = m.num_attention_heads as u64;
    let qkv = ((m.num_attention_heads + 2 * m.num_kv_heads()) * m.head_dim()) as u64;
    let kv_width = (m.num_kv_heads() * m.head_dim()) as u64;

    // Lives through the whole step. Full fine-tuning: f32 master weights (a half-precision
    // copy is cast per layer in the forward) and a frozen reference copy in the compute type.
    // LoRA: the frozen base in the compute type plus f32 adapters; the reference is the base.
    let weights = per_precision(|p| match lora {
        true => counts.total * p.bytes() + counts.trainable * F32,
        false => counts.total * F32,
    });
    let reference = per_precision(|p| if lora { 0 } else { counts.total * p.bytes() });
    let gradients = [counts.trainable * F32; 3];
    let adam = [2 * counts.trainable * F32; 3];

    // Rollout: K and V of every layer for every response row.
    let rollout_tokens = (inputs.prompt_tokens + inputs.max_new_tokens) as u64;
    let kv_cache = per_precision(|p| {
        inputs.rollout_rows as u64 * rollout_tokens * layers * 2 * kv_width * p.bytes()
    });

    // Update: one micro-batch of rows × seq tokens with a graph.
    let rows = inputs.micro_rows as u64;
    let seq = (inputs.prompt_tokens + inputs.max_new_tokens)
        .saturating_sub(1)
        .max(1) as u64;
    let tokens = rows * seq;
    let layer_kept = |p: Precision| {
        (tokens * (KEPT_PER_TOKEN_D * d + KEPT_PER_TOKEN_MLP * i + KEPT_PER_TOKEN_QKV * qkv)
            + rows * KEPT_SCORE_MATRICES * heads * seq * seq)
            * p.bytes()
    };
    let activations = per_precision(|p| layers * layer_kept(p) + tokens * d * F32);
    // Checkpointing: each layer's input, plus one layer's graph while it is recomputed.
    let checkpointed = per_precision(|p| layers * tokens * d * p.bytes() + layer_kept(p));

    // Logits (always f32: E1 and the loss run in f32).
    let response_tokens = rows * inputs.max_new_tokens as u64;
    let materialised_train = response_tokens * v * F32 * LOGIT_BUFFERS_TRAIN;
    let materialised_score = response_tokens * v * F32 * LOGIT_BUFFERS_SCORE;
    let chunk_tokens = match inputs.head_chunk_tokens {
        0 => DEFAULT_CHUNK,
        n => n as u64,
    };
    let chunked = chunk_tokens.min(response_tokens) * v * F32 * LOGIT_BUFFERS_TRAIN;
    let (logits_train, logits_score) = match inputs.head_chunk_tokens {
        0 => (materialised_train, materialised_score),
        _ => (chunked, chunked),
    };
    let other_logits = match inputs.head_chunk_tokens {
        0 => chunked,
        _ => materialised_train,
    };
    // Scoring holds one layer's transient tensors at a time.
    let scoring = per_precision(|p| layer_kept(p) + logits_score);

    let fixed = |k: usize| weights[k] + reference[k] + gradients[k] + adam[k];
    let peak_with = |acts: &[u64; 3], logits: u64| {
        [0, 1, 2].map(|k| fixed(k) + kv_cache[k].max(scoring[k]).max(acts[k] + logits))
    };
    let (acts, other_acts) = match inputs.activation_checkpointing {
        true => (&checkpointed, &activations),
        false => (&activations, &checkpointed),
    };
    let peak = peak_with(acts, logits_train);
    let row = |component: String, bytes: [u64; 3]| PlanRow { component, bytes };
    let head_mode = |tokens: usize| match tokens {
        0 => "materialised logits".to_string(),
        n => format!("head chunks of {n} tokens"),
    };
    let checkpointing = |on: bool| match on {
        true => "activation checkpointing",
        false => "no checkpointing",
    };
    let this = (
        head_mode(inputs.head_chunk_tokens),
        checkpointing(inputs.activation_checkpointing),
    );
    let other_head = head_mode(match inputs.head_chunk_tokens {
        0 => DEFAULT_CHUNK as usize,
        _ => 0,
    });
    let other_checkpointing = checkpointing(!inputs.activation_checkpointing);
    let params = format!(
        "{} parameters, {} trainable{}",
        counts.total,
        counts.trainable,
        if lora { " (LoRA)" } else { "" }
    );
    MemoryPlan {
        rows: vec![
            row(format!("weights ({params})"), weights),
            row("reference policy".into(), reference),
            row("gradients (f32)".into(), gradients),
            row("AdamW m, v (f32)".into(), adam),
            row(
                format!(
                    "KV cache of the rollout ({} rows × {rollout_tokens} tokens)",
                    inputs.rollout_rows
                ),
                kv_cache,
            ),
            row(
                format!("activations of a micro-batch ({rows} rows × {seq} tokens)"),
                activations,
            ),
            row("activations, checkpointed per layer".into(), checkpointed),
            row(
                format!("logits, materialised ({response_tokens} tokens × {v})"),
                [materialised_train; 3],
            ),
            row(
                format!("logits, chunked ({chunk_tokens} tokens)"),
                [chunked; 3],
            ),
            row(format!("peak: this config ({}, {})", this.0, this.1), peak),
            row(
                format!("peak: {}, {other_checkpointing}", this.0),
                peak_with(other_acts, logits_train),
            ),
            row(
                format!("peak: {other_head}, {}", this.1),
                peak_with(acts, other_logits),
            ),
            row(
                format!("peak: {other_head}, {other_checkpointing}"),
                peak_with(other_acts, other_logits),
            ),
        ],
        peak,
    }
}

/// `bytes` in GiB with two decimals (MiB below 0.1 GiB).
pub fn human(bytes: u64) -> String {
    let gib = bytes as f64 / f64::from(1u32 << 30);
    if gib >= 0.1 {
        format!("{gib:.2} GiB")
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
    }
}

/// The plan as a Markdown table, with a "fits" line when `device_bytes` is given.
pub fn render(plan: &MemoryPlan, device_bytes: Option<u64>) -> String {
    let mut out = String::from("| component | f32 | bf16 | f16 |\n|---|---|---|---|\n");
    for row in &plan.rows {
        let cells: Vec<String> = row.bytes.iter().map(|&b| human(b)).collect();
        out += &format!("| {} | {} |\n", row.component, cells.join(" | "));
    }
    if let Some(device) = device_bytes {
        let verdicts: Vec<String> = Precision::ALL
            .iter()
            .zip(plan.peak)
            .map(|(p, peak)| {
                let verdict = if peak <= device {
                    "fits"
                } else {
                    "does not fit"
                };
                format!("{}: {verdict}", p.name())
            })
            .collect();
        out += &format!("\n{} device: {}\n", human(device), verdicts.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn inputs(json: &str, lora_rank: usize) -> PlanInputs {
        PlanInputs {
            model: DecoderConfig::from_json_str(json, Path::new("config.json")).unwrap(),
            lora_rank,
            lora_targets: vec!["q_proj".into(), "v_proj".into()],
            rollout_rows: 4,
            prompt_tokens: 6,
            max_new_tokens: 4,
            micro_rows: 2,
            head_chunk_tokens: 0,
            activation_checkpointing: false,
        }
    }

    const TINY: &str = r#"{"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
        "intermediate_size": 12, "num_hidden_layers": 2, "num_attention_heads": 2,
        "num_key_value_heads": 1, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
        "max_position_embeddings": 64, "tie_word_embeddings": false}"#;

    #[test]
    fn parameter_counts_follow_the_shapes() {
        // Embedding 10·8, head 8·10, final norm 8; per layer q 8·8, k 8·4, v 8·4, o 8·8,
        // gate/up 8·12 each, down 12·8, two norms 8 each.
        let per_layer = 64 + 32 + 32 + 64 + 3 * 96 + 16;
        let counts = param_counts(&inputs(TINY, 0));
        assert_eq!(counts.total, 80 + 80 + 8 + 2 * per_layer);
        assert_eq!(counts.trainable, counts.total);
        // LoRA r = 2 on q (8 → 8) and v (8 → 4): 2·(8+8) + 2·(8+4) per layer.
        let lora = param_counts(&inputs(TINY, 2));
        assert_eq!(lora.trainable, 2 * (32 + 24));
    }

    #[test]
    fn kv_cache_and_optimizer_bytes() {
        let p = plan(&inputs(TINY, 0));
        let by_name = |prefix: &str| {
            p.rows
                .iter()
                .find(|r| r.component.starts_with(prefix))
                .unwrap()
                .bytes
        };
        // 4 rows × 10 tokens × 2 layers × (K, V) × 1 head × 4 dims = 640 values of 4 / 2 bytes.
        assert_eq!(by_name("KV cache"), [2560, 1280, 1280]);
        let total = param_counts(&inputs(TINY, 0)).total;
        assert_eq!(by_name("AdamW"), [8 * total; 3]);
        assert_eq!(by_name("reference"), [4 * total, 2 * total, 2 * total]);
    }

    #[test]
    fn the_verdict_compares_the_peak_with_the_device() {
        let p = plan(&inputs(TINY, 0));
        let table = render(&p, Some(p.peak[1]));
        assert!(
            table.contains("f32: does not fit, bf16: fits, f16: fits"),
            "{table}"
        );
    }
}
