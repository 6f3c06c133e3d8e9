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

/// Reads the counter (missing means 0), adds one and stores it as JSON.
fn bump(name: &str) -> Result<u64, cubby_sdk::Error> {
    let current: u64 = cubby_sdk::get_json(name)?.unwrap_or(0);
    let next = current
        .checked_add(1)
        .ok_or_else(|| cubby_sdk::Error::Encode(format!("counter {name:?} is at its maximum")))?;
    cubby_sdk::set_json(name, &next)?;
    Ok(next)
}
