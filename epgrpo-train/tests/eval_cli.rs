//! `epgrpo eval --model DIR --data FILE` end to end on a small Hugging Face directory (random
//! weights, the committed test tokenizer of epgrpo-models): greedy answers are the ones
//! `epgrpo generate` gives, the summary agrees with the per-problem lines, and bad arguments
//! get one clear error.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use burn::backend::NdArray;
use epgrpo_models::{TextTokenizer, save_hf_dir};
use epgrpo_train::config::ModelConfig;
use epgrpo_train::policy::{decoder_config, initial_model};
use serde_json::Value;

fn epgrpo(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_epgrpo"))
        .args(args)
        .output()
        .expect("epgrpo starts")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("epgrpo-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A random 1-layer decoder over the test tokenizer's vocabulary, as a Hugging Face directory.
fn small_model(dir: &Path) -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../epgrpo-models/tests/fixtures");
    let tokenizer = TextTokenizer::from_dir(&fixtures.join("tokenizer")).unwrap();
    let mut config = decoder_config(&ModelConfig {
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 1,
        num_attention_heads: 2,
        num_key_value_heads: 1,
        ..ModelConfig::default()
    })
    .unwrap();
    config.vocab_size = tokenizer.vocab_size();
    config.max_position_embeddings = 256;
    let model = initial_model::<NdArray<f32>>(&config, 7, &Default::default());
    let path = dir.join("model");
    save_hf_dir(&model, &config, Some(&tokenizer), &path).unwrap();
    path
}

#[test]
fn evaluates_a_model_directory_on_a_jsonl_file() {
    let dir = scratch("eval-model");
    let model = small_model(&dir);
    let data = dir.join("problems.jsonl");
    std::fs::write(
        &data,
        "{\"question\": \"What is 2+3?\", \"answer\": \"5\"}\n\
         {\"question\": \"What is 7-4?\", \"answer\": 3}\n\
         {\"question\": \"Half of 8?\", \"answer\": \"4\"}\n",
    )
    .unwrap();
    let details = dir.join("details.jsonl");
    let output = epgrpo(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--samples",
        "2",
        "--k",
        "1,2",
        "--max-new-tokens",
        "4",
        "--out",
        details.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{output:?}");
    let table = String::from_utf8(output.stdout).unwrap();
    assert!(
        table.contains("3 problems") && table.contains("pass@2"),
        "{table}"
    );

    let lines: Vec<Value> = std::fs::read_to_string(&details)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let correct = lines.iter().filter(|l| l["greedy_correct"] == true).count();
    let reported = format!("greedy pass@1   {:.4}", correct as f64 / 3.0);
    assert!(table.contains(&reported), "{table} lacks {reported}");
    for line in &lines {
        assert_eq!(line["samples"].as_array().unwrap().len(), 2);
        // The same greedy answer as `epgrpo generate` with the chat template.
        let generated = epgrpo(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            line["question"].as_str().unwrap(),
            "--max-new-tokens",
            "4",
        ]);
        assert!(generated.status.success(), "{generated:?}");
        let text = String::from_utf8(generated.stdout).unwrap();
        assert_eq!(
            text.trim_end_matches('\n'),
            line["greedy"].as_str().unwrap()
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn model_evaluation_needs_data_and_a_known_kind() {
    let dir = scratch("eval-args");
    let model = small_model(&dir);
    let output = epgrpo(&["eval", "--model", model.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--data"),
        "{output:?}"
    );
    let data = dir.join("p.jsonl");
    std::fs::write(&data, "{\"question\": \"1+1\", \"answer\": 2}\n").unwrap();
    let output = epgrpo(&[
        "eval",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--kind",
        "chess",
    ]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--kind \"chess\""),
        "{output:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
