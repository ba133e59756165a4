//! `TrainConfig`: the TOML file of a training run, one section per table. Every field has a
//! default (the embedded `presets/default.toml` spells them all out with comments); unknown keys
//! are rejected, and [`TrainConfig::validate`] reports every out-of-range value by its dotted
//! name.

use std::path::{Path, PathBuf};

use epgrpo_core::{Algorithm, AlgorithmConfig};
use epgrpo_eval::TaskKind;
use epgrpo_models::{HeadLoss, LoraConfig};
use serde::{Deserialize, Serialize};

use crate::codec::QUESTION_SLOT;
use crate::error::CliError;
use crate::task::ArithmeticTask;

/// The embedded default experiment (`epgrpo train` with no `--config`).
pub const DEFAULT_PRESET: &str = include_str!("presets/default.toml");

/// A whole training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// The policy network.
    pub model: ModelConfig,
    /// The problems.
    pub task: TaskConfig,
    /// Supervised warm start before RL.
    pub sft: SftConfig,
    /// Sampling of the G responses per prompt.
    pub rollout: RolloutConfig,
    /// The RL objective (EP-GRPO or a baseline).
    pub algorithm: AlgorithmConfig,
    /// AdamW and its schedule for the RL stage.
    pub optim: OptimConfig,
    /// Length of the run, seeds, checkpoints.
    pub train: RunConfig,
    /// Held-out evaluation.
    pub eval: EvalConfig,
    /// Data-parallel training across processes.
    pub distributed: DistributedConfig,
}

/// `[model]`: a small Llama-style decoder built from scratch for the task's character
/// vocabulary, or a pretrained model (`path`), fully fine-tuned or with LoRA adapters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// Pretrained model: a Hugging Face directory (`config.json`, `*.safetensors`,
    /// `tokenizer.json`) or a `.gguf` file. Absent: a scratch decoder of the sizes below.
    pub path: Option<PathBuf>,
    /// Pretrained model only: put each prompt to the model as one user turn of its chat
    /// template (with the template's default system prompt).
    pub chat_template: bool,
    /// Pretrained model only: LoRA rank r (0: train every weight). With LoRA the reference
    /// policy is the model with its adapters switched off.
    pub lora_rank: usize,
    /// LoRA scale numerator: the update is `(lora_alpha / lora_rank) · x·A·B`.
    pub lora_alpha: f64,
    /// Projections that get adapters: any of `q_proj k_proj v_proj o_proj gate_proj up_proj
    /// down_proj`.
    pub lora_targets: Vec<String>,
    /// Width d of the residual stream.
    pub hidden_size: usize,
    /// Inner width of the SwiGLU MLP.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads.
    pub num_attention_heads: usize,
    /// Key/value heads (grouped-query attention); must divide `num_attention_heads`.
    pub num_key_value_heads: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            path: None,
            chat_template: true,
            lora_rank: 0,
            lora_alpha: 16.0,
            lora_targets: ["q_proj", "k_proj", "v_proj", "o_proj"]
                .map(String::from)
                .to_vec(),
            hidden_size: 128,
            intermediate_size: 384,
            num_hidden_layers: 3,
            num_attention_heads: 4,
            num_key_value_heads: 2,
        }
    }
}

/// `[task]`: procedurally generated integer arithmetic, `a+b` or `a-b` with operands below
/// `max_operand` (train and held-out problems disjoint), or JSONL problem files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TaskConfig {
    /// How answers are verified: `math` (the answer's value) or `countdown` (an expression that
    /// uses each given number once and reaches the target; needs JSONL files with
    /// `numbers_field`).
    pub kind: TaskKind,
    /// How a question is put to the model; `{question}` is replaced by the question.
    pub prompt: String,
    /// JSONL training problems (`{"question": ..., "answer": ...}`); absent: arithmetic.
    pub train_file: Option<PathBuf>,
    /// JSONL held-out problems; required with `train_file`.
    pub eval_file: Option<PathBuf>,
    /// Field of the question in the JSONL files.
    pub question_field: String,
    /// Field of the answer in the JSONL files (a GSM8K-style `... #### 72` keeps `72`).
    pub answer_field: String,
    /// Countdown only: field of the numbers to use in the JSONL files.
    pub numbers_field: String,
    /// Operands are drawn from `0..max_operand`.
    pub max_operand: u32,
    /// Operators used: any of `+`, `-`, `*`.
    pub operators: String,
    /// Held-out problems evaluated before, during and after training.
    pub eval_problems: usize,
}

