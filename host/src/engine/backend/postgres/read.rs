//! Reads: each one SQL statement, so each sees one snapshot. An entry is
//! live while `expires_at IS NULL OR expires_at > now` (the same rule as
//! `Row::is_live`); usage subtracts the expired entries not swept yet.

use deadpool_postgres::Object;
use deadpool_postgres::tokio_postgres::types::{FromSql, ToSql};

use super::retry::{BoxFuture, Failure};
use super::{from_db, to_db};
use crate::engine::accounting::live;
use crate::engine::backend::{Page, Row};
use crate::engine::blob::BlobRef;
use crate::engine::{StorageError, Usage};

/// A column of a result row; a value of the wrong type means the table is
/// not what Cubby wrote.
pub(super) fn col<'r, T: FromSql<'r>>(
    row: &'r deadpool_postgres::tokio_postgres::Row,
    index: usize,
) -> Result<T, Failure> {
    row.try_get(index).map_err(|e| {
        Failure::Refused(StorageError::Corrupt(format!(
            "column {index} of a stored row: {e}"
        )))
    })
}

/// A stored identity (`BYTEA`) as the string Cubby wrote.
pub(super) fn text(bytes: Vec<u8>) -> Result<String, Failure> {
    String::from_utf8(bytes).map_err(|_| {
        Failure::Refused(StorageError::Corrupt(
            "a stored key or name is not UTF-8".into(),
        ))
    })
}

/// `value, version, expires_at, blob` starting at column `at`.
pub(super) fn row_at(
    r: &deadpool_postgres::tokio_postgres::Row,
    at: usize,
) -> Result<Row, Failure> {
    Ok(Row {
        value: col(r, at)?,
        version: from_db(col(r, at + 1)?),
        expires_at_ms: col::<Option<i64>>(r, at + 2)?.map(from_db),
        blob: blob_at(r, at + 3)?,
    })
}

/// A streamed value's reference in column `at` (`NULL`: none).
pub(super) fn blob_at(
    r: &deadpool_postgres::tokio_postgres::Row,
    at: usize,
) -> Result<Option<BlobRef>, Failure> {
    col::<Option<Vec<u8>>>(r, at)?
        .map(|b| BlobRef::decode(&b))
        .transpose()
        .map_err(Failure::Refused)
}

pub(super) fn usage_at(
    r: &deadpool_postgres::tokio_postgres::Row,
    at: usize,
) -> Result<Usage, Failure> {
    Ok(Usage {
        keys: from_db(col(r, at)?),
        bytes: from_db(col(r, at + 1)?),
    })
}

/// Some keys of one namespace.
pub(super) struct Keys {
    ws: String,
    ns: String,
    keys: Vec<String>,
    now_ms: u64,
}

impl Keys {
    pub fn new(ws: &str, ns: &str, keys: Vec<String>, now_ms: u64) -> Self {
        Self {
            ws: ws.to_owned(),
            ns: ns.to_owned(),
            keys,
            now_ms,
        }
    }
}

pub(super) fn get_many<'a>(
    c: &'a mut Object,
    a: &'a Keys,
) -> BoxFuture<'a, Result<Vec<Option<Row>>, Failure>> {
    Box::pin(async move {
        let stmt = c
            .prepare_cached(
                "SELECT key, value, version, expires_at, blob FROM cubby_entries
                 WHERE workspace = $1 AND namespace = $2 AND key = ANY($3)
                   AND (expires_at IS NULL OR expires_at > $4)",
            )
            .await?;
        let keys: Vec<&[u8]> = a.keys.iter().map(|k| k.as_bytes()).collect();
        let rows = c
            .query(
                &stmt,
                &[&a.ws.as_bytes(), &a.ns.as_bytes(), &keys, &to_db(a.now_ms)],
            )
            .await?;
        let mut found = std::collections::HashMap::with_capacity(rows.len());
        for r in &rows {
            found.insert(col::<Vec<u8>>(r, 0)?, row_at(r, 1)?);
        }
        Ok(a.keys
            .iter()
            .map(|k| found.get(k.as_bytes()).cloned())
            .collect())
    })
}

/// The live entry under the one key of `a` (a statement of its own: no
/// array to encode and match, no map of the rows found).
pub(super) fn get_one<'a>(
    c: &'a mut Object,
    a: &'a Keys,
) -> BoxFuture<'a, Result<Option<Row>, Failure>> {
    Box::pin(async move {
        let stmt = c
            .prepare_cached(
                "SELECT value, version, expires_at, blob FROM cubby_entries
                 WHERE workspace = $1 AND namespace = $2 AND key = $3
                   AND (expires_at IS NULL OR expires_at > $4)",
            )
            .await?;
        let key = a.keys.first().map_or(&[][..], |k| k.as_bytes());
        let row = c
            .query_opt(
                &stmt,
                &[&a.ws.as_bytes(), &a.ns.as_bytes(), &key, &to_db(a.now_ms)],
            )
            .await?;
        row.map(|r| row_at(&r, 0)).transpose()
    })
}

/// One page of a listing.
pub(super) struct Listing {
    pub ws: String,
    pub ns: String,
    pub prefix: String,
    pub after: Option<String>,
    pub limit: usize,
    pub now_ms: u64,
}

/// The smallest byte string above every key that starts with `prefix`.
/// UTF-8 never contains the byte 0xFF, so it bounds every key, and the last
/// byte of a non-empty prefix can always be incremented.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    match prefix.split_last() {
        None => vec![0xFF],
        Some((last, head)) => {
            let mut end = head.to_vec();
            end.push(last.saturating_add(1));
            end
        }
    }
}

