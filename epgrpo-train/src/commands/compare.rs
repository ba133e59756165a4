//! `epgrpo compare`: methods × seeds of one configuration as parallel `epgrpo train` processes,
//! then one table (`compare.md`, `compare.json`) and one overlay figure (`compare.svg`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::compare::{RunRecord, Variant, VariantSummary, run_dir, series, table};
use crate::config::TrainConfig;
use crate::error::CliError;
use crate::metrics::StepMetrics;
use crate::overlay::{self, Panel, Series};

/// Options of `epgrpo compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Base configuration (any subset of the preset's keys); the embedded default without it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Methods, comma-separated: `NAME` or `NAME+key=value+…` with `[algorithm]` keys, e.g.
    /// `ep_grpo,ep_grpo+gate_normalization=mean_one,grpo,dapo,cispo`.
    #[arg(long, default_value = "ep_grpo,grpo")]
    pub methods: String,
    /// Seeds, comma-separated.
    #[arg(long, default_value = "0,1,2")]
    pub seeds: String,
    /// Override `[train] steps` (RL steps) of every run.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Directory of the comparison: one `METHOD/seed-S/` run directory per pair.
    #[arg(long, default_value = "runs/compare")]
    pub out: PathBuf,
    /// Training processes at once (default: the number of cores); each gets cores / jobs
    /// threads.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Only read the finished runs under `--out` and redo the table and figure.
    #[arg(long)]
    pub report_only: bool,
}

/// One training process of the comparison.
struct Job {
    variant: usize,
    seed: u64,
    config_path: PathBuf,
    dir: PathBuf,
}