impl Default for TaskConfig {
    fn default() -> Self {
        Self {
            kind: TaskKind::Math,
            prompt: "{question}=".into(),
            train_file: None,
            eval_file: None,
            question_field: "question".into(),
            answer_field: "answer".into(),
            numbers_field: "numbers".into(),
            max_operand: 20,
            operators: "+-".into(),
            eval_problems: 80,
        }
    }
}

/// `[sft]`: teacher-forced cross-entropy on correct answers, the warm start that gives RL
/// something to reinforce. `steps = 0` skips it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SftConfig {
    /// Optimiser steps.
    pub steps: usize,
    /// Problems per step.
    pub batch_size: usize,
    /// Peak AdamW learning rate (linear warm-up over 10% of the steps, then cosine to 10%).
    pub lr: f64,
    /// Write a checkpoint every this many warm-start steps, so that a killed run loses at most
    /// that many (0: only at the end of the warm start, which always writes one).
    pub checkpoint_every: usize,
}

impl Default for SftConfig {
    fn default() -> Self {
        Self {
            steps: 300,
            batch_size: 64,
            lr: 3e-3,
            checkpoint_every: 100,
        }
    }
}

/// `[rollout]`: how the G responses of each prompt are sampled (G is `algorithm.group_size`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutConfig {
    /// Prompts per RL step (B); the step trains on B × G responses.
    pub prompts_per_step: usize,
    /// Longest response in tokens; longer ones are truncated (and usually wrong).
    pub max_new_tokens: usize,
    /// Sampling temperature T_s, also used for the log-probs and entropies of E1.
    pub temperature: f64,
    /// Keep only the k most likely tokens when sampling (0: all).
    pub top_k: usize,
    /// Nucleus sampling mass (1.0: all).
    pub top_p: f64,
    /// DAPO's dynamic sampling: sample further rounds of prompts and train only on groups whose
    /// rewards differ. Default: on for `algorithm.name = "dapo"`, off otherwise.
    pub dynamic_sampling: Option<bool>,
    /// Most rounds of `prompts_per_step` prompts one step may sample with dynamic sampling;
    /// tied groups fill the batch when they run out.
    pub dynamic_sampling_rounds: usize,
}

impl RolloutConfig {
    /// Whether dynamic sampling is on for `algorithm`.
    pub fn dynamic_sampling_for(&self, algorithm: Algorithm) -> bool {
        self.dynamic_sampling
            .unwrap_or(algorithm == Algorithm::Dapo)
    }
}

impl Default for RolloutConfig {
    fn default() -> Self {
        Self {
            prompts_per_step: 32,
            max_new_tokens: 6,
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            dynamic_sampling: None,
            dynamic_sampling_rounds: 4,
        }
    }
}

/// `[optim]`: AdamW for the RL stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps.
    pub warmup_steps: usize,
    /// The cosine decay ends at `lr × min_lr_ratio`.
    pub min_lr_ratio: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value (0: no clipping).
    pub max_grad_norm: f64,
    /// μ: passes over each rollout batch.
    pub epochs: usize,
    /// Optimiser steps per pass (the rollout batch is split into this many minibatches).
    pub minibatches: usize,
    /// Micro-batches whose gradients are accumulated into one optimiser step.
    pub grad_accumulation: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            lr: 1e-4,
            warmup_steps: 10,
            min_lr_ratio: 0.1,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            epochs: 1,
            minibatches: 1,
            grad_accumulation: 1,
        }
    }
}

/// `[train]`: length, seed, output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// RL steps.
    pub steps: usize,
    /// Seed of initialisation, data and sampling.
    pub seed: u64,
    /// Write a checkpoint every this many RL steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Stop the run with an error after this many consecutive optimiser steps refused for a
    /// non-finite loss or gradient norm (the last checkpoint stays the last good state).
    pub max_consecutive_skipped: usize,
    /// Run directory (metrics, plots, checkpoints).
    pub out_dir: PathBuf,
    /// Tokens per chunk of the output head fused with E1 in scoring and the update (no
    /// `[tokens, vocab]` logits); 0: materialise the logits of a whole micro-batch.
    pub head_chunk_tokens: usize,
    /// Keep only each decoder layer's input in the RL update's forward and recompute the
    /// layers one by one in the backward: less memory, one more forward pass.
    pub activation_checkpointing: bool,
    /// Compute type of the decoder. Only `f32` runs today; a half type is refused at start,
    /// naming the backend (`epgrpo plan` shows what it would save).
    pub precision: Precision,
}

