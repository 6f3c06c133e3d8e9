//! Write requests and `clear` steps: one transaction each, touching one
//! workspace.
//!
//! A transaction first locks the workspace's row in `cubby_workspaces`
//! (creating it on the first write). Every writer of that workspace, the
//! sweepers included, takes the same lock first, so they are applied one at
//! a time; in `READ COMMITTED` each later statement of the transaction then
//! sees everything they committed. The request is staged by the front's
//! rules against the rows it touches, the quota is checked against the
//! row's usage, and only then are entries, namespace usage and the
//! workspace row written.

use std::collections::{BTreeMap, BTreeSet};

use deadpool_postgres::{Object, Transaction};

use super::read::{col, row_at, text};
use super::sweep::delete_expired;
use super::{BoxFuture, Failure, from_db, to_db};
use crate::engine::accounting::{UsageChange, check_quota, entry_bytes};
use crate::engine::backend::{Row, WriteRequest};
use crate::engine::stage::{Changes, Slot, stage};
use crate::engine::{Cleared, Outcome, Usage};

/// Locks a workspace's row, creating it if need be; returns its stored
/// usage and next version.
async fn lock_or_create(txn: &Transaction<'_>, ws: &[u8]) -> Result<(Usage, u64), Failure> {
    let stmt = txn
        .prepare_cached(
            "INSERT INTO cubby_workspaces (workspace, keys, bytes, next_version)
             VALUES ($1, 0, 0, 1)
             ON CONFLICT (workspace) DO UPDATE SET keys = cubby_workspaces.keys
             RETURNING keys, bytes, next_version",
        )
        .await?;
    let row = txn.query_one(&stmt, &[&ws]).await?;
    let usage = Usage {
        keys: from_db(col(&row, 0)?),
        bytes: from_db(col(&row, 1)?),
    };
    Ok((usage, from_db(col(&row, 2)?)))
}

/// Locks a workspace's row if it exists; returns its stored usage.
pub(super) async fn lock(txn: &Transaction<'_>, ws: &[u8]) -> Result<Option<Usage>, Failure> {
    let stmt = txn
        .prepare_cached("SELECT keys, bytes FROM cubby_workspaces WHERE workspace = $1 FOR UPDATE")
        .await?;
    match txn.query_opt(&stmt, &[&ws]).await? {
        Some(row) => Ok(Some(Usage {
            keys: from_db(col(&row, 0)?),
            bytes: from_db(col(&row, 1)?),
        })),
        None => Ok(None),
    }
}

