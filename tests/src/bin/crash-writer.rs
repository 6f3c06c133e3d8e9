//! Test helper for the crash test: opens the database at `argv[1]` and writes
//! keys `k0`, `k1`, … forever, printing each key on its own line only after
//! `set` has returned (i.e. after the host acknowledged the write). The test
//! kills it with SIGKILL at some point and checks every printed key survived.

use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: crash-writer DB")?;
    let storage = cubby_host::Storage::open(path, cubby_host::StorageOptions::default())?;
    let ws = storage.workspace("crash")?;
    let mut out = std::io::stdout().lock();
    for i in 0u64.. {
        let key = format!("k{i}");
        ws.set(&key, key.as_bytes())?;
        writeln!(out, "{key}")?;
        out.flush()?;
    }
    Ok(())
}
