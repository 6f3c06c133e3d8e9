//! Usage and quota arithmetic, written once for every backend.
//!
//! Backends store per-workspace and per-namespace usage next to the entries
//! and change it in the same transaction as every write. The stored counts
//! include expired entries the sweeper has not removed yet; what the API
//! reports subtracts those ([`live`]). A quota is checked against the stored
//! counts plus the request's change ([`check_quota`]), before anything is
//! written.

use std::collections::BTreeMap;

use super::backend::Row;
use super::{Quota, StorageError, Usage};

/// The bytes an entry counts for in usage and quotas: its key plus its value.
pub(crate) fn entry_bytes(key: &str, value_len: usize) -> u64 {
    (key.len() + value_len) as u64
}

/// A change in (keys, bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Delta {
    pub keys: i64,
    pub bytes: i64,
}

impl Delta {
    /// Whether the change changes nothing.
    pub fn is_zero(self) -> bool {
        self.keys == 0 && self.bytes == 0
    }

    /// `usage` after the change (never below zero).
    pub fn applied_to(self, usage: Usage) -> Usage {
        Usage {
            keys: usage.keys.saturating_add_signed(self.keys),
            bytes: usage.bytes.saturating_add_signed(self.bytes),
        }
    }
}

/// What one request changes in usage, per namespace.
#[derive(Debug, Default)]
pub(crate) struct UsageChange(BTreeMap<String, Delta>);

impl UsageChange {
    /// The entry under `(ns, key)`, which accounted for `old_bytes` (`None`:
    /// nothing stored, or only a row that counted nothing), becomes `new`
    /// (`None`: removed).
    pub fn replace(&mut self, ns: &str, key: &str, old_bytes: Option<u64>, new: Option<&Row>) {
        if let Some(bytes) = old_bytes {
            self.remove(ns, bytes);
        }
        if let Some(row) = new {
            let d = self.slot(ns);
            d.keys += 1;
            d.bytes += entry_bytes(key, row.stored_len() as usize) as i64;
        }
    }

    /// An entry that accounts for `bytes` is stored.
    pub fn added(&mut self, ns: &str, bytes: u64) {
        let d = self.slot(ns);
        d.keys += 1;
        d.bytes += bytes as i64;
    }

    /// A stored entry that accounted for `bytes` is removed.
    pub fn remove(&mut self, ns: &str, bytes: u64) {
        let d = self.slot(ns);
        d.keys -= 1;
        d.bytes -= bytes as i64;
    }

    /// The change of the whole workspace.
    pub fn total(&self) -> Delta {
        self.0.values().fold(Delta::default(), |t, d| Delta {
            keys: t.keys + d.keys,
            bytes: t.bytes + d.bytes,
        })
    }

    /// The non-zero change of each namespace.
    pub fn per_namespace(&self) -> impl Iterator<Item = (&str, Delta)> {
        self.0
            .iter()
            .filter(|(_, d)| !d.is_zero())
            .map(|(ns, d)| (ns.as_str(), *d))
    }

    fn slot(&mut self, ns: &str) -> &mut Delta {
        self.0.entry(ns.to_owned()).or_default()
    }
}

/// Checks a workspace's quota against its stored usage and a request's
/// change. A change that does not grow usage is allowed even over a quota
/// (which the host may have lowered), so a full workspace can always shrink.
pub(crate) fn check_quota(stored: Usage, change: Delta, quota: Quota) -> Result<(), StorageError> {
    let after = change.applied_to(stored);
    if after.keys > stored.keys && after.keys > quota.max_keys {
        return Err(StorageError::QuotaExceeded(format!(
            "the workspace would hold {} keys, its quota is {}",
            after.keys, quota.max_keys
        )));
    }
    if after.bytes > stored.bytes && after.bytes > quota.max_bytes {
        return Err(StorageError::QuotaExceeded(format!(
            "the workspace would hold {} bytes, its quota is {}",
            after.bytes, quota.max_bytes
        )));
    }
    Ok(())
}

/// What the API reports: stored usage minus the expired entries not swept yet.
pub(crate) fn live(stored: Usage, expired_unswept: Usage) -> Usage {
    Usage {
        keys: stored.keys.saturating_sub(expired_unswept.keys),
        bytes: stored.bytes.saturating_sub(expired_unswept.bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_refuses_growth_past_it_but_never_shrinking() {
        let quota = Quota {
            max_keys: 2,
            max_bytes: 10,
        };
        let stored = Usage { keys: 2, bytes: 8 };
        let grow = |keys, bytes| check_quota(stored, Delta { keys, bytes }, quota);
        assert!(grow(0, 2).is_ok());
        assert!(matches!(grow(0, 3), Err(StorageError::QuotaExceeded(_))));
        assert!(matches!(grow(1, 0), Err(StorageError::QuotaExceeded(_))));
        let over = Usage { keys: 5, bytes: 50 };
        let shrink = Delta {
            keys: -1,
            bytes: -4,
        };
        assert!(check_quota(over, shrink, quota).is_ok());
    }

    #[test]
    fn changes_add_up_per_namespace() {
        let row = |v: &[u8]| Row::inline(v.to_vec(), 1, None);
        let mut change = UsageChange::default();
        change.replace("", "a", None, Some(&row(b"123")));
        change.replace("n", "bb", Some(9), Some(&row(b"1")));
        change.replace("n", "c", Some(4), None);
        assert_eq!(change.total(), Delta { keys: 0, bytes: -6 });
        let per: Vec<_> = change.per_namespace().collect();
        assert_eq!(
            per,
            [
                ("", Delta { keys: 1, bytes: 4 }),
                (
                    "n",
                    Delta {
                        keys: -1,
                        bytes: -10
                    }
                )
            ]
        );
    }
}
