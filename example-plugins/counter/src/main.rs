//! `counter`: a command-style plugin that bumps and prints a counter kept in
//! its workspace. `cubby run counter.wasm -w a` prints 1, then 2, … and each
//! workspace counts on its own. An optional argument names the counter.

use std::process::ExitCode;

fn main() -> ExitCode {
    let name = std::env::args().nth(1).unwrap_or_else(|| "counter".into());
    match bump(&name) {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("counter: cannot bump {name:?}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Adds one to the counter atomically (a missing counter starts at 0), so
/// concurrent runs never lose a count.
fn bump(name: &str) -> Result<i64, cubby_sdk::Error> {
    cubby_sdk::Counter::new(name).increment()
}
