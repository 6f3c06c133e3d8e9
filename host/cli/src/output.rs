//! How the `cubby` command prints: JSON documents, raw bytes, keys,
//! quotas.

use std::io::{IsTerminal, Write};

use anyhow::Result;
use base64::Engine as _;
use cubby_host::ops::Usage;
use cubby_host::options::{Quota, QuotaSource};
use serde_json::json;

/// Prints one JSON document and a newline.
pub(crate) fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Writes bytes as they are, with a newline after them on a terminal.
pub(crate) fn print_bytes(bytes: &[u8]) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    if out.is_terminal() && !bytes.ends_with(b"\n") {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// A key as one line: keys with control characters are shown escaped, in quotes.
pub(crate) fn printable(key: &str) -> String {
    if key.chars().any(char::is_control) {
        format!("{key:?}")
    } else {
        key.to_owned()
    }
}

/// "1 key", "2 keys".
pub(crate) fn keys(n: u64) -> String {
    if n == 1 {
        "1 key".to_owned()
    } else {
        format!("{n} keys")
    }
}

/// A quota as `--json` shows it.
pub(crate) fn quota_json(quota: Quota, source: QuotaSource) -> serde_json::Value {
    json!({
        "max_keys": quota.max_keys,
        "max_bytes": quota.max_bytes,
        "source": source.name(),
    })
}

/// The share of the quota used, in percent: keys or bytes, whichever is
/// higher.
pub(crate) fn used_percent(usage: Usage, quota: Quota) -> f64 {
    let share = |used: u64, max: u64| {
        if max == 0 {
            if used == 0 { 0.0 } else { 100.0 }
        } else {
            used as f64 * 100.0 / max as f64
        }
    };
    share(usage.keys, quota.max_keys).max(share(usage.bytes, quota.max_bytes))
}

/// Bytes as standard base64.
pub(crate) fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Values at least this large get a progress bar (on a terminal).
const PROGRESS_FROM: u64 = 8 << 20;

/// A progress bar of bytes on stderr when it is a terminal and the value
/// is large (or of unknown size); nothing otherwise.
fn byte_bar(verb: &str, size: Option<u64>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() || size.is_some_and(|s| s < PROGRESS_FROM) {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(size.unwrap_or(0));
    let template = match size {
        Some(_) => {
            format!("{verb} {{bar:40}} {{bytes}}/{{total_bytes}} ({{bytes_per_sec}}, {{eta}} left)")
        }
        None => format!("{verb} {{spinner}} {{bytes}} ({{bytes_per_sec}})"),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Copies `source` into a stream writer a chunk at a time, with a progress
/// bar for a large value.
pub(crate) fn copy_with_progress(
    mut source: impl std::io::Read,
    writer: &mut cubby_host::StreamWriter,
    size: Option<u64>,
) -> Result<()> {
    let bar = byte_bar("writing", size);
    bar.set_position(writer.written());
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(anyhow::Error::new(e).context("cannot read the value")),
        };
        writer.write_bytes(&buffer[..n])?;
        bar.inc(n as u64);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Writes a stored value to stdout a chunk at a time, with a progress bar
/// for a large one (and a newline on a terminal, as [`print_bytes`]).
pub(crate) fn stream_to_stdout(mut reader: cubby_host::StreamReader) -> Result<()> {
    let bar = byte_bar("reading", Some(reader.info().size));
    let mut out = std::io::stdout().lock();
    let mut last = None;
    loop {
        let chunk = reader.read_bytes(256 * 1024)?;
        let Some(&end) = chunk.last() else {
            break;
        };
        last = Some(end);
        out.write_all(&chunk)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if out.is_terminal() && last.is_some_and(|b| b != b'\n') {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}
