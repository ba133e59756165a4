//! The training loop: evaluate → supervised warm start → RL steps (rollout → score → advantages
//! → update) with metrics, periodic evaluation and checkpoints → final evaluation.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use epgrpo_eval::{Problem, Verifier, VerifierConfig};
use epgrpo_kernels::KernelBackend;
use epgrpo_models::{Decoder, save_hf_dir};

use crate::char_tokenizer;
use crate::checkpoint::{self, RunState, Stage};
use crate::config::TrainConfig;
use crate::distributed::{Communicator, shard, sync};
use crate::dynamic_sampling::{self, Collected};
use crate::error::CliError;
use crate::evaluate::{DEFAULT_MEMORY_BUDGET_BYTES, Graded, accuracy, greedy_eval};
use crate::metrics::{MetricsLog, StepMetrics};
use crate::optim::{adamw, learning_rate};
use crate::policy::{Policy, initial_policy};
use crate::rollout::generation_config;
use crate::run_dir;
use crate::sft::sft_step;
use crate::step::rl_update_on;
use crate::task::ProblemSource;

/// What the loop reports while it runs (the CLI draws progress bars from it).
pub trait Observer {
    /// A stage starts (or resumes at `done` of `total` steps).
    fn stage(&mut self, stage: Stage, total: usize, done: usize);
    /// A step finished.
    fn step(&mut self, metrics: &StepMetrics);
    /// The held-out set was evaluated.
    fn evaluated(&mut self, label: &str, accuracy: f64);
}

/// Result of a finished (or stopped) run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    /// Run directory.
    pub run_dir: PathBuf,
    /// Held-out greedy accuracy of the freshly initialised model.
    pub accuracy_at_start: Option<f64>,
    /// Held-out greedy accuracy after the warm start, when RL began.
    pub accuracy_before_rl: Option<f64>,
    /// Held-out greedy accuracy at the end (absent when stopped early).
    pub accuracy_final: Option<f64>,
    /// RL steps completed.
    pub rl_steps: usize,
}

/// Where a finished run exports its policy as a Hugging Face directory.
pub const EXPORT_DIR: &str = "model";

/// Independent streams of the run seed.
const SFT_STREAM: u64 = 0x5F7;
const RL_STREAM: u64 = 0x41;
const SAMPLE_STREAM: u64 = 0x5A3;
const DYNAMIC_STREAM: u64 = 0xD5;

/// Where a run ends early, with a checkpoint (to test and demonstrate resuming): after `step`
/// steps of `stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopAfter {
    /// The stage that stops.
    pub stage: Stage,
    /// Steps of that stage done when it stops (from 1).
    pub step: usize,
}

impl StopAfter {
    /// Stop after `step` warm-start steps.
    pub fn sft(step: usize) -> Self {
        Self {
            stage: Stage::Sft,
            step,
        }
    }

    /// Stop after `step` RL steps.
    pub fn rl(step: usize) -> Self {
        Self {
            stage: Stage::Rl,
            step,
        }
    }

    /// Refuses a stop the run would never reach: step 0, or past the end of its stage.
    fn check(self, config: &TrainConfig) -> Result<(), CliError> {
        let (flag, steps, key) = match self.stage {
            Stage::Sft => ("--stop-after-sft", config.sft.steps, "sft.steps"),
            Stage::Rl => ("--stop-after", config.train.steps, "train.steps"),
        };
        if (1..=steps).contains(&self.step) {
            Ok(())
        } else {
            Err(CliError::Input(format!(
                "{flag} {}: must be in 1..={steps} ({key} of the run)",
                self.step
            )))
        }
    }
}

/// Runs (or resumes) the experiment of `config` in `run_dir`. `stop_after` ends the run early,
/// with a checkpoint (to test and demonstrate resuming).
///
/// A fresh run refuses a directory that already holds one ([`run_dir::holds_run`]); the
/// command line picks a free one or clears it first (`--overwrite`).
pub fn run<B>(
    config: TrainConfig,
    run_dir: &Path,
    resume: bool,
    stop_after: Option<StopAfter>,
    device: &B::Device,
    observer: &mut dyn Observer,
) -> Result<Outcome, CliError>
where
    B: AutodiffBackend + KernelBackend,
    B::InnerBackend: KernelBackend,
{
    let single = &Communicator::Single;
    run_on_ranks::<B>(
        config, run_dir, resume, stop_after, device, observer, single,
    )
}

