//! `writer`: a test-only command plugin that writes until it is stopped or
//! refused, for the kill -9 campaign and the full-disk test.
//!
//! `writer [SIZE [FIRST]]` writes, for `i` = `FIRST`, `FIRST + 1`, …: the
//! key `k{i}` with a value of `SIZE` bytes (default 64) that starts with
//! the key's name (so a check can tell it is that key's own), then adds one
//! to the counter `n`. After each of the two returns, it prints what the
//! host acknowledged: `set k{i}`, then `n {value}`. When the host refuses,
//! it prints `refused: {error}` on stderr and exits with status 1.
//!
//! `writer stream SIZE` writes, for round `r` = 0, 1, …, the key `s` as a
//! stream of `SIZE` bytes all equal to `r % 251`, in pieces of 64 KiB, and
//! prints `stream {r}` once the host has published it.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if let [mode, size] = all.as_slice()
        && mode == "stream"
    {
        return streams(size.parse().unwrap_or(600_000));
    }
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

/// Rounds of streamed values under `s`, each published whole.
fn streams(size: usize) -> ExitCode {
    for round in 0u64.. {
        let byte = (round % 251) as u8;
        let piece = vec![byte; 64 * 1024];
        let mut writer = match cubby_sdk::create("s") {
            Ok(writer) => writer,
            Err(e) => return refused(&e),
        };
        let mut left = size;
        while left > 0 {
            let n = left.min(piece.len());
            if let Err(e) = writer.write_bytes(&piece[..n]) {
                return refused(&e);
            }
            left -= n;
        }
        if let Err(e) = writer.finish() {
            return refused(&e);
        }
        acknowledge(&format!("stream {round}"));
    }
    ExitCode::SUCCESS
}
