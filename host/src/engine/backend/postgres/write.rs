//! Write requests and `clear` steps: one transaction each, touching one
//! workspace, in two round trips (`txn.rs`).
//!
//! A transaction first locks the workspace's row in `cubby_workspaces`
//! (creating it on the first write). Every writer of that workspace, the
//! sweepers included, takes the same lock first, so they are applied one at
//! a time. The request is staged by the front's rules against the rows it
//! touches, the quota is checked against the row's usage, and only then are
//! entries, namespace usage and the workspace row written.
//!
//! A request with conditions is first staged against a snapshot, without
//! any lock ([`precheck`]): a condition that fails there fails as of that
//! snapshot (a consistent, committed state), and the request ends without
//! queueing for the workspace. That keeps racing compare-and-swaps cheap.

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::Object;
use deadpool_postgres::tokio_postgres::types::ToSql;
use futures_util::future::join;

use super::quota::quota_at;
use super::read::{blob_at, col, row_at, text};
use super::retry::{BoxFuture, Failure};
use super::sweep::expired_rows;
use super::txn::{CreateOrLock, LOCK, Writes, begin, finish, rollback};
use super::{from_db, to_db};
use crate::engine::accounting::{UsageChange, check_quota, entry_bytes};
use crate::engine::backend::{Row, WriteRequest};
use crate::engine::blob::abandoned;
use crate::engine::stage::{Changes, Slot, Staged, stage};
use crate::engine::{Cleared, Outcome, StorageError, Usage};

/// The stored rows (live or expired) under the keys of a request.
const TOUCHED: &str = "
    SELECT namespace, key, value, version, expires_at, blob FROM cubby_entries
    WHERE workspace = $1
      AND (namespace, key) IN (SELECT * FROM unnest($2::BYTEA[], $3::BYTEA[]))";

/// The usage and next version in a locked workspace row.
pub(super) fn locked_row(
    row: &deadpool_postgres::tokio_postgres::Row,
) -> Result<(Usage, u64), Failure> {
    let usage = Usage {
        keys: from_db(col(row, 0)?),
        bytes: from_db(col(row, 1)?),
    };
    Ok((usage, from_db(col(row, 2)?)))
}

fn touched_rows(
    rows: &[deadpool_postgres::tokio_postgres::Row],
) -> Result<BTreeMap<Slot, Row>, Failure> {
    let mut touched = BTreeMap::new();
    for r in rows {
        let slot = (text(col(r, 0)?)?, text(col(r, 1)?)?);
        touched.insert(slot, row_at(r, 2)?);
    }
    Ok(touched)
}

/// Stages a request against `rows`, handing out versions from `next`.
fn stage_on(
    request: &WriteRequest,
    rows: &BTreeMap<Slot, Row>,
    next: &mut u64,
) -> Result<Staged, StorageError> {
    stage(
        request.ops.clone(),
        request.blob.clone(),
        request.now_ms,
        |ns, key| Ok(rows.get(&(ns.to_owned(), key.to_owned())).cloned()),
        || {
            *next += 1;
            *next - 1
        },
    )
}

fn usage_change(changes: &Changes, stored: &BTreeMap<Slot, Row>) -> UsageChange {
    let mut change = UsageChange::default();
    for (slot, new) in changes {
        let old = stored
            .get(slot)
            .map(|row| entry_bytes(&slot.1, row.stored_len() as usize));
        change.replace(&slot.0, &slot.1, old, new.as_ref());
    }
    change
}

/// Stages a request with conditions against a snapshot, without any lock:
/// a condition that fails there fails as of that snapshot, and the request
/// ends without queueing for the workspace.
pub(super) fn precheck<'a>(
    c: &'a mut Object,
    request: &'a WriteRequest,
) -> BoxFuture<'a, Result<(), Failure>> {
    Box::pin(async move {
        let (names, keys) = slots(request);
        let touched = c.prepare_cached(TOUCHED).await?;
        let ws = request.workspace.as_bytes();
        let snapshot = touched_rows(&c.query(&touched, &[&ws, &names, &keys]).await?)?;
        stage_on(request, &snapshot, &mut 0)?;
        Ok(())
    })
}