/// Adds a change to the stored usage of a workspace (whose row is locked)
/// and its namespaces, and sets its next version if given.
pub(super) async fn account(
    txn: &Transaction<'_>,
    ws: &[u8],
    change: &UsageChange,
    next_version: Option<u64>,
) -> Result<(), Failure> {
    let (mut names, mut keys, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    for (ns, delta) in change.per_namespace() {
        names.push(ns.as_bytes());
        keys.push(delta.keys);
        bytes.push(delta.bytes);
    }
    if !names.is_empty() {
        let upsert = txn
            .prepare_cached(
                "INSERT INTO cubby_namespaces (workspace, namespace, keys, bytes)
                 SELECT $1, n, k, b FROM unnest($2::BYTEA[], $3::BIGINT[], $4::BIGINT[]) AS t(n, k, b)
                 ON CONFLICT (workspace, namespace) DO UPDATE
                 SET keys = cubby_namespaces.keys + EXCLUDED.keys,
                     bytes = cubby_namespaces.bytes + EXCLUDED.bytes",
            )
            .await?;
        txn.execute(&upsert, &[&ws, &names, &keys, &bytes]).await?;
        let empty = txn
            .prepare_cached(
                "DELETE FROM cubby_namespaces
                 WHERE workspace = $1 AND namespace = ANY($2) AND keys <= 0",
            )
            .await?;
        txn.execute(&empty, &[&ws, &names]).await?;
    }
    let total = change.total();
    if !total.is_zero() || next_version.is_some() {
        let stmt = txn
            .prepare_cached(
                "UPDATE cubby_workspaces
                 SET keys = greatest(keys + $2, 0), bytes = greatest(bytes + $3, 0),
                     next_version = coalesce($4, next_version)
                 WHERE workspace = $1",
            )
            .await?;
        let next = next_version.map(to_db);
        txn.execute(&stmt, &[&ws, &total.keys, &total.bytes, &next])
            .await?;
    }
    Ok(())
}

/// The stored rows (live or expired) under the keys a request touches.
async fn touched_rows(
    txn: &Transaction<'_>,
    ws: &[u8],
    request: &WriteRequest,
) -> Result<BTreeMap<Slot, Row>, Failure> {
    let slots: BTreeSet<(&str, &str)> = request
        .ops
        .iter()
        .map(|op| (op.namespace.as_str(), op.key.as_str()))
        .collect();
    let names: Vec<&[u8]> = slots.iter().map(|(ns, _)| ns.as_bytes()).collect();
    let keys: Vec<&[u8]> = slots.iter().map(|(_, key)| key.as_bytes()).collect();
    let stmt = txn
        .prepare_cached(
            "SELECT namespace, key, value, version, expires_at FROM cubby_entries
             WHERE workspace = $1
               AND (namespace, key) IN (SELECT * FROM unnest($2::BYTEA[], $3::BYTEA[]))",
        )
        .await?;
    let mut rows = BTreeMap::new();
    for r in txn.query(&stmt, &[&ws, &names, &keys]).await? {
        let slot = (text(col(&r, 0)?)?, text(col(&r, 1)?)?);
        rows.insert(slot, row_at(&r, 2)?);
    }
    Ok(rows)
}

fn usage_change(changes: &Changes, stored: &BTreeMap<Slot, Row>) -> UsageChange {
    let mut change = UsageChange::default();
    for (slot, new) in changes {
        let old = stored
            .get(slot)
            .map(|row| entry_bytes(&slot.1, row.value.len()));
        change.replace(&slot.0, &slot.1, old, new.as_ref());
    }
    change
}

pub(super) fn write<'a>(
    c: &'a mut Object,
    request: &'a WriteRequest,
) -> BoxFuture<'a, Result<Vec<Outcome>, Failure>> {
    Box::pin(async move {
        let ws = request.workspace.as_bytes();
        let now_ms = request.now_ms;
        let txn = c.transaction().await?;
        let (mut stored, first_version) = lock_or_create(&txn, ws).await?;
        let mut rows = touched_rows(&txn, ws, request).await?;
        let mut next_version = first_version;
        let staged = stage(
            request.ops.clone(),
            now_ms,
            |ns, key| Ok(rows.get(&(ns.to_owned(), key.to_owned())).cloned()),
            || {
                let v = next_version;
                next_version += 1;
                v
            },
        )?;
        if staged.changes.is_empty() {
            // Only checks, or nothing to change: nothing to write.
            return Ok(staged.outcomes);
        }
        let mut change = usage_change(&staged.changes, &rows);
        if check_quota(stored, change.total(), request.quota).is_err() {
            // Stored usage still counts expired entries the sweeper has not
            // reached; remove this workspace's before deciding.
            let (removed, swept) = delete_expired(&txn, ws, now_ms, i64::MAX).await?;
            if removed > 0 {
                account(&txn, ws, &swept, None).await?;
                stored = swept.total().applied_to(stored);
                rows.retain(|_, row| row.is_live(now_ms));
                change = usage_change(&staged.changes, &rows);
            }
            check_quota(stored, change.total(), request.quota)?;
        }
        store(&txn, ws, &staged.changes).await?;
        account(&txn, ws, &change, Some(next_version)).await?;
        txn.commit().await.map_err(Failure::Commit)?;
        Ok(staged.outcomes)
    })
}

