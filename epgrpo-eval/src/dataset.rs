//! JSONL problem sets.
//!
//! One JSON object per line, e.g. `{"question": "...", "answer": "72"}`. The field names are
//! configurable ([`DatasetConfig`]). An answer may be a JSON string or number; a GSM8K-style
//! answer string (a worked solution ending in `#### 72`) is reduced to the text after its last
//! `####`. Blank lines are skipped. Each problem's id is its `id` field (a string or an integer)
//! when present, else its 1-based line number. Any bad line stops loading with an [`EvalError`]
//! naming the file, the 1-based line and what was expected.
//!
//! Countdown problem sets also carry the numbers to use ([`DatasetConfig::numbers_field`]); the
//! answer field then holds the integer target, and the problem's [`Problem::answer`] becomes the
//! text form of a [`CountdownSpec`] (`"309 using 6, 61, 94, 4"`), read back by
//! [`Problem::countdown`].

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::countdown::CountdownSpec;
use crate::error::EvalError;

/// Field names of a JSONL problem set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatasetConfig {
    /// Field holding the question text. Default `"question"`.
    pub question_field: String,
    /// Field holding the reference answer (string or number). Default `"answer"`.
    pub answer_field: String,
    /// Optional field holding the problem id (string or integer). Default `"id"`; problems
    /// without it are identified by their line number.
    pub id_field: String,
    /// Field holding the numbers of a Countdown problem (an array of integers), or `None`
    /// (the default) for problems with a plain answer. When set, the field is required, the
    /// answer field must hold the integer target, and [`Problem::answer`] is the
    /// [`CountdownSpec`] text `"<target> using <n1>, <n2>, ..."`.
    pub numbers_field: Option<String>,
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self {
            question_field: "question".to_string(),
            answer_field: "answer".to_string(),
            id_field: "id".to_string(),
            numbers_field: None,
        }
    }
}

/// One problem of a problem set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The `id` field, or the line number when the line has none.
    pub id: String,
    /// The question text.
    pub question: String,
    /// The reference answer (reduced to the text after `####` for GSM8K-style answers); for
    /// Countdown problems the [`CountdownSpec`] text, e.g. `"309 using 6, 61, 94, 4"`.
    pub answer: String,
    /// 1-based line number in the source file.
    pub line: usize,
}

impl Problem {
    /// The Countdown target and numbers, when [`Problem::answer`] is a [`CountdownSpec`] text.
    pub fn countdown(&self) -> Option<CountdownSpec> {
        CountdownSpec::parse(&self.answer)
    }
}

