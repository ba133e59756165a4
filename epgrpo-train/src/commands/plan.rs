//! `epgrpo plan --config FILE [--device-memory GB]`: the memory plan of a training config
//! (`crate::plan`) as a table, and whether it fits a device.

use std::path::{Path, PathBuf};

use epgrpo_models::DecoderConfig;
use epgrpo_models::load::{GgufFile, config_from_gguf};

use crate::codec::QUESTION_SLOT;
use crate::config::TrainConfig;
use crate::error::CliError;
use crate::plan::{PlanInputs, human, plan, render};
use crate::policy::decoder_config;
use crate::task::CharVocab;

/// Prompt length assumed for problem files when `--prompt-tokens` is not given.
const FILE_PROMPT_TOKENS: usize = 256;

/// Options of `epgrpo plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// TOML configuration (any subset of the keys of the default preset); default: the
    /// embedded preset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Device memory in GB (10⁹ bytes): say whether the plan fits.
    #[arg(long)]
    pub device_memory: Option<f64>,
    /// The model's shape from this `config.json` instead of `[model]` (e.g. before the model
    /// file is downloaded).
    #[arg(long)]
    pub model_config: Option<PathBuf>,
    /// Longest prompt in tokens (default: the longest generated arithmetic prompt, or 256 with
    /// problem files).
    #[arg(long)]
    pub prompt_tokens: Option<usize>,
}

/// Builds the plan of `args` and renders it.
pub fn run(args: &PlanArgs) -> Result<String, CliError> {
    let config = match &args.config {
        Some(path) => TrainConfig::from_file(path)?,
        None => TrainConfig::preset(),
    };
    config
        .validate()
        .map_err(|e| CliError::Input(format!("invalid configuration: {e}")))?;
    let (inputs, prompt_source) =
        plan_inputs(&config, args.model_config.as_deref(), args.prompt_tokens)?;
    let device_bytes = match args.device_memory {
        Some(gb) if gb.is_finite() && gb > 0.0 => Some((gb * 1e9) as u64),
        Some(gb) => {
            return Err(CliError::Input(format!(
                "--device-memory: {gb} is not a positive number of GB"
            )));
        }
        None => None,
    };
    let (prompt_tokens, rollout_rows) = (inputs.prompt_tokens, inputs.rollout_rows);
    let memory = plan(&inputs);
    let origin = args
        .config
        .as_deref()
        .map_or("the default preset".to_string(), |p| {
            p.display().to_string()
        });
    Ok(format!(
        "Memory plan of {origin}: prompt {prompt_tokens} tokens ({prompt_source}), \
         {} new tokens, {rollout_rows} responses per step in micro-batches of {} rows; \
         peak f32 {}\n\n{}",
        inputs.max_new_tokens,
        inputs.micro_rows,
        human(memory.peak[0]),
        render(&memory, device_bytes)
    ))
}

/// The plan's inputs for `config`: the model shape from `model_config` (a `config.json`) or
/// `[model]`, the prompt length from `prompt_tokens` or the task, the batch sizes from
/// `[rollout]`, `[algorithm]` and `[optim]`. Also returns where the prompt length came from.
pub fn plan_inputs(
    config: &TrainConfig,
    model_config: Option<&Path>,
    prompt_tokens: Option<usize>,
) -> Result<(PlanInputs, &'static str), CliError> {
    let model = match model_config {
        Some(path) => DecoderConfig::from_file(path).map_err(|e| CliError::Input(e.to_string()))?,
        None => model_shape(config)?,
    };
    let (prompt_tokens, prompt_source) = match (prompt_tokens, &config.task.train_file) {
        (Some(n), _) => (n, "--prompt-tokens"),
        (None, Some(_)) => (
            FILE_PROMPT_TOKENS,
            "assumed for problem files; set --prompt-tokens",
        ),
        (None, None) => (
            arithmetic_prompt_tokens(config)?,
            "longest generated prompt",
        ),
    };
    let rollout_rows = config.rollout.prompts_per_step * config.algorithm.group_size;
    let micro_batches = config.optim.minibatches * config.optim.grad_accumulation;
    let inputs = PlanInputs {
        model,
        lora_rank: config.model.lora_rank,
        lora_targets: config.model.lora_targets.clone(),
        rollout_rows,
        prompt_tokens,
        max_new_tokens: config.rollout.max_new_tokens,
        micro_rows: rollout_rows / micro_batches.max(1),
        head_chunk_tokens: config.train.head_chunk_tokens,
        activation_checkpointing: config.train.activation_checkpointing,
    };
    Ok((inputs, prompt_source))
}

/// The decoder shape of `[model]`: the scratch sizes, a Hugging Face directory's
/// `config.json`, or a GGUF file's metadata.
fn model_shape(config: &TrainConfig) -> Result<DecoderConfig, CliError> {
    let Some(path) = &config.model.path else {
        return decoder_config(&config.model);
    };
    let missing = |what: &Path| {
        CliError::Input(format!(
            "model.path: {} does not exist (pass --model-config with the model's config.json)",
            what.display()
        ))
    };
    let is_gguf = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"));
    if is_gguf {
        if !path.exists() {
            return Err(missing(path));
        }
        let file = GgufFile::open(path).map_err(|e| CliError::Input(e.to_string()))?;
        config_from_gguf(&file).map_err(|e| CliError::Input(e.to_string()))
    } else {
        let json = path.join("config.json");
        if !json.exists() {
            return Err(missing(&json));
        }
        DecoderConfig::from_file(&json).map_err(|e| CliError::Input(e.to_string()))
    }
}

/// Tokens of the longest prompt of the generated arithmetic task: both operands at their
/// largest value, in the prompt template.
fn arithmetic_prompt_tokens(config: &TrainConfig) -> Result<usize, CliError> {
    let largest = config.task.max_operand.saturating_sub(1);
    let question = format!("{largest}+{largest}");
    let text = config.task.prompt.replace(QUESTION_SLOT, &question);
    CharVocab::prompt(&text).map(|ids| ids.len()).map_err(|c| {
        CliError::Input(format!(
            "task.prompt: {c:?} is not in the character vocabulary"
        ))
    })
}
