//! Test helper for the crash tests; the tests kill it with SIGKILL.
//!
//! - `crash-writer DB`: writes keys `k0`, `k1`, … forever in durable mode,
//!   printing each key only after `set` has returned (after the host
//!   acknowledged the write).
//! - `crash-writer DB --relaxed N`: writes `k0` … `k{N-1}` in relaxed mode,
//!   prints `written`, then idles until it is killed.

use std::io::Write;

use cubby_host::options::Durability;
use cubby_host::{Storage, StorageOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, relaxed) = match args.as_slice() {
        [path] => (path, None),
        [path, flag, n] if flag == "--relaxed" => (path, Some(n.parse::<u64>()?)),
        _ => return Err("usage: crash-writer DB [--relaxed N]".into()),
    };
    let mut options = StorageOptions::default();
    if relaxed.is_some() {
        options.durability = Durability::Relaxed;
    }
    let storage = Storage::open(path, options)?;
    let ws = storage.workspace("crash")?;
    let mut out = std::io::stdout().lock();
    for i in 0..relaxed.unwrap_or(u64::MAX) {
        let key = format!("k{i}");
        ws.set(&key, key.as_bytes())?;
        if relaxed.is_none() {
            writeln!(out, "{key}")?;
            out.flush()?;
        }
    }
    writeln!(out, "written")?;
    out.flush()?;
    loop {
        std::thread::park();
    }
}
