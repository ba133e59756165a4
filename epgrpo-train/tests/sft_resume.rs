//! The supervised warm start checkpoints every `[sft] checkpoint_every` steps: a run killed in
//! the middle of it resumes from its last checkpoint (losing at most that many steps), and a
//! run stopped there with `StopAfter::sft` resumes too; both end bit for bit where the run that
//! was never interrupted ends (weights and every logged number, on the CPU).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, NdArray};
use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use epgrpo_train::checkpoint::{self, Stage};
use epgrpo_train::config::TrainConfig;
use epgrpo_train::metrics::{StepMetrics, read_metrics};
use epgrpo_train::policy::{decoder_config, initial_model};
use epgrpo_train::trainer::{Observer, StopAfter, run};

type B = Autodiff<NdArray<f32>>;

/// Reports nothing; with `kill_at`, dies (panics) right after that warm-start step was logged,
/// as a process killed there would.
struct Killer {
    kill_at: Option<usize>,
}

impl Observer for Killer {
    fn stage(&mut self, _: Stage, _: usize, _: usize) {}
    fn step(&mut self, metrics: &StepMetrics) {
        if metrics.stage == "sft" && Some(metrics.step) == self.kill_at {
            panic!("killed after warm-start step {}", metrics.step);
        }
    }
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
eval_problems = 4
[sft]
steps = 5
batch_size = 8
checkpoint_every = 2
[rollout]
prompts_per_step = 2
max_new_tokens = 3
[algorithm]
group_size = 2
[optim]
warmup_steps = 1
[train]
steps = 2
checkpoint_every = 0
out_dir = "{}"
[eval]
every = 0
"#,
        out.display()
    );
    TrainConfig::from_toml(&text, "tiny").expect("valid tiny config")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("epgrpo-sft-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

/// Collects every float parameter's values, in module order.
struct Collect(Vec<Vec<f32>>);

impl<Be: Backend> ModuleVisitor<Be> for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Be, D>>) {
        self.0.push(param.val().to_data().to_vec::<f32>().unwrap());
    }
}

/// Every float parameter's values of a run's checkpoint.
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

fn stage_and_step(dir: &Path) -> (Stage, usize) {
    let state = checkpoint::load_state(&dir.join("checkpoint")).unwrap();
    (state.stage, state.step)
}

fn resume(dir: &Path) {
    let device = Default::default();
    let mut quiet = Killer { kill_at: None };
    let outcome = run::<B>(TrainConfig::default(), dir, true, None, &device, &mut quiet).unwrap();
    assert_eq!(outcome.rl_steps, 2);
}

#[test]
fn a_killed_or_stopped_warm_start_resumes_exactly() {
    let device = Default::default();
    let straight = scratch("straight");
    let config = tiny_config(&straight);
    let mut quiet = Killer { kill_at: None };
    run::<B>(config.clone(), &straight, false, None, &device, &mut quiet).unwrap();
    let want_metrics = metrics_without_timing(&straight);
    assert_eq!(want_metrics.len(), 5 + 2, "5 SFT + 2 RL lines");
    let want_weights = parameters(&straight, &config);

    // Killed after step 3: the checkpoint of step 2 is the last, and the log's line of step 3
    // is dropped and written again by the resumed run.
    let killed = scratch("killed");
    let mut killer = Killer { kill_at: Some(3) };
    let died = catch_unwind(AssertUnwindSafe(|| {
        run::<B>(
            tiny_config(&killed),
            &killed,
            false,
            None,
            &device,
            &mut killer,
        )
    }));
    assert!(died.is_err(), "the observer kills the run");
    assert_eq!(stage_and_step(&killed), (Stage::Sft, 2));
    assert_eq!(
        read_metrics(&killed.join("metrics.jsonl")).unwrap().len(),
        3
    );
    resume(&killed);
    assert_eq!(parameters(&killed, &config), want_weights, "weights differ");
    assert_eq!(
        metrics_without_timing(&killed),
        want_metrics,
        "metrics differ"
    );

    // Stopped after step 3 (not a multiple of checkpoint_every): a checkpoint there.
    let stopped = scratch("stopped");
    let outcome = run::<B>(
        tiny_config(&stopped),
        &stopped,
        false,
        Some(StopAfter::sft(3)),
        &device,
        &mut quiet,
    )
    .unwrap();
    assert_eq!((outcome.rl_steps, outcome.accuracy_final), (0, None));
    assert!(outcome.accuracy_before_rl.is_none());
    assert_eq!(stage_and_step(&stopped), (Stage::Sft, 3));
    resume(&stopped);
    assert_eq!(
        parameters(&stopped, &config),
        want_weights,
        "weights differ"
    );
    assert_eq!(
        metrics_without_timing(&stopped),
        want_metrics,
        "metrics differ"
    );

    // A stop the run never reaches is refused before anything is written.
    let never = scratch("never");
    let error = run::<B>(
        tiny_config(&never),
        &never,
        false,
        Some(StopAfter::sft(6)),
        &device,
        &mut quiet,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("sft.steps"), "{error}");
    assert!(!never.exists(), "nothing written for a refused run");
    for dir in [straight, killed, stopped] {
        std::fs::remove_dir_all(dir).ok();
    }
}
