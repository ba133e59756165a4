//! `epgrpo eval`: greedy pass@1, sampled avg@n, unbiased pass@k and maj@k of a trained run's
//! model (on its held-out split or a JSONL problem file) or of any model file (on a JSONL
//! problem file), with per-problem JSONL output.

use std::path::{Path, PathBuf};

use burn::backend::NdArray;
use epgrpo_eval::{
    DatasetConfig, Problem, SampleOutcome, TaskKind, Verifier, VerifierConfig, aggregate,
    load_jsonl,
};
use serde::Serialize;

use crate::checkpoint;
use crate::codec::Codec;
use crate::config::{TaskConfig, TrainConfig};
use crate::error::CliError;
use crate::evaluate::{DEFAULT_MEMORY_BUDGET_BYTES, accuracy, greedy_eval, prompts_per_call};
use crate::policy::{Policy, initial_policy};
use crate::rollout::{generation_config, rollout_from};
use crate::task::ProblemSource;

type Cpu = NdArray<f32>;

/// Options of `epgrpo eval`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("policy").required(true).args(["run", "model"])))]
pub struct EvalArgs {
    /// Run directory whose checkpoint is evaluated (with the run's prompt, chat template,
    /// answer length and temperature).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Or a model: a Hugging Face directory (e.g. a run's exported `model/`) or a `.gguf` file;
    /// needs `--data`.
    #[arg(long, requires = "data")]
    pub model: Option<PathBuf>,
    /// With `--model`: the prompt template; `{question}` is replaced by the question.
    #[arg(long, default_value = "{question}")]
    pub prompt: String,
    /// With `--model`: send the prompt as is, without the model's chat template.
    #[arg(long)]
    pub raw: bool,
    /// With `--model`: longest answer in tokens.
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// With `--model`: sampling temperature of the sampled answers.
    #[arg(long, default_value_t = 1.0)]
    pub temperature: f64,
    /// With `--model`: `math` or `countdown` (how answers are verified).
    #[arg(long, default_value = "math")]
    pub kind: String,
    /// JSONL problems (`{"question": ..., "answer": ...}`); default: the run's held-out split.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Field holding the question in `--data`.
    #[arg(long, default_value = "question")]
    pub question_field: String,
    /// Field holding the answer in `--data`.
    #[arg(long, default_value = "answer")]
    pub answer_field: String,
    /// Samples per problem for avg@n, pass@k and maj@k (0: greedy only).
    #[arg(long, default_value_t = 8)]
    pub samples: usize,
    /// The k of pass@k and maj@k, comma-separated (each ≤ --samples).
    #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
    pub k: Vec<usize>,
    /// Per-problem results (JSONL); default: RUN_DIR/eval-details.jsonl.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Memory one generation call may use, in MiB: problems go in calls whose rows (KV cache
    /// of the longest prompt plus --max-new-tokens, and their logits) fit in it.
    #[arg(long, default_value_t = DEFAULT_MEMORY_BUDGET_BYTES >> 20)]
    pub memory_budget_mb: u64,
}

/// Per-problem line of the output.
#[derive(Debug, Serialize)]
struct ProblemResult<'a> {
    id: &'a str,
    question: &'a str,
    answer: &'a str,
    greedy: &'a str,
    greedy_correct: bool,
    samples: Vec<String>,
    samples_correct: usize,
}