/// `[train] precision`: the decoder's compute type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats everywhere.
    F32,
    /// bfloat16 compute and frozen weights; f32 master weights, gradients and AdamW state.
    Bf16,
    /// float16, as `Bf16`.
    F16,
}

impl Precision {
    /// Every precision, in table order.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::F16];

    /// Bytes per value.
    pub fn bytes(self) -> u64 {
        match self {
            Precision::F32 => 4,
            Precision::Bf16 | Precision::F16 => 2,
        }
    }

    /// The `[train] precision` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }

    /// `Ok` when a run of this precision can start on `backend` (a backend's name); otherwise
    /// the error, naming the key and the backend. No backend has a half-precision path yet.
    pub fn check_backend(self, backend: &str) -> Result<(), String> {
        match self {
            Precision::F32 => Ok(()),
            Precision::Bf16 | Precision::F16 => Err(format!(
                "train.precision = \"{}\": the {backend} backend has no {} compute path in \
                 epgrpo (only \"f32\" is implemented); set train.precision = \"f32\"",
                self.name(),
                self.name()
            )),
        }
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            steps: 120,
            seed: 0,
            checkpoint_every: 40,
            max_consecutive_skipped: 5,
            out_dir: PathBuf::from("runs/default"),
            head_chunk_tokens: HeadLoss::DEFAULT_CHUNK_TOKENS,
            activation_checkpointing: false,
            precision: Precision::F32,
        }
    }
}

/// `[eval]`: held-out evaluation during training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// Evaluate every this many RL steps (0: only before and after).
    pub every: usize,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self { every: 30 }
    }
}

/// `[distributed]`: data parallelism, one process per device, launched by torchrun, Slurm,
/// `mpirun` or `epgrpo launch` (see docs/distributed.md). One process ignores the section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DistributedConfig {
    /// The communication engine between processes.
    pub backend: DistributedBackend,
    /// Gradients and parameters travel in buckets of at most this many MiB.
    pub bucket_mb: usize,
    /// Compare a checksum of every replica's parameters every this many RL steps (0: never).
    pub check_every: usize,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        Self {
            backend: DistributedBackend::None,
            bucket_mb: 64,
            check_every: 10,
        }
    }
}

/// The engine that moves gradients and statistics between processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistributedBackend {
    /// One process; a launch of several is refused.
    None,
    /// MPI on host buffers (the `mpi` cargo feature; CPU processes).
    Mpi,
    /// NCCL on CUDA buffers (the `nccl` cargo feature, `--device cuda`).
    Nccl,
}

