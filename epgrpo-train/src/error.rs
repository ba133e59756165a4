//! Errors of the command-line tool, with the exit code each maps to.

use thiserror::Error;

/// A failed command.
#[derive(Debug, Error)]
pub enum CliError {
    /// The user's input (file, JSON, configuration) is malformed. Exit code 2.
    #[error("{0}")]
    Input(String),
    /// Something went wrong that is not the input's fault. Exit code 1.
    #[error("{0}")]
    Internal(String),
}

impl CliError {
    /// Process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Input(_) => 2,
            CliError::Internal(_) => 1,
        }
    }
}