/// Runs the evaluation and returns the summary table.
pub fn run(args: &EvalArgs) -> Result<String, CliError> {
    if args.samples > 0 {
        if let Some(k) = args.k.iter().find(|&&k| k == 0 || k > args.samples) {
            return Err(CliError::Input(format!(
                "--k {k}: each k must be in 1..=--samples ({})",
                args.samples
            )));
        }
    }
    if args.memory_budget_mb == 0 {
        return Err(CliError::Input(
            "--memory-budget-mb must be at least 1".into(),
        ));
    }
    let budget = args.memory_budget_mb << 20;
    let device = Default::default();
    let (config, model, codec) = match (&args.run, &args.model) {
        (Some(run), _) => {
            let dir = checkpoint::directory(run)?;
            let config = checkpoint::load_state(&dir)?.config;
            let Policy { model, codec, .. } = initial_policy::<Cpu>(&config, &device)?;
            let model = checkpoint::load_model(&dir, "model", model, &device)?;
            (config, model, codec)
        }
        (None, Some(path)) => {
            let config = model_config(args, path)?;
            let Policy { model, codec, .. } = initial_policy::<Cpu>(&config, &device)?;
            (config, model, codec)
        }
        (None, None) => return Err(CliError::Input("give --run or --model".into())),
    };
    let problems = match &args.data {
        Some(path) => load_problems(path, args, &config.task, &codec)?,
        None => {
            ProblemSource::new(&config.task)?.held_out(config.train.seed, config.task.eval_problems)
        }
    };
    let verifier = Verifier::new(config.task.kind, VerifierConfig::default())
        .map_err(|e| CliError::Internal(e.to_string()))?;
    let greedy = greedy_eval(
        &model,
        &codec,
        &problems,
        &config.rollout,
        &verifier,
        budget,
        &device,
    )?;
    let mut sampled: Vec<Vec<SampleOutcome>> = vec![Vec::new(); problems.len()];
    let mut texts: Vec<Vec<String>> = vec![Vec::new(); problems.len()];
    if args.samples > 0 {
        let generation = generation_config(&config.rollout, &codec, args.samples, args.seed, false);
        let per_call = prompts_per_call(
            &model,
            &codec,
            &problems,
            config.rollout.max_new_tokens,
            args.samples,
            budget,
        )?;
        // Problem `p` draws its samples as prompt `p` of one call over all problems, whatever
        // the budget.
        for (chunk_index, chunk) in problems.chunks(per_call).enumerate() {
            let result = rollout_from(
                &model,
                &codec,
                chunk.to_vec(),
                chunk_index * per_call,
                &generation,
                &verifier,
                &device,
            )?;
            for ((completion, score), text) in result
                .completions
                .iter()
                .zip(&result.scores)
                .zip(result.texts)
            {
                let p = chunk_index * per_call + completion.prompt;
                sampled[p].push(SampleOutcome::from(score));
                texts[p].push(text);
            }
        }
    }
    let out = match (&args.out, &args.run) {
        (Some(out), _) => out.clone(),
        (None, Some(run)) => run.join("eval-details.jsonl"),
        (None, None) => PathBuf::from("eval-details.jsonl"),
    };
    write_details(&out, &problems, &greedy, &sampled, &texts)?;
    let mut table = format!(
        "{} problems\ngreedy pass@1   {:.4}\n",
        problems.len(),
        accuracy(&greedy)
    );
    if args.samples > 0 {
        let report = aggregate(&sampled, &args.k).map_err(|e| CliError::Internal(e.to_string()))?;
        table.push_str(&format!(
            "avg@{:<10} {:.4}\n",
            args.samples, report.avg_at_n
        ));
        for (k, value) in &report.pass_at_k {
            table.push_str(&format!("pass@{k:<9} {value:.4}\n"));
        }
        for (k, value) in &report.maj_at_k {
            table.push_str(&format!("maj@{k:<10} {value:.4}\n"));
        }
    }
    table.push_str(&format!("per-problem results: {}", out.display()));
    Ok(table)
}

/// The settings of `--model` evaluation, as the configuration of a run that starts from it.
fn model_config(args: &EvalArgs, path: &Path) -> Result<TrainConfig, CliError> {
    let mut config = TrainConfig::default();
    config.model.path = Some(path.to_path_buf());
    config.model.chat_template = !args.raw;
    config.task.prompt = args.prompt.clone();
    config.task.kind = serde_json::from_value(serde_json::Value::String(args.kind.clone()))
        .map_err(|_| {
            CliError::Input(format!(
                "--kind {:?}: expected math or countdown",
                args.kind
            ))
        })?;
    config.rollout.max_new_tokens = args.max_new_tokens;
    config.rollout.temperature = args.temperature;
    config
        .validate()
        .map_err(|e| CliError::Input(format!("epgrpo eval --model: {e}")))?;
    Ok(config)
}

fn load_problems(
    path: &Path,
    args: &EvalArgs,
    task: &TaskConfig,
    codec: &Codec,
) -> Result<Vec<Problem>, CliError> {
    let config = DatasetConfig {
        question_field: args.question_field.clone(),
        answer_field: args.answer_field.clone(),
        numbers_field: (task.kind == TaskKind::Countdown).then(|| task.numbers_field.clone()),
        ..DatasetConfig::default()
    };
    let problems = load_jsonl(path, &config).map_err(|e| CliError::Input(e.to_string()))?;
    for problem in &problems {
        codec
            .prompt(problem)
            .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
    }
    if problems.is_empty() {
        return Err(CliError::Input(format!("{}: no problems", path.display())));
    }
    Ok(problems)
}

fn write_details(
    path: &Path,
    problems: &[Problem],
    greedy: &[crate::evaluate::Graded],
    sampled: &[Vec<SampleOutcome>],
    texts: &[Vec<String>],
) -> Result<(), CliError> {
    let mut lines = String::new();
    for (i, problem) in problems.iter().enumerate() {
        let line = ProblemResult {
            id: &problem.id,
            question: &problem.question,
            answer: &problem.answer,
            greedy: &greedy[i].completion,
            greedy_correct: greedy[i].correct,
            samples: texts[i].clone(),
            samples_correct: sampled[i].iter().filter(|s| s.correct).count(),
        };
        lines.push_str(
            &serde_json::to_string(&line).map_err(|e| CliError::Internal(e.to_string()))?,
        );
        lines.push('\n');
    }
    std::fs::write(path, lines).map_err(|e| CliError::Internal(format!("{}: {e}", path.display())))
}