impl TrainConfig {
    /// Parses TOML; `origin` names the source in error messages.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, CliError> {
        let config: Self =
            toml::from_str(text).map_err(|e| CliError::Input(format!("{origin}: {e}")))?;
        config
            .validate()
            .map_err(|e| CliError::Input(format!("{origin}: {e}")))?;
        Ok(config)
    }

    /// Reads a TOML file.
    pub fn from_file(path: &Path) -> Result<Self, CliError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The embedded default experiment.
    pub fn preset() -> Self {
        Self::from_toml(DEFAULT_PRESET, "presets/default.toml")
            .expect("the embedded preset is valid (tested)")
    }

    /// Checks every section; all problems are reported at once, by dotted field name.
    pub fn validate(&self) -> Result<(), String> {
        let mut problems: Vec<String> = match self.algorithm.validate() {
            Ok(()) => Vec::new(),
            Err(epgrpo_core::CoreError::InvalidConfig(list)) => list,
            Err(other) => vec![other.to_string()],
        };
        let mut positive = |field: &str, value: usize| {
            if value == 0 {
                problems.push(format!("{field} must be ≥ 1 (got 0)"));
            }
        };
        let m = &self.model;
        positive("model.hidden_size", m.hidden_size);
        positive("model.intermediate_size", m.intermediate_size);
        positive("model.num_hidden_layers", m.num_hidden_layers);
        positive("model.num_attention_heads", m.num_attention_heads);
        positive("model.num_key_value_heads", m.num_key_value_heads);
        positive("task.eval_problems", self.task.eval_problems);
        positive("sft.batch_size", self.sft.batch_size);
        positive("rollout.prompts_per_step", self.rollout.prompts_per_step);
        positive("rollout.max_new_tokens", self.rollout.max_new_tokens);
        positive(
            "rollout.dynamic_sampling_rounds",
            self.rollout.dynamic_sampling_rounds,
        );
        positive("optim.epochs", self.optim.epochs);
        positive("optim.minibatches", self.optim.minibatches);
        positive("optim.grad_accumulation", self.optim.grad_accumulation);
        positive("train.steps", self.train.steps);
        positive("distributed.bucket_mb", self.distributed.bucket_mb);
        positive(
            "train.max_consecutive_skipped",
            self.train.max_consecutive_skipped,
        );
        if m.num_attention_heads > 0
            && m.num_key_value_heads > 0
            && m.num_attention_heads % m.num_key_value_heads != 0
        {
            problems.push(format!(
                "model.num_key_value_heads ({}) must divide model.num_attention_heads ({})",
                m.num_key_value_heads, m.num_attention_heads
            ));
        }
        if m.num_attention_heads > 0
            && (m.hidden_size % m.num_attention_heads != 0
                || (m.hidden_size / m.num_attention_heads) % 2 != 0)
        {
            problems.push(format!(
                "model.hidden_size ({}) must be an even multiple of 2 × model.num_attention_heads ({})",
                m.hidden_size, m.num_attention_heads
            ));
        }
        if m.path.is_some() {
            if !(m.lora_alpha.is_finite() && m.lora_alpha > 0.0) {
                problems.push(format!(
                    "model.lora_alpha must be > 0 (got {})",
                    m.lora_alpha
                ));
            }
            if m.lora_rank > 0 {
                let targets: Vec<&str> = m.lora_targets.iter().map(String::as_str).collect();
                let lora = LoraConfig::from_names(m.lora_rank, m.lora_alpha, &targets);
                if let Err(e) = lora.and_then(|lora| lora.validate()) {
                    problems.push(format!("model.lora_targets: {e}"));
                }
            }
        } else if m.lora_rank > 0 {
            problems.push(
                "model.lora_rank needs a pretrained model (model.path); the scratch decoder \
                 trains every weight"
                    .into(),
            );
        }
        let t = &self.task;
        if !t.prompt.contains(QUESTION_SLOT) {
            problems.push(format!(
                "task.prompt must contain {QUESTION_SLOT} (got {:?})",
                t.prompt
            ));
        }
        if t.kind == TaskKind::Countdown && t.train_file.is_none() {
            problems.push(
                "task.kind = \"countdown\" needs task.train_file and task.eval_file (see \
                 scripts/fetch_data.sh)"
                    .into(),
            );
        }
        if t.train_file.is_some() != t.eval_file.is_some() {
            problems.push(
                "task.train_file and task.eval_file go together: set both (JSONL problems) or \
                 neither (generated arithmetic)"
                    .into(),
            );
        }
        if !(1..=1_000_000).contains(&self.task.max_operand) {
            problems.push(format!(
                "task.max_operand must be in 1..=1000000 (got {})",
                self.task.max_operand
            ));
        }
        if self.task.operators.is_empty() || !self.task.operators.chars().all(|c| "+-*".contains(c))
        {
            problems.push(format!(
                "task.operators must be a non-empty mix of `+`, `-`, `*` (got {:?})",
                self.task.operators
            ));
        }
        let arithmetic = t.train_file.is_none()
            && (1..=1_000_000).contains(&t.max_operand)
            && !t.operators.is_empty()
            && t.operators.chars().all(|c| "+-*".contains(c));
        if arithmetic && let Err(e) = ArithmeticTask::check_splits(t.max_operand, &t.operators) {
            problems.push(e);
        }
        let r = &self.rollout;
        if !(r.temperature.is_finite() && r.temperature > 0.0) {
            problems.push(format!(
                "rollout.temperature must be > 0 (got {})",
                r.temperature
            ));
        }
        if !(r.top_p > 0.0 && r.top_p <= 1.0) {
            problems.push(format!("rollout.top_p must be in (0, 1] (got {})", r.top_p));
        }
        let o = &self.optim;
        for (field, value) in [("optim.lr", o.lr), ("sft.lr", self.sft.lr)] {
            if !(value.is_finite() && value > 0.0) {
                problems.push(format!("{field} must be > 0 (got {value})"));
            }
        }
        if !(0.0..=1.0).contains(&o.min_lr_ratio) {
            problems.push(format!(
                "optim.min_lr_ratio must be in [0, 1] (got {})",
                o.min_lr_ratio
            ));
        }
        for (field, value) in [
            ("optim.weight_decay", o.weight_decay),
            ("optim.max_grad_norm", o.max_grad_norm),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                problems.push(format!("{field} must be ≥ 0 (got {value})"));
            }
        }
        let rows = r.prompts_per_step * self.algorithm.group_size;
        let chunks = o.minibatches * o.grad_accumulation;
        if chunks > 0 && rows > 0 && rows % chunks != 0 {
            problems.push(format!(
                "rollout.prompts_per_step × algorithm.group_size ({rows}) must be divisible by \
                 optim.minibatches × optim.grad_accumulation ({chunks})"
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_preset_spells_out_the_defaults() {
        let preset = TrainConfig::from_toml(DEFAULT_PRESET, "preset").unwrap();
        assert_eq!(preset, TrainConfig::default());
        // Every key of every section appears in the preset, so the file documents them all.
        let value: toml::Value = toml::from_str(DEFAULT_PRESET).unwrap();
        let defaults = toml::Value::try_from(TrainConfig::default()).unwrap();
        for (section, fields) in defaults.as_table().unwrap() {
            for key in fields.as_table().unwrap().keys() {
                assert!(
                    value.get(section).and_then(|s| s.get(key)).is_some(),
                    "{section}.{key} missing"
                );
            }
        }
    }

    #[test]
    fn pretrained_and_file_settings_are_checked_by_name() {
        let cases = [
            (
                "[task]\nprompt = \"What is it?\"",
                "task.prompt must contain {question}",
            ),
            (
                "[task]\ntrain_file = \"a.jsonl\"",
                "task.train_file and task.eval_file",
            ),
            (
                "[task]\nkind = \"countdown\"",
                "task.kind = \"countdown\" needs task.train_file",
            ),
            (
                "[model]\nlora_rank = 4",
                "model.lora_rank needs a pretrained model",
            ),
            (
                "[model]\npath = \"m.gguf\"\nlora_rank = 4\nlora_targets = [\"qproj\"]",
                "model.lora_targets",
            ),
            (
                "[model]\npath = \"m.gguf\"\nlora_rank = 4\nlora_targets = []",
                "targets",
            ),
            (
                "[model]\npath = \"m.gguf\"\nlora_alpha = 0.0",
                "model.lora_alpha must be > 0",
            ),
        ];
        for (text, expected) in cases {
            let error = TrainConfig::from_toml(text, "run.toml")
                .unwrap_err()
                .to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
        // A valid LoRA section on a pretrained model passes (the file is opened only by `train`).
        let ok =
            "[model]\npath = \"m.gguf\"\nlora_rank = 8\nlora_targets = [\"q_proj\", \"down_proj\"]";
        TrainConfig::from_toml(ok, "run.toml").unwrap();
    }

    #[test]
    fn an_arithmetic_task_with_an_empty_split_is_refused_by_name() {
        let error =
            TrainConfig::from_toml("[task]\nmax_operand = 3\noperators = \"-\"", "run.toml")
                .unwrap_err()
                .to_string();
        assert!(
            error.contains("run.toml")
                && error.contains("task.max_operand = 3 with task.operators = \"-\"")
                && error.contains("held-out split"),
            "{error}"
        );
        // Problem files replace the arithmetic, so its keys do not matter then.
        let files = "[task]\nmax_operand = 3\noperators = \"-\"\ntrain_file = \"t.jsonl\"\n\
                     eval_file = \"e.jsonl\"";
        TrainConfig::from_toml(files, "run.toml").unwrap();
    }

    #[test]
    fn errors_name_the_field() {
        let error = TrainConfig::from_toml("[rollout]\ntemprature = 1.0", "run.toml").unwrap_err();
        assert!(
            error.to_string().contains("run.toml") && error.to_string().contains("temprature"),
            "{error}"
        );
        let error =
            TrainConfig::from_toml("[optim]\nlr = -1.0\n[algorithm]\ngamma = -2.0", "run.toml")
                .unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("optim.lr must be > 0") && text.contains("algorithm.gamma"),
            "{text}"
        );
        let error =
            TrainConfig::from_toml("[rollout]\nmax_new_tokens = \"six\"", "run.toml").unwrap_err();
        assert!(error.to_string().contains("max_new_tokens"), "{error}");
    }

    #[test]
    fn precision_parses_and_a_half_type_is_refused_by_key_and_backend() {
        let config = TrainConfig::from_toml("[train]\nprecision = \"bf16\"", "run.toml").unwrap();
        assert_eq!(config.train.precision, Precision::Bf16);
        let error = config.train.precision.check_backend("ndarray").unwrap_err();
        assert!(
            error.contains("train.precision = \"bf16\"") && error.contains("ndarray backend"),
            "{error}"
        );
        assert_eq!(Precision::F32.check_backend("ndarray"), Ok(()));
        let error = TrainConfig::from_toml("[train]\nprecision = \"fp8\"", "run.toml").unwrap_err();
        assert!(error.to_string().contains("fp8"), "{error}");
    }
}