/// [`run`] as one rank of a data-parallel run over `comm` (docs/distributed.md): each rank
/// generates and trains on its share of the prompt groups; rank 0 alone writes the run
/// directory.
pub fn run_on_ranks<B>(
    config: TrainConfig,
    run_dir: &Path,
    resume: bool,
    stop_after: Option<StopAfter>,
    device: &B::Device,
    observer: &mut dyn Observer,
    comm: &Communicator,
) -> Result<Outcome, CliError>
where
    B: AutodiffBackend + KernelBackend,
    B::InnerBackend: KernelBackend,
{
    let root = comm.is_root();
    let io = |e: std::io::Error| CliError::Internal(format!("{}: {e}", run_dir.display()));
    let (mut state, checkpoint_dir) = if resume {
        let dir = checkpoint::directory(run_dir)?;
        (checkpoint::load_state(&dir)?, Some(dir))
    } else {
        if root && run_dir::holds_run(run_dir) {
            return Err(run_dir::occupied(run_dir));
        }
        let stage = if config.sft.steps > 0 {
            Stage::Sft
        } else {
            Stage::Rl
        };
        let state = RunState {
            config,
            stage,
            step: 0,
            accuracy_at_start: None,
            accuracy_before_rl: None,
        };
        (state, None)
    };
    let config = state.config.clone();
    config
        .train
        .precision
        .check_backend(&B::name(device))
        .map_err(CliError::Input)?;
    if let Some(stop) = stop_after {
        stop.check(&config)?;
    }
    shard::check(&config, comm.world_size())?;
    if root && checkpoint_dir.is_none() {
        std::fs::create_dir_all(run_dir).map_err(io)?;
        let toml =
            toml::to_string_pretty(&config).map_err(|e| CliError::Internal(e.to_string()))?;
        std::fs::write(run_dir.join("config.toml"), toml).map_err(io)?;
    }
    let seed = config.train.seed;
    let Policy {
        mut model,
        codec,
        architecture,
    } = initial_policy::<B>(&config, device)?;
    // With LoRA the reference policy is the model with its adapters off (the base weights are
    // frozen); otherwise a frozen copy of the policy when RL starts.
    let lora = model.has_adapters();
    if let Some(dir) = &checkpoint_dir {
        model = checkpoint::load_model(dir, "model", model, device)?;
    }
    let bucket_bytes = config.distributed.bucket_mb << 20;
    model = sync::broadcast_parameters(model, comm, bucket_bytes)?;
    let task = ProblemSource::new(&config.task)?;
    let verifier = Verifier::new(config.task.kind, VerifierConfig::default())
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let held_out = task.held_out(seed, config.task.eval_problems);
    let evaluate = |model: &Decoder<B>,
                    label: &str,
                    observer: &mut dyn Observer|
     -> Result<(f64, Vec<Graded>), CliError> {
        let graded = greedy_eval(
            &model.valid(),
            &codec,
            &held_out,
            &config.rollout,
            &verifier,
            DEFAULT_MEMORY_BUDGET_BYTES,
            device,
        )?;
        let value = accuracy(&graded);
        observer.evaluated(label, value);
        Ok((value, graded))
    };
    let keep = checkpoint_dir
        .as_ref()
        .map(|_| (state.stage.name(), state.step));
    let mut log = root.then(|| MetricsLog::open(run_dir, keep)).transpose()?;
    if state.accuracy_at_start.is_none() {
        state.accuracy_at_start = Some(evaluate(&model, "start", observer)?.0);
    }

    // Stage 1: supervised warm start.
    let mut reference = None;
    if state.stage == Stage::Sft {
        let sft = &config.sft;
        let mut optim = adamw(0.0).init::<B, Decoder<B>>();
        if let Some(dir) = &checkpoint_dir {
            optim = checkpoint::load_optimizer(dir, optim, device)?;
        }
        observer.stage(Stage::Sft, sft.steps, state.step);
        for step in state.step..sft.steps {
            let problems: Vec<Problem> = (0..sft.batch_size)
                .map(|i| task.train_problem(seed ^ SFT_STREAM, (step * sft.batch_size + i) as u64))
                .collect();
            let lr = learning_rate(step, sft.steps, sft.steps.div_ceil(10), sft.lr, 0.1);
            let (next, loss, grad_norm) =
                sft_step(model, &mut optim, &codec, &problems, lr, device)?;
            model = next;
            let metrics = StepMetrics {
                stage: "sft".into(),
                step: step + 1,
                lr,
                loss,
                grad_norm,
                ..Default::default()
            };
            if let Some(log) = &mut log {
                log.write(&metrics)?;
            }
            observer.step(&metrics);
            let done = step + 1;
            let stop = stop_after == Some(StopAfter::sft(done)) && done < sft.steps;
            let every = sft.checkpoint_every;
            if done < sft.steps && (stop || (every > 0 && done % every == 0)) {
                state.step = done;
                if root {
                    checkpoint::save(run_dir, &model, None, &optim, &state)?;
                }
            }
            if stop {
                return summarize(run_dir, &state, None, root);
            }
        }
        // Every rank ran the same warm start; rank 0's result is the one RL starts from.
        model = sync::broadcast_parameters(model, comm, bucket_bytes)?;
        state.stage = Stage::Rl;
        state.step = 0;
        state.accuracy_before_rl = Some(evaluate(&model, "after warm start", observer)?.0);
        let optim = adamw(config.optim.weight_decay).init::<B, Decoder<B>>();
        let frozen = (!lora).then(|| model.valid());
        if root {
            checkpoint::save(run_dir, &model, frozen.as_ref(), &optim, &state)?;
        }
        if stop_after == Some(StopAfter::sft(sft.steps)) {
            return summarize(run_dir, &state, None, root);
        }
        reference = frozen;
    }

    // Stage 2: RL.
    let reference = match (reference, &checkpoint_dir) {
        _ if lora => model.valid().with_adapters_enabled(false),
        (Some(reference), _) => reference,
        (None, Some(dir)) if dir.join("reference.mpk").exists() => {
            let empty = initial_policy::<B::InnerBackend>(&config, device)?.model;
            checkpoint::load_model(dir, "reference", empty, device)?
        }
        (None, _) => model.valid(),
    };
    if state.accuracy_before_rl.is_none() {
        state.accuracy_before_rl = state.accuracy_at_start;
    }
    let mut optim = adamw(config.optim.weight_decay).init::<B, Decoder<B>>();
    if let Some(dir) = checkpoint_dir.as_ref().filter(|_| state.step > 0) {
        optim = checkpoint::load_optimizer(dir, optim, device)?;
    }
    let o = &config.optim;
    let steps = config.train.steps;
    let b = config.rollout.prompts_per_step;
    let mine = shard::prompts_of_rank(b, o.minibatches, comm.world_size(), comm.rank());
    observer.stage(Stage::Rl, steps, state.step);
    let mut last_eval = None;
    // The guard against non-finite updates: refused optimiser steps in a row, and the RL step
    // of the last checkpoint written (the last good state when the run has to stop).
    let mut consecutive_skipped = 0;
    let mut last_checkpoint = run_dir.join("checkpoint").exists().then_some(state.step);
    for step in state.step..steps {
        // Round 0 is the step's rollout; dynamic sampling draws further rounds from their own
        // problem and sampling streams, so the step stays a pure function of (seed, step).
        let policy = model.valid();
        let sample_round = |round: usize| {
            let problems: Vec<Problem> = (mine.iter().copied())
                .map(|i| match round {
                    0 => task.train_problem(seed ^ RL_STREAM, (step * b + i) as u64),
                    _ => task.train_problem(
                        seed ^ DYNAMIC_STREAM ^ ((round as u64) << 40),
                        (step * b + i) as u64,
                    ),
                })
                .collect();
            let generation = generation_config(
                &config.rollout,
                &codec,
                config.algorithm.group_size,
                seed ^ SAMPLE_STREAM ^ ((step as u64) << 20) ^ ((round as u64) << 48),
                false,
            );
            shard::rollout(
                &policy,
                &codec,
                problems,
                &mine,
                &generation,
                &verifier,
                device,
            )
        };
        let rollout_start = Instant::now();
        let collected = if config.rollout.dynamic_sampling_for(config.algorithm.name) {
            dynamic_sampling::collect(
                mine.len(),
                config.algorithm.group_size,
                config.rollout.dynamic_sampling_rounds,
                config.algorithm.zero_var_tol,
                sample_round,
            )?
        } else {
            Collected::single(sample_round(0)?)
        };
        let batch = collected.rollout;
        let rollout_s = rollout_start.elapsed().as_secs_f64();
        let lr = learning_rate(step, steps, o.warmup_steps, o.lr, o.min_lr_ratio);
        // α of this step after its warm-up (A7); every other key as configured.
        let step_config = TrainConfig {
            algorithm: config.algorithm.at_step(step),
            ..config.clone()
        };
        let (next, report) = rl_update_on(
            model,
            &mut optim,
            &reference,
            &batch,
            &step_config,
            lr,
            device,
            comm,
        )?;
        model = next;
        consecutive_skipped = report.refused_in_a_row(consecutive_skipped);
        let mut rl = report.metrics;
        rl.rollout_tokens_per_s = collected.tokens_generated as f64 / rollout_s.max(1e-9);
        rl.rollout_tokens = collected.tokens_generated;
        rl.rollout_rounds = collected.rounds;
        rl.tied_kept = collected.tied_kept;
        state.step = step + 1;
        let every = config.eval.every;
        last_eval = if state.step == steps || (every > 0 && state.step % every == 0) {
            Some(evaluate(&model, &format!("step {}", state.step), observer)?)
        } else {
            None
        };
        let metrics = StepMetrics {
            stage: "rl".into(),
            step: state.step,
            lr,
            loss: report.loss,
            grad_norm: report.grad_norm,
            rl: Some(rl),
            eval_accuracy: last_eval.as_ref().map(|(value, _)| *value),
        };
        if let Some(log) = &mut log {
            log.write(&metrics)?;
        }
        observer.step(&metrics);
        if consecutive_skipped >= config.train.max_consecutive_skipped {
            return Err(non_finite_stop(
                run_dir,
                state.step,
                consecutive_skipped,
                last_checkpoint,
            ));
        }
        let every = config.train.checkpoint_every;
        let stop = stop_after == Some(StopAfter::rl(state.step));
        if state.step == steps || stop || (every > 0 && state.step % every == 0) {
            let frozen = (!lora).then_some(&reference);
            if root {
                checkpoint::save(run_dir, &model, frozen, &optim, &state)?;
            }
            last_checkpoint = Some(state.step);
        }
        let check = config.distributed.check_every;
        if check > 0 && comm.world_size() > 1 && (state.step % check == 0 || stop) {
            sync::check_replicas(&model, comm, run_dir, state.step)?;
        }
        if stop {
            break;
        }
    }
    let accuracy_final = match last_eval.filter(|_| state.step == steps) {
        Some((value, graded)) => {
            if root {
                write_jsonl(&run_dir.join("eval.jsonl"), &graded)?;
            }
            Some(value)
        }
        None => None,
    };
    if root && state.step == steps {
        // The trained policy as a Hugging Face directory (LoRA merged), for any other tool.
        let dir = run_dir.join(EXPORT_DIR);
        save_hf_dir(&model.valid(), &architecture, codec.tokenizer(), &dir)
            .map_err(|e| CliError::Internal(format!("exporting the model: {e}")))?;
        if codec.tokenizer().is_none() {
            // The scratch decoder's character vocabulary, so that the directory is complete.
            char_tokenizer::write(&dir, &config.task.prompt)?;
        }
    }
    summarize(run_dir, &state, accuracy_final, root)
}

