//! One transaction in two round trips.
//!
//! tokio-postgres sends a request when its future is first polled and
//! `futures_util`'s `join` polls in the order given, so statements joined
//! together go out back to back and the server runs them in that order.
//! [`begin`] sends `BEGIN`, the lock on the workspace's row and a read; the
//! server runs the read only once the lock is held, and in `READ COMMITTED`
//! it sees everything committed before. [`finish`] sends every write and the
//! `COMMIT`. If the server refuses one of those writes, the transaction is
//! aborted and PostgreSQL turns the `COMMIT` into a rollback: nothing is
//! written. If instead the connection is lost during that round trip, the
//! commit may or may not have happened, and the failure says so
//! ([`Failure::Commit`]), so it is never retried.

use std::future::Future;

use deadpool_postgres::Object;
use deadpool_postgres::tokio_postgres::Error as PgError;
use deadpool_postgres::tokio_postgres::types::ToSql;
use futures_util::future::{join, join3};

use super::retry::Failure;
use super::to_db;
use crate::engine::accounting::UsageChange;
use crate::engine::backend::Row;

/// Locks a workspace's row, creating it on the first write (continuing the
/// version counter of a removed workspace of the same id); returns its
/// stored usage, next version and stored quota (`NULL`s: none).
pub(super) const LOCK_OR_CREATE: &str = "
    INSERT INTO cubby_workspaces (workspace, keys, bytes, next_version)
    VALUES ($1, 0, 0, coalesce(
        (SELECT next_version FROM cubby_retired_workspaces WHERE workspace = $1), 1))
    ON CONFLICT (workspace) DO UPDATE SET keys = cubby_workspaces.keys
    RETURNING keys, bytes, next_version,
        (SELECT max_keys FROM cubby_quotas WHERE workspace = $1),
        (SELECT max_bytes FROM cubby_quotas WHERE workspace = $1)";

/// Locks a workspace's row if there is one.
pub(super) const LOCK: &str = "
    SELECT keys, bytes, next_version FROM cubby_workspaces WHERE workspace = $1 FOR UPDATE";

const UPSERT: &str = "
    INSERT INTO cubby_entries (workspace, namespace, key, value, version, expires_at)
    SELECT $1, n, k, v, r, e
    FROM unnest($2::BYTEA[], $3::BYTEA[], $4::BYTEA[], $5::BIGINT[], $6::BIGINT[])
      AS t(n, k, v, r, e)
    ON CONFLICT (workspace, namespace, key) DO UPDATE
    SET value = EXCLUDED.value, version = EXCLUDED.version, expires_at = EXCLUDED.expires_at";

const DELETE: &str = "
    DELETE FROM cubby_entries
    WHERE workspace = $1
      AND (namespace, key) IN (SELECT * FROM unnest($2::BYTEA[], $3::BYTEA[]))";

const NAMESPACE_USAGE: &str = "
    INSERT INTO cubby_namespaces (workspace, namespace, keys, bytes)
    SELECT $1, n, k, b FROM unnest($2::BYTEA[], $3::BIGINT[], $4::BIGINT[]) AS t(n, k, b)
    ON CONFLICT (workspace, namespace) DO UPDATE
    SET keys = cubby_namespaces.keys + EXCLUDED.keys,
        bytes = cubby_namespaces.bytes + EXCLUDED.bytes";

const EMPTY_NAMESPACES: &str = "
    DELETE FROM cubby_namespaces WHERE workspace = $1 AND namespace = ANY($2) AND keys <= 0";

/// Ends a workspace that holds nothing any more: its namespace rows and its
/// row go, its version counter is kept.
const RETIRE: &str = "
    WITH retired AS (
        DELETE FROM cubby_workspaces WHERE workspace = $1 RETURNING workspace, next_version),
    namespaces AS (DELETE FROM cubby_namespaces WHERE workspace = $1)
    INSERT INTO cubby_retired_workspaces (workspace, next_version)
    SELECT workspace, next_version FROM retired
    ON CONFLICT (workspace) DO UPDATE SET next_version = EXCLUDED.next_version";

const WORKSPACE_USAGE: &str = "
    UPDATE cubby_workspaces
    SET keys = greatest(keys + $2, 0), bytes = greatest(bytes + $3, 0),
        next_version = coalesce($4, next_version)
    WHERE workspace = $1";

/// Sends `BEGIN`, `lock` and `read` in one round trip and returns what the
/// two statements returned. On any error the transaction is rolled back.
pub(super) async fn begin<A, B>(
    c: &Object,
    lock: impl Future<Output = Result<A, PgError>>,
    read: impl Future<Output = Result<B, PgError>>,
) -> Result<(A, B), Failure> {
    match join3(c.batch_execute("BEGIN"), lock, read).await {
        (Ok(()), Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
            rollback(c).await;
            Err(Failure::Sql(e))
        }
    }
}

