//! `epgrpo bench rollout`: decode throughput of [`epgrpo_models::generate`] at RL shapes — a
//! randomly initialised decoder of a real model's shape, `rows = prompts × G` rows of distinct
//! left-padded prompts of different lengths, a fixed number of new tokens (no stop tokens, so
//! every row decodes to the end) — printing new tokens/s, ms per token step and the fraction of
//! the memory-bandwidth bound: (bytes of weights + KV cache read per step) ÷ step time ÷ the
//! bandwidth given. `scripts/peer/bench_generate.py` measures transformers `generate` on the
//! same shapes and prints the same columns.

use std::time::Instant;

use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use epgrpo_kernels::KernelBackend;
use epgrpo_models::{Decoder, DecoderConfig, GenerationConfig, Sampling, generate};

use crate::backend::{BackendJob, DeviceKind, run_on};
use crate::error::CliError;

/// A model shape to benchmark (random weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModelShape {
    /// SmolLM2-135M: Llama, 30 layers, hidden 576, 9 / 3 heads, vocab 49,152, tied.
    #[value(name = "smollm2-135m")]
    Smollm2_135m,
    /// Qwen2.5-0.5B: Qwen2, 24 layers, hidden 896, 14 / 2 heads, vocab 151,936, tied.
    #[value(name = "qwen2.5-0.5b")]
    Qwen25_05b,
    /// Qwen2.5-1.5B: Qwen2, 28 layers, hidden 1,536, 12 / 2 heads, vocab 151,936, tied.
    #[value(name = "qwen2.5-1.5b")]
    Qwen25_15b,
}

impl ModelShape {
    /// The shape's name on the command line.
    fn name(self) -> &'static str {
        match self {
            ModelShape::Smollm2_135m => "smollm2-135m",
            ModelShape::Qwen25_05b => "qwen2.5-0.5b",
            ModelShape::Qwen25_15b => "qwen2.5-1.5b",
        }
    }

    /// The HF `config.json` of the shape, with `layers` layers when given.
    fn config(self, layers: Option<usize>) -> Result<DecoderConfig, CliError> {
        let mut json = match self {
            ModelShape::Smollm2_135m => serde_json::json!({
                "model_type": "llama", "vocab_size": 49152, "hidden_size": 576,
                "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                "num_key_value_heads": 3, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
                "tie_word_embeddings": true, "max_position_embeddings": 8192,
            }),
            ModelShape::Qwen25_05b => serde_json::json!({
                "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 896,
                "intermediate_size": 4864, "num_hidden_layers": 24, "num_attention_heads": 14,
                "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
                "tie_word_embeddings": true, "max_position_embeddings": 32768,
            }),
            ModelShape::Qwen25_15b => serde_json::json!({
                "model_type": "qwen2", "vocab_size": 151936, "hidden_size": 1536,
                "intermediate_size": 8960, "num_hidden_layers": 28, "num_attention_heads": 12,
                "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
                "tie_word_embeddings": true, "max_position_embeddings": 32768,
            }),
        };
        if let Some(layers) = layers {
            json["num_hidden_layers"] = layers.into();
        }
        serde_json::from_value(json).map_err(|e| CliError::Internal(e.to_string()))
    }
}

