//! A command-style plugin: `cubby run` runs it like a program, with its
//! arguments, standard output and exit code. Its storage is the workspace
//! the host bound it to (`-w`): no run can reach another workspace's keys.

use std::process::ExitCode;

fn main() -> ExitCode {
    // An atomic counter: concurrent runs never lose a count.
    match cubby_sdk::increment("runs", 1) {
        Ok(runs) => {
            println!("Hello! This is run {runs} in this workspace.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot count this run: {e}");
            ExitCode::FAILURE
        }
    }
}