/// The outcome of a finished or stopped run, also written to `summary.json`.
/// (`write`: rank 0 only).
fn summarize(
    run_dir: &Path,
    state: &RunState,
    accuracy_final: Option<f64>,
    write: bool,
) -> Result<Outcome, CliError> {
    let outcome = Outcome {
        run_dir: run_dir.to_path_buf(),
        accuracy_at_start: state.accuracy_at_start,
        accuracy_before_rl: state.accuracy_before_rl,
        accuracy_final,
        rl_steps: match state.stage {
            Stage::Sft => 0,
            Stage::Rl => state.step,
        },
    };
    if !write {
        return Ok(outcome);
    }
    let summary =
        serde_json::to_string_pretty(&outcome).map_err(|e| CliError::Internal(e.to_string()))?;
    let path = run_dir.join("summary.json");
    std::fs::write(&path, summary)
        .map_err(|e| CliError::Internal(format!("{}: {e}", path.display())))?;
    Ok(outcome)
}

/// The error that ends a run whose optimiser steps kept being refused for a non-finite loss or
/// gradient norm; `checkpoint` is the RL step of the last checkpoint written, if any.
fn non_finite_stop(
    run_dir: &Path,
    step: usize,
    refused: usize,
    checkpoint: Option<usize>,
) -> CliError {
    let last_good = match checkpoint {
        Some(at) => format!(
            "The last good checkpoint is {} at RL step {at}: lower optim.lr or check the \
             rewards, then continue with --resume.",
            run_dir.join("checkpoint").display()
        ),
        None => "No checkpoint was written yet: lower optim.lr or check the rewards and start \
                 again."
            .to_string(),
    };
    CliError::Internal(format!(
        "RL step {step}: {refused} optimiser steps in a row were refused because the loss or the \
         gradient norm was not finite (train.max_consecutive_skipped); the refused steps left the \
         weights unchanged. {last_good} metrics.jsonl shows train/skipped_steps per step."
    ))
}

fn write_jsonl<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<(), CliError> {
    let mut text = String::new();
    for row in rows {
        text.push_str(&serde_json::to_string(row).map_err(|e| CliError::Internal(e.to_string()))?);
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| CliError::Internal(format!("{}: {e}", path.display())))
}