/// Options of `epgrpo bench rollout`. Unset sizes come from the device: on the CPU 8 rows,
/// 32-token prompts and 16 new tokens (a run of a minute or two), on a GPU 64, 128, 256 and 512
/// rows, 256-token prompts and 512 new tokens.
#[derive(Debug, Clone, clap::Args)]
pub struct RolloutBenchArgs {
    /// Model shape (random weights, f32).
    #[arg(long, value_enum, default_value = "smollm2-135m")]
    pub shape: ModelShape,
    /// Decoder layers instead of the shape's own count (fewer makes a quick run).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Decode batch sizes, rows = prompts × group (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub rows: Option<Vec<usize>>,
    /// Samples per prompt (G); every entry of --rows must be a multiple of it.
    #[arg(long, default_value_t = 8)]
    pub group: usize,
    /// Mean prompt length; prompt lengths spread over ±1/8 of it, left-padded.
    #[arg(long)]
    pub prompt_len: Option<usize>,
    /// New tokens per row.
    #[arg(long)]
    pub new_tokens: Option<usize>,
    /// Nucleus mass of the sampler (temperature 1; unset: no truncation).
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Memory bandwidth of the device in GB/s for the bound (default: an H200's 4,800).
    #[arg(long, default_value_t = 4800.0)]
    pub bandwidth_gbs: f64,
    /// Timed repetitions of each measurement (after one warm-up); the median is reported.
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Where to run.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

/// The resolved sizes of one run.
struct RolloutBench {
    shape: ModelShape,
    config: DecoderConfig,
    rows: Vec<usize>,
    group: usize,
    prompt_len: usize,
    new_tokens: usize,
    top_p: Option<f32>,
    bandwidth_gbs: f64,
    repeats: usize,
}

/// Runs `epgrpo bench rollout`, printing one table row per batch size as it is measured;
/// returns the note on what the columns count.
pub fn run(args: RolloutBenchArgs) -> Result<String, CliError> {
    let gpu = args.device != DeviceKind::Cpu;
    let bench = RolloutBench {
        shape: args.shape,
        config: args.shape.config(args.layers)?,
        rows: args.rows.unwrap_or(if gpu {
            vec![64, 128, 256, 512]
        } else {
            vec![8]
        }),
        group: args.group,
        prompt_len: args.prompt_len.unwrap_or(if gpu { 256 } else { 32 }),
        new_tokens: args.new_tokens.unwrap_or(if gpu { 512 } else { 16 }),
        top_p: args.top_p,
        bandwidth_gbs: args.bandwidth_gbs,
        repeats: args.repeats,
    };
    let bad_rows = bench.rows.is_empty()
        || bench.group == 0
        || bench
            .rows
            .iter()
            .any(|&r| r == 0 || !r.is_multiple_of(bench.group));
    if bad_rows {
        return Err(CliError::Input(
            "--rows must be non-zero multiples of --group (≥ 1)".into(),
        ));
    }
    if bench.prompt_len == 0
        || bench.new_tokens < 2
        || bench.repeats == 0
        || args.layers == Some(0)
        || bench.bandwidth_gbs.is_nan()
        || bench.bandwidth_gbs <= 0.0
        || bench.top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0))
    {
        return Err(CliError::Input(
            "--prompt-len, --layers and --repeats must be ≥ 1, --new-tokens ≥ 2, \
             --bandwidth-gbs > 0 and --top-p in (0, 1]"
                .into(),
        ));
    }
    let note = format!(
        "{} shape, {} layers, random weights, f32, {} device; temperature 1{}; decode = time of \
         prefill + {} tokens minus prefill + 1 token; bytes/step = weights read (layers + head) + \
         the KV cache at the mean context, f32; bound = bytes/step ÷ ({} GB/s)",
        bench.shape.name(),
        bench.config.num_hidden_layers,
        args.device.name(),
        bench
            .top_p
            .map(|p| format!(", top-p {p}"))
            .unwrap_or_default(),
        bench.new_tokens,
        bench.bandwidth_gbs,
    );
    run_on(args.device, bench)?;
    Ok(note)
}

/// Table header, shared with `scripts/peer/bench_generate.py`.
const HEADER: &str = "| engine | shape | rows | prompt lens | new tokens | prefill s | ms / token step | new tokens/s | MB read / step | bandwidth bound |\n|---|---|---|---|---|---|---|---|---|---|";

/// Lengths of the `prompts` distinct prompts: spread over `mean ± mean/8`.
fn prompt_lengths(prompts: usize, mean: usize) -> Vec<usize> {
    let spread = mean / 8;
    (0..prompts)
        .map(|i| (mean - spread + (i * 37) % (2 * spread + 1)).max(1))
        .collect()
}

