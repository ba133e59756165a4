//! `epgrpo bench`: throughput of the phases of an RL step on a randomly initialised decoder of a
//! real model's shape (SmolLM2-135M by default), printed as a table: a training step
//! (forward + backward + AdamW), scoring (log-probs + entropies, no graph), prefill, and decoding
//! a group of G answers with the KV cache. `epgrpo bench kernels` instead times the fused kernels
//! against the unfused Burn ops (`epgrpo_kernels::bench`); `epgrpo bench rollout` decode
//! throughput at RL shapes ([`super::bench_rollout`]).

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use epgrpo_kernels::KernelBackend;
use epgrpo_kernels::bench::{
    BenchConfig, advantages_header, advantages_rows, logp_entropy_header, logp_entropy_rows,
};
use epgrpo_models::{Decoder, DecoderConfig, GenerationConfig, Sampling, generate};

use crate::backend::{BackendJob, DeviceKind, run_on};
use crate::error::CliError;
use crate::optim::adamw;
use crate::scoring::{SequenceBatch, response_logp_entropy};

/// Options of `epgrpo bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Sequences per training / scoring batch (B).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Tokens per sequence (T).
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    /// Answers per prompt when decoding (G).
    #[arg(long, default_value_t = 8)]
    pub group: usize,
    /// New tokens per answer when decoding.
    #[arg(long, default_value_t = 32)]
    pub new_tokens: usize,
    /// Decoder layers (SmolLM2-135M has 30; fewer makes a quick run).
    #[arg(long, default_value_t = 30)]
    pub layers: usize,
    /// Timed repetitions of each phase (after one warm-up).
    #[arg(long, default_value_t = 2)]
    pub repeats: usize,
    /// Where to run.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// `kernels` / `rollout`: time the fused kernels or decoding at RL shapes instead.
    #[command(subcommand)]
    pub target: Option<BenchTarget>,
}

/// What `epgrpo bench` measures besides the model phases.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BenchTarget {
    /// Fused kernels vs the unfused Burn ops: E1 log-prob + entropy (log_softmax, gather, sum)
    /// on N × V logits, and E2–E12 advantages on B × G × L tokens with K buckets.
    Kernels(KernelBenchArgs),
    /// Decode throughput at RL shapes (rows × new tokens, random weights): new tokens/s,
    /// ms per token step and the fraction of the memory-bandwidth bound.
    Rollout(super::bench_rollout::RolloutBenchArgs),
}

/// Options of `epgrpo bench kernels`. Unset sizes come from the device: on the CPU those of
/// `BenchConfig::cpu` (N = 512, B = 16, 3 timed calls), on a GPU, or with `--gpu-sizes`, those
/// of `BenchConfig::default` (N = 8,192, B = 64, 5 timed calls); V = 32,000 and 151,936,
/// G = 8, L = 1,024 and K = 10 on both.
#[derive(Debug, Clone, clap::Args)]
pub struct KernelBenchArgs {
    /// Logit rows N.
    #[arg(long)]
    pub rows: Option<usize>,
    /// Vocabulary sizes V (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub vocabs: Option<Vec<usize>>,
    /// Prompt groups B of the advantage benchmark.
    #[arg(long)]
    pub groups: Option<usize>,
    /// Responses per group G.
    #[arg(long)]
    pub group_size: Option<usize>,
    /// Padded response length L.
    #[arg(long)]
    pub length: Option<usize>,
    /// Progress buckets K.
    #[arg(long)]
    pub buckets: Option<usize>,
    /// Timed calls per cell (after one warm-up).
    #[arg(long)]
    pub iters: Option<usize>,
    /// Start from the GPU sizes even on the CPU.
    #[arg(long)]
    pub gpu_sizes: bool,
    /// Skip the unfused side (it needs several N × V buffers).
    #[arg(long)]
    pub fused_only: bool,
    /// Where to run.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
}

