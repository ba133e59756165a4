//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `epgrpo-eval`.
///
/// Dataset errors name the file and the 1-based line they come from.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The dataset file could not be opened or read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The dataset file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not valid UTF-8.
    #[error("{path}:{line}: expected UTF-8 text")]
    InvalidUtf8 {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
    },
    /// A line is not valid JSON.
    #[error("{path}:{line}: expected one JSON object per line: {message}")]
    InvalidJson {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What the JSON parser reported.
        message: String,
    },
    /// A line holds JSON that is not an object.
    #[error("{path}:{line}: expected a JSON object, found {found}")]
    NotAnObject {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A required field is absent.
    #[error("{path}:{line}: missing field \"{field}\"")]
    MissingField {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The field name.
        field: String,
    },
    /// A field has the wrong JSON type.
    #[error("{path}:{line}: field \"{field}\" must be {expected}, found {found}")]
    WrongType {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The field name.
        field: String,
        /// The accepted types.
        expected: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// A field is empty (or only whitespace, or a `####` answer with nothing after it).
    #[error("{path}:{line}: field \"{field}\" must not be empty")]
    EmptyField {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The field name.
        field: String,
    },
    /// A field has the right JSON type but an unusable value (e.g. a Countdown number out of
    /// range).
    #[error("{path}:{line}: field \"{field}\" {reason}")]
    InvalidValue {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The field name.
        field: String,
        /// What is wrong, phrased to follow the field name.
        reason: String,
    },
    /// Two problems share an id.
    #[error("{path}:{line}: duplicate id \"{id}\" (first used on line {first_line})")]
    DuplicateId {
        /// The dataset file.
        path: PathBuf,
        /// 1-based line number of the second use.
        line: usize,
        /// The repeated id.
        id: String,
        /// 1-based line number of the first use.
        first_line: usize,
    },
    /// A configuration value is out of range.
    #[error("invalid config: {field}: {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// Metric inputs are inconsistent (e.g. `k` larger than the number of samples).
    #[error("invalid metric input: {0}")]
    InvalidMetricInput(String),
}
