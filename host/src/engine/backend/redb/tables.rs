//! The tables a write transaction works on, and what the writer's requests
//! read from them: stored usage, stored quotas, and what a stored record
//! accounts for.

use redb::{ReadableTable, Table};

use super::record::{Record, stored_value_len};
use super::schema::{ENTRIES, EXPIRY, EntryKey, ExpiryKey, NS_USAGE, QUOTAS, USAGE};
use crate::engine::accounting::{UsageChange, entry_bytes};
use crate::engine::backend::{QuotaRule, Row};
use crate::engine::{Quota, StorageError, Usage};

/// The tables a write transaction works on.
pub(crate) struct Tables<'t> {
    pub entries: Table<'t, EntryKey, &'static [u8]>,
    pub usage: Table<'t, &'static str, (u64, u64)>,
    pub ns_usage: Table<'t, (&'static str, &'static str), (u64, u64)>,
    pub expiry: Table<'t, ExpiryKey, u64>,
    pub quotas: Table<'t, &'static str, (u64, u64)>,
}

impl<'t> Tables<'t> {
    pub fn open(txn: &'t redb::WriteTransaction) -> Result<Self, StorageError> {
        Ok(Self {
            entries: txn.open_table(ENTRIES)?,
            usage: txn.open_table(USAGE)?,
            ns_usage: txn.open_table(NS_USAGE)?,
            expiry: txn.open_table(EXPIRY)?,
            quotas: txn.open_table(QUOTAS)?,
        })
    }

    /// The quota a write to `ws` is checked against under `rule`.
    pub fn quota(&self, ws: &str, rule: QuotaRule) -> Result<Quota, StorageError> {
        rule.resolve_with(|| {
            Ok(self.quotas.get(ws)?.map(|g| {
                let (max_keys, max_bytes) = g.value();
                Quota {
                    max_keys,
                    max_bytes,
                }
            }))
        })
    }

    /// What a workspace's usage row holds (expired entries not swept yet
    /// included).
    pub fn stored_usage(&self, ws: &str) -> Result<Usage, StorageError> {
        Ok(usage_of(self.usage.get(ws)?.map(|g| g.value())))
    }

    /// Adds a request's change to the stored usage of the workspace and its
    /// namespaces. A namespace's row is removed when it holds nothing; the
    /// workspace's row is kept.
    pub fn account(&mut self, ws: &str, change: &UsageChange) -> Result<(), StorageError> {
        let total = change.total();
        if !total.is_zero() {
            let usage = total.applied_to(self.stored_usage(ws)?);
            self.usage.insert(ws, (usage.keys, usage.bytes))?;
        }
        for (ns, delta) in change.per_namespace() {
            let stored = usage_of(self.ns_usage.get((ws, ns))?.map(|g| g.value()));
            let usage = delta.applied_to(stored);
            if usage.keys == 0 {
                self.ns_usage.remove((ws, ns))?;
            } else {
                self.ns_usage.insert((ws, ns), (usage.keys, usage.bytes))?;
            }
        }
        Ok(())
    }

    /// What the record under a key accounts for, whether or not it has
    /// expired or decodes.
    pub fn stored(&self, ws: &str, ns: &str, key: &str) -> Result<Option<Stored>, StorageError> {
        Ok(self.entries.get((ws, ns, key))?.map(|g| {
            let raw = g.value();
            Stored {
                bytes: entry_bytes(key, stored_value_len(raw) as usize),
                expires_at_ms: Record::decode(raw).ok().and_then(|r| r.expires_at_ms),
            }
        }))
    }
}

fn usage_of(counts: Option<(u64, u64)>) -> Usage {
    let (keys, bytes) = counts.unwrap_or((0, 0));
    Usage { keys, bytes }
}

/// What a stored record (live or not) accounts for.
pub(crate) struct Stored {
    pub bytes: u64,
    pub expires_at_ms: Option<u64>,
}

/// The row stored under a key (live or expired); a record that does not
/// decode is [`StorageError::Corrupt`].
pub(crate) fn row_at(
    table: &impl ReadableTable<EntryKey, &'static [u8]>,
    ws: &str,
    ns: &str,
    key: &str,
) -> Result<Option<Row>, StorageError> {
    match table.get((ws, ns, key))? {
        Some(guard) => Ok(Some(Record::decode(guard.value())?.to_row())),
        None => Ok(None),
    }
}