/// Loads a JSONL problem set from `path`.
pub fn load_jsonl(path: &Path, config: &DatasetConfig) -> Result<Vec<Problem>, EvalError> {
    let file = File::open(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_jsonl(BufReader::new(file), path, config)
}

/// Parses JSONL problems from `reader`; `path` is only used to name the source in errors.
pub fn parse_jsonl<R: BufRead>(
    mut reader: R,
    path: &Path,
    config: &DatasetConfig,
) -> Result<Vec<Problem>, EvalError> {
    let mut problems = Vec::new();
    let mut first_line_of_id: HashMap<String, usize> = HashMap::new();
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        let read = reader
            .read_until(b'\n', &mut buf)
            .map_err(|source| EvalError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        if read == 0 {
            break;
        }
        line += 1;
        let text = std::str::from_utf8(&buf).map_err(|_| EvalError::InvalidUtf8 {
            path: path.to_path_buf(),
            line,
        })?;
        let text = if line == 1 {
            text.trim_start_matches('\u{feff}')
        } else {
            text
        };
        if text.trim().is_empty() {
            continue;
        }
        let problem = parse_line(text, path, line, config)?;
        if let Some(&first_line) = first_line_of_id.get(&problem.id) {
            return Err(EvalError::DuplicateId {
                path: path.to_path_buf(),
                line,
                id: problem.id,
                first_line,
            });
        }
        first_line_of_id.insert(problem.id.clone(), line);
        problems.push(problem);
    }
    Ok(problems)
}

/// The text after the last `####` of a GSM8K-style answer, up to the end of its line; the
/// whole answer (trimmed) when it has no `####`.
pub fn reduce_gsm8k_answer(answer: &str) -> &str {
    match answer.rfind("####") {
        Some(i) => {
            let rest = &answer[i + "####".len()..];
            rest.split('\n').next().unwrap_or(rest).trim()
        }
        None => answer.trim(),
    }
}

fn parse_line(
    text: &str,
    path: &Path,
    line: usize,
    config: &DatasetConfig,
) -> Result<Problem, EvalError> {
    let text = text.trim_end_matches(['\n', '\r']);
    let value: Value = serde_json::from_str(text).map_err(|e| EvalError::InvalidJson {
        path: path.to_path_buf(),
        line,
        // The parser sees a single line: its "line 1" would only confuse.
        message: e.to_string().replace(" at line 1 column ", " at column "),
    })?;
    let Value::Object(object) = value else {
        return Err(EvalError::NotAnObject {
            path: path.to_path_buf(),
            line,
            found: json_type(&value),
        });
    };
    let field = |name: &str| -> Result<&Value, EvalError> {
        object.get(name).ok_or_else(|| EvalError::MissingField {
            path: path.to_path_buf(),
            line,
            field: name.to_string(),
        })
    };
    let wrong_type = |name: &str, expected: &'static str, value: &Value| EvalError::WrongType {
        path: path.to_path_buf(),
        line,
        field: name.to_string(),
        expected,
        found: json_type(value),
    };
    let empty = |name: &str| EvalError::EmptyField {
        path: path.to_path_buf(),
        line,
        field: name.to_string(),
    };

    let question = match field(&config.question_field)? {
        Value::String(s) => s.clone(),
        other => return Err(wrong_type(&config.question_field, "a string", other)),
    };
    if question.trim().is_empty() {
        return Err(empty(&config.question_field));
    }

    let answer = match field(&config.answer_field)? {
        Value::String(s) => reduce_gsm8k_answer(s).to_string(),
        Value::Number(n) => number_text(n),
        other => {
            return Err(wrong_type(
                &config.answer_field,
                "a string or a number",
                other,
            ));
        }
    };
    if answer.is_empty() {
        return Err(empty(&config.answer_field));
    }
    let answer = match &config.numbers_field {
        None => answer,
        Some(numbers_field) => {
            let invalid = |name: &str, reason: String| EvalError::InvalidValue {
                path: path.to_path_buf(),
                line,
                field: name.to_string(),
                reason,
            };
            let target: i64 = answer.parse().map_err(|_| {
                invalid(
                    &config.answer_field,
                    format!("must be an integer Countdown target, found {answer:?}"),
                )
            })?;
            let numbers = match field(numbers_field)? {
                Value::Array(items) => items,
                other => return Err(wrong_type(numbers_field, "an array of integers", other)),
            };
            let numbers = numbers
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    item.as_i64().ok_or_else(|| {
                        let found = match item {
                            Value::Number(_) => "a number that is not a 64-bit integer",
                            other => json_type(other),
                        };
                        invalid(
                            numbers_field,
                            format!("must be an array of integers, found {found} at index {i}"),
                        )
                    })
                })
                .collect::<Result<Vec<i64>, EvalError>>()?;
            CountdownSpec::new(target, numbers)
                .map_err(|e| invalid(numbers_field, e.to_string()))?
                .to_string()
        }
    };

    let id = id_of(&object, &config.id_field, line)
        .map_err(|value| wrong_type(&config.id_field, "a string or an integer", value))?;
    if id.trim().is_empty() {
        return Err(empty(&config.id_field));
    }
    Ok(Problem {
        id,
        question,
        answer,
        line,
    })
}

/// The problem id: the id field when present, else the line number. `Err` holds a value of the
/// wrong type.
fn id_of<'a>(
    object: &'a Map<String, Value>,
    id_field: &str,
    line: usize,
) -> Result<String, &'a Value> {
    match object.get(id_field) {
        None => Ok(line.to_string()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(n.to_string()),
        Some(other) => Err(other),
    }
}

/// Decimal text of a JSON number, without exponent notation (`1e20` becomes
/// `100000000000000000000`).
fn number_text(n: &serde_json::Number) -> String {
    match n.as_f64() {
        Some(x) if !(n.is_i64() || n.is_u64()) => format!("{x}"),
        _ => n.to_string(),
    }
}