/// The (namespace, key) pairs a request touches, as two parallel arrays.
fn slots(request: &WriteRequest) -> (Vec<&[u8]>, Vec<&[u8]>) {
    let blob = request.blob.as_ref();
    let slots: BTreeSet<(&str, &str)> = request
        .ops
        .iter()
        .map(|op| (op.namespace.as_str(), op.key.as_str()))
        .chain(blob.map(|b| (b.namespace.as_str(), b.key.as_str())))
        .collect();
    slots
        .iter()
        .map(|(ns, key)| (ns.as_bytes(), key.as_bytes()))
        .unzip()
}

pub(super) fn write<'a>(
    c: &'a mut Object,
    request: &'a WriteRequest,
) -> BoxFuture<'a, Result<Vec<Outcome>, Failure>> {
    Box::pin(async move {
        let ws = request.workspace.as_bytes();
        let (names, keys) = slots(request);
        let (lock, touched) = join(CreateOrLock::prepare(c), c.prepare_cached(TOUCHED)).await;
        let (lock, touched) = (lock?, touched?);

        let (locked, rows) =
            begin(c, lock.run(c, ws), c.query(&touched, &[&ws, &names, &keys])).await?;
        match stage_and_finish(c, request, &locked, &rows).await {
            Err(Failure::Refused(e)) => {
                rollback(c).await;
                Err(Failure::Refused(e))
            }
            other => other,
        }
    })
}

/// The locked part of a write: stage, check the quota, write, commit.
/// A refused request leaves the transaction open for the caller to roll
/// back.
async fn stage_and_finish(
    c: &Object,
    request: &WriteRequest,
    locked: &deadpool_postgres::tokio_postgres::Row,
    rows: &[deadpool_postgres::tokio_postgres::Row],
) -> Result<Vec<Outcome>, Failure> {
    let ws = request.workspace.as_bytes();
    let (stored, first_version) = locked_row(locked)?;
    // The stored quota came with the lock, at no extra cost.
    let quota = request.quota.resolve(quota_at(locked, 3)?);
    let rows = touched_rows(rows)?;
    let mut next_version = first_version;
    let staged = stage_on(request, &rows, &mut next_version)?;
    if staged.changes.is_empty() {
        // Only checks, or nothing to change: end the transaction unwritten.
        rollback(c).await;
        return Ok(staged.outcomes);
    }
    let mut writes = Writes {
        usage: usage_change(&staged.changes, &rows),
        next_version: Some(next_version),
        ..Writes::at(request.now_ms)
    };
    let expired;
    if check_quota(stored, writes.usage.total(), quota).is_err() {
        // Stored usage still counts expired entries the sweeper has not
        // reached: remove this workspace's (but those the request rewrites,
        // whose old size is already accounted) before deciding.
        expired = expired_rows(c, ws, request.now_ms, i64::MAX).await?;
        for (ns, key, bytes, blob) in &expired {
            if !staged.changes.contains_key(&(ns.clone(), key.clone())) {
                writes.delete.push((ns, key));
                writes.usage.remove(ns, *bytes);
                writes.retired.extend(blob);
            }
        }
        check_quota(stored, writes.usage.total(), quota)?;
    }
    for (slot, new) in &staged.changes {
        let (ns, key) = slot;
        let old = rows.get(slot).and_then(|r| r.blob);
        let new_blob = new.as_ref().and_then(|r| r.blob);
        if let Some(blob) = new_blob.filter(|b| old.map(|o| o.id) != Some(b.id)) {
            writes.published.push(to_db(blob.id));
        }
        if let Some(blob) = old.filter(|o| new_blob.map(|b| b.id) != Some(o.id)) {
            writes.retired.push(blob);
        }
        match new {
            Some(row) => writes.set.push((ns, key, row)),
            None => writes.delete.push((ns, key)),
        }
    }
    if !writes.published.is_empty() {
        // A published blob must still be a write in progress.
        let open = c.prepare_cached(OPEN_WRITES).await?;
        let found = c.query(&open, &[&ws, &writes.published]).await?;
        if found.len() != writes.published.len() {
            return Err(Failure::Refused(abandoned()));
        }
    }
    finish(c, ws, &writes).await?;
    Ok(staged.outcomes)
}

