//! The `epgrpo` command-line tool.

mod backend;
mod cli;
mod commands;
mod error;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::CliError;

fn main() {
    let cli = Cli::parse();
    let result: Result<String, CliError> = match cli.command {
        Command::Advantages { input } => commands::advantages::run(input.as_deref()),
    };
    match result {
        Ok(output) => println!("{output}"),
        Err(error) => {
            // One line, so that scripts can show it as is.
            eprintln!("error: {}", error.to_string().replace('\n', " "));
            std::process::exit(error.exit_code());
        }
    }
}
