//! The `cubby` command-line tool: argument parsing (`args.rs`) and output;
//! every action is a call of the `cubby-host` library (`commands.rs`). The
//! per-user folder defaults live here (`defaults.rs`), not in the library.

#![deny(missing_docs)]

mod args;
mod commands;
pub mod defaults;
mod operate;
mod output;
mod scaffold;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// Runs the tool with the process's arguments; returns the exit code.
pub fn main() -> ExitCode {
    let cli = args::Cli::parse();
    // Logs only when asked for: without CUBBY_LOG an error is the one
    // `error:` line below, not also a log line repeating the database's
    // message.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("CUBBY_LOG") {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_env_filter(filter)
            .init();
    }
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the
/// message already holds (some libraries repeat their source in their own
/// message).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}
