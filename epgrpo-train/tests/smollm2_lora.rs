//! RL with LoRA on the real SmolLM2-135M-Instruct (needs its GGUF: run
//! `eval "$(epgrpo-models/scripts/fetch_smollm2.sh)"` first; CI does). Two EP-GRPO steps train
//! the adapters and nothing else, and the checkpoint leaves the reference (the base model,
//! adapters off) out.

use burn::backend::{Autodiff, NdArray};
use burn::prelude::*;
use epgrpo_train::checkpoint::{self, Stage};
use epgrpo_train::config::TrainConfig;
use epgrpo_train::metrics::{StepMetrics, read_metrics};
use epgrpo_train::policy::initial_policy;
use epgrpo_train::trainer::{EXPORT_DIR, Observer, run};

type Cpu = NdArray<f32>;

struct Quiet;

impl Observer for Quiet {
    fn stage(&mut self, _: Stage, _: usize, _: usize) {}
    fn step(&mut self, _: &StepMetrics) {}
    fn evaluated(&mut self, _: &str, _: f64) {}
}

fn values<const D: usize>(t: Tensor<Cpu, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

#[test]
#[ignore = "needs the SmolLM2 GGUF: eval \"$(epgrpo-models/scripts/fetch_smollm2.sh)\""]
fn lora_rl_on_smollm2_trains_only_the_adapters() {
    let gguf = std::env::var("EPGRPO_SMOLLM2_GGUF")
        .expect("EPGRPO_SMOLLM2_GGUF is not set: run epgrpo-models/scripts/fetch_smollm2.sh");
    let out = std::env::temp_dir().join(format!("epgrpo-smollm2-lora-{}", std::process::id()));
    std::fs::remove_dir_all(&out).ok();
    let text = format!(
        r#"
[model]
path = "{gguf}"
lora_rank = 4
lora_targets = ["q_proj", "v_proj"]
[task]
prompt = "What is {{question}}? Reply with just the number."
max_operand = 10
operators = "+"
eval_problems = 2
[sft]
steps = 0
[rollout]
prompts_per_step = 2
max_new_tokens = 4
temperature = 0.7
[algorithm]
group_size = 4
[optim]
lr = 1e-3
warmup_steps = 0
[train]
steps = 2
out_dir = "{}"
[eval]
every = 0
"#,
        out.display()
    );
    let config = TrainConfig::from_toml(&text, "smollm2-lora").unwrap();
    let device = Default::default();
    let outcome = run::<Autodiff<Cpu>>(config.clone(), &out, false, None, &device, &mut Quiet)
        .expect("training runs");
    assert_eq!(outcome.rl_steps, 2);
    assert!(outcome.accuracy_final.is_some());

    let rl: Vec<_> = read_metrics(&out.join("metrics.jsonl"))
        .unwrap()
        .into_iter()
        .filter(|m| m.stage == "rl")
        .collect();
    assert_eq!(rl.len(), 2);
    for m in &rl {
        assert!(m.loss.is_finite() && m.grad_norm.is_finite(), "{m:?}");
        let stats = m.rl.as_ref().unwrap();
        assert!(stats.entropy_mean > 0.0, "{stats:?}");
    }

    // The base weights are the GGUF's; the adapters moved; no reference copy was written.
    let dir = checkpoint::directory(&out).unwrap();
    assert!(!dir.join("reference.mpk").exists());
    let fresh = initial_policy::<Cpu>(&config, &device).unwrap().model;
    let trained = checkpoint::load_model(&dir, "model", fresh.clone(), &device).unwrap();
    for (before, after) in fresh.layers.iter().zip(&trained.layers) {
        let (b, a) = (&before.self_attn, &after.self_attn);
        assert_eq!(
            values(b.q_proj.base.weight.val()),
            values(a.q_proj.base.weight.val())
        );
        assert_eq!(
            values(b.o_proj.base.weight.val()),
            values(a.o_proj.base.weight.val())
        );
        assert!(a.o_proj.adapter.is_none());
        let lora_b = values(a.q_proj.adapter.as_ref().unwrap().lora_b.val());
        assert!(
            lora_b.iter().any(|&x| x != 0.0),
            "q_proj adapter B stayed 0"
        );
    }
    // The export merges the adapters into a plain model with the GGUF's tokenizer.
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert!(out.join(EXPORT_DIR).join(file).exists(), "{file} missing");
    }
    std::fs::remove_dir_all(&out).ok();
}
