//! Test helper: one host process's share of a race on a shared database.
//! The tests in `shared_database.rs` start several at once.
//!
//! ```text
//! storage-worker URL incr WS N           add 1 to "counter" N times
//! storage-worker URL fill WS BYTES FROM TO
//!                                        with a quota of BYTES, try to store
//!                                        k{FROM}..k{TO} (10-byte values);
//!                                        print "stored KEY" or "refused KEY"
//! storage-worker URL cas WS ROUNDS       race for rounds 1..=ROUNDS of
//!                                        "round" by compare-and-swap; print
//!                                        "won N" for each round this won
//! storage-worker URL prune               remove expired entries; print
//!                                        "removed N"
//! storage-worker URL storm WS SECONDS    add 1 to "counter" for SECONDS,
//!                                        going on after errors; print
//!                                        "n VALUE" for each acknowledged
//!                                        one and "error KIND: MESSAGE" for
//!                                        each failure (for faults by hand)
//! storage-worker URL model WS SEED OPS   the concurrent model campaign's
//!                                        worker (`cubby_tests::model`);
//!                                        print "ops N", "mismatches N", a
//!                                        "mismatch …" line for each of the
//!                                        first, "model", then the model
//! ```

use std::io::Write;

use cubby_host::ops::WriteOptions;
use cubby_host::options::Quota;
use cubby_host::{Storage, StorageError, StorageOptions};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut out = std::io::stdout().lock();
    let open = |options: StorageOptions| Storage::connect(args[0], options);
    match args.as_slice() {
        [_, "incr", ws, n] => {
            let ws = open(background_off())?.workspace(ws)?;
            for _ in 0..n.parse::<u32>()? {
                ws.increment("counter", 1, None)?;
            }
        }
        [_, "fill", ws, bytes, from, to] => {
            let mut options = background_off();
            let quota = Quota {
                max_keys: 1_000_000,
                max_bytes: bytes.parse()?,
            };
            options.quota_overrides.insert((*ws).to_owned(), quota);
            let ws = open(options)?.workspace(ws)?;
            for i in from.parse::<u32>()?..to.parse()? {
                let key = format!("k{i:03}");
                match ws.set(&key, b"0123456789") {
                    Ok(_) => writeln!(out, "stored {key}")?,
                    Err(StorageError::QuotaExceeded(_)) => writeln!(out, "refused {key}")?,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        [_, "cas", ws, rounds] => {
            let ws = open(background_off())?.workspace(ws)?;
            let rounds: u64 = rounds.parse()?;
            loop {
                let Some(entry) = ws.entry("round")? else {
                    return Err("no round to race for".into());
                };
                let round: u64 = std::str::from_utf8(&entry.value)?.parse()?;
                if round >= rounds {
                    break;
                }
                let next = (round + 1).to_string();
                match ws.set_with(
                    "round",
                    next,
                    WriteOptions::default().if_version(entry.version),
                ) {
                    Ok(_) => writeln!(out, "won {}", round + 1)?,
                    Err(StorageError::Conflict { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        [_, "prune"] => {
            let removed = open(background_off())?.prune()?;
            writeln!(out, "removed {removed}")?;
        }
        [_, "storm", ws, seconds] => {
            let ws = open(background_off())?.workspace(ws)?;
            let until =
                std::time::Instant::now() + std::time::Duration::from_secs(seconds.parse()?);
            while std::time::Instant::now() < until {
                match ws.increment("counter", 1, None) {
                    Ok(n) => writeln!(out, "n {n}")?,
                    Err(e) => {
                        writeln!(out, "error {:?}: {e}", e.kind())?;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                }
                out.flush()?;
            }
        }
        [_, "model", ws, seed, ops] => {
            let ws = open(background_off())?.workspace(ws)?;
            let found = cubby_tests::model::run(&ws, seed.parse()?, ops.parse()?);
            writeln!(out, "ops {}", found.ops)?;
            writeln!(out, "mismatches {}", found.mismatches)?;
            for line in &found.first {
                writeln!(out, "mismatch {}", line.escape_debug())?;
            }
            writeln!(out, "model")?;
            for line in cubby_tests::model::encode(&found.model) {
                writeln!(out, "{line}")?;
            }
        }
        _ => return Err("usage: see the source of storage-worker".into()),
    }
    Ok(())
}

/// Only the race the test starts: no background sweeper of this process's
/// own.
fn background_off() -> StorageOptions {
    let mut options = StorageOptions::default();
    options.sweep_interval = None;
    options
}
