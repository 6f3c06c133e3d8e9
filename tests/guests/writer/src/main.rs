//! `writer`: a test-only command plugin that writes until it is stopped or
//! refused, for the kill -9 campaign and the full-disk test.
//!
//! `writer [SIZE [FIRST]]` writes, for `i` = `FIRST`, `FIRST + 1`, …: the
//! key `k{i}` with a value of `SIZE` bytes (default 64) that starts with
//! the key's name (so a check can tell it is that key's own), then adds one
//! to the counter `n`. After each of the two returns, it prints what the
//! host acknowledged: `set k{i}`, then `n {value}`. When the host refuses,
//! it prints `refused: {error}` on stderr and exits with status 1.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let size = args.next().and_then(|a| a.parse().ok()).unwrap_or(64);
    let first: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    for i in first.. {
        let key = format!("k{i}");
        if let Err(e) = cubby_sdk::set(&key, value_of(&key, size)) {
            return refused(&e);
        }
        acknowledge(&format!("set {key}"));
        match cubby_sdk::increment("n", 1) {
            Ok(n) => acknowledge(&format!("n {n}")),
            Err(e) => return refused(&e),
        }
    }
    ExitCode::SUCCESS
}

/// Prints one acknowledgement at once (a line the campaign reads before it
/// kills the process).
fn acknowledge(line: &str) {
    let mut out = std::io::stdout().lock();
    // Nobody reading is no reason to stop writing.
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn refused(e: &cubby_sdk::Error) -> ExitCode {
    eprintln!("refused: {e}");
    ExitCode::FAILURE
}

/// The value stored under `key`: its name, then filler up to `size` bytes.
fn value_of(key: &str, size: usize) -> Vec<u8> {
    let mut value = key.as_bytes().to_vec();
    value.resize(size.max(key.len()), b'.');
    value
}
