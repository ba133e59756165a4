//! `[train] precision`: a half type is refused when the run starts, with an error that names the
//! key and the backend, before anything is written; it is never run in f32 silently.

use burn::backend::{Autodiff, NdArray};
use epgrpo_train::checkpoint::Stage;
use epgrpo_train::config::TrainConfig;
use epgrpo_train::metrics::StepMetrics;
use epgrpo_train::trainer::{Observer, run};

struct Quiet;

impl Observer for Quiet {
    fn stage(&mut self, _: Stage, _: usize, _: usize) {}
    fn step(&mut self, _: &StepMetrics) {}
    fn evaluated(&mut self, _: &str, _: f64) {}
}

#[test]
fn a_half_precision_run_is_refused_on_the_cpu_naming_key_and_backend() {
    for precision in ["bf16", "f16"] {
        let out = std::env::temp_dir().join(format!(
            "epgrpo-precision-{precision}-{}",
            std::process::id()
        ));
        std::fs::remove_dir_all(&out).ok();
        let text = format!(
            "[train]\nprecision = \"{precision}\"\nout_dir = \"{}\"",
            out.display()
        );
        let config = TrainConfig::from_toml(&text, "run.toml").unwrap();
        let error = run::<Autodiff<NdArray<f32>>>(
            config,
            &out,
            false,
            None,
            &Default::default(),
            &mut Quiet,
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains(&format!("train.precision = \"{precision}\""))
                && error.contains("backend"),
            "{error}"
        );
        assert!(!out.exists(), "a refused run wrote {}", out.display());
    }
}
