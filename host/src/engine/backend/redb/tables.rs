//! The tables a write transaction works on, and what the writer's requests
//! read from them: stored usage, stored quotas, and what a stored record
//! accounts for.

use redb::{ReadableTable, Table};

use super::record::{Record, stored_value_len};
use super::schema::{
    CHUNKS, ChunkKey, ENTRIES, EXPIRY, EntryKey, ExpiryKey, LOOSE, NS_USAGE, QUOTAS, USAGE,
};
use crate::engine::accounting::{UsageChange, entry_bytes};
use crate::engine::backend::{QuotaRule, Row};
use crate::engine::blob::{BlobRef, Loose, REPLACED_GRACE};
use crate::engine::{Quota, StorageError, Usage};

/// The tables a write transaction works on.
pub(crate) struct Tables<'t> {
    pub entries: Table<'t, EntryKey, &'static [u8]>,
    pub usage: Table<'t, &'static str, (u64, u64)>,
    pub ns_usage: Table<'t, (&'static str, &'static str), (u64, u64)>,
    pub expiry: Table<'t, ExpiryKey, u64>,
    pub quotas: Table<'t, &'static str, (u64, u64)>,
    pub chunks: Table<'t, ChunkKey, &'static [u8]>,
    pub loose: Table<'t, (&'static str, u64), (u8, u64, u64)>,
}

impl<'t> Tables<'t> {
    pub fn open(txn: &'t redb::WriteTransaction) -> Result<Self, StorageError> {
        Ok(Self {
            entries: txn.open_table(ENTRIES)?,
            usage: txn.open_table(USAGE)?,
            ns_usage: txn.open_table(NS_USAGE)?,
            expiry: txn.open_table(EXPIRY)?,
            quotas: txn.open_table(QUOTAS)?,
            chunks: txn.open_table(CHUNKS)?,
            loose: txn.open_table(LOOSE)?,
        })
    }

    /// The blob of a value that no entry holds any more (replaced, removed,
    /// swept): kept for its readers until the grace passes, then collected.
    pub fn retire(&mut self, ws: &str, blob: &BlobRef, now_ms: u64) -> Result<(), StorageError> {
        let until = now_ms.saturating_add(REPLACED_GRACE.as_millis() as u64);
        self.loose
            .insert((ws, blob.id), (Loose::Garbage.code(), until, blob.stored))?;
        Ok(())
    }

    /// The bytes written so far to a write in progress, if `blob` is one.
    pub fn open_write(&self, ws: &str, blob: u64) -> Result<Option<u64>, StorageError> {
        Ok(self.loose.get((ws, blob))?.and_then(|g| {
            let (kind, _, bytes) = g.value();
            (Loose::from_code(kind) == Some(Loose::Open)).then_some(bytes)
        }))
    }

    /// How many writes of a workspace are in progress, and the bytes of
    /// all its loose blobs (writes in progress, and replaced values kept
    /// for their readers), which count against the quota of stream writes.
    pub fn open_writes(&self, ws: &str) -> Result<(u32, u64), StorageError> {
        let (mut count, mut bytes) = (0, 0u64);
        for row in self.loose.range((ws, 0)..=(ws, u64::MAX))? {
            let (kind, _, b) = row?.1.value();
            count += u32::from(Loose::from_code(kind) == Some(Loose::Open));
            bytes = bytes.saturating_add(b);
        }
        Ok((count, bytes))
    }

    /// Removes up to `budget` chunks of a blob, first ones first; returns
    /// how many, and whether none is left.
    pub fn drop_chunks(
        &mut self,
        ws: &str,
        blob: u64,
        budget: usize,
    ) -> Result<(u64, bool), StorageError> {
        let mut indexes = Vec::new();
        for row in self.chunks.range((ws, blob, 0)..=(ws, blob, u32::MAX))? {
            if indexes.len() == budget {
                break;
            }
            indexes.push(row?.0.value().2);
        }
        let done = indexes.len() < budget;
        for index in &indexes {
            self.chunks.remove((ws, blob, *index))?;
        }
        let done = done
            || self
                .chunks
                .range((ws, blob, 0)..=(ws, blob, u32::MAX))?
                .next()
                .is_none();
        Ok((indexes.len() as u64, done))
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
    /// named namespaces (the default space's is what the workspace's holds
    /// beyond them, so a write to it changes one counter). A namespace's row
    /// is removed when it holds nothing; the workspace's row is kept.
    pub fn account(&mut self, ws: &str, change: &UsageChange) -> Result<(), StorageError> {
        let total = change.total();
        if !total.is_zero() {
            let usage = total.applied_to(self.stored_usage(ws)?);
            self.usage.insert(ws, (usage.keys, usage.bytes))?;
        }
        for (ns, delta) in change.per_namespace().filter(|(ns, _)| !ns.is_empty()) {
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
        Ok(self
            .entries
            .get((ws, ns, key))?
            .map(|g| Stored::of(key, g.value())))
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
    /// A streamed value's blob, which goes loose with the record.
    pub blob: Option<BlobRef>,
}

impl Stored {
    /// What the record `raw` under `key` accounts for.
    pub fn of(key: &str, raw: &[u8]) -> Self {
        let record = Record::decode(raw).ok();
        Self {
            bytes: entry_bytes(key, stored_value_len(raw) as usize),
            expires_at_ms: record.and_then(|r| r.expires_at_ms),
            blob: record.and_then(|r| r.blob),
        }
    }
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