/// One bounded step of removing entries: of one namespace (`clear`), or of
/// a whole workspace (`ns` is `None`).
pub(super) struct RemoveStep {
    pub ws: String,
    pub ns: Option<String>,
    pub budget: usize,
    pub now_ms: u64,
}

/// The first entries of a namespace, with what they account for.
const FIRST_IN_NAMESPACE: &str = "
    SELECT namespace, key, (length(key) + coalesce(stored, length(value)))::BIGINT, expires_at,
           blob
    FROM cubby_entries WHERE workspace = $1 AND namespace = $2
    ORDER BY key LIMIT $3";

/// The first entries of a workspace, in any namespace.
const FIRST_IN_WORKSPACE: &str = "
    SELECT namespace, key, (length(key) + coalesce(stored, length(value)))::BIGINT, expires_at,
           blob
    FROM cubby_entries WHERE workspace = $1
    ORDER BY namespace, key LIMIT $2";

/// The writes in progress among blobs `$2` of workspace `$1`, locked.
const OPEN_WRITES: &str = "
    SELECT blob FROM cubby_loose_blobs WHERE workspace = $1 AND blob = ANY($2) AND kind = 0
    FOR UPDATE";

pub(super) fn remove<'a>(
    c: &'a mut Object,
    a: &'a RemoveStep,
) -> BoxFuture<'a, Result<Cleared, Failure>> {
    Box::pin(async move {
        let ws = a.ws.as_bytes();
        let first_sql = match a.ns {
            Some(_) => FIRST_IN_NAMESPACE,
            None => FIRST_IN_WORKSPACE,
        };
        let (lock, first) = join(c.prepare_cached(LOCK), c.prepare_cached(first_sql)).await;
        let (lock, first) = (lock?, first?);
        let one_more = a.budget as i64 + 1;
        let ns_param = a.ns.as_deref().unwrap_or("").as_bytes();
        let in_namespace: [&(dyn ToSql + Sync); 3] = [&ws, &ns_param, &one_more];
        let in_workspace: [&(dyn ToSql + Sync); 2] = [&ws, &one_more];
        let params: &[&(dyn ToSql + Sync)] = match a.ns {
            Some(_) => &in_namespace,
            None => &in_workspace,
        };
        let (locked, listed) =
            begin(c, c.query_opt(&lock, &[&ws]), c.query(&first, params)).await?;
        let done = listed.len() <= a.budget;
        if locked.is_none() {
            rollback(c).await;
            return Ok(Cleared { deleted: 0, done });
        }
        let mut slots = Vec::with_capacity(a.budget);
        let mut writes = Writes::at(a.now_ms);
        let mut deleted = 0;
        for r in listed.iter().take(a.budget) {
            let (ns, key) = (text(col(r, 0)?)?, text(col(r, 1)?)?);
            writes.usage.remove(&ns, from_db(col(r, 2)?));
            writes.retired.extend(blob_at(r, 4)?);
            let expires_at = col::<Option<i64>>(r, 3)?.map(from_db);
            if expires_at.is_none_or(|at| at > a.now_ms) {
                deleted += 1;
            }
            slots.push((ns, key));
        }
        // A whole workspace that is now empty goes, but for its versions.
        writes.retire = a.ns.is_none() && done;
        if slots.is_empty() && !writes.retire {
            rollback(c).await;
            return Ok(Cleared { deleted: 0, done });
        }
        writes.delete = slots
            .iter()
            .map(|(n, k)| (n.as_str(), k.as_str()))
            .collect();
        finish(c, ws, &writes).await?;
        Ok(Cleared { deleted, done })
    })
}
