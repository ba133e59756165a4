//! `epgrpo plan` against reality: the plan's f32 peak for the default task (with a scratch
//! decoder large enough that the model, not the process's code and allocator, dominates) is
//! within 20 % of the measured growth of this process's peak resident memory (`VmHWM`) over a
//! short real run of the same config. One test per binary: the high-water mark is per process.

use std::path::PathBuf;

use burn::backend::{Autodiff, NdArray};
use epgrpo_train::checkpoint::Stage;
use epgrpo_train::commands::plan::plan_inputs;
use epgrpo_train::config::TrainConfig;
use epgrpo_train::metrics::StepMetrics;
use epgrpo_train::plan::{human, plan};
use epgrpo_train::rss::{current_rss_bytes, peak_rss_bytes};
use epgrpo_train::trainer::{Observer, run};

type B = Autodiff<NdArray<f32>>;

struct Quiet;

impl Observer for Quiet {
    fn stage(&mut self, _: Stage, _: usize, _: usize) {}
    fn step(&mut self, _: &StepMetrics) {}
    fn evaluated(&mut self, _: &str, _: f64) {}
}

#[cfg(target_os = "linux")]
#[test]
fn plan_is_within_20_percent_of_the_measured_peak_of_a_short_run() {
    let out: PathBuf =
        std::env::temp_dir().join(format!("epgrpo-plan-memory-{}", std::process::id()));
    std::fs::remove_dir_all(&out).ok();
    // The default task and preset; only the model is wider and the run shorter.
    let text = format!(
        r#"
[model]
hidden_size = 256
intermediate_size = 768
num_hidden_layers = 4
num_attention_heads = 4
num_key_value_heads = 2
[task]
eval_problems = 8
[sft]
steps = 0
[train]
steps = 2
checkpoint_every = 0
out_dir = "{}"
[eval]
every = 0
"#,
        out.display()
    );
    let config = TrainConfig::from_toml(&text, "plan test").unwrap();
    let (inputs, _) = plan_inputs(&config, None, None).unwrap();
    let planned = plan(&inputs).peak[0] as f64;

    let before = current_rss_bytes().expect("Linux /proc/self/status") as f64;
    run::<B>(config, &out, false, None, &Default::default(), &mut Quiet).unwrap();
    let measured = peak_rss_bytes().unwrap() as f64 - before;
    std::fs::remove_dir_all(&out).ok();
    let ratio = planned / measured;
    eprintln!("plan {planned:.0} B, measured {measured:.0} B, ratio {ratio:.3}");
    assert!(
        (0.8..=1.2).contains(&ratio),
        "plan {} vs measured peak growth {} (ratio {ratio:.2})",
        human(planned as u64),
        human(measured as u64)
    );
}
