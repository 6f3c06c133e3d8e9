//! The redb database's tables, its schema version, and opening a file.
//!
//! # Schema version 5
//! - `cubby_entries`: `(workspace, namespace, key)` → record (`record.rs`).
//!   The key is a redb tuple, so no two distinct triples can alias, whatever
//!   bytes they hold. The namespace `""` is the workspace's default space.
//! - `cubby_usage`: `workspace` → `(keys, bytes)`, and
//!   `cubby_namespace_usage`: `(workspace, namespace)` → `(keys, bytes)` for
//!   named namespaces, changed in the same transaction as every write. They
//!   count every stored record, including expired ones not swept yet. The
//!   default space has no row (since version 5): its usage is the
//!   workspace's less its named namespaces', so a write to it changes one
//!   counter, not two.
//! - `cubby_expiry_by_workspace`: `(workspace, expires_at_ms, namespace,
//!   key)` → bytes, the index through which expired entries are found per
//!   workspace without a full scan.
//! - `cubby_quotas`: `workspace` → `(max_keys, max_bytes)`, the quotas
//!   stored with `cubby quota set` (added in version 3).
//! - `cubby_chunks`: `(workspace, blob, index)` → the chunk as stored, the
//!   bytes of streamed values (added in version 4; an entry with record
//!   format 2 holds the blob's reference, see `record.rs`).
//! - `cubby_loose_blobs`: `(workspace, blob)` → `(kind, until_ms, bytes)`,
//!   blobs no entry holds: a write in progress (kind 0; abandoned after
//!   `until_ms`) or a replaced value kept for its readers (kind 1; removed
//!   after `until_ms`), and the bytes of their chunks (added in version 4).
//! - `cubby_meta`: the schema version and `next_version`, a mark no entry
//!   version at or above which has been handed out (one counter for the
//!   whole file, so versions never repeat). The writer moves it ahead a
//!   block at a time, in the commit that hands out the first version past
//!   it (`writer.rs`); a file written before that holds the next version
//!   itself, which is such a mark too.

use std::collections::HashMap;
use std::path::Path;

use redb::{ReadableTable, TableDefinition, TableHandle};

use super::record::{Record, stored_value_len};
use crate::engine::OpenError;
use crate::engine::accounting::entry_bytes;

/// The schema version this build reads and writes. Older files (version 1:
/// Cubby 0.1; version 2: before stored quotas; version 3: before streamed
/// values; version 4: with a usage row for the default space) are upgraded
/// in place when opened.
pub(crate) const SCHEMA_VERSION: u64 = 5;

