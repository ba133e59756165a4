//! `epgrpo launch` starts one process per local rank with torchrun's variables, and every
//! process reads its place from them: two processes of a run without a communication engine
//! (`distributed.backend = "none"`) are refused by name, and the launcher reports the failed
//! rank.

use std::process::Command;

#[test]
fn two_launched_processes_without_an_engine_are_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("epgrpo-launch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("run.toml");
    std::fs::write(&config, "[train]\nsteps = 1\n[sft]\nsteps = 0\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_epgrpo"))
        .args([
            "launch",
            "--nproc-per-node",
            "2",
            "--master-port",
            "29517",
            "--",
        ])
        .args(["train", "--config", config.to_str().unwrap()])
        .arg("--out")
        .arg(dir.join("run"))
        .env_remove("RANK")
        .env_remove("WORLD_SIZE")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("2 processes were launched") && stderr.contains("distributed.backend"),
        "{stderr}"
    );
    assert!(
        stderr.contains("failed") && stderr.contains("rank"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_launch_that_cannot_place_its_processes_is_refused() {
    let output = Command::new(env!("CARGO_BIN_EXE_epgrpo"))
        .args([
            "launch",
            "--nproc-per-node",
            "2",
            "--nnodes",
            "2",
            "--node-rank",
            "2",
        ])
        .args(["--", "train"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--node-rank 2 must be below --nnodes 2"),
        "{stderr}"
    );
}
