//! The `medcrypt` command: one binary for physician and patient.
//!
//! Parsing (clap) is separate from acting (`cli::run`); errors are mapped to
//! documented exit codes with a hint saying what to do, in one place
//! (`cli::report`).

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(cli::EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => ExitCode::from(cli::report(&err)),
    }
}
