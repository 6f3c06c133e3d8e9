//! A look behind the API at one workspace, for tests.

use deadpool_postgres::Object;

use super::read::{col, usage_at};
use super::retry::{BoxFuture, Failure};
use super::{from_db, to_db};
use crate::engine::backend::{Audit, RawStatement};

/// Sends one of the benchmark's bare statements.
pub(super) fn raw<'a>(
    c: &'a mut Object,
    statement: &'a RawStatement,
) -> BoxFuture<'a, Result<(), Failure>> {
    Box::pin(async move {
        match statement {
            RawStatement::Select { ws, ns, key } => {
                let stmt = c
                    .prepare_cached(
                        "SELECT value FROM cubby_entries
                         WHERE workspace = $1 AND namespace = $2 AND key = $3",
                    )
                    .await?;
                c.query_opt(&stmt, &[&ws.as_bytes(), &ns.as_bytes(), &key.as_bytes()])
                    .await?;
            }
            RawStatement::Upsert { key, value } => {
                c.batch_execute(
                    "CREATE TABLE IF NOT EXISTS cubby_bench_raw (k BYTEA PRIMARY KEY, v BYTEA)",
                )
                .await?;
                let stmt = c
                    .prepare_cached(
                        "INSERT INTO cubby_bench_raw (k, v) VALUES ($1, $2)
                         ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
                    )
                    .await?;
                c.execute(&stmt, &[&key.as_bytes(), value]).await?;
            }
        }
        Ok(())
    })
}

pub(super) fn audit<'a>(
    c: &'a mut Object,
    (ws, now_ms): &'a (String, u64),
) -> BoxFuture<'a, Result<Audit, Failure>> {
    Box::pin(async move {
        let row = c
            .query_one(
                "SELECT
                   (SELECT count(*) FROM cubby_entries WHERE workspace = $1),
                   (SELECT count(*) FROM cubby_entries
                    WHERE workspace = $1 AND expires_at IS NOT NULL),
                   coalesce((SELECT keys FROM cubby_workspaces WHERE workspace = $1), 0),
                   coalesce((SELECT bytes FROM cubby_workspaces WHERE workspace = $1), 0),
                   (SELECT coalesce(sum(keys), 0)::BIGINT FROM cubby_namespaces
                    WHERE workspace = $1),
                   (SELECT coalesce(sum(bytes), 0)::BIGINT FROM cubby_namespaces
                    WHERE workspace = $1),
                   (SELECT count(*) FROM cubby_entries
                    WHERE workspace = $1 AND (expires_at IS NULL OR expires_at > $2)),
                   (SELECT coalesce(sum(length(key) + coalesce(stored, length(value))), 0)::BIGINT
                    FROM cubby_entries
                    WHERE workspace = $1 AND (expires_at IS NULL OR expires_at > $2)),
                   (SELECT count(*) FROM cubby_workspaces WHERE workspace = $1),
                   (SELECT count(*) FROM cubby_namespaces WHERE workspace = $1),
                   (SELECT count(*) FROM cubby_chunks WHERE workspace = $1),
                   (SELECT count(*) FROM cubby_loose_blobs WHERE workspace = $1)",
                &[&ws.as_bytes(), &to_db(*now_ms)],
            )
            .await?;
        Ok(Audit {
            rows: from_db(col(&row, 0)?),
            expiring_rows: from_db(col(&row, 1)?),
            stored_usage: usage_at(&row, 2)?,
            stored_namespace_usage: usage_at(&row, 4)?,
            recounted: usage_at(&row, 6)?,
            usage_row: col::<i64>(&row, 8)? > 0,
            namespace_rows: from_db(col(&row, 9)?),
            chunk_rows: from_db(col(&row, 10)?),
            loose_blobs: from_db(col(&row, 11)?),
        })
    })
}
