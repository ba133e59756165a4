//! Checkpoints of a run directory: model, reference model, optimizer state and run state,
//! written atomically (into `checkpoint.tmp/`, then renamed over `checkpoint/`), so that a crash
//! at any moment leaves either the previous or the new checkpoint whole. Every file, and the
//! directories, are flushed to disk (fsync) before and after the renames, so that a power cut
//! does not leave a renamed checkpoint whose data never reached the disk.
//!
//! Data and sampling are pure functions of (seed, stage, step), so the step counter is the whole
//! data cursor and RNG state: resuming replays exactly what an uninterrupted run would do.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::Optimizer;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use epgrpo_models::Decoder;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::error::CliError;

/// Which stage a run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Supervised warm start.
    Sft,
    /// Reinforcement learning.
    Rl,
}

impl Stage {
    /// Name used in metrics.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Sft => "sft",
            Stage::Rl => "rl",
        }
    }
}

/// Everything besides tensors that a resumed run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The run's configuration (a resumed run uses it, not the command line's).
    pub config: TrainConfig,
    /// Current stage.
    pub stage: Stage,
    /// Steps completed in the current stage.
    pub step: usize,
    /// Held-out accuracy of the initial model, before any training.
    pub accuracy_at_start: Option<f64>,
    /// Held-out accuracy when RL started (after the warm start).
    pub accuracy_before_rl: Option<f64>,
}

type Mpk = NamedMpkFileRecorder<FullPrecisionSettings>;

fn io(path: &Path) -> impl Fn(std::io::Error) -> CliError + '_ {
    move |e| CliError::Internal(format!("{}: {e}", path.display()))
}

fn record_error(path: &Path) -> impl Fn(burn::record::RecorderError) -> CliError + '_ {
    move |e| CliError::Input(format!("{}: {e}", path.display()))
}

/// Writes a checkpoint of `model`, the optional `reference`, the optimizer and `state` into
/// `run_dir/checkpoint/`, atomically.
pub fn save<B: AutodiffBackend, O: Optimizer<Decoder<B>, B>>(
    run_dir: &Path,
    model: &Decoder<B>,
    reference: Option<&Decoder<B::InnerBackend>>,
    optim: &O,
    state: &RunState,
) -> Result<(), CliError> {
    let tmp = run_dir.join("checkpoint.tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let recorder = Mpk::new();
    let path = tmp.join("model");
    model
        .clone()
        .save_file(&path, &recorder)
        .map_err(record_error(&path))?;
    if let Some(reference) = reference {
        let path = tmp.join("reference");
        reference
            .clone()
            .save_file(&path, &recorder)
            .map_err(record_error(&path))?;
    }
    let path = tmp.join("optimizer");
    recorder
        .record(optim.to_record(), path.clone())
        .map_err(record_error(&path))?;
    let path = tmp.join("state.json");
    let json =
        serde_json::to_string_pretty(state).map_err(|e| CliError::Internal(e.to_string()))?;
    fs::write(&path, json).map_err(io(&path))?;
    for entry in fs::read_dir(&tmp).map_err(io(&tmp))? {
        let path = entry.map_err(io(&tmp))?.path();
        sync_file(&path).map_err(io(&path))?;
    }
    sync_dir(&tmp).map_err(io(&tmp))?;

    let current = run_dir.join("checkpoint");
    let old = run_dir.join("checkpoint.old");
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    if current.exists() {
        fs::rename(&current, &old).map_err(io(&current))?;
    }
    fs::rename(&tmp, &current).map_err(io(&tmp))?;
    sync_dir(run_dir).map_err(io(run_dir))?;
    if old.exists() {
        fs::remove_dir_all(&old).map_err(io(&old))?;
    }
    Ok(())
}

/// Flushes a written file's data and metadata to disk.
fn sync_file(path: &Path) -> std::io::Result<()> {
    fs::OpenOptions::new().write(true).open(path)?.sync_all()
}

/// Flushes a directory's entries (the renames) to disk. Where the OS or file system cannot
/// sync a directory (Windows cannot open one as a file; some file systems answer `EINVAL`),
/// this does nothing: the files themselves are synced either way.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    if cfg!(unix) {
        match fs::File::open(dir).and_then(|d| d.sync_all()) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
                ) => {}
            other => return other,
        }
    }
    Ok(())
}

/// The checkpoint directory of a run (`checkpoint/`, or `checkpoint.old/` after a crash
/// between the two renames of [`save`]).
pub fn directory(run_dir: &Path) -> Result<PathBuf, CliError> {
    [run_dir.join("checkpoint"), run_dir.join("checkpoint.old")]
        .into_iter()
        .find(|dir| dir.join("state.json").exists())
        .ok_or_else(|| {
            CliError::Input(format!(
                "{}: no checkpoint found (expected checkpoint/state.json)",
                run_dir.display()
            ))
        })
}

/// Reads the run state of a checkpoint directory.
pub fn load_state(dir: &Path) -> Result<RunState, CliError> {
    let path = dir.join("state.json");
    let text = fs::read_to_string(&path)
        .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| CliError::Input(format!("{}: {e}", path.display())))
}

/// Loads weights saved by [`save`] into `model` (same architecture).
pub fn load_model<B: burn::prelude::Backend>(
    dir: &Path,
    name: &str,
    model: Decoder<B>,
    device: &B::Device,
) -> Result<Decoder<B>, CliError> {
    let path = dir.join(name);
    model
        .load_file(&path, &Mpk::new(), device)
        .map_err(record_error(&path))
}

/// Loads the optimizer state saved by [`save`].
pub fn load_optimizer<B: AutodiffBackend, O: Optimizer<Decoder<B>, B>>(
    dir: &Path,
    optim: O,
    device: &B::Device,
) -> Result<O, CliError> {
    let path = dir.join("optimizer");
    let record =
        Recorder::<B>::load(&Mpk::new(), path.clone(), device).map_err(record_error(&path))?;
    Ok(optim.load_record(record))
}
