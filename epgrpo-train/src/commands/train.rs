//! `epgrpo train`: resolve the configuration, pick the backend, run the loop with progress bars.

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use epgrpo_kernels::KernelBackend;
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::{BackendJob, run_on_device};
use crate::checkpoint::{self, Stage};
use crate::cli::TrainArgs;
use crate::config::TrainConfig;
use crate::distributed::{Communicator, env};
use crate::error::CliError;
use crate::metrics::StepMetrics;
use crate::run_dir;
use crate::trainer::{Observer, Outcome, StopAfter, run_on_ranks};

/// Runs `epgrpo train` and returns the closing report.
pub fn execute(args: TrainArgs) -> Result<String, CliError> {
    // One of several processes when a launcher started it (docs/distributed.md); rank 0 alone
    // chooses and writes the run directory.
    let placement = env::detect()?;
    let (config, run_dir, resume) = match &args.resume {
        Some(dir) => (TrainConfig::default(), dir.clone(), true),
        None => {
            let mut config = match &args.config {
                Some(path) => TrainConfig::from_file(path)?,
                None => TrainConfig::preset(),
            };
            if let Some(algo) = args.algo {
                config.algorithm.name = algo;
            }
            if let Some(seed) = args.seed {
                config.train.seed = seed;
            }
            if let Some(steps) = args.steps {
                config.train.steps = steps;
            }
            if let Some(out) = &args.out {
                config.train.out_dir = out.clone();
            }
            config
                .validate()
                .map_err(|e| CliError::Input(format!("configuration: {e}")))?;
            let (dir, moved) = match placement.rank {
                0 => place(&config.train.out_dir, args.out.is_some(), args.overwrite)?,
                _ => (config.train.out_dir.clone(), None),
            };
            config.train.out_dir = dir.clone();
            if let Some(note) = &moved {
                eprintln!("{note}");
            }
            (config, dir, false)
        }
    };
    let stop_after = match (args.stop_after, args.stop_after_sft) {
        (Some(step), _) => Some(StopAfter::rl(step)),
        (None, Some(step)) => Some(StopAfter::sft(step)),
        (None, None) => None,
    };
    // A resumed run keeps the [distributed] section it was started with.
    let distributed = if resume {
        let saved = checkpoint::load_state(&checkpoint::directory(&run_dir)?)?;
        saved.config.distributed
    } else {
        config.distributed.clone()
    };
    let comm = Communicator::connect(&distributed, &placement)?;
    let job = TrainJob {
        config,
        run_dir,
        resume,
        stop_after,
        plain: args.plain,
        comm,
    };
    let outcome = run_on_device(args.device, placement.local_rank, job)?;
    if placement.rank > 0 {
        return Ok(format!(
            "rank {} of {}: done (rank 0 reports and writes the run directory)",
            placement.rank, placement.world_size
        ));
    }
    let plots = crate::plot::plot_run(&outcome.run_dir)?;
    let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    Ok(format!(
        "held-out accuracy: start {} → after warm start {} → after {} RL steps {}\nrun directory: {} (metrics.jsonl, eval.jsonl, summary.json, checkpoint/); plots: {}",
        show(outcome.accuracy_at_start),
        show(outcome.accuracy_before_rl),
        outcome.rl_steps,
        show(outcome.accuracy_final),
        outcome.run_dir.display(),
        plots.display()
    ))
}

/// Where a fresh run goes, and the note that says so when it is not `dir`. A directory that
/// holds a run is cleared with `overwrite`; otherwise, when it came from the configuration
/// (no `--out`), the run moves to the next free numbered sibling, so that running the same
/// command twice keeps both runs; an explicit `--out` that holds a run is refused, naming
/// `--resume` and `--overwrite`.
fn place(
    dir: &Path,
    explicit: bool,
    overwrite: bool,
) -> Result<(PathBuf, Option<String>), CliError> {
    if !run_dir::holds_run(dir) {
        return Ok((dir.to_path_buf(), None));
    }
    if overwrite {
        run_dir::clear(dir)?;
        let note = format!(
            "--overwrite: replacing the earlier run in {}",
            dir.display()
        );
        return Ok((dir.to_path_buf(), Some(note)));
    }
    if explicit {
        return Err(run_dir::occupied(dir));
    }
    let free = run_dir::next_free(dir);
    let note = format!(
        "{old} holds an earlier run, so this one goes to {new} (continue the earlier one with \
         `epgrpo train --resume {old}`, or replace it with `--overwrite`)",
        old = dir.display(),
        new = free.display()
    );
    Ok((free, Some(note)))
}

struct TrainJob {
    config: TrainConfig,
    run_dir: PathBuf,
    resume: bool,
    stop_after: Option<StopAfter>,
    plain: bool,
    comm: Communicator,
}

impl BackendJob for TrainJob {
    type Output = Outcome;

    fn run<B>(self, device: B::Device) -> Result<Outcome, CliError>
    where
        B: AutodiffBackend + KernelBackend,
        B::InnerBackend: KernelBackend,
    {
        let mut observer = Progress {
            bar: None,
            plain: self.plain,
            silent: !self.comm.is_root(),
        };
        let outcome = run_on_ranks::<B>(
            self.config,
            &self.run_dir,
            self.resume,
            self.stop_after,
            &device,
            &mut observer,
            &self.comm,
        );
        if let Some(bar) = observer.bar.take() {
            bar.finish();
        }
        outcome
    }
}

/// Progress bars on standard error (or plain lines with `--plain`; nothing on ranks other than
/// 0, `silent`).
struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    silent: bool,
}

impl Observer for Progress {
    fn stage(&mut self, stage: Stage, total: usize, done: usize) {
        if self.silent {
            return;
        }
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        if self.plain {
            eprintln!("stage {}: {done}/{total} steps done", stage.name());
            return;
        }
        let bar = ProgressBar::new(total as u64).with_position(done as u64);
        let template =
            format!("{{prefix:>4}} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ({{elapsed}}<{{eta}})");
        bar.set_style(
            ProgressStyle::with_template(&template)
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(stage.name());
        self.bar = Some(bar);
    }

    fn step(&mut self, metrics: &StepMetrics) {
        if self.silent {
            return;
        }
        let message = match &metrics.rl {
            Some(rl) => format!(
                "reward {:.3} acc {:.3} zero-var {:.2} H {:.3} |Âprog| {:.3} kl {:.4}",
                rl.reward_mean,
                rl.accuracy,
                rl.zero_var_frac,
                rl.entropy_mean,
                rl.progress_abs_mean,
                rl.kl_mean
            ),
            None => format!("loss {:.4}", metrics.loss),
        };
        match (&self.bar, self.plain) {
            (Some(bar), false) => {
                bar.set_message(message);
                bar.inc(1);
            }
            _ => eprintln!("{} {:>4} {message}", metrics.stage, metrics.step),
        }
    }

    fn evaluated(&mut self, label: &str, accuracy: f64) {
        if self.silent {
            return;
        }
        let line = format!("held-out accuracy ({label}): {:.1}%", 100.0 * accuracy);
        match &self.bar {
            Some(bar) if !self.plain => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }
}
