//! Removing expired entries. Due workspaces are found through the index on
//! `expires_at`, oldest deadline first; each is then swept in a transaction
//! that holds its workspace's lock, so sweepers in several processes (and
//! writers) never remove the same entry twice or miscount its usage.

use deadpool_postgres::{Object, Transaction};

use super::read::{col, text};
use super::write::{account, lock};
use super::{BoxFuture, Failure, from_db, to_db};
use crate::engine::accounting::UsageChange;

/// Deletes up to `limit` entries of a workspace (whose row is locked)
/// expired at `now_ms`; returns how many, and their usage.
pub(super) async fn delete_expired(
    txn: &Transaction<'_>,
    ws: &[u8],
    now_ms: u64,
    limit: i64,
) -> Result<(u64, UsageChange), Failure> {
    let stmt = txn
        .prepare_cached(
            "DELETE FROM cubby_entries
             WHERE (workspace, namespace, key) IN (
                 SELECT workspace, namespace, key FROM cubby_entries
                 WHERE workspace = $1 AND expires_at <= $2
                 ORDER BY expires_at LIMIT $3)
             RETURNING namespace, (length(key) + length(value))::BIGINT",
        )
        .await?;
    let mut change = UsageChange::default();
    let rows = txn.query(&stmt, &[&ws, &to_db(now_ms), &limit]).await?;
    for r in &rows {
        change.remove(&text(col(r, 0)?)?, from_db(col(r, 1)?));
    }
    Ok((rows.len() as u64, change))
}

/// The workspaces holding the (up to) `budget` oldest expired entries.
pub(super) fn due_workspaces<'a>(
    c: &'a mut Object,
    (budget, now_ms): &'a (usize, u64),
) -> BoxFuture<'a, Result<Vec<String>, Failure>> {
    Box::pin(async move {
        let stmt = c
            .prepare_cached(
                "SELECT DISTINCT workspace FROM (
                     SELECT workspace FROM cubby_entries WHERE expires_at <= $1
                     ORDER BY expires_at LIMIT $2) AS due
                 ORDER BY workspace",
            )
            .await?;
        let rows = c
            .query(&stmt, &[&to_db(*now_ms), &(*budget as i64)])
            .await?;
        rows.iter().map(|r| text(col(r, 0)?)).collect()
    })
}

/// One workspace's part of a sweep pass.
pub(super) struct SweepStep {
    pub ws: String,
    pub budget: usize,
    pub now_ms: u64,
}

/// Sweeps one workspace; returns how many entries it removed.
pub(super) fn sweep_workspace<'a>(
    c: &'a mut Object,
    a: &'a SweepStep,
) -> BoxFuture<'a, Result<u64, Failure>> {
    Box::pin(async move {
        let ws = a.ws.as_bytes();
        let txn = c.transaction().await?;
        if lock(&txn, ws).await?.is_none() {
            return Ok(0);
        }
        let (removed, change) = delete_expired(&txn, ws, a.now_ms, a.budget as i64).await?;
        if removed > 0 {
            account(&txn, ws, &change, None).await?;
            txn.commit().await.map_err(Failure::Commit)?;
        }
        Ok(removed)
    })
}
