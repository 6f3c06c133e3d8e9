//! Reads, from the shared snapshot (`snapshot.rs`): they never wait for the
//! writer and see every commit acknowledged before they began.

use std::collections::HashMap;
use std::ops::Bound;

use redb::ReadableTable;

use super::record::Record;
use super::schema::{CHUNKS, EXPIRY, ExpiryKey, NS_USAGE, QUOTAS, USAGE, expired_range};
use super::snapshot::Snapshot;
use crate::engine::accounting::live;
use crate::engine::backend::{ExportSink, Exported, Page, Row};
use crate::engine::{Quota, StorageError, TransferError, Usage};

pub(crate) fn get(
    snap: &Snapshot,
    ws: &str,
    ns: &str,
    key: &str,
    now_ms: u64,
) -> Result<Option<Row>, StorageError> {
    Ok(snap.row(ws, ns, key)?.filter(|r| r.is_live(now_ms)))
}

pub(crate) fn get_many(
    snap: &Snapshot,
    ws: &str,
    ns: &str,
    keys: &[&str],
    now_ms: u64,
) -> Result<Vec<Option<Row>>, StorageError> {
    keys.iter()
        .map(|key| Ok(snap.row(ws, ns, key)?.filter(|r| r.is_live(now_ms))))
        .collect()
}

pub(crate) fn list_keys(
    snap: &Snapshot,
    (ws, ns): (&str, &str),
    prefix: &str,
    after: Option<&str>,
    limit: usize,
    now_ms: u64,
) -> Result<Page, StorageError> {
    let start = match after {
        Some(after) => Bound::Excluded((ws, ns, after)),
        None => Bound::Included((ws, ns, prefix)),
    };
    let mut page = Page::default();
    for row in snap.entries.range((start, Bound::Unbounded))? {
        let (k, v) = row?;
        let (w, n, key) = k.value();
        if w != ws || n != ns || !key.starts_with(prefix) {
            break;
        }
        // A record that does not decode is still listed (its key is fine);
        // reading it reports the corruption.
        if Record::decode(v.value()).is_ok_and(|r| !r.is_live(now_ms)) {
            continue;
        }
        if page.names.len() == limit {
            page.more = true;
            break;
        }
        page.names.push(key.to_owned());
    }
    Ok(page)
}

pub(crate) fn list_namespaces(
    snap: &Snapshot,
    ws: &str,
    after: Option<&str>,
    limit: usize,
    now_ms: u64,
) -> Result<Page, StorageError> {
    let start = Bound::Excluded((ws, after.unwrap_or("")));
    let txn = &snap.txn;
    let table = txn.open_table(NS_USAGE)?;
    let expiry = txn.open_table(EXPIRY)?;
    // Expired entries not swept yet, per namespace.
    let mut expired: HashMap<String, u64> = HashMap::new();
    for row in expiry.range(expired_range(ws, now_ms))? {
        *expired.entry(row?.0.value().2.to_owned()).or_default() += 1;
    }
    let mut page = Page::default();
    for row in table.range((start, Bound::Unbounded))? {
        let (k, v) = row?;
        let (w, ns) = k.value();
        if w != ws {
            break;
        }
        if v.value().0 <= expired.get(ns).copied().unwrap_or(0) {
            continue;
        }
        if page.names.len() == limit {
            page.more = true;
            break;
        }
        page.names.push(ns.to_owned());
    }
    Ok(page)
}

pub(crate) fn usage(
    snap: &Snapshot,
    ws: &str,
    ns: Option<&str>,
    now_ms: u64,
) -> Result<Usage, StorageError> {
    let txn = &snap.txn;
    let total = || -> Result<(u64, u64), StorageError> {
        Ok(txn
            .open_table(USAGE)?
            .get(ws)?
            .map_or((0, 0), |g| g.value()))
    };
    let (keys, bytes) = match ns {
        None => total()?,
        Some("") => {
            // The default space holds what the named namespaces do not.
            let (mut keys, mut bytes) = total()?;
            for row in txn.open_table(NS_USAGE)?.range((ws, "")..)? {
                let (k, v) = row?;
                if k.value().0 != ws {
                    break;
                }
                let (named_keys, named_bytes) = v.value();
                keys = keys.saturating_sub(named_keys);
                bytes = bytes.saturating_sub(named_bytes);
            }
            (keys, bytes)
        }
        Some(ns) => txn
            .open_table(NS_USAGE)?
            .get((ws, ns))?
            .map_or((0, 0), |g| g.value()),
    };
    let expiry = txn.open_table(EXPIRY)?;
    let gone = expired_unswept(&expiry, ws, ns, now_ms)?;
    Ok(live(Usage { keys, bytes }, gone))
}