/// Runs the benchmark and returns the table.
pub fn run(args: BenchArgs) -> Result<String, CliError> {
    match args.target {
        Some(BenchTarget::Kernels(kernels)) => return run_kernels(kernels),
        Some(BenchTarget::Rollout(rollout)) => return super::bench_rollout::run(rollout),
        None => {}
    }
    if args.batch == 0
        || args.seq < 2
        || args.group == 0
        || args.new_tokens == 0
        || args.layers == 0
        || args.repeats == 0
    {
        return Err(CliError::Input(
            "--batch, --group, --new-tokens, --layers and --repeats must be ≥ 1 and --seq ≥ 2"
                .into(),
        ));
    }
    let device = args.device;
    run_on(device, Bench(args))
}

struct Bench(BenchArgs);

/// `epgrpo bench kernels`: the two tables of `epgrpo_kernels::bench` for one device, printed
/// row by row as they are measured; returns the line naming the sizes.
fn run_kernels(args: KernelBenchArgs) -> Result<String, CliError> {
    let device = args.device;
    let preset = if device == DeviceKind::Cpu && !args.gpu_sizes {
        BenchConfig::cpu()
    } else {
        BenchConfig::default()
    };
    let config = BenchConfig {
        rows: args.rows.unwrap_or(preset.rows),
        vocabs: args.vocabs.unwrap_or(preset.vocabs),
        iters: args.iters.unwrap_or(preset.iters),
        unfused: !args.fused_only,
        groups: args.groups.unwrap_or(preset.groups),
        group_size: args.group_size.unwrap_or(preset.group_size),
        length: args.length.unwrap_or(preset.length),
        buckets: args.buckets.unwrap_or(preset.buckets),
    };
    if config.rows == 0
        || config.vocabs.is_empty()
        || config.vocabs.contains(&0)
        || config.groups == 0
        || config.group_size == 0
        || config.length == 0
        || config.buckets == 0
        || config.iters == 0
    {
        return Err(CliError::Input(
            "--rows, --vocabs, --groups, --group-size, --length, --buckets and --iters must be ≥ 1"
                .into(),
        ));
    }
    let note = format!(
        "sizes: N = {}, V = {:?}, B × G × L = {} × {} × {}, K = {}{}",
        config.rows,
        config.vocabs,
        config.groups,
        config.group_size,
        config.length,
        config.buckets,
        if device == DeviceKind::Cpu && !args.gpu_sizes {
            " (CPU sizes; --gpu-sizes for N = 8192, B = 64)"
        } else {
            ""
        }
    );
    run_on(device, KernelBench { device, config })?;
    Ok(note)
}

struct KernelBench {
    device: DeviceKind,
    config: BenchConfig,
}

impl BackendJob for KernelBench {
    type Output = ();

    fn run<B>(self, _device: B::Device) -> Result<(), CliError>
    where
        B: AutodiffBackend + KernelBackend,
        B::InnerBackend: KernelBackend,
    {
        let (name, config) = (self.device.name(), &self.config);
        // A CPU run takes minutes: each row goes out as soon as it is measured.
        let mut print = |line: String| println!("{line}");
        logp_entropy_header(config.iters)
            .into_iter()
            .for_each(&mut print);
        logp_entropy_rows::<B::InnerBackend>(name, config, &mut print);
        println!();
        advantages_header(config.iters)
            .into_iter()
            .for_each(&mut print);
        advantages_rows::<B::InnerBackend>(name, config, &mut print);
        println!();
        Ok(())
    }
}

/// SmolLM2-135M's shape with `layers` layers.
fn smollm2_shape(layers: usize) -> Result<DecoderConfig, CliError> {
    let json = serde_json::json!({
        "model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": layers, "num_attention_heads": 9, "num_key_value_heads": 3,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": true,
        "max_position_embeddings": 8192,
    });
    serde_json::from_value(json).map_err(|e| CliError::Internal(e.to_string()))
}