/// Seconds per call of `f`, the median of `repeats` timed calls after one warm-up call.
fn time<F: FnMut() -> Result<(), CliError>>(repeats: usize, mut f: F) -> Result<f64, CliError> {
    f()?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

impl BackendJob for RolloutBench {
    type Output = ();

    fn run<B>(self, device: B::Device) -> Result<(), CliError>
    where
        B: AutodiffBackend + KernelBackend,
        B::InnerBackend: KernelBackend,
    {
        let c = &self.config;
        let model = Decoder::<B::InnerBackend>::init(c, &device);
        let embedding = c.vocab_size * c.hidden_size;
        // The head reads the whole [vocab, hidden] matrix each step; an untied embedding
        // table is only looked up (a few rows).
        let weights = model.num_params() - if c.tie_word_embeddings { 0 } else { embedding };
        let kv_width = c.num_key_value_heads.unwrap_or(c.num_attention_heads) * c.head_dim();
        println!("{HEADER}");
        for &rows in &self.rows {
            let lengths = prompt_lengths(rows / self.group, self.prompt_len);
            let prompts: Vec<Vec<u32>> = lengths
                .iter()
                .enumerate()
                .map(|(p, &n)| {
                    (0..n)
                        .map(|j| ((j * 7919 + p * 104_729 + 1) % c.vocab_size) as u32)
                        .collect()
                })
                .collect();
            let generation = |new_tokens| GenerationConfig {
                samples_per_prompt: self.group,
                max_new_tokens: new_tokens,
                sampling: Sampling::Random {
                    temperature: 1.0,
                    top_k: None,
                    top_p: self.top_p,
                },
                stop_tokens: Vec::new(),
                seed: 0,
                pad_token: 0,
            };
            let run = |new_tokens| {
                generate(&model, &prompts, &generation(new_tokens), &device)
                    .map(|_| ())
                    .map_err(|e| CliError::Internal(format!("generation failed: {e}")))
            };
            let prefill_s = time(self.repeats, || run(1))?;
            let total_s = time(self.repeats, || run(self.new_tokens))?;
            let steps = self.new_tokens - 1;
            let step_s = (total_s - prefill_s).max(1e-9) / steps as f64;
            let width = lengths.iter().max().copied().unwrap_or(0);
            let context = width as f64 + self.new_tokens as f64 / 2.0;
            let kv_bytes = 2.0 * (c.num_hidden_layers * rows * kv_width) as f64 * context * 4.0;
            let bytes = weights as f64 * 4.0 + kv_bytes;
            let bound = bytes / step_s / (self.bandwidth_gbs * 1e9);
            println!(
                "| epgrpo | {} | {rows} | {}–{} | {} | {prefill_s:.3} | {:.2} | {:.1} | {:.1} | {:.2} % |",
                self.shape.name(),
                lengths.iter().min().copied().unwrap_or(0),
                width,
                self.new_tokens,
                step_s * 1e3,
                rows as f64 / step_s,
                bytes / 1e6,
                bound * 100.0,
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_lengths_are_distinct_around_the_mean() {
        let lengths = prompt_lengths(8, 256);
        assert!(
            lengths.iter().all(|&n| (224..=288).contains(&n)),
            "{lengths:?}"
        );
        let mut distinct = lengths.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 8, "{lengths:?}");
    }

    #[test]
    fn shapes_have_their_published_sizes() {
        let q = ModelShape::Qwen25_05b.config(None).unwrap();
        assert_eq!(
            (q.num_hidden_layers, q.hidden_size, q.head_dim()),
            (24, 896, 64)
        );
        let s = ModelShape::Smollm2_135m.config(Some(2)).unwrap();
        assert_eq!((s.num_hidden_layers, s.vocab_size), (2, 49152));
    }
}
