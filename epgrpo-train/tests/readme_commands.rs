//! The commands of the README, run as a newcomer runs them (the `epgrpo` binary, on a tiny
//! configuration so that they take seconds): training twice with the same command keeps both
//! runs, an explicit `--out` that holds a run is refused naming `--resume` and `--overwrite`,
//! `--stop-after-sft` + `--resume`, `epgrpo eval --run`, `epgrpo eval --model RUN/model` on the
//! exported scratch model (it gives the same greedy answers as `--run`), and `epgrpo plot`.
//! (`epgrpo advantages` is covered by `advantages_cli.rs`, `eval --model` on a tokenizer model
//! by `eval_cli.rs`.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn epgrpo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_epgrpo"))
        .args(args)
        .output()
        .expect("epgrpo starts")
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("epgrpo-readme-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny run whose `[train] out_dir` is `out`.
fn tiny_config(dir: &Path, out: &Path) -> PathBuf {
    let path = dir.join("tiny.toml");
    let text = format!(
        r#"
[model]
hidden_size = 16
intermediate_size = 32
num_hidden_layers = 1
num_attention_heads = 2
num_key_value_heads = 1
[task]
max_operand = 10
eval_problems = 4
[sft]
steps = 2
batch_size = 8
[rollout]
prompts_per_step = 2
max_new_tokens = 3
[algorithm]
group_size = 2
[train]
steps = 2
out_dir = "{}"
[eval]
every = 0
"#,
        out.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The greedy pass@1 line of an `epgrpo eval` table.
fn greedy(table: &str) -> f64 {
    let line = table
        .lines()
        .find(|l| l.starts_with("greedy pass@1"))
        .unwrap_or_else(|| panic!("no greedy line in {table}"));
    line.split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
fn the_readme_commands_work_on_a_fresh_run() {
    let dir = scratch("commands");
    let run = dir.join("runs/default");
    let config = tiny_config(&dir, &run);
    let train = ["train", "--plain", "--config", s(&config)];

    // The same command twice: the second run goes next to the first, and says so.
    let first = epgrpo(&train);
    assert!(first.status.success(), "{first:?}");
    let second = epgrpo(&train);
    let (stdout, stderr) = text(&second);
    assert!(second.status.success(), "{second:?}");
    let run2 = dir.join("runs/default-2");
    assert!(
        stderr.contains(&format!("so this one goes to {}", run2.display()))
            && stderr.contains(&format!("--resume {}", run.display()))
            && stderr.contains("--overwrite"),
        "{stderr}"
    );
    assert!(stdout.contains(&run2.display().to_string()), "{stdout}");
    for run in [&run, &run2] {
        assert!(run.join("summary.json").exists() && run.join("model").exists());
    }
    let saved = std::fs::read_to_string(run2.join("config.toml")).unwrap();
    assert!(
        saved.contains("default-2"),
        "the run records where it lives"
    );

    // An explicit --out that holds a run is refused, naming both ways on; --overwrite replaces.
    let refused = epgrpo(&["train", "--plain", "--config", s(&config), "--out", s(&run)]);
    let (_, stderr) = text(&refused);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("--resume") && stderr.contains("--overwrite"),
        "{stderr}"
    );
    std::fs::write(run.join("notes.txt"), "kept").unwrap();
    let mut overwrite = train.to_vec();
    overwrite.extend(["--out", s(&run), "--overwrite", "--stop-after-sft", "1"]);
    let replaced = epgrpo(&overwrite);
    assert!(replaced.status.success(), "{replaced:?}");
    assert!(!run.join("model").exists(), "the old run's export is gone");
    assert_eq!(
        std::fs::read_to_string(run.join("notes.txt")).unwrap(),
        "kept"
    );
    let state = std::fs::read_to_string(run.join("checkpoint/state.json")).unwrap();
    let state: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(
        (&state["stage"], &state["step"]),
        (&Value::from("sft"), &Value::from(1))
    );
    // --stop-after-sft then --resume finishes the run.
    let resumed = epgrpo(&["train", "--plain", "--resume", s(&run)]);
    assert!(resumed.status.success(), "{resumed:?}");
    assert!(text(&resumed).0.contains("after 2 RL steps"));

    // eval --run, and eval --model on the exported scratch model: same problems, same answers.
    let data = dir.join("test.jsonl");
    std::fs::write(
        &data,
        "{\"question\": \"2+3\", \"answer\": 5}\n{\"question\": \"7-4\", \"answer\": 3}\n\
         {\"question\": \"9+9\", \"answer\": 18}\n{\"question\": \"1-8\", \"answer\": -7}\n",
    )
    .unwrap();
    let by_run = epgrpo(&[
        "eval",
        "--run",
        s(&run),
        "--data",
        s(&data),
        "--samples",
        "0",
    ]);
    assert!(by_run.status.success(), "{by_run:?}");
    let model = run.join("model");
    // As the README writes it (the defaults: chat mode, 256 answer tokens) …
    // (run in the scratch directory: without --out the details go to the working directory)
    let plain = Command::new(env!("CARGO_BIN_EXE_epgrpo"))
        .args(["eval", "--model", s(&model), "--data", s(&data)])
        .current_dir(&dir)
        .output()
        .expect("epgrpo starts");
    assert!(plain.status.success(), "{plain:?}");
    // … and with the run's answer length: the run's own greedy answers.
    let details = dir.join("details.jsonl");
    let by_model = epgrpo(&[
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&data),
        "--max-new-tokens",
        "3",
        "--out",
        s(&details),
    ]);
    assert!(by_model.status.success(), "{by_model:?}");
    assert_eq!(greedy(&text(&by_run).0), greedy(&text(&by_model).0));
    let run_details = std::fs::read_to_string(run.join("eval-details.jsonl")).unwrap();
    let model_details = std::fs::read_to_string(&details).unwrap();
    let answers = |jsonl: &str| -> Vec<Value> {
        jsonl
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["greedy"].clone())
            .collect()
    };
    assert_eq!(answers(&run_details), answers(&model_details));
    assert_eq!(answers(&model_details).len(), 4);
    let sampled = epgrpo(&["eval", "--run", s(&run), "--samples", "2", "--k", "1,2"]);
    assert!(sampled.status.success(), "{sampled:?}");
    assert!(text(&sampled).0.contains("pass@2"));

    // plot redraws plots.svg.
    std::fs::remove_file(run.join("plots.svg")).unwrap();
    let plot = epgrpo(&["plot", s(&run)]);
    assert!(plot.status.success(), "{plot:?}");
    assert!(run.join("plots.svg").exists());
    std::fs::remove_dir_all(&dir).ok();
}