/// Seconds per call of `f`, the median of `repeats` timed calls after one warm-up call.
fn time<F: FnMut()>(repeats: usize, mut f: F) -> f64 {
    f();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

impl BackendJob for Bench {
    type Output = String;

    fn run<B>(self, device: B::Device) -> Result<String, CliError>
    where
        B: AutodiffBackend + KernelBackend,
        B::InnerBackend: KernelBackend,
    {
        let a = self.0;
        let config = smollm2_shape(a.layers)?;
        let model = Decoder::<B>::init(&config, &device);
        let (b, t) = (a.batch, a.seq);
        // Half prompt, half answer: every answer token is scored.
        let ids = |n: usize, offset: u32| -> Vec<u32> {
            (0..n as u32).map(|i| (i * 7919 + offset) % 49152).collect()
        };
        let prompts: Vec<Vec<u32>> = (0..b).map(|r| ids(t / 2, r as u32)).collect();
        let answers: Vec<Vec<u32>> = (0..b).map(|r| ids(t - t / 2, 1000 + r as u32)).collect();
        let prompt_refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        let answer_refs: Vec<&[u32]> = answers.iter().map(Vec::as_slice).collect();
        let batch = SequenceBatch::new(&prompt_refs, &answer_refs, 0);
        let answer_tokens = batch.response_tokens();
        let tokens = (b * (batch.prompt_width + batch.response_width - 1)) as f64;

        let mut optim = adamw(0.0).init::<B, Decoder<B>>();
        let mut trained = Some(model.clone());
        let train_s = time(a.repeats, || {
            let current = trained.take().expect("model is put back after each step");
            let (logp, _) = response_logp_entropy(&current, &batch, 1.0, &device);
            let loss = logp.mean().neg();
            let grads = GradientsParams::from_grads(loss.backward(), &current);
            trained = Some(optim.step(1e-5, current, grads));
        });
        let inner = model.valid();
        let score_s = time(a.repeats, || {
            let (logp, entropy) = response_logp_entropy(&inner, &batch, 1.0, &device);
            let _ = (logp.sum() + entropy.sum()).into_scalar();
        });
        let generation = |new_tokens: usize| GenerationConfig {
            samples_per_prompt: a.group,
            max_new_tokens: new_tokens,
            sampling: Sampling::Random {
                temperature: 1.0,
                top_k: None,
                top_p: None,
            },
            stop_tokens: Vec::new(),
            seed: 0,
            pad_token: 0,
        };
        let prompt = vec![prompts[0].clone()];
        let mut failure = None;
        let mut generate_s = |new_tokens: usize| {
            time(a.repeats, || {
                if let Err(e) = generate(&inner, &prompt, &generation(new_tokens), &device) {
                    failure = Some(e.to_string());
                }
            })
        };
        let prefill_s = generate_s(1);
        let decode_s = generate_s(a.new_tokens + 1) - prefill_s;
        if let Some(e) = failure {
            return Err(CliError::Internal(format!("generation failed: {e}")));
        }
        let new = (a.group * a.new_tokens) as f64;
        Ok(format!(
            "SmolLM2-135M shape, {} layers, random weights, f32; tokens/s counts every position of the batch\n\
             | phase | shape | time | tokens/s |\n|---|---|---|---|\n\
             | train step (fwd + bwd + AdamW) | B={b}, T={t}, loss on {} answer tokens | {:.3} s | {:.1} |\n\
             | scoring (log-prob + entropy, no graph) | B={b}, T={t} | {:.3} s | {:.1} |\n\
             | prefill | 1 prompt × {} tokens | {:.3} s | {:.1} |\n\
             | decode, KV cache | G={} × {} new tokens | {:.3} s | {:.1} |",
            a.layers,
            answer_tokens,
            train_s,
            tokens / train_s,
            score_s,
            tokens / score_s,
            t / 2,
            prefill_s,
            (t / 2) as f64 / prefill_s,
            a.group,
            a.new_tokens,
            decode_s,
            new / decode_s.max(1e-9),
        ))
    }
}