/// Runs a listing statement that selects up to `limit + 1` names (its last
/// parameter) and makes a page of them.
async fn page(
    c: &Object,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    limit: usize,
) -> Result<Page, Failure> {
    let stmt = c.prepare_cached(sql).await?;
    let one_more = limit as i64 + 1;
    let mut all = params.to_vec();
    all.push(&one_more);
    let mut names = c
        .query(&stmt, &all)
        .await?
        .iter()
        .map(|r| text(col(r, 0)?))
        .collect::<Result<Vec<_>, _>>()?;
    let more = names.len() > limit;
    names.truncate(limit);
    Ok(Page { names, more })
}

pub(super) fn list_keys<'a>(
    c: &'a mut Object,
    a: &'a Listing,
) -> BoxFuture<'a, Result<Page, Failure>> {
    Box::pin(async move {
        let prefix = a.prefix.as_bytes();
        let sql = "SELECT key FROM cubby_entries
                   WHERE workspace = $1 AND namespace = $2
                     AND key >= $3 AND key < $4 AND key > $5
                     AND (expires_at IS NULL OR expires_at > $6)
                   ORDER BY key LIMIT $7";
        let params: [&(dyn ToSql + Sync); 6] = [
            &a.ws.as_bytes(),
            &a.ns.as_bytes(),
            &prefix,
            &prefix_end(prefix),
            &a.after.as_deref().unwrap_or("").as_bytes(),
            &to_db(a.now_ms),
        ];
        page(c, sql, &params, a.limit).await
    })
}

pub(super) fn list_namespaces<'a>(
    c: &'a mut Object,
    a: &'a Listing,
) -> BoxFuture<'a, Result<Page, Failure>> {
    Box::pin(async move {
        // A join rather than a correlated subquery, which Citus would run
        // on every shard.
        let sql = "SELECT n.namespace FROM cubby_namespaces n
                   LEFT JOIN (SELECT workspace, namespace, count(*) AS expired
                              FROM cubby_entries WHERE workspace = $1 AND expires_at <= $3
                              GROUP BY workspace, namespace) x
                     ON x.workspace = n.workspace AND x.namespace = n.namespace
                   WHERE n.workspace = $1 AND n.namespace > $2
                     AND n.keys > coalesce(x.expired, 0)
                   ORDER BY n.namespace LIMIT $4";
        let params: [&(dyn ToSql + Sync); 3] = [
            &a.ws.as_bytes(),
            &a.after.as_deref().unwrap_or("").as_bytes(),
            &to_db(a.now_ms),
        ];
        page(c, sql, &params, a.limit).await
    })
}

/// The usage of a workspace, or of one of its namespaces.
pub(super) struct UsageOf {
    pub ws: String,
    pub ns: Option<String>,
    pub now_ms: u64,
}

pub(super) fn usage<'a>(
    c: &'a mut Object,
    a: &'a UsageOf,
) -> BoxFuture<'a, Result<Usage, Failure>> {
    Box::pin(async move {
        let row = match &a.ns {
            None => {
                let stmt = c
                    .prepare_cached(
                        "SELECT
                           coalesce((SELECT keys FROM cubby_workspaces WHERE workspace = $1), 0),
                           coalesce((SELECT bytes FROM cubby_workspaces WHERE workspace = $1), 0),
                           (SELECT count(*) FROM cubby_entries
                            WHERE workspace = $1 AND expires_at <= $2),
                           (SELECT coalesce(sum(length(key) + coalesce(stored, length(value))), 0)::BIGINT
                            FROM cubby_entries WHERE workspace = $1 AND expires_at <= $2)",
                    )
                    .await?;
                c.query_one(&stmt, &[&a.ws.as_bytes(), &to_db(a.now_ms)])
                    .await?
            }
            Some(ns) => {
                let stmt = c
                    .prepare_cached(
                        "SELECT
                           coalesce((SELECT keys FROM cubby_namespaces
                                     WHERE workspace = $1 AND namespace = $3), 0),
                           coalesce((SELECT bytes FROM cubby_namespaces
                                     WHERE workspace = $1 AND namespace = $3), 0),
                           (SELECT count(*) FROM cubby_entries
                            WHERE workspace = $1 AND namespace = $3 AND expires_at <= $2),
                           (SELECT coalesce(sum(length(key) + coalesce(stored, length(value))), 0)::BIGINT
                            FROM cubby_entries
                            WHERE workspace = $1 AND namespace = $3 AND expires_at <= $2)",
                    )
                    .await?;
                c.query_one(&stmt, &[&a.ws.as_bytes(), &to_db(a.now_ms), &ns.as_bytes()])
                    .await?
            }
        };
        Ok(live(usage_at(&row, 0)?, usage_at(&row, 2)?))
    })
}

pub(super) fn workspaces<'a>(
    c: &'a mut Object,
    now_ms: &'a u64,
) -> BoxFuture<'a, Result<Vec<(String, Usage)>, Failure>> {
    Box::pin(async move {
        let stmt = c
            .prepare_cached(
                "SELECT w.workspace, w.keys, w.bytes, coalesce(x.k, 0), coalesce(x.b, 0)
                 FROM cubby_workspaces w
                 LEFT JOIN (SELECT workspace, count(*) AS k,
                                   sum(length(key) + coalesce(stored, length(value)))::BIGINT AS b
                            FROM cubby_entries WHERE expires_at <= $1
                            GROUP BY workspace) x ON x.workspace = w.workspace
                 WHERE w.keys - coalesce(x.k, 0) > 0
                 ORDER BY w.workspace",
            )
            .await?;
        let rows = c.query(&stmt, &[&to_db(*now_ms)]).await?;
        rows.iter()
            .map(|r| Ok((text(col(r, 0)?)?, live(usage_at(r, 1)?, usage_at(r, 3)?))))
            .collect()
    })
}
