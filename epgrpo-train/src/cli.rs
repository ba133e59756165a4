//! Command-line interface of the `epgrpo` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use epgrpo_core::Algorithm;

use crate::backend::DeviceKind;

/// epgrpo: train language models with EP-GRPO and its GRPO-family baselines.
#[derive(Debug, Parser)]
#[command(name = "epgrpo", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a policy. With no arguments: the embedded default experiment (a small decoder on
    /// integer arithmetic, supervised warm start then EP-GRPO), offline, on the CPU.
    Train(TrainArgs),
    /// Generate a completion with a Hugging Face model directory or a GGUF file (CPU).
    Generate {
        /// Model directory (config.json, *.safetensors, tokenizer.json) or `.gguf` file.
        #[arg(long)]
        model: PathBuf,
        /// The prompt.
        #[arg(long)]
        prompt: String,
        /// Send the prompt as is, without the model's chat template.
        #[arg(long)]
        raw: bool,
        /// Longest completion in tokens.
        #[arg(long, default_value_t = 128)]
        max_new_tokens: usize,
        /// Sampling temperature (0: greedy).
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        /// Sampling seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Throughput of training, scoring, prefill and grouped decoding on a random decoder of
    /// SmolLM2-135M's shape, as a table; `bench kernels`: the fused kernels vs the unfused Burn
    /// ops.
    Bench(crate::commands::bench::BenchArgs),
    /// Evaluate a run's model or a model file: greedy pass@1, avg@n, pass@k, maj@k, per-problem
    /// JSONL.
    Eval(crate::commands::eval::EvalArgs),
    /// Draw the curves of a run's metrics.jsonl to RUN_DIR/plots.svg (done automatically at the
    /// end of `train`); with several run directories, overlay their curves in one figure.
    Plot {
        /// Run directories.
        #[arg(required = true)]
        run_dirs: Vec<PathBuf>,
        /// Where the overlay of several runs goes.
        #[arg(long, default_value = "overlay.svg")]
        out: PathBuf,
    },
    /// Methods × seeds of one configuration as parallel training processes, then one table
    /// (held-out accuracy with 95 % intervals, zero-variance share, tokens with an advantage,
    /// KL, rollout tokens, wall time) and one overlay figure.
    Compare(crate::commands::compare::CompareArgs),
    /// Start this node's processes of a data-parallel run with torchrun's variables (RANK,
    /// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), e.g. `epgrpo launch
    /// --nproc-per-node 8 -- train --device cuda --config run.toml` (docs/distributed.md).
    Launch(crate::commands::launch::LaunchArgs),
    /// The memory a training config needs (weights, gradients, AdamW state, KV cache,
    /// activations, logits) per precision and option, as a table; with `--device-memory GB`,
    /// whether it fits.
    Plan(crate::commands::plan::PlanArgs),
    /// Compute per-token advantages for groups of responses given as JSON, and print them as JSON.
    ///
    /// Input: {"algorithm": {<[algorithm] config fields>}, "groups": [{"rewards": [..],
    /// "entropy": [[..], ..], "logp_old": [[..], ..], "logp_ref": [[..], ..]}]}. Rows are
    /// ragged: one per response, as long as the response. `algorithm.group_size` defaults to
    /// the number of rewards of the groups; an optional `"step"` (0-based RL step) applies
    /// `algorithm.alpha_warmup_steps`.
    Advantages {
        /// JSON input file; reads standard input when absent or `-`.
        input: Option<PathBuf>,
    },
}

/// Options of `epgrpo train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// TOML configuration (any subset of the keys of the default preset); default: the
    /// embedded preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override `[algorithm] name`.
    #[arg(long, value_parser = parse_algorithm)]
    pub algo: Option<Algorithm>,
    /// Override `[train] seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override `[train] steps` (RL steps).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Override `[train] out_dir`. Without it, when `out_dir` already holds a run, this one goes
    /// to the first free `out_dir-2`, `out_dir-3`, …; an `--out` that holds a run is refused.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the run that lives in the output directory (its checkpoint, metrics, plots,
    /// model; other files stay) instead of moving to a numbered one.
    #[arg(long)]
    pub overwrite: bool,
    /// Continue the run in this directory from its last checkpoint (its saved configuration is
    /// used; other options are refused).
    #[arg(long, conflicts_with_all = ["config", "algo", "seed", "steps", "out", "overwrite"])]
    pub resume: Option<PathBuf>,
    /// Stop after this many RL steps (with a checkpoint); `--resume` continues.
    #[arg(long)]
    pub stop_after: Option<usize>,
    /// Stop after this many warm-start steps (with a checkpoint); `--resume` continues.
    #[arg(long, conflicts_with = "stop_after")]
    pub stop_after_sft: Option<usize>,
    /// Where to train.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceKind,
    /// Print one line per step instead of progress bars.
    #[arg(long)]
    pub plain: bool,
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    serde_json::from_value(serde_json::Value::String(name.to_string())).map_err(|_| {
        format!("unknown algorithm {name:?}: expected grpo, dr_grpo, dapo, entropy_mask, gspo, cispo or ep_grpo")
    })
}
