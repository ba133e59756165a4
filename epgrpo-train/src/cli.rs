//! Command-line interface of the `epgrpo` binary.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// epgrpo: train language models with EP-GRPO and its GRPO-family baselines.
#[derive(Debug, Parser)]
#[command(name = "epgrpo", version, about)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compute per-token advantages for groups of responses given as JSON, and print them as JSON.
    ///
    /// Input: {"algorithm": {<[algorithm] config fields>}, "groups": [{"rewards": [..],
    /// "entropy": [[..], ..], "logp_old": [[..], ..], "logp_ref": [[..], ..]}]}. Rows are
    /// ragged: one per response, as long as the response. `algorithm.group_size` defaults to
    /// the number of rewards of the groups.
    Advantages {
        /// JSON input file; reads standard input when absent or `-`.
        input: Option<PathBuf>,
    },
}
