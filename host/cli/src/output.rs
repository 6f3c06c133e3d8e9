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