/// Runs `epgrpo compare` and returns the table.
pub fn run(args: &CompareArgs) -> Result<String, CliError> {
    let mut base = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::preset(),
    };
    if let Some(steps) = args.steps {
        base.train.steps = steps;
    }
    let variants = args
        .methods
        .split(',')
        .map(|spec| Variant::parse(spec.trim()))
        .collect::<Result<Vec<_>, _>>()?;
    let seeds = args
        .seeds
        .split(',')
        .map(|s| {
            s.trim().parse::<u64>().map_err(|_| {
                CliError::Input(format!("--seeds: `{s}` is not a seed (expected 0,1,2)"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let io =
        |path: &Path, e: std::io::Error| CliError::Internal(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(&args.out).map_err(|e| io(&args.out, e))?;
    let mut jobs = Vec::new();
    for (index, variant) in variants.iter().enumerate() {
        let config = variant.apply(&base)?;
        let config_path = args.out.join(format!("{}.toml", variant.label));
        let text =
            toml::to_string_pretty(&config).map_err(|e| CliError::Internal(e.to_string()))?;
        std::fs::write(&config_path, text).map_err(|e| io(&config_path, e))?;
        for &seed in &seeds {
            jobs.push(Job {
                variant: index,
                seed,
                config_path: config_path.clone(),
                dir: run_dir(&args.out, variant, seed),
            });
        }
    }
    let wall = if args.report_only {
        vec![f64::NAN; jobs.len()]
    } else {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let parallel = args.jobs.unwrap_or(cores).clamp(1, jobs.len().max(1));
        run_jobs(&jobs, parallel, (cores / parallel).max(1))?
    };
    let mut records: Vec<Vec<RunRecord>> = vec![Vec::new(); variants.len()];
    for (job, wall_s) in jobs.iter().zip(wall) {
        records[job.variant].push(RunRecord::read(&job.dir, job.seed, wall_s)?);
    }
    let summaries: Vec<VariantSummary> = variants
        .iter()
        .zip(&records)
        .map(|(variant, runs)| VariantSummary {
            label: variant.label.clone(),
            seeds: runs.iter().map(|r| r.seed).collect(),
            runs: runs.iter().map(RunRecord::row).collect(),
        })
        .collect();
    let markdown = table(&summaries);
    let write = |name: &str, text: String| {
        let path = args.out.join(name);
        std::fs::write(&path, text).map_err(|e| io(&path, e))
    };
    write("compare.md", markdown.clone())?;
    write(
        "compare.json",
        serde_json::to_string_pretty(&summaries).map_err(|e| CliError::Internal(e.to_string()))?,
    )?;
    let steps = base.train.steps;
    write("compare.svg", figure(&variants, &records, steps))?;
    Ok(format!(
        "{markdown}\nwrote {}/compare.md, compare.json, compare.svg",
        args.out.display()
    ))
}

/// Runs the jobs `parallel` at a time, each with `threads` compute threads; returns each job's
/// wall time in seconds.
fn run_jobs(jobs: &[Job], parallel: usize, threads: usize) -> Result<Vec<f64>, CliError> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Internal(format!("cannot find the epgrpo binary: {e}")))?;
    let mut wall = vec![0.0; jobs.len()];
    let mut running: Vec<(usize, std::process::Child, Instant)> = Vec::new();
    let mut next = 0;
    while next < jobs.len() || !running.is_empty() {
        while running.len() < parallel && next < jobs.len() {
            let job = &jobs[next];
            if job.dir.exists() {
                return Err(CliError::Input(format!(
                    "{}: a run already lives here; remove it, choose another --out, or use \
                     --report-only to tabulate the finished runs",
                    job.dir.display()
                )));
            }
            let child = Command::new(&exe)
                .arg("train")
                .arg("--config")
                .arg(&job.config_path)
                .arg("--seed")
                .arg(job.seed.to_string())
                .arg("--out")
                .arg(&job.dir)
                .arg("--plain")
                .env("RAYON_NUM_THREADS", threads.to_string())
                .env("MATMUL_NUM_THREADS", threads.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|e| CliError::Internal(format!("starting {}: {e}", exe.display())))?;
            running.push((next, child, Instant::now()));
            next += 1;
        }
        // Wait for the oldest process; the others keep running meanwhile.
        let (index, child, started) = running.remove(0);
        let output = child
            .wait_with_output()
            .map_err(|e| CliError::Internal(e.to_string()))?;
        wall[index] = started.elapsed().as_secs_f64();
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(CliError::Internal(format!(
                "{} failed: {}",
                jobs[index].dir.display(),
                stderr.lines().last().unwrap_or("no message")
            )));
        }
    }
    Ok(wall)
}

/// The overlay figure: sampled reward (smoothed), held-out accuracy and the share of tokens
/// with a non-zero advantage, one line and seed band per method.
fn figure(variants: &[Variant], records: &[Vec<RunRecord>], steps: usize) -> String {
    type Read = fn(&StepMetrics) -> Option<f64>;
    let window = (steps / 10).max(1);
    let panels: [(&str, Read, usize); 3] = [
        (
            "sampled reward (moving average)",
            |m| m.rl.as_ref().map(|r| r.reward_mean),
            window,
        ),
        ("held-out accuracy", |m| m.eval_accuracy, 1),
        (
            "tokens with advantage ≠ 0",
            |m| m.rl.as_ref().map(|r| r.nonzero_adv_frac),
            window,
        ),
    ];
    let panels: Vec<Panel> = panels
        .iter()
        .map(|(title, read, smoothing)| Panel {
            title: title.to_string(),
            series: variants
                .iter()
                .zip(records)
                .map(|(variant, runs)| Series {
                    label: variant.label.clone(),
                    runs: series(runs, read),
                })
                .collect(),
            smoothing: *smoothing,
        })
        .collect();
    overlay::render(&panels)
}

/// `epgrpo plot RUN_DIR RUN_DIR…`: the runs' curves overlaid in `out`, one line per run.
pub fn overlay_runs(run_dirs: &[PathBuf], out: &Path) -> Result<String, CliError> {
    let records = run_dirs
        .iter()
        .map(|dir| {
            let metrics = crate::metrics::read_metrics(&dir.join("metrics.jsonl"))?;
            if metrics.is_empty() {
                return Err(CliError::Input(format!(
                    "{}: no metrics.jsonl to plot",
                    dir.display()
                )));
            }
            Ok((dir.display().to_string(), metrics))
        })
        .collect::<Result<Vec<_>, CliError>>()?;
    type Read = fn(&StepMetrics) -> Option<f64>;
    let panels: [(&str, Read); 4] = [
        ("sampled reward", |m| m.rl.as_ref().map(|r| r.reward_mean)),
        ("held-out accuracy", |m| m.eval_accuracy),
        ("KL to reference (k3)", |m| m.rl.as_ref().map(|r| r.kl_mean)),
        ("entropy mean (nats)", |m| {
            m.rl.as_ref().map(|r| r.entropy_mean)
        }),
    ];
    let panels: Vec<Panel> = panels
        .iter()
        .map(|(title, read)| Panel {
            title: title.to_string(),
            series: records
                .iter()
                .map(|(label, metrics)| Series {
                    label: label.clone(),
                    runs: vec![
                        metrics
                            .iter()
                            .filter(|m| m.stage == "rl")
                            .filter_map(|m| read(m).map(|v| (m.step as f64, v)))
                            .filter(|(_, v)| v.is_finite())
                            .collect(),
                    ],
                })
                .collect(),
            smoothing: 1,
        })
        .collect();
    std::fs::write(out, overlay::render(&panels))
        .map_err(|e| CliError::Internal(format!("{}: {e}", out.display())))?;
    Ok(format!("wrote {}", out.display()))
}