/// Writes staged changes: upserts and deletes, each one statement.
async fn store(txn: &Transaction<'_>, ws: &[u8], changes: &Changes) -> Result<(), Failure> {
    let (mut set_ns, mut set_keys, mut values, mut versions, mut deadlines) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut del_ns, mut del_keys) = (Vec::new(), Vec::new());
    for ((ns, key), new) in changes {
        match new {
            Some(row) => {
                set_ns.push(ns.as_bytes());
                set_keys.push(key.as_bytes());
                values.push(row.value.as_slice());
                versions.push(to_db(row.version));
                deadlines.push(row.expires_at_ms.map(to_db));
            }
            None => {
                del_ns.push(ns.as_bytes());
                del_keys.push(key.as_bytes());
            }
        }
    }
    if !set_keys.is_empty() {
        let stmt = txn
            .prepare_cached(
                "INSERT INTO cubby_entries (workspace, namespace, key, value, version, expires_at)
                 SELECT $1, n, k, v, r, e
                 FROM unnest($2::BYTEA[], $3::BYTEA[], $4::BYTEA[], $5::BIGINT[], $6::BIGINT[])
                   AS t(n, k, v, r, e)
                 ON CONFLICT (workspace, namespace, key) DO UPDATE
                 SET value = EXCLUDED.value, version = EXCLUDED.version,
                     expires_at = EXCLUDED.expires_at",
            )
            .await?;
        txn.execute(
            &stmt,
            &[&ws, &set_ns, &set_keys, &values, &versions, &deadlines],
        )
        .await?;
    }
    if !del_keys.is_empty() {
        let stmt = txn
            .prepare_cached(
                "DELETE FROM cubby_entries
                 WHERE workspace = $1
                   AND (namespace, key) IN (SELECT * FROM unnest($2::BYTEA[], $3::BYTEA[]))",
            )
            .await?;
        txn.execute(&stmt, &[&ws, &del_ns, &del_keys]).await?;
    }
    Ok(())
}

/// One bounded step of `clear`.
pub(super) struct ClearStep {
    pub ws: String,
    pub ns: String,
    pub budget: usize,
    pub now_ms: u64,
}

pub(super) fn clear<'a>(
    c: &'a mut Object,
    a: &'a ClearStep,
) -> BoxFuture<'a, Result<Cleared, Failure>> {
    Box::pin(async move {
        let (ws, ns) = (a.ws.as_bytes(), a.ns.as_bytes());
        let txn = c.transaction().await?;
        if lock(&txn, ws).await?.is_none() {
            return Ok(Cleared {
                deleted: 0,
                done: true,
            });
        }
        let stmt = txn
            .prepare_cached(
                "SELECT key FROM cubby_entries WHERE workspace = $1 AND namespace = $2
                 ORDER BY key LIMIT $3",
            )
            .await?;
        let listed = txn
            .query(&stmt, &[&ws, &ns, &(a.budget as i64 + 1)])
            .await?;
        let done = listed.len() <= a.budget;
        let keys = listed
            .iter()
            .take(a.budget)
            .map(|r| col::<Vec<u8>>(r, 0))
            .collect::<Result<Vec<_>, _>>()?;
        let stmt = txn
            .prepare_cached(
                "DELETE FROM cubby_entries
                 WHERE workspace = $1 AND namespace = $2 AND key = ANY($3)
                 RETURNING (length(key) + length(value))::BIGINT, expires_at",
            )
            .await?;
        let mut deleted = 0;
        let mut change = UsageChange::default();
        for r in txn.query(&stmt, &[&ws, &ns, &keys]).await? {
            change.remove(&a.ns, from_db(col(&r, 0)?));
            let expires_at = col::<Option<i64>>(&r, 1)?.map(from_db);
            if expires_at.is_none_or(|at| at > a.now_ms) {
                deleted += 1;
            }
        }
        account(&txn, ws, &change, None).await?;
        txn.commit().await.map_err(Failure::Commit)?;
        Ok(Cleared { deleted, done })
    })
}
