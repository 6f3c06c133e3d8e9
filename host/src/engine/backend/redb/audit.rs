//! A look behind the API at one workspace, for tests.

use std::ops::Bound;

use redb::ReadableDatabase;

use super::record::{Record, stored_value_len};
use super::schema::{CHUNKS, ENTRIES, EXPIRY, LOOSE, NS_USAGE, USAGE};
use crate::engine::accounting::entry_bytes;
use crate::engine::backend::Audit;
use crate::engine::{StorageError, Usage};

pub(crate) fn audit(db: &redb::Database, ws: &str, now_ms: u64) -> Result<Audit, StorageError> {
    let txn = db.begin_read()?;
    let mut audit = Audit::default();
    for row in txn.open_table(ENTRIES)?.range((ws, "", "")..)? {
        let (k, v) = row?;
        let (w, ns, key) = k.value();
        if w != ws {
            break;
        }
        audit.rows += 1;
        let raw = v.value();
        if ns.is_empty() {
            // The default space has no counter of its own: what the
            // workspace's counts beyond the named namespaces is its, so its
            // rows are counted here (expired ones too, as counters do).
            audit.stored_namespace_usage.keys += 1;
            audit.stored_namespace_usage.bytes += entry_bytes(key, stored_value_len(raw) as usize);
        }
        if Record::decode(raw).is_ok_and(|r| !r.is_live(now_ms)) {
            continue;
        }
        audit.recounted.keys += 1;
        audit.recounted.bytes += entry_bytes(key, stored_value_len(raw) as usize);
    }
    for row in txn.open_table(EXPIRY)?.range((ws, 0, "", "")..)? {
        if row?.0.value().0 != ws {
            break;
        }
        audit.expiring_rows += 1;
    }
    if let Some(g) = txn.open_table(USAGE)?.get(ws)? {
        let (keys, bytes) = g.value();
        audit.stored_usage = Usage { keys, bytes };
        audit.usage_row = true;
    }
    for row in txn
        .open_table(NS_USAGE)?
        .range((Bound::Included((ws, "")), Bound::Unbounded))?
    {
        let (k, v) = row?;
        if k.value().0 != ws {
            break;
        }
        let (keys, bytes) = v.value();
        audit.namespace_rows += 1;
        audit.stored_namespace_usage.keys += keys;
        audit.stored_namespace_usage.bytes += bytes;
    }
    for row in txn.open_table(CHUNKS)?.range((ws, 0, 0)..)? {
        if row?.0.value().0 != ws {
            break;
        }
        audit.chunk_rows += 1;
    }
    for row in txn.open_table(LOOSE)?.range((ws, 0)..)? {
        if row?.0.value().0 != ws {
            break;
        }
        audit.loose_blobs += 1;
    }
    Ok(audit)
}