/// The JSON type name of `value`, for error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Problem>, EvalError> {
        parse_jsonl(
            text.as_bytes(),
            Path::new("data/test.jsonl"),
            &DatasetConfig::default(),
        )
    }

    fn error_text(text: &str) -> String {
        match parse(text) {
            Ok(p) => panic!("expected an error, got {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn gsm8k_lines_with_blank_lines_and_ids() {
        let text = concat!(
            "{\"question\": \"Natalia sold clips to 48 of her friends...\", ",
            "\"answer\": \"Natalia sold 48/2 = <<48/2=24>>24 clips in May.\\n",
            "Natalia sold 48+24 = <<48+24=72>>72 clips altogether.\\n#### 72\"}\n",
            "\n",
            "   \r\n",
            "{\"id\": \"p-2\", \"question\": \"What is half of one?\", \"answer\": 0.5}\r\n",
            "{\"id\": 17, \"question\": \"Big?\", \"answer\": 1e20}",
        );
        let problems = match parse(text) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(problems.len(), 3);
        assert_eq!(problems[0].answer, "72");
        assert_eq!(problems[0].id, "1");
        assert_eq!(problems[0].line, 1);
        assert_eq!(problems[1].id, "p-2");
        assert_eq!(problems[1].answer, "0.5");
        assert_eq!(problems[1].line, 4);
        assert_eq!(problems[2].id, "17");
        assert_eq!(problems[2].answer, "100000000000000000000");
        assert_eq!(problems[2].line, 5);
    }

    #[test]
    fn configurable_field_names() {
        let config = DatasetConfig {
            question_field: "problem".into(),
            answer_field: "solution".into(),
            id_field: "uid".into(),
            ..DatasetConfig::default()
        };
        let text = "{\"uid\": \"a\", \"problem\": \"2+2?\", \"solution\": \"\\\\boxed{4}\"}";
        let problems = match parse_jsonl(text.as_bytes(), Path::new("x.jsonl"), &config) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(problems[0].id, "a");
        assert_eq!(problems[0].answer, "\\boxed{4}");
    }

    #[test]
    fn errors_name_file_line_and_expectation() {
        let good = "{\"question\": \"q\", \"answer\": \"1\"}\n";
        assert_eq!(
            error_text(&format!("{good}\n{{\"question\": \"q\", \"answer\": \n")),
            "data/test.jsonl:3: expected one JSON object per line: \
             EOF while parsing a value at column 28"
        );
        assert_eq!(
            error_text(&format!("{good}{{\"answer\": \"1\"}}")),
            "data/test.jsonl:2: missing field \"question\""
        );
        assert_eq!(
            error_text("{\"question\": \"q\", \"answer\": [1]}"),
            "data/test.jsonl:1: field \"answer\" must be a string or a number, found an array"
        );
        assert_eq!(
            error_text("{\"question\": 5, \"answer\": \"1\"}"),
            "data/test.jsonl:1: field \"question\" must be a string, found a number"
        );
        assert_eq!(
            error_text("{\"question\": \"  \", \"answer\": \"1\"}"),
            "data/test.jsonl:1: field \"question\" must not be empty"
        );
        assert_eq!(
            error_text("{\"question\": \"q\", \"answer\": \"work...\\n####  \"}"),
            "data/test.jsonl:1: field \"answer\" must not be empty"
        );
        assert_eq!(
            error_text("[1, 2]"),
            "data/test.jsonl:1: expected a JSON object, found an array"
        );
        assert_eq!(
            error_text("{\"id\": 1.5, \"question\": \"q\", \"answer\": \"1\"}"),
            "data/test.jsonl:1: field \"id\" must be a string or an integer, found a number"
        );
        assert_eq!(
            error_text(&format!(
                "{good}{{\"id\": 1, \"question\": \"q\", \"answer\": \"1\"}}"
            )),
            "data/test.jsonl:2: duplicate id \"1\" (first used on line 1)"
        );
    }

    #[test]
    fn countdown_numbers_field() {
        let config = DatasetConfig {
            answer_field: "target".into(),
            numbers_field: Some("nums".into()),
            ..DatasetConfig::default()
        };
        let parse = |text: &str| {
            parse_jsonl(text.as_bytes(), Path::new("c.jsonl"), &config).map_err(|e| e.to_string())
        };
        let good = "{\"question\": \"q\", \"target\": 309, \"nums\": [6, 61, 94, 4]}\n\
                    {\"question\": \"q\", \"target\": \"-2\", \"nums\": [1, 3]}";
        let problems = match parse(good) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(problems[0].answer, "309 using 6, 61, 94, 4");
        assert_eq!(
            problems[1]
                .countdown()
                .map(|s| (s.target(), s.numbers().to_vec())),
            Some((-2, vec![1, 3]))
        );
        let line = |target: &str, nums: &str| {
            format!("{{\"question\": \"q\", \"target\": {target}, \"nums\": {nums}}}")
        };
        let cases = [
            (
                "{\"question\": \"q\", \"target\": 3}".to_string(),
                "c.jsonl:1: missing field \"nums\"",
            ),
            (
                line("3", "\"1 2\""),
                "c.jsonl:1: field \"nums\" must be an array of integers, found a string",
            ),
            (
                line("3", "[1, \"2\"]"),
                "c.jsonl:1: field \"nums\" must be an array of integers, found a string at index 1",
            ),
            (
                line("3", "[1, 2.5]"),
                "c.jsonl:1: field \"nums\" must be an array of integers, \
                 found a number that is not a 64-bit integer at index 1",
            ),
            (
                line("3", "[]"),
                "c.jsonl:1: field \"nums\" must hold between 1 and 64 numbers, found 0",
            ),
            (
                line("3", "[1, -2]"),
                "c.jsonl:1: field \"nums\" must hold numbers between 0 and 999999999999, \
                 found -2",
            ),
            (
                line("3.5", "[1, 2]"),
                "c.jsonl:1: field \"target\" must be an integer Countdown target, found \"3.5\"",
            ),
            (
                line("\"#### x\"", "[1, 2]"),
                "c.jsonl:1: field \"target\" must be an integer Countdown target, found \"x\"",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(parse(&text), Err(expected.to_string()), "{text}");
        }
        // Without a numbers field, the same lines load as plain problems.
        let plain = parse_jsonl(
            line("3", "\"1 2\"").as_bytes(),
            Path::new("c.jsonl"),
            &DatasetConfig {
                answer_field: "target".into(),
                ..DatasetConfig::default()
            },
        );
        assert_eq!(plain.ok().map(|p| p[0].answer.clone()), Some("3".into()));
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let bytes: &[u8] = b"{\"question\": \"q\", \"answer\": \"1\"}\n{\"question\": \"\xff\"}\n";
        let err = parse_jsonl(bytes, Path::new("d.jsonl"), &DatasetConfig::default());
        assert!(matches!(err, Err(EvalError::InvalidUtf8 { line: 2, .. })));
    }

    #[test]
    fn load_from_disk_and_missing_file() {
        let dir = std::env::temp_dir().join(format!("epgrpo-eval-test-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            panic!("{e}");
        }
        let path = dir.join("gsm.jsonl");
        if let Err(e) = std::fs::write(&path, "{\"question\": \"q\", \"answer\": \"#### 1,234\"}\n")
        {
            panic!("{e}");
        }
        let loaded = load_jsonl(&path, &DatasetConfig::default());
        assert_eq!(
            loaded.ok().map(|p| p[0].answer.clone()),
            Some("1,234".to_string())
        );
        let missing = load_jsonl(&dir.join("nope.jsonl"), &DatasetConfig::default());
        match missing {
            Err(EvalError::Io { path, .. }) => assert!(path.ends_with("nope.jsonl")),
            other => panic!("expected an I/O error, got {other:?}"),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dataset_config_rejects_unknown_fields() {
        let ok: Result<DatasetConfig, _> = serde_json::from_str(r#"{"answer_field": "solution"}"#);
        assert_eq!(
            ok.ok().map(|c| c.answer_field),
            Some("solution".to_string())
        );
        let bad: Result<DatasetConfig, _> = serde_json::from_str(r#"{"answer": "x"}"#);
        assert!(bad.is_err());
    }
}
