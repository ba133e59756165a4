//! `epgrpo advantages`: what each algorithm does with the user's numbers, JSON in, JSON out.

use std::io::Read;
use std::path::Path;

use epgrpo_core::advantage::GroupAdvantages;
use epgrpo_core::{AlgorithmConfig, GroupTensors, ResponseGroup, to_host, token_advantages};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::backend::HostBackend;
use crate::error::CliError;

/// The request document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    /// `[algorithm]` fields; kept as JSON until `group_size` is filled in.
    #[serde(default)]
    algorithm: Option<Value>,
    /// The response groups.
    groups: Vec<ResponseGroup>,
    /// 0-based RL step, for `algorithm.alpha_warmup_steps` (A7); absent: α after its warm-up.
    #[serde(default)]
    step: Option<usize>,
}

/// Reads the request from `input` (a file, or standard input for `None` / `-`), computes the
/// advantages on the f64 CPU backend and returns the response as pretty JSON.
pub fn run(input: Option<&Path>) -> Result<String, CliError> {
    let (source, text) = read_input(input)?;
    let request: Request =
        serde_json::from_str(&text).map_err(|e| CliError::Input(format!("{source}: {e}")))?;
    let config = algorithm_config(request.algorithm, &request.groups)
        .map_err(|e| CliError::Input(format!("{source}: {e}")))?;
    let config = match request.step {
        Some(step) => config.at_step(step),
        None => config,
    };
    let device = Default::default();
    let batch = GroupTensors::<HostBackend>::from_groups(&request.groups, &device)
        .map_err(|e| CliError::Input(format!("{source}: {e}")))?;
    let groups = to_host(&token_advantages(&config, &batch), &request.groups);
    render(&groups).map_err(|e| CliError::Internal(format!("cannot write JSON: {e}")))
}

/// `{"groups": [...]}` as JSON with one response row per line, so that a group reads as a table.
fn render(groups: &[GroupAdvantages]) -> serde_json::Result<String> {
    fn rows<T: Serialize>(rows: &[Vec<T>]) -> serde_json::Result<String> {
        let lines = rows
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("[\n        {}\n      ]", lines.join(",\n        ")))
    }
    let mut blocks = Vec::with_capacity(groups.len());
    for group in groups {
        blocks.push(format!(
            "    {{\n      \"advantages\": {},\n      \"token_weight\": {},\n      \"bucket\": {},\n      \"zero_variance\": {}\n    }}",
            rows(&group.advantages)?,
            rows(&group.token_weight)?,
            rows(&group.bucket)?,
            group.zero_variance
        ));
    }
    Ok(format!(
        "{{\n  \"groups\": [\n{}\n  ]\n}}",
        blocks.join(",\n")
    ))
}

fn read_input(input: Option<&Path>) -> Result<(String, String), CliError> {
    match input {
        Some(path) if path != Path::new("-") => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Input(format!("{}: {e}", path.display())))?;
            Ok((path.display().to_string(), text))
        }
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::Input(format!("<stdin>: {e}")))?;
            Ok(("<stdin>".to_string(), text))
        }
    }
}

/// Parses the `algorithm` object; `group_size` defaults to the size of the first group.
fn algorithm_config(
    algorithm: Option<Value>,
    groups: &[ResponseGroup],
) -> Result<AlgorithmConfig, String> {
    let mut algorithm = match algorithm {
        None => Value::Object(Default::default()),
        Some(Value::Object(map)) => Value::Object(map),
        Some(other) => return Err(format!("`algorithm` must be an object, got {other}")),
    };
    if let (Value::Object(map), Some(first)) = (&mut algorithm, groups.first()) {
        map.entry("group_size")
            .or_insert_with(|| Value::from(first.size()));
    }
    let config: AlgorithmConfig =
        serde_json::from_value(algorithm).map_err(|e| format!("algorithm: {e}"))?;
    config.validate().map_err(|e| e.to_string())?;
    if let Some((index, group)) = groups
        .iter()
        .enumerate()
        .find(|(_, group)| group.size() != config.group_size)
    {
        return Err(format!(
            "groups[{index}] has {} rewards but algorithm.group_size is {}",
            group.size(),
            config.group_size
        ));
    }
    Ok(config)
}