/// Ends a transaction without writing (a request that was refused).
pub(super) async fn rollback(c: &Object) {
    // A connection that cannot even roll back is lost; the retry loop
    // finds out on its next statement, and the server rolls back anyway.
    let _ = c.batch_execute("ROLLBACK").await;
}

/// What a transaction writes.
#[derive(Debug, Default)]
pub(super) struct Writes<'a> {
    /// Entries stored (inserted or replaced), by (namespace, key).
    pub set: Vec<(&'a str, &'a str, &'a Row)>,
    /// Entries removed, by (namespace, key).
    pub delete: Vec<(&'a str, &'a str)>,
    /// The usage change of all of it.
    pub usage: UsageChange,
    /// The workspace's next version, when versions were handed out.
    pub next_version: Option<u64>,
    /// Whether the workspace is removed (it holds nothing after these
    /// writes): its usage row goes instead of being updated.
    pub retire: bool,
}

/// Sends every write of a transaction and its `COMMIT` in one round trip.
pub(super) async fn finish(c: &Object, ws: &[u8], w: &Writes<'_>) -> Result<(), Failure> {
    let (upsert, delete, ns_usage, empty, ws_usage) = {
        let (a, b, n) = join3(
            c.prepare_cached(UPSERT),
            c.prepare_cached(DELETE),
            c.prepare_cached(NAMESPACE_USAGE),
        )
        .await;
        let (e, u) = join(
            c.prepare_cached(EMPTY_NAMESPACES),
            c.prepare_cached(if w.retire { RETIRE } else { WORKSPACE_USAGE }),
        )
        .await;
        (a?, b?, n?, e?, u?)
    };
    let set_ns: Vec<&[u8]> = w.set.iter().map(|(ns, _, _)| ns.as_bytes()).collect();
    let set_keys: Vec<&[u8]> = w.set.iter().map(|(_, k, _)| k.as_bytes()).collect();
    let values: Vec<&[u8]> = w.set.iter().map(|(_, _, r)| r.value.as_slice()).collect();
    let versions: Vec<i64> = w.set.iter().map(|(_, _, r)| to_db(r.version)).collect();
    let deadlines: Vec<Option<i64>> = w
        .set
        .iter()
        .map(|(_, _, r)| r.expires_at_ms.map(to_db))
        .collect();
    let del_ns: Vec<&[u8]> = w.delete.iter().map(|(ns, _)| ns.as_bytes()).collect();
    let del_keys: Vec<&[u8]> = w.delete.iter().map(|(_, k)| k.as_bytes()).collect();
    let (mut names, mut keys, mut bytes) = (Vec::new(), Vec::new(), Vec::new());
    for (ns, delta) in w.usage.per_namespace() {
        names.push(ns.as_bytes());
        keys.push(delta.keys);
        bytes.push(delta.bytes);
    }
    let total = w.usage.total();
    let next = w.next_version.map(to_db);
    let usage_params: [&(dyn ToSql + Sync); 4] = [&ws, &total.keys, &total.bytes, &next];
    let retire_params: [&(dyn ToSql + Sync); 1] = [&ws];
    let last: &[&(dyn ToSql + Sync)] = if w.retire {
        &retire_params
    } else {
        &usage_params
    };
    let ((a, b, n), (e, u, commit)) = join(
        join3(
            c.execute(
                &upsert,
                &[&ws, &set_ns, &set_keys, &values, &versions, &deadlines],
            ),
            c.execute(&delete, &[&ws, &del_ns, &del_keys]),
            c.execute(&ns_usage, &[&ws, &names, &keys, &bytes]),
        ),
        join3(
            c.execute(&empty, &[&ws, &names]),
            c.execute(&ws_usage, last),
            c.batch_execute("COMMIT"),
        ),
    )
    .await;
    let (mut refused, mut lost) = (None, None);
    for e in [a, b, n, e, u].into_iter().filter_map(Result::err) {
        let slot = if e.as_db_error().is_some() {
            &mut refused
        } else {
            &mut lost
        };
        slot.get_or_insert(e);
    }
    match (refused, lost, commit) {
        // The server refused a write: the transaction was aborted and the
        // COMMIT became a rollback.
        (Some(e), _, _) => Err(Failure::Sql(e)),
        (None, None, Ok(())) => Ok(()),
        // A lost connection: the outcome is unknown.
        (None, Some(e), _) | (None, None, Err(e)) => Err(Failure::Commit(e)),
    }
}
