//! `epgrpo compare` end to end on a tiny configuration: two methods × two seeds run as separate
//! processes, and the table's values equal numbers recomputed here from the run directories'
//! raw `summary.json` and `metrics.jsonl` (read as plain JSON, not through the crate's types).

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const TINY: &str = r#"
[model]
hidden_size = 16
intermediate_size = 32
num_hidden_layers = 1
num_attention_heads = 2
num_key_value_heads = 1
[task]
max_operand = 10
eval_problems = 6
[sft]
steps = 3
batch_size = 8
[rollout]
prompts_per_step = 2
max_new_tokens = 3
[algorithm]
group_size = 4
[train]
steps = 3
checkpoint_every = 0
[eval]
every = 0
"#;

fn epgrpo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_epgrpo"))
        .args(args)
        .output()
        .expect("runs the binary")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The RL lines of a run's metrics.jsonl.
fn rl_lines(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .filter(|line| line["stage"] == "rl")
        .collect()
}

#[test]
fn compare_runs_every_pair_and_tabulates_what_the_runs_logged() {
    let scratch = std::env::temp_dir().join(format!("epgrpo-compare-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let config = scratch.join("tiny.toml");
    std::fs::write(&config, TINY).unwrap();
    let out = scratch.join("cmp");
    let output = epgrpo(&[
        "compare",
        "--config",
        config.to_str().unwrap(),
        "--methods",
        "grpo,dapo+dynamic_sampling_rounds_typo=2",
        "--seeds",
        "0,1",
        "--out",
        out.to_str().unwrap(),
    ]);
    // An unknown [algorithm] key in a variant is refused by name before anything runs.
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("dynamic_sampling_rounds_typo"));

    let output = epgrpo(&[
        "compare",
        "--config",
        config.to_str().unwrap(),
        "--methods",
        "grpo,dapo,ep_grpo+gate_normalization=mean_one",
        "--seeds",
        "0,1",
        "--jobs",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let table = std::fs::read_to_string(out.join("compare.md")).unwrap();
    for label in [
        "| grpo |",
        "| dapo |",
        "| ep_grpo+gate_normalization=mean_one |",
    ] {
        assert!(table.contains(label), "{table}");
    }
    let svg = std::fs::read_to_string(out.join("compare.svg")).unwrap();
    assert_eq!(
        svg.matches("<polyline").count(),
        3 * 3,
        "3 panels × 3 methods"
    );

    let summaries = read_json(&out.join("compare.json"));
    for summary in summaries.as_array().unwrap() {
        let label = summary["label"].as_str().unwrap();
        for (seed, row) in summary["runs"].as_array().unwrap().iter().enumerate() {
            let dir = out.join(label).join(format!("seed-{seed}"));
            let outcome = read_json(&dir.join("summary.json"));
            let lines = rl_lines(&dir);
            assert_eq!(lines.len(), 3, "{label} seed {seed}: RL steps");
            let mean = |key: &str| {
                lines.iter().map(|l| l[key].as_f64().unwrap()).sum::<f64>() / lines.len() as f64
            };
            let close = |field: &str, want: f64| {
                let got = row[field].as_f64().unwrap();
                assert!(
                    (got - want).abs() < 1e-12,
                    "{label} seed {seed} {field}: table {got}, recomputed {want}"
                );
            };
            let final_acc = outcome["accuracy_final"].as_f64().unwrap();
            close("accuracy_final", final_acc);
            close(
                "rl_gain",
                final_acc - outcome["accuracy_before_rl"].as_f64().unwrap(),
            );
            close("zero_var_frac", mean("reward/zero_var_frac"));
            close("nonzero_adv_frac", mean("adv/nonzero_frac"));
            close("kl_final", lines[2]["kl/mean"].as_f64().unwrap());
            let tokens: f64 = lines
                .iter()
                .map(|l| l["rollout/tokens"].as_f64().unwrap())
                .sum();
            close("rollout_tokens", tokens);
            assert!(tokens > 0.0);
            // Dynamic sampling is on for DAPO only: more than one round, or a batch without
            // tied groups; the others sample one round.
            for line in &lines {
                let rounds = line["rollout/rounds"].as_u64().unwrap();
                if label == "dapo" {
                    let tied = line["reward/zero_var_frac"].as_f64().unwrap();
                    let kept = line["rollout/tied_kept"].as_u64().unwrap();
                    assert!(rounds >= 1 && rounds <= 4);
                    assert!((tied > 0.0) == (kept > 0), "{line}");
                } else {
                    assert_eq!(rounds, 1, "{label}");
                }
            }
        }
    }

    // `epgrpo plot` with several runs overlays them.
    let overlay = scratch.join("overlay.svg");
    let a = out.join("grpo").join("seed-0");
    let b = out.join("dapo").join("seed-0");
    let output = epgrpo(&[
        "plot",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        overlay.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let svg = std::fs::read_to_string(&overlay).unwrap();
    assert!(svg.contains("seed-0 (1 runs)"));
    let _ = std::fs::remove_dir_all(&scratch);
}
