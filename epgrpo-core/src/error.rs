//! Errors of the algorithm crate. Each names the field or the group it is about.

use thiserror::Error;

/// What can go wrong when configuring or feeding the algorithm.
#[derive(Debug, Error, PartialEq)]
pub enum CoreError {
    /// One or more configuration fields are out of range; one message per field.
    #[error("invalid configuration: {}", .0.join("; "))]
    InvalidConfig(Vec<String>),
    /// A response group is malformed (ragged rows that disagree, bad values).
    #[error("groups[{group}]: {message}")]
    InvalidGroup {
        /// Index of the group in the input.
        group: usize,
        /// What is wrong with it.
        message: String,
    },
}
