//! What a write request means, the same on every backend.
//!
//! A request is a list of ops applied all-or-nothing. [`stage`] works out,
//! without writing anything, the state each touched key ends in and what
//! each op returns: it reads the current state (from the backend, or what an
//! earlier op of the same request staged), checks each op's condition,
//! computes counters, deadlines and versions. A backend then checks the quota
//! against the staged changes ([`accounting`](super::accounting)) and, only
//! if every op succeeded, writes them in the same transaction it read in.

use std::collections::BTreeMap;
use std::time::Duration;

use super::backend::{BlobPut, Row};
use super::{Action, Op, Outcome, StorageError};

/// A key inside a workspace: (namespace, key).
pub(crate) type Slot = (String, String);

/// The state each touched key ends in: `Some(row)` is stored, `None` removes
/// the key. Keys that only had their condition checked are not in it.
pub(crate) type Changes = BTreeMap<Slot, Option<Row>>;

/// A staged request: what to write, and what each op returns.
#[derive(Debug)]
pub(crate) struct Staged {
    pub changes: Changes,
    pub outcomes: Vec<Outcome>,
}

/// Stages `ops` at `now_ms`.
///
/// `stored(ns, key)` returns what the backend stores under a key, live or
/// expired (an expired row counts as absent here); a row that cannot be
/// decoded is [`StorageError::Corrupt`], which only an unconditional `set`
/// (which does not read) or `delete` (which removes it) gets past.
/// `next_version()` hands out a version that the backend never hands out
/// again within the workspace.
///
/// Errors: a failed condition ([`StorageError::Conflict`] with the op's index
/// and the current entry), a counter error, or an error of `stored`. Nothing
/// is written in any case; the caller discards the staged state.
/// A streamed value's publish (`blob`) comes last, after the ops, and
/// answers [`Outcome::Set`].
pub(crate) fn stage(
    ops: Vec<Op>,
    blob: Option<BlobPut>,
    now_ms: u64,
    mut stored: impl FnMut(&str, &str) -> Result<Option<Row>, StorageError>,
    mut next_version: impl FnMut() -> u64,
) -> Result<Staged, StorageError> {
    let mut changes = Changes::new();
    let mut outcomes = Vec::with_capacity(ops.len() + usize::from(blob.is_some()));
    // The publish is staged as a set whose row holds the blob.
    let publish = blob.map(|b| {
        let op = Op {
            namespace: b.namespace,
            key: b.key,
            condition: b.condition,
            action: Action::Set {
                value: Vec::new(),
                ttl: b.ttl,
            },
        };
        (op, Some(b.blob))
    });
    let steps = ops.into_iter().map(|op| (op, None)).chain(publish);
    for (index, (op, blob)) in steps.enumerate() {
        let slot = (op.namespace, op.key);
        let unconditional = op.condition.is_none();
        let current = match changes.get(&slot) {
            Some(state) => state.clone(),
            // An unconditional set replaces whatever is there, even a record
            // that does not decode; an unconditional delete removes it.
            None if unconditional && matches!(op.action, Action::Set { .. }) => None,
            None if unconditional && matches!(op.action, Action::Delete) => {
                match stored(&slot.0, &slot.1) {
                    Err(StorageError::Corrupt(_)) => {
                        changes.insert(slot, None);
                        outcomes.push(Outcome::Deleted(true));
                        continue;
                    }
                    other => other?,
                }
            }
            None => stored(&slot.0, &slot.1)?,
        }
        .filter(|row| row.is_live(now_ms));
        if let Some(condition) = &op.condition
            && !condition.holds(current.as_ref())
        {
            return Err(StorageError::Conflict {
                index,
                current: current.map(|c| c.to_entry(now_ms)),
            });
        }
        // `None`: the op changes nothing; `Some(state)`: the key's new state.
        let (next, outcome) = match op.action {
            Action::Check => (None, Outcome::Checked),
            Action::Set { value, ttl } => {
                let version = next_version();
                let row = Row {
                    value,
                    version,
                    expires_at_ms: deadline(now_ms, ttl),
                    blob,
                };
                (Some(Some(row)), Outcome::Set { version })
            }
            Action::Delete => (Some(None), Outcome::Deleted(current.is_some())),
            Action::Increment { delta, ttl } => {
                let (old, expires_at_ms) = counter(current.as_ref(), now_ms, ttl)?;
                let n = old.checked_add(delta).ok_or(StorageError::Overflow)?;
                let row = Row::inline(n.to_string().into_bytes(), next_version(), expires_at_ms);
                (Some(Some(row)), Outcome::Incremented(n))
            }
            Action::IncrementUnsigned { delta, ttl } => {
                let (old, expires_at_ms) = counter(current.as_ref(), now_ms, ttl)?;
                // An unsigned counter is one that holds a value >= 0.
                if old < 0 {
                    return Err(StorageError::NotACounter);
                }
                let n = i64::try_from(delta)
                    .ok()
                    .and_then(|d| old.checked_add(d))
                    .ok_or(StorageError::Overflow)?;
                let row = Row::inline(n.to_string().into_bytes(), next_version(), expires_at_ms);
                (Some(Some(row)), Outcome::Incremented(n))
            }
            Action::Expire(ttl) => match current {
                None => (None, Outcome::ExpiryChanged(false)),
                Some(c) => {
                    let row = Row {
                        expires_at_ms: deadline(now_ms, ttl),
                        ..c
                    };
                    (Some(Some(row)), Outcome::ExpiryChanged(true))
                }
            },
            Action::Renew(ttl) => match current {
                None => (None, Outcome::Renewed(None)),
                Some(c) => {
                    let row = Row {
                        expires_at_ms: deadline(now_ms, Some(ttl)),
                        ..c
                    };
                    let entry = row.to_entry(now_ms);
                    (Some(Some(row)), Outcome::Renewed(Some(entry)))
                }
            },
        };
        if let Some(next) = next {
            changes.insert(slot, next);
        }
        outcomes.push(outcome);
    }
    Ok(Staged { changes, outcomes })
}

/// The absolute deadline of a time-to-live, in milliseconds since the Unix
/// epoch. Clamped to `i64::MAX`, which every backend can store (about 292
/// million years from 1970).
pub(crate) fn deadline(now_ms: u64, ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|d| {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_add(ms).min(i64::MAX as u64)
    })
}

/// A counter's current value (0 when absent) and the expiry it keeps (for a
/// new counter, `ttl` from now).
fn counter(
    current: Option<&Row>,
    now_ms: u64,
    ttl: Option<Duration>,
) -> Result<(i64, Option<u64>), StorageError> {
    Ok(match current {
        None => (0, deadline(now_ms, ttl)),
        Some(c) => (
            parse_counter(&c.value).ok_or(StorageError::NotACounter)?,
            c.expires_at_ms,
        ),
    })
}

/// The value of a counter, if `value` is one: decimal ASCII in the range of
/// `i64`.
pub(crate) fn parse_counter(value: &[u8]) -> Option<i64> {
    std::str::from_utf8(value).ok()?.parse().ok()
}
