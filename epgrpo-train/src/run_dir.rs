//! Run directories: what a run writes into one, whether a directory already holds a run, the
//! next free numbered sibling for a second run of the same command (`runs/default` →
//! `runs/default-2` → `runs/default-3` …), and clearing an earlier run for `--overwrite`.

use std::path::{Path, PathBuf};

use crate::error::CliError;

/// Everything a run writes into its directory (files and folders); `--overwrite` removes
/// these and nothing else, so a directory that also holds other files keeps them.
pub const RUN_ENTRIES: [&str; 12] = [
    "checkpoint",
    "checkpoint.tmp",
    "checkpoint.old",
    "config.toml",
    "metrics.jsonl",
    "eval.jsonl",
    "eval-details.jsonl",
    "summary.json",
    "plots.svg",
    "model",
    "model.tmp",
    "model.old",
];

/// Entries whose presence means a run lives in a directory: its configuration, metrics or a
/// checkpoint (a run killed before its first checkpoint still has the first two, and a new
/// run must not append to its metrics).
const MARKERS: [&str; 4] = [
    "checkpoint",
    "checkpoint.old",
    "config.toml",
    "metrics.jsonl",
];

/// Whether `dir` holds (part of) a run.
pub fn holds_run(dir: &Path) -> bool {
    MARKERS.iter().any(|name| dir.join(name).exists())
}

/// The error for a fresh run into a directory that holds one: it names both ways on.
pub fn occupied(dir: &Path) -> CliError {
    let shown = dir.display();
    CliError::Input(format!(
        "{shown}: a run already lives here; continue it with `epgrpo train --resume {shown}`, \
         replace it with `--overwrite`, or choose another `--out`"
    ))
}

/// `dir` when it holds no run, else the first of `dir-2`, `dir-3`, … that holds none.
pub fn next_free(dir: &Path) -> PathBuf {
    if !holds_run(dir) {
        return dir.to_path_buf();
    }
    let name = dir
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    (2u64..)
        .map(|n| dir.with_file_name(format!("{name}-{n}")))
        .find(|candidate| !holds_run(candidate))
        .expect("a directory holds finitely many runs")
}

/// Removes what an earlier run wrote into `dir` ([`RUN_ENTRIES`]); other files stay.
pub fn clear(dir: &Path) -> Result<(), CliError> {
    for name in RUN_ENTRIES {
        let path = dir.join(name);
        let removed = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        };
        removed.map_err(|e| {
            CliError::Internal(format!(
                "removing the earlier run's {}: {e}",
                path.display()
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_siblings_and_clearing_keep_other_files() {
        let root = std::env::temp_dir().join(format!("epgrpo-run-dir-{}", std::process::id()));
        std::fs::remove_dir_all(&root).ok();
        let first = root.join("default");
        assert_eq!(next_free(&first), first, "a missing directory is free");
        std::fs::create_dir_all(first.join("checkpoint")).unwrap();
        std::fs::write(first.join("notes.txt"), "mine").unwrap();
        assert!(holds_run(&first));
        assert_eq!(next_free(&first), root.join("default-2"));
        // A killed run with metrics but no checkpoint yet also counts.
        std::fs::create_dir_all(root.join("default-2")).unwrap();
        std::fs::write(root.join("default-2/metrics.jsonl"), "").unwrap();
        assert_eq!(next_free(&first), root.join("default-3"));
        std::fs::write(first.join("metrics.jsonl"), "{}").unwrap();
        clear(&first).unwrap();
        assert!(!holds_run(&first));
        assert_eq!(
            std::fs::read_to_string(first.join("notes.txt")).unwrap(),
            "mine"
        );
        let error = occupied(&first).to_string();
        assert!(
            error.contains("--resume") && error.contains("--overwrite"),
            "{error}"
        );
        std::fs::remove_dir_all(&root).ok();
    }
}