pub(crate) fn workspaces(
    snap: &Snapshot,
    now_ms: u64,
) -> Result<Vec<(String, Usage)>, StorageError> {
    let txn = &snap.txn;
    let usage = txn.open_table(USAGE)?;
    let expiry = txn.open_table(EXPIRY)?;
    let mut out = Vec::new();
    for row in usage.iter()? {
        let (id, counts) = row?;
        let id = id.value();
        let (keys, bytes) = counts.value();
        let live = live(
            Usage { keys, bytes },
            expired_unswept(&expiry, id, None, now_ms)?,
        );
        if live.keys > 0 {
            out.push((id.to_owned(), live));
        }
    }
    Ok(out)
}

/// The usage of a workspace's (or one namespace's) expired entries that the
/// sweeper has not removed yet.
fn expired_unswept(
    expiry: &impl ReadableTable<ExpiryKey, u64>,
    ws: &str,
    ns: Option<&str>,
    now_ms: u64,
) -> Result<Usage, StorageError> {
    let mut gone = Usage::default();
    for row in expiry.range(expired_range(ws, now_ms))? {
        let (k, v) = row?;
        if ns.is_none_or(|ns| k.value().2 == ns) {
            gone.keys += 1;
            gone.bytes += v.value();
        }
    }
    Ok(gone)
}

fn quota_of((max_keys, max_bytes): (u64, u64)) -> Quota {
    Quota {
        max_keys,
        max_bytes,
    }
}

pub(crate) fn stored_quota(snap: &Snapshot, ws: &str) -> Result<Option<Quota>, StorageError> {
    Ok(snap
        .txn
        .open_table(QUOTAS)?
        .get(ws)?
        .map(|g| quota_of(g.value())))
}

pub(crate) fn stored_quotas(snap: &Snapshot) -> Result<Vec<(String, Quota)>, StorageError> {
    let mut out = Vec::new();
    for row in snap.txn.open_table(QUOTAS)?.iter()? {
        let (id, q) = row?;
        out.push((id.value().to_owned(), quota_of(q.value())));
    }
    Ok(out)
}

/// Streams a workspace's (or some namespaces') live entries from one
/// snapshot, totals first.
pub(crate) fn export(
    snap: &Snapshot,
    ws: &str,
    namespaces: &[String],
    now_ms: u64,
    sink: &mut ExportSink<'_>,
) -> Result<(), TransferError> {
    let totals = if namespaces.is_empty() {
        usage(snap, ws, None, now_ms)?
    } else {
        let mut sum = Usage::default();
        for ns in namespaces {
            let u = usage(snap, ws, Some(ns), now_ms)?;
            sum.keys += u.keys;
            sum.bytes += u.bytes;
        }
        sum
    };
    sink(Exported::Totals(totals))?;
    let whole = [String::new()];
    let (starts, one_namespace) = if namespaces.is_empty() {
        (&whole[..], false)
    } else {
        (namespaces, true)
    };
    for start in starts {
        let range = snap
            .entries
            .range((ws, start.as_str(), "")..)
            .map_err(StorageError::from)?;
        for row in range {
            let (k, v) = row.map_err(StorageError::from)?;
            let (w, ns, key) = k.value();
            if w != ws || (one_namespace && ns != start) {
                break;
            }
            let record = Record::decode(v.value())?;
            if record.is_live(now_ms) {
                sink(Exported::Entry {
                    ns,
                    key,
                    value: record.value,
                    expires_at_ms: record.expires_at_ms,
                    blob: record.blob,
                })?;
                if let Some(blob) = record.blob {
                    for index in 0..blob.chunks {
                        let data = chunk(snap, ws, blob.id, index)?.ok_or_else(|| {
                            StorageError::Corrupt(format!("chunk {index} of {key:?} is missing"))
                        })?;
                        sink(Exported::Chunk(&data))?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// One chunk of a blob, as stored.
pub(crate) fn chunk(
    snap: &Snapshot,
    ws: &str,
    blob: u64,
    index: u32,
) -> Result<Option<Vec<u8>>, StorageError> {
    let chunks = snap.txn.open_table(CHUNKS)?;
    Ok(chunks.get((ws, blob, index))?.map(|g| g.value().to_vec()))
}
