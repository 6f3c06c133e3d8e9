//! Quotas stored in the database (`cubby_quotas`), one row per workspace.

use deadpool_postgres::Object;

use super::read::{col, text};
use super::retry::{BoxFuture, Failure};
use super::{from_db, to_db};
use crate::engine::Quota;

/// A stored quota in columns `at` and `at + 1` (both `NULL`: none), as in
/// a row locked by `txn::CreateOrLock`.
pub(super) fn quota_at(
    row: &deadpool_postgres::tokio_postgres::Row,
    at: usize,
) -> Result<Option<Quota>, Failure> {
    let keys: Option<i64> = col(row, at)?;
    let bytes: Option<i64> = col(row, at + 1)?;
    Ok(keys.zip(bytes).map(|(k, b)| Quota {
        max_keys: from_db(k),
        max_bytes: from_db(b),
    }))
}

pub(super) fn stored_quota<'a>(
    c: &'a mut Object,
    ws: &'a String,
) -> BoxFuture<'a, Result<Option<Quota>, Failure>> {
    Box::pin(async move {
        let row = c
            .query_opt(
                "SELECT max_keys, max_bytes FROM cubby_quotas WHERE workspace = $1",
                &[&ws.as_bytes()],
            )
            .await?;
        match row {
            Some(row) => quota_at(&row, 0),
            None => Ok(None),
        }
    })
}

pub(super) fn stored_quotas<'a>(
    c: &'a mut Object,
    _: &'a (),
) -> BoxFuture<'a, Result<Vec<(String, Quota)>, Failure>> {
    Box::pin(async move {
        let rows = c
            .query(
                "SELECT workspace, max_keys, max_bytes FROM cubby_quotas ORDER BY workspace",
                &[],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(q) = quota_at(row, 1)? {
                out.push((text(col(row, 0)?)?, q));
            }
        }
        Ok(out)
    })
}

pub(super) fn store_quota<'a>(
    c: &'a mut Object,
    (ws, quota): &'a (String, Option<Quota>),
) -> BoxFuture<'a, Result<(), Failure>> {
    Box::pin(async move {
        let ws = ws.as_bytes();
        match quota {
            Some(q) => {
                c.execute(
                    "INSERT INTO cubby_quotas (workspace, max_keys, max_bytes) VALUES ($1, $2, $3)
                     ON CONFLICT (workspace) DO UPDATE
                     SET max_keys = EXCLUDED.max_keys, max_bytes = EXCLUDED.max_bytes",
                    &[&ws, &to_db(q.max_keys), &to_db(q.max_bytes)],
                )
                .await?
            }
            None => {
                c.execute("DELETE FROM cubby_quotas WHERE workspace = $1", &[&ws])
                    .await?
            }
        };
        Ok(())
    })
}