pub(crate) type EntryKey = (&'static str, &'static str, &'static str);
pub(crate) type ExpiryKey = (&'static str, u64, &'static str, &'static str);
pub(crate) const ENTRIES: TableDefinition<EntryKey, &[u8]> = TableDefinition::new("cubby_entries");
pub(crate) const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("cubby_usage");
pub(crate) const NS_USAGE: TableDefinition<(&str, &str), (u64, u64)> =
    TableDefinition::new("cubby_namespace_usage");
pub(crate) const EXPIRY: TableDefinition<ExpiryKey, u64> =
    TableDefinition::new("cubby_expiry_by_workspace");
/// Schema 1's expiry index, keyed by time first; never written by 0.1.
pub(crate) const EXPIRY_V1: TableDefinition<(u64, &str, &str, &str), ()> =
    TableDefinition::new("cubby_expiry");
pub(crate) const QUOTAS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("cubby_quotas");
pub(crate) type ChunkKey = (&'static str, u64, u32);
pub(crate) const CHUNKS: TableDefinition<ChunkKey, &[u8]> = TableDefinition::new("cubby_chunks");
pub(crate) const LOOSE: TableDefinition<(&str, u64), (u8, u64, u64)> =
    TableDefinition::new("cubby_loose_blobs");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("cubby_meta");
pub(crate) const META_SCHEMA: &str = "schema_version";
pub(crate) const META_NEXT_VERSION: &str = "next_version";

/// The one mapping from redb's errors at open time to [`OpenError`].
pub(crate) fn open_error(path: &Path, e: impl Into<redb::Error>) -> OpenError {
    let path = path.to_path_buf();
    match e.into() {
        redb::Error::DatabaseAlreadyOpen => OpenError::Locked { path },
        redb::Error::Corrupted(reason) => OpenError::Corrupt { path, reason },
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => OpenError::Corrupt {
            path,
            reason: io.to_string(),
        },
        redb::Error::UpgradeRequired(v) => OpenError::Corrupt {
            path,
            reason: format!("written in redb file format {v}, which this build cannot read"),
        },
        source => OpenError::Backend {
            location: path.display().to_string(),
            source: Box::new(source),
        },
    }
}

/// Creates the tables of a new database, or checks (and if need be upgrades)
/// the schema of an existing one. A refused file is left exactly as it was.
pub(crate) fn init(db: &redb::Database, path: &Path) -> Result<(), OpenError> {
    let location = || path.display().to_string();
    let run = || -> Result<Result<(), OpenError>, redb::Error> {
        let txn = db.begin_write()?;
        let have: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
        let tables = [ENTRIES.name(), USAGE.name(), NS_USAGE.name()]
            .into_iter()
            .chain([EXPIRY.name(), QUOTAS.name(), CHUNKS.name(), LOOSE.name()]);
        let missing_table = tables.into_iter().any(|t| !have.iter().any(|h| h == t));
        let found = txn.open_table(META)?.get(META_SCHEMA)?.map(|g| g.value());
        match found {
            // A current database is opened without writing anything (so it
            // opens on a full disk).
            Some(SCHEMA_VERSION) if !missing_table => return Ok(Ok(())),
            Some(SCHEMA_VERSION) => {}
            Some(old @ (1..=4)) => {
                if old == 1 {
                    // 0.1 wrote no expiries and no named namespaces; its
                    // time-first expiry index is replaced and the derived
                    // tables are rebuilt from the entries.
                    txn.delete_table(EXPIRY_V1)?;
                    rebuild_derived(&txn)?;
                } else {
                    drop_default_space_rows(&txn)?;
                }
                // Versions 3 and 4 only add tables (quotas; chunks and
                // loose blobs), created below.
                txn.open_table(META)?.insert(META_SCHEMA, SCHEMA_VERSION)?;
                tracing::info!(
                    path = %path.display(),
                    "upgraded database schema {old} to {SCHEMA_VERSION}"
                );
            }
            Some(found) => {
                return Ok(Err(OpenError::UnsupportedSchema {
                    location: location(),
                    found,
                    supported: SCHEMA_VERSION,
                }));
            }
            None if have.iter().any(|t| t != META.name()) => {
                return Ok(Err(OpenError::NotCubby {
                    location: location(),
                    reason: "it is a redb database without a Cubby schema".into(),
                }));
            }
            None => {
                let mut meta = txn.open_table(META)?;
                meta.insert(META_SCHEMA, SCHEMA_VERSION)?;
                meta.insert(META_NEXT_VERSION, 1)?;
            }
        }
        txn.open_table(ENTRIES)?;
        txn.open_table(USAGE)?;
        txn.open_table(NS_USAGE)?;
        txn.open_table(EXPIRY)?;
        txn.open_table(QUOTAS)?;
        txn.open_table(CHUNKS)?;
        txn.open_table(LOOSE)?;
        txn.commit()?;
        Ok(Ok(()))
    };
    // A return before the commit drops `txn`, which aborts it.
    run().map_err(|e| open_error(path, e))?
}

/// Recomputes the usage tables and the expiry index from the entries.
fn rebuild_derived(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    let mut usage: HashMap<String, (u64, u64)> = HashMap::new();
    let mut ns_usage: HashMap<(String, String), (u64, u64)> = HashMap::new();
    let mut expiring = Vec::new();
    {
        let entries = txn.open_table(ENTRIES)?;
        for row in entries.iter()? {
            let (k, v) = row?;
            let (ws, ns, key) = k.value();
            let raw = v.value();
            let bytes = entry_bytes(key, stored_value_len(raw) as usize);
            let total = usage.entry(ws.to_owned()).or_default();
            total.0 += 1;
            total.1 += bytes;
            if !ns.is_empty() {
                let named = ns_usage.entry((ws.to_owned(), ns.to_owned())).or_default();
                named.0 += 1;
                named.1 += bytes;
            }
            if let Some(at) = Record::decode(raw).ok().and_then(|r| r.expires_at_ms) {
                expiring.push((ws.to_owned(), at, ns.to_owned(), key.to_owned(), bytes));
            }
        }
    }
    txn.delete_table(USAGE)?;
    txn.delete_table(NS_USAGE)?;
    txn.delete_table(EXPIRY)?;
    let mut table = txn.open_table(USAGE)?;
    for (ws, counts) in &usage {
        table.insert(ws.as_str(), counts)?;
    }
    let mut table = txn.open_table(NS_USAGE)?;
    for ((ws, ns), counts) in &ns_usage {
        table.insert((ws.as_str(), ns.as_str()), counts)?;
    }
    let mut table = txn.open_table(EXPIRY)?;
    for (ws, at, ns, key, bytes) in &expiring {
        table.insert((ws.as_str(), *at, ns.as_str(), key.as_str()), bytes)?;
    }
    Ok(())
}

/// Removes the default space's usage rows, which files before version 5
/// kept (the workspace's row already counts what they did).
fn drop_default_space_rows(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(NS_USAGE)?
        .retain(|(_, ns), _| !ns.is_empty())?;
    Ok(())
}

/// The expiry-index keys of a workspace's entries that have expired at
/// `now_ms` (a deadline at or before it).
pub(crate) fn expired_range(
    ws: &str,
    now_ms: u64,
) -> std::ops::Range<(&str, u64, &'static str, &'static str)> {
    (ws, 0, "", "")..(ws, now_ms.saturating_add(1), "", "")
}
