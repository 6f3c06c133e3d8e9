//! Applying one request inside the writer's transaction: a write request
//! (staged by the front's rules, quota-checked, then written with its usage
//! and expiry-index rows) or one bounded step of `clear`.

use redb::{ReadableTable, Table};

use super::record::{Record, stored_value_len};
use super::schema::{ENTRIES, EXPIRY, EntryKey, ExpiryKey, NS_USAGE, USAGE};
use super::sweep::sweep_workspace;
use crate::engine::accounting::{UsageChange, check_quota, entry_bytes};
use crate::engine::backend::{Row, WriteRequest};
use crate::engine::stage::{Changes, stage};
use crate::engine::{Cleared, Outcome, StorageError, Usage};

/// The tables a write transaction works on.
pub(crate) struct Tables<'t> {
    pub entries: Table<'t, EntryKey, &'static [u8]>,
    pub usage: Table<'t, &'static str, (u64, u64)>,
    pub ns_usage: Table<'t, (&'static str, &'static str), (u64, u64)>,
    pub expiry: Table<'t, ExpiryKey, u64>,
}

impl<'t> Tables<'t> {
    pub fn open(txn: &'t redb::WriteTransaction) -> Result<Self, StorageError> {
        Ok(Self {
            entries: txn.open_table(ENTRIES)?,
            usage: txn.open_table(USAGE)?,
            ns_usage: txn.open_table(NS_USAGE)?,
            expiry: txn.open_table(EXPIRY)?,
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

/// Applies one write request; returns the outcomes and whether it changed
/// anything. A request that fails writes nothing.
pub(crate) fn write(
    t: &mut Tables<'_>,
    request: WriteRequest,
    next_version: &mut u64,
) -> Result<(Vec<Outcome>, bool), StorageError> {
    let WriteRequest {
        workspace,
        ops,
        now_ms,
        quota,
    } = request;
    let ws = &*workspace;
    let staged = {
        let entries = &t.entries;
        stage(
            ops,
            now_ms,
            |ns, key| row_at(entries, ws, ns, key),
            || {
                let v = *next_version;
                *next_version += 1;
                v
            },
        )?
    };
    let mut plan = Plan::of(t, ws, &staged.changes)?;
    if check_quota(t.stored_usage(ws)?, plan.change.total(), quota).is_err() {
        // Stored usage still counts expired entries the sweeper has not
        // reached; remove this workspace's before deciding.
        if sweep_workspace(t, ws, now_ms, usize::MAX)?.0 > 0 {
            plan = Plan::of(t, ws, &staged.changes)?;
        }
        check_quota(t.stored_usage(ws)?, plan.change.total(), quota)?;
    }
    for (((ns, key), new), old) in staged.changes.iter().zip(&plan.old) {
        let (ns, key) = (ns.as_str(), key.as_str());
        if let Some(at) = old.as_ref().and_then(|s| s.expires_at_ms) {
            t.expiry.remove((ws, at, ns, key))?;
        }
        match new {
            Some(row) => {
                let record = Record::encode(row.version, row.expires_at_ms, &row.value);
                t.entries.insert((ws, ns, key), record.as_slice())?;
                if let Some(at) = row.expires_at_ms {
                    t.expiry
                        .insert((ws, at, ns, key), entry_bytes(key, row.value.len()))?;
                }
            }
            None => {
                t.entries.remove((ws, ns, key))?;
            }
        }
    }
    t.account(ws, &plan.change)?;
    Ok((staged.outcomes, !staged.changes.is_empty()))
}

/// What writing staged changes replaces: the stored record under each
/// changed key (in the map's order) and the usage change.
struct Plan {
    old: Vec<Option<Stored>>,
    change: UsageChange,
}

impl Plan {
    fn of(t: &Tables<'_>, ws: &str, changes: &Changes) -> Result<Self, StorageError> {
        let mut plan = Plan {
            old: Vec::with_capacity(changes.len()),
            change: UsageChange::default(),
        };
        for ((ns, key), new) in changes {
            let old = t.stored(ws, ns, key)?;
            plan.change
                .replace(ns, key, old.as_ref().map(|s| s.bytes), new.as_ref());
            plan.old.push(old);
        }
        Ok(plan)
    }
}

/// Removes up to `budget` entries of one namespace; returns what it removed
/// and whether any row went.
pub(crate) fn clear(
    t: &mut Tables<'_>,
    ws: &str,
    ns: &str,
    budget: usize,
    now_ms: u64,
) -> Result<(Cleared, bool), StorageError> {
    let (slots, done) = first_slots(t, ws, Some(ns), budget)?;
    let deleted = remove_entries(t, ws, &slots, now_ms)?;
    Ok((Cleared { deleted, done }, !slots.is_empty()))
}

/// One bounded step of removing a whole workspace: up to `budget` entries
/// in any namespace; the step that leaves none also removes the
/// workspace's usage rows. Versions come from one counter for the whole
/// file, so nothing needs keeping for them.
pub(crate) fn remove_workspace(
    t: &mut Tables<'_>,
    ws: &str,
    budget: usize,
    now_ms: u64,
) -> Result<(Cleared, bool), StorageError> {
    let (slots, done) = first_slots(t, ws, None, budget)?;
    let deleted = remove_entries(t, ws, &slots, now_ms)?;
    let mut changed = !slots.is_empty();
    if done {
        changed |= t.usage.remove(ws)?.is_some();
        let mut stale = Vec::new();
        for row in t.ns_usage.range((ws, "")..)? {
            let key = row?.0;
            let (w, ns) = key.value();
            if w != ws {
                break;
            }
            stale.push(ns.to_owned());
        }
        for ns in &stale {
            t.ns_usage.remove((ws, ns.as_str()))?;
        }
        changed |= !stale.is_empty();
    }
    Ok((Cleared { deleted, done }, changed))
}

/// The first `budget` (namespace, key) pairs of a workspace (of one of its
/// namespaces if `ns` is given), and whether they are all there are.
fn first_slots(
    t: &Tables<'_>,
    ws: &str,
    ns: Option<&str>,
    budget: usize,
) -> Result<(Vec<(String, String)>, bool), StorageError> {
    let mut slots = Vec::new();
    for row in t.entries.range((ws, ns.unwrap_or(""), "")..)? {
        let (k, _) = row?;
        let (w, n, key) = k.value();
        if w != ws || ns.is_some_and(|ns| n != ns) {
            return Ok((slots, true));
        }
        if slots.len() == budget {
            return Ok((slots, false));
        }
        slots.push((n.to_owned(), key.to_owned()));
    }
    Ok((slots, true))
}

/// Removes entries with their expiry-index rows and their usage; returns
/// how many of them were live (a record that does not decode was listed,
/// so it counts as live).
fn remove_entries(
    t: &mut Tables<'_>,
    ws: &str,
    slots: &[(String, String)],
    now_ms: u64,
) -> Result<u64, StorageError> {
    let mut live = 0;
    let mut change = UsageChange::default();
    for (ns, key) in slots {
        let (ns, key) = (ns.as_str(), key.as_str());
        let Some(guard) = t.entries.remove((ws, ns, key))? else {
            continue;
        };
        let raw = guard.value();
        let record = Record::decode(raw).ok();
        let bytes = entry_bytes(key, stored_value_len(raw) as usize);
        let at = record.and_then(|r| r.expires_at_ms);
        if record.is_none_or(|r| r.is_live(now_ms)) {
            live += 1;
        }
        drop(guard);
        if let Some(at) = at {
            t.expiry.remove((ws, at, ns, key))?;
        }
        change.remove(ns, bytes);
    }
    t.account(ws, &change)?;
    Ok(live)
}
