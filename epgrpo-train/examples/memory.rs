//! Peak resident memory and time of one phase of an RL step on a random decoder of SmolLM2-135M's
//! shape, on the CPU: a training step (teacher-forced log-probs with a graph, backward, AdamW)
//! or scoring (log-probs + entropies, no graph). Run one phase per process (the peak is
//! per process):
//!
//! ```sh
//! cargo run --release -p epgrpo-train --example memory -- --phase train --head-chunk 0
//! cargo run --release -p epgrpo-train --example memory -- --phase train --head-chunk 256
//! cargo run --release -p epgrpo-train --example memory -- --phase train --checkpointing
//! ```
//!
//! Prints one line: phase, options, seconds of the timed call, and the peak resident set
//! (`VmHWM`) before building the model and after the phase, in MiB.

use std::time::Instant;

use burn::backend::{Autodiff, NdArray};
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use clap::Parser;
use epgrpo_models::{Decoder, DecoderConfig, HeadLoss};
use epgrpo_train::optim::adamw;
use epgrpo_train::rss::peak_rss_bytes;
use epgrpo_train::scoring::{
    SequenceBatch, response_logp_entropy_checkpointed, response_logp_entropy_with,
};

type B = Autodiff<NdArray<f32>>;

/// Options.
#[derive(Debug, Parser)]
struct Args {
    /// What to run.
    #[arg(long, value_enum, default_value = "train")]
    phase: Phase,
    /// `[train] head_chunk_tokens`: tokens per fused head chunk, 0 = materialised logits.
    #[arg(long, default_value_t = 1024)]
    head_chunk: usize,
    /// `[train] activation_checkpointing` (train phase).
    #[arg(long)]
    checkpointing: bool,
    /// Decoder layers (SmolLM2-135M has 30).
    #[arg(long, default_value_t = 30)]
    layers: usize,
    /// Sequences.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Tokens per sequence (half prompt, half answer).
    #[arg(long, default_value_t = 256)]
    seq: usize,
}

/// The phase of an RL step to measure.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Phase {
    /// Teacher-forced log-probs with a graph, backward, one AdamW step.
    Train,
    /// Log-probs and entropies without a graph.
    Score,
}

fn main() {
    let args = Args::parse();
    let mib = |b: u64| b as f64 / f64::from(1 << 20);
    let baseline = peak_rss_bytes().unwrap_or(0);
    let config: DecoderConfig = serde_json::from_value(serde_json::json!({
        "model_type": "llama", "vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536,
        "num_hidden_layers": args.layers, "num_attention_heads": 9, "num_key_value_heads": 3,
        "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "tie_word_embeddings": true,
        "max_position_embeddings": 8192,
    }))
    .expect("SmolLM2 shape");
    let device = Default::default();
    let model = Decoder::<B>::init(&config, &device);
    let ids = |n: usize, offset: u32| -> Vec<u32> {
        (0..n as u32).map(|i| (i * 7919 + offset) % 49152).collect()
    };
    let prompts: Vec<Vec<u32>> = (0..args.batch)
        .map(|r| ids(args.seq / 2, r as u32))
        .collect();
    let answers: Vec<Vec<u32>> = (0..args.batch)
        .map(|r| ids(args.seq - args.seq / 2, 1000 + r as u32))
        .collect();
    let p: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let a: Vec<&[u32]> = answers.iter().map(Vec::as_slice).collect();
    let batch = SequenceBatch::new(&p, &a, 0);
    let head = HeadLoss::from_chunk_tokens(args.head_chunk);
    let start = Instant::now();
    match args.phase {
        Phase::Train => {
            let mut optim = adamw(0.0).init::<B, Decoder<B>>();
            let grads = if args.checkpointing {
                let (logp, _, checkpoints) =
                    response_logp_entropy_checkpointed(&model, &batch, 1.0, head, &device);
                model.backward_checkpointed(logp.mean().neg(), checkpoints)
            } else {
                let (logp, _) = response_logp_entropy_with(&model, &batch, 1.0, head, &device);
                GradientsParams::from_grads(logp.mean().neg().backward(), &model)
            };
            let _model = optim.step(1e-5, model, grads);
        }
        Phase::Score => {
            let inner = model.valid();
            let (logp, entropy) = response_logp_entropy_with(&inner, &batch, 1.0, head, &device);
            let _ = (logp.sum() + entropy.sum()).into_scalar();
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "phase {:?} head_chunk {} checkpointing {} layers {} batch {} seq {}: {:.3} s, peak RSS {:.0} MiB (baseline {:.0} MiB)",
        args.phase,
        args.head_chunk,
        args.checkpointing,
        args.layers,
        args.batch,
        args.seq,
        seconds,
        mib(peak_rss_bytes().unwrap_or(0)),
        mib(baseline),
    );
}
