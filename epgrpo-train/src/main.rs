//! The `epgrpo` command-line tool.

use clap::Parser;
use epgrpo_train::cli::{Cli, Command};
use epgrpo_train::error::CliError;
use epgrpo_train::{commands, plot};

mod allocator;

fn main() {
    allocator::keep_freed_memory();
    let cli = Cli::parse();
    let result: Result<String, CliError> = match cli.command {
        Command::Train(args) => commands::train::execute(args),
        Command::Generate {
            model,
            prompt,
            raw,
            max_new_tokens,
            temperature,
            seed,
        } => commands::generate::run(&model, &prompt, !raw, max_new_tokens, temperature, seed),
        Command::Bench(args) => commands::bench::run(args),
        Command::Eval(args) => commands::eval::run(&args),
        Command::Plot { run_dirs, out } => match run_dirs.as_slice() {
            [run_dir] => plot::plot_run(run_dir).map(|path| format!("wrote {}", path.display())),
            several => commands::compare::overlay_runs(several, &out),
        },
        Command::Compare(args) => commands::compare::run(&args),
        Command::Launch(args) => commands::launch::run(&args),
        Command::Plan(args) => commands::plan::run(&args),
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
