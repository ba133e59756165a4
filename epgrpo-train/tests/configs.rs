//! Every example configuration in `configs/` parses and validates. Parsing opens neither the
//! model nor the data files, so this runs without the GGUFs or `target/data`.

use std::path::{Path, PathBuf};

use epgrpo_train::config::TrainConfig;

/// The `*.toml` files of the workspace's `configs/` directory, sorted.
fn config_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("configs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_config_parses_and_validates() {
    let files = config_files();
    assert!(
        files.len() >= 2,
        "expected the example configs in configs/, found {files:?}"
    );
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| TrainConfig::from_file(path).err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn qwen25_gpu_config_is_the_gsm_experiment() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/qwen25-gpu.toml");
    let config = TrainConfig::from_file(&path).unwrap();
    let model = config.model.path.as_deref().expect("a pretrained model");
    assert!(
        model.starts_with("target/qwen25") && model.extension().is_some_and(|e| e == "gguf"),
        "{}",
        model.display()
    );
    assert_eq!(
        config.task.train_file.as_deref(),
        Some(Path::new("target/data/gsm_symbolic/train.jsonl"))
    );
    assert_eq!(
        config.task.eval_file.as_deref(),
        Some(Path::new("target/data/gsm_symbolic/test.jsonl"))
    );
    assert!(
        config.task.prompt.contains("####"),
        "{}",
        config.task.prompt
    );
    assert_eq!(config.sft.steps, 0);
    let rows = config.rollout.prompts_per_step * config.algorithm.group_size;
    assert!((128..=256).contains(&rows), "B × G = {rows}");
    assert!(config.train.steps >= 200 && config.eval.every == 25);
    assert_eq!(config.task.eval_problems, 200);
}
