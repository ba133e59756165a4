//! Training runs end to end on a tiny configuration: resuming from a checkpoint reproduces an
//! uninterrupted run bit for bit on the CPU, and the run directory holds what it should.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use epgrpo_models::load_decoder;
use epgrpo_train::checkpoint::{self, Stage};
use epgrpo_train::config::TrainConfig;
use epgrpo_train::metrics::{StepMetrics, read_metrics};
use epgrpo_train::policy::{decoder_config, initial_model};
use epgrpo_train::trainer::{EXPORT_DIR, Observer, StopAfter, run};

type B = Autodiff<NdArray<f32>>;

struct Quiet;

impl Observer for Quiet {
    fn stage(&mut self, _: Stage, _: usize, _: usize) {}
    fn step(&mut self, _: &StepMetrics) {}
    fn evaluated(&mut self, _: &str, _: f64) {}
}

fn tiny_config(out: &Path) -> TrainConfig {
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
eval_problems = 6
[sft]
steps = 3
batch_size = 8
[rollout]
prompts_per_step = 2
max_new_tokens = 3
[algorithm]
group_size = 4
[optim]
warmup_steps = 1
minibatches = 2
[train]
steps = 4
checkpoint_every = 0
out_dir = "{}"
[eval]
every = 2
"#,
        out.display()
    );
    TrainConfig::from_toml(&text, "tiny").expect("valid tiny config")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("epgrpo-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

/// Collects every float parameter's values, in module order.
struct Collect(Vec<Vec<f32>>);

impl<Be: Backend> ModuleVisitor<Be> for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Be, D>>) {
        self.0.push(
            param
                .val()
                .to_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap(),
        );
    }
}

/// Every float parameter's values of a run's checkpoint, in module order.
fn parameters(dir: &Path, config: &TrainConfig) -> Vec<Vec<f32>> {
    let device = Default::default();
    let empty = initial_model::<NdArray<f32>>(&decoder_config(&config.model).unwrap(), 0, &device);
    let model = checkpoint::load_model(&dir.join("checkpoint"), "model", empty, &device).unwrap();
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// Metrics without the timing fields, which differ between any two runs.
fn metrics_without_timing(dir: &Path) -> Vec<StepMetrics> {
    read_metrics(&dir.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .map(|mut m| {
            if let Some(rl) = m.rl.as_mut() {
                rl.rollout_tokens_per_s = 0.0;
                rl.scoring_tokens_per_s = 0.0;
                rl.update_tokens_per_s = 0.0;
            }
            m
        })
        .collect()
}

#[test]
fn resume_is_bitwise_identical_on_cpu() {
    let device = Default::default();
    let straight = scratch("straight");
    let config = tiny_config(&straight);
    let full = run::<B>(config.clone(), &straight, false, None, &device, &mut Quiet).unwrap();
    assert_eq!(full.rl_steps, 4);

    let split = scratch("split");
    let half = run::<B>(
        tiny_config(&split),
        &split,
        false,
        Some(StopAfter::rl(2)),
        &device,
        &mut Quiet,
    )
    .unwrap();
    assert_eq!((half.rl_steps, half.accuracy_final), (2, None));
    let resumed = run::<B>(
        TrainConfig::default(),
        &split,
        true,
        None,
        &device,
        &mut Quiet,
    )
    .unwrap();
    assert_eq!(resumed.rl_steps, 4);

    assert_eq!(
        parameters(&straight, &config),
        parameters(&split, &config),
        "weights differ"
    );
    let (a, b) = (
        metrics_without_timing(&straight),
        metrics_without_timing(&split),
    );
    assert_eq!(a.len(), 3 + 4, "3 SFT + 4 RL lines");
    assert_eq!(a, b, "metrics differ");
    assert_eq!(full.accuracy_final, resumed.accuracy_final);
    // The state of the RL stage and the files a user looks at.
    let state = checkpoint::load_state(&split.join("checkpoint")).unwrap();
    assert_eq!((state.stage, state.step), (Stage::Rl, 4));
    for file in [
        "config.toml",
        "eval.jsonl",
        "summary.json",
        "checkpoint/reference.mpk",
    ] {
        assert!(straight.join(file).exists(), "{file} missing");
    }
    // The exported Hugging Face directory loads back to the checkpoint's weights.
    let (architecture, exported) =
        load_decoder::<NdArray<f32>>(&straight.join(EXPORT_DIR), &device).unwrap();
    assert_eq!(architecture, decoder_config(&config.model).unwrap());
    let mut collect = Collect(Vec::new());
    exported.visit(&mut collect);
    assert_eq!(collect.0, parameters(&straight, &config), "export differs");
    std::fs::remove_dir_all(&straight).ok();
    std::fs::remove_dir_all(&split).ok();
}

#[test]
fn a_second_run_into_the_same_directory_is_refused() {
    let device = Default::default();
    let dir = scratch("twice");
    let mut config = tiny_config(&dir);
    config.sft.steps = 0;
    config.train.steps = 1;
    run::<B>(config.clone(), &dir, false, None, &device, &mut Quiet).unwrap();
    let error = run::<B>(config, &dir, false, None, &device, &mut Quiet).unwrap_err();
    assert!(error.to_string().contains("--resume"), "{error}");
    std::fs::remove_dir_all(&dir).ok();
}
