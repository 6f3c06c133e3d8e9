//! Databases written by earlier Cubby versions, opened by this one: every
//! entry, version, expiry, usage row and quota kept through the upgrade,
//! checked against a recount.
//!
//! Each earlier layout is written here by code of its own, frozen: its own
//! table definitions and record encoding, never the engine's current ones,
//! so a later change of the schema cannot silently change what "the old
//! layout" means. `every_earlier_schema_version_has_a_layout_here` fails
//! when the schema version moves on and the layout it leaves behind is not
//! added below. (A file from a newer Cubby is refused: `redb_only.rs`,
//! `postgres_only.rs`.)

use std::collections::BTreeSet;
use std::path::Path;

use redb::{ReadableDatabase, TableDefinition};

use super::*;
use crate::ops::Usage;
use crate::options::Quota;
use crate::testing::{assert_usage_is_exact, audit, query_i64s, sql};

/// The clock of every check: entries expire relative to it.
const NOW_MS: u64 = 1_900_000_000_000;

/// One entry an old Cubby stored.
struct Old {
    ws: &'static str,
    ns: &'static str,
    key: &'static str,
    value: &'static [u8],
    version: u64,
    expires_at_ms: Option<u64>,
}

/// What the old databases hold: prefix-related workspaces, a namespace
/// next to the default space, an entry that expires later, one already
/// expired (stored, not swept yet), a counter, and bytes that are not
/// UTF-8.
const OLD: &[Old] = &[
    Old {
        ws: "a",
        ns: "",
        key: "plain",
        value: b"one",
        version: 3,
        expires_at_ms: None,
    },
    Old {
        ws: "a",
        ns: "",
        key: "counter",
        value: b"41",
        version: 7,
        expires_at_ms: None,
    },
    Old {
        ws: "a",
        ns: "",
        key: "binary",
        value: &[0, 255, 10, 13],
        version: 4,
        expires_at_ms: None,
    },
    Old {
        ws: "a",
        ns: "n",
        key: "plain",
        value: b"in n",
        version: 5,
        expires_at_ms: None,
    },
    Old {
        ws: "a",
        ns: "n",
        key: "later",
        value: b"an hour",
        version: 6,
        expires_at_ms: Some(NOW_MS + 3_600_000),
    },
    Old {
        ws: "a",
        ns: "n",
        key: "gone",
        value: b"expired",
        version: 8,
        expires_at_ms: Some(NOW_MS - 1_000),
    },
    Old {
        ws: "ab",
        ns: "",
        key: "plain",
        value: b"two",
        version: 2,
        expires_at_ms: None,
    },
    Old {
        ws: "ab",
        ns: "n",
        key: "x",
        value: b"y",
        version: 9,
        expires_at_ms: None,
    },
];

/// The next version an old database would have given (one counter for a
/// redb file; one per workspace on PostgreSQL, here the same).
const NEXT_VERSION: u64 = 10;

/// What a layout could store.
#[derive(Clone, Copy)]
struct Can {
    namespaces: bool,
    expiry: bool,
    /// Stored quotas: the old database holds [`QUOTA`] for workspace "a".
    quotas: bool,
}

/// The quota an old database with stored quotas holds for workspace "a".
const QUOTA: Quota = Quota {
    max_keys: 500,
    max_bytes: 70_000,
};

impl Can {
    fn keep(self, e: &Old) -> bool {
        (self.namespaces || e.ns.is_empty()) && (self.expiry || e.expires_at_ms.is_none())
    }
}

/// (keys, bytes) as every Cubby counted them: every stored record, its key
/// and value bytes.
fn counted<'a>(entries: impl IntoIterator<Item = &'a Old>) -> (u64, u64) {
    entries.into_iter().fold((0, 0), |(k, b), e| {
        (k + 1, b + (e.key.len() + e.value.len()) as u64)
    })
}

/// The entries of `ws` (in namespace `ns`, if given) that `can` keeps.
fn of(can: Can, ws: &str, ns: Option<&str>) -> Vec<&'static Old> {
    OLD.iter()
        .filter(|e| can.keep(e) && e.ws == ws && ns.is_none_or(|ns| e.ns == ns))
        .collect()
}

/// Checks everything an upgraded database must have kept, through the
/// current engine.
fn assert_kept(storage: &Storage, can: Can) {
    let live = |e: &&Old| e.expires_at_ms.is_none_or(|at| at > NOW_MS);
    for e in OLD.iter().filter(|e| can.keep(e)) {
        let space = storage.workspace(e.ws).unwrap().namespace(e.ns).unwrap();
        let entry = space.entry(e.key).unwrap();
        if live(&e) {
            let entry = entry.unwrap_or_else(|| panic!("{}/{}/{} was lost", e.ws, e.ns, e.key));
            assert_eq!(entry.value, e.value, "{}/{}/{}", e.ws, e.ns, e.key);
            assert_eq!(entry.version, e.version, "{}/{}/{}", e.ws, e.ns, e.key);
            let left = e.expires_at_ms.map(|at| Duration::from_millis(at - NOW_MS));
            assert_eq!(entry.expires_in, left, "{}/{}/{}", e.ws, e.ns, e.key);
        } else {
            assert_eq!(entry, None, "{}/{}/{} had expired", e.ws, e.ns, e.key);
        }
    }
    for ws in ["a", "ab"] {
        let workspace = storage.workspace(ws).unwrap();
        let (keys, bytes) = counted(of(can, ws, None).into_iter().filter(live));
        assert_eq!(workspace.usage().unwrap(), Usage { keys, bytes }, "{ws}");
        assert_usage_is_exact(storage, ws);
        let names: BTreeSet<&str> = of(can, ws, None)
            .into_iter()
            .filter(|e| live(e) && !e.ns.is_empty())
            .map(|e| e.ns)
            .collect();
        let listed = workspace.namespaces(None, None).unwrap().keys;
        assert_eq!(listed, names.into_iter().collect::<Vec<_>>(), "{ws}");
        for ns in ["", "n"] {
            let (keys, bytes) = counted(of(can, ws, Some(ns)).into_iter().filter(live));
            let usage = workspace.namespace(ns).unwrap().usage().unwrap();
            assert_eq!(usage, Usage { keys, bytes }, "{ws}/{ns}");
        }
        // The stored quota is kept (none before quotas could be stored).
        let kept = (can.quotas && ws == "a").then_some(QUOTA);
        assert_eq!(storage.stored_quota(ws).unwrap(), kept, "{ws}");
        // Versions never repeat.
        assert!(workspace.set("new", b"v".to_vec()).unwrap() >= NEXT_VERSION);
    }
    assert_eq!(
        storage
            .workspace("a")
            .unwrap()
            .increment("counter", 1, None)
            .unwrap(),
        42
    );
    let ab = storage.workspace("ab").unwrap();
    let quota = Quota {
        max_keys: ab.usage().unwrap().keys,
        max_bytes: 1_000,
    };
    storage.store_quota("ab", Some(quota)).unwrap();
    assert_eq!(storage.stored_quota("ab").unwrap(), Some(quota));
    let refused = ab.set("one-more", b"v".to_vec()).unwrap_err();
    assert!(
        matches!(refused, crate::StorageError::QuotaExceeded(_)),
        "{refused:?}"
    );
    // The sweeper removes what had expired, and usage follows.
    storage.prune().unwrap();
    for ws in ["a", "ab"] {
        let a = audit(storage, ws);
        assert_eq!(a.stored_usage, a.recounted, "{ws} after the sweep");
        assert_usage_is_exact(storage, ws);
    }
}

fn clock_options() -> StorageOptions {
    StorageOptions {
        clock: Arc::new(ManualClock::new(NOW_MS)),
        sweep_interval: None,
        ..StorageOptions::default()
    }
}

// ---- redb ----

/// A redb layout: its schema version, the code that writes it, and what it
/// could store.
type RedbLayout = (u64, fn(&Path), Can);

/// redb layouts by schema version.
const REDB_LAYOUTS: &[RedbLayout] = &[
    (
        1,
        redb_schema_1,
        Can {
            namespaces: false,
            expiry: false,
            quotas: false,
        },
    ),
    (
        2,
        redb_schema_2,
        Can {
            namespaces: true,
            expiry: true,
            quotas: false,
        },
    ),
    (
        3,
        redb_schema_3,
        Can {
            namespaces: true,
            expiry: true,
            quotas: true,
        },
    ),
    (
        4,
        redb_schema_4,
        Can {
            namespaces: true,
            expiry: true,
            quotas: true,
        },
    ),
];

/// Record format 1: a tag, the version and the expiry (0: none) as
/// little-endian u64, then the value.
fn record_1(e: &Old) -> Vec<u8> {
    let mut out = vec![1];
    out.extend_from_slice(&e.version.to_le_bytes());
    out.extend_from_slice(&e.expires_at_ms.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(e.value);
    out
}

type EntriesV1 =
    TableDefinition<'static, (&'static str, &'static str, &'static str), &'static [u8]>;
const V_META: TableDefinition<&str, u64> = TableDefinition::new("cubby_meta");
const V_ENTRIES: EntriesV1 = TableDefinition::new("cubby_entries");
const V_USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("cubby_usage");

/// Cubby 0.1: entries in the default space only, no expiries written; a
/// time-first expiry index (empty); usage per workspace.
fn redb_schema_1(path: &Path) {
    let expiry: TableDefinition<(u64, &str, &str, &str), ()> = TableDefinition::new("cubby_expiry");
    let can = REDB_LAYOUTS[0].2;
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(V_META).unwrap();
        meta.insert("schema_version", 1).unwrap();
        meta.insert("next_version", NEXT_VERSION).unwrap();
        let mut entries = txn.open_table(V_ENTRIES).unwrap();
        let mut usage = txn.open_table(V_USAGE).unwrap();
        for ws in ["a", "ab"] {
            for e in of(can, ws, None) {
                entries
                    .insert((e.ws, e.ns, e.key), record_1(e).as_slice())
                    .unwrap();
            }
            usage.insert(ws, counted(of(can, ws, None))).unwrap();
        }
        txn.open_table(expiry).unwrap();
    }
    txn.commit().unwrap();
}

/// Before the default space lost its usage row: schema 3's tables (the
/// default space's usage row among them) and the tables of streamed values.
fn redb_schema_4(path: &Path) {
    redb_schema_3(path);
    let chunks: TableDefinition<(&str, u64, u32), &[u8]> = TableDefinition::new("cubby_chunks");
    let loose: TableDefinition<(&str, u64), (u8, u64, u64)> =
        TableDefinition::new("cubby_loose_blobs");
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(chunks).unwrap();
    txn.open_table(loose).unwrap();
    txn.open_table(V_META)
        .unwrap()
        .insert("schema_version", 4)
        .unwrap();
    txn.commit().unwrap();
}

/// Before streamed values: schema 2's tables, and the stored quotas.
fn redb_schema_3(path: &Path) {
    redb_layout_2_or_3(path, 3);
    let quotas: TableDefinition<&str, (u64, u64)> = TableDefinition::new("cubby_quotas");
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(quotas)
        .unwrap()
        .insert("a", (QUOTA.max_keys, QUOTA.max_bytes))
        .unwrap();
    txn.commit().unwrap();
}

/// Before stored quotas: namespaces with their own usage, expiries with
/// an index by workspace, no quota table.
fn redb_schema_2(path: &Path) {
    redb_layout_2_or_3(path, 2);
}

/// The tables schemas 2 and 3 share, with `version` in the meta table.
fn redb_layout_2_or_3(path: &Path, version: u64) {
    let ns_usage: TableDefinition<(&str, &str), (u64, u64)> =
        TableDefinition::new("cubby_namespace_usage");
    let expiry: TableDefinition<(&str, u64, &str, &str), u64> =
        TableDefinition::new("cubby_expiry_by_workspace");
    let can = REDB_LAYOUTS[1].2;
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut meta = txn.open_table(V_META).unwrap();
        meta.insert("schema_version", version).unwrap();
        meta.insert("next_version", NEXT_VERSION).unwrap();
        let mut entries = txn.open_table(V_ENTRIES).unwrap();
        let mut usage = txn.open_table(V_USAGE).unwrap();
        let mut ns_usage = txn.open_table(ns_usage).unwrap();
        let mut expiry = txn.open_table(expiry).unwrap();
        for ws in ["a", "ab"] {
            for e in of(can, ws, None) {
                entries
                    .insert((e.ws, e.ns, e.key), record_1(e).as_slice())
                    .unwrap();
                if let Some(at) = e.expires_at_ms {
                    let bytes = (e.key.len() + e.value.len()) as u64;
                    expiry.insert((e.ws, at, e.ns, e.key), bytes).unwrap();
                }
            }
            usage.insert(ws, counted(of(can, ws, None))).unwrap();
            for ns in ["", "n"] {
                let here = of(can, ws, Some(ns));
                if !here.is_empty() {
                    ns_usage.insert((ws, ns), counted(here)).unwrap();
                }
            }
        }
    }
    txn.commit().unwrap();
}

fn redb_schema_of(path: &Path) -> u64 {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(V_META).unwrap();
    meta.get("schema_version").unwrap().unwrap().value()
}

#[test]
fn every_earlier_redb_layout_is_upgraded_keeping_everything() {
    for &(version, write, can) in REDB_LAYOUTS {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.redb");
        write(&path);
        assert_eq!(redb_schema_of(&path), version);
        let storage = Storage::open(&path, clock_options()).unwrap();
        assert_kept(&storage, can);
        drop(storage);
        let current = crate::engine::backend::redb::SCHEMA_VERSION;
        assert_eq!(
            redb_schema_of(&path),
            current,
            "schema {version} was upgraded"
        );
        // And it opens again as a current file.
        let storage = Storage::open(&path, clock_options()).unwrap();
        assert_eq!(
            storage
                .workspace("a")
                .unwrap()
                .get("plain")
                .unwrap()
                .as_deref(),
            Some(&b"one"[..])
        );
    }
}

// ---- PostgreSQL ----

/// A PostgreSQL layout: its schema version, and the code that writes it
/// (given the database's URL).
type PostgresLayout = (i64, fn(&str));

/// PostgreSQL layouts by schema version.
const POSTGRES_LAYOUTS: &[PostgresLayout] = &[(1, postgres_schema_1), (2, postgres_schema_2)];

/// Before streamed values: schema 1's tables, and the stored quotas.
fn postgres_schema_2(url: &str) {
    postgres_schema_1(url);
    sql(
        url,
        &format!(
            "CREATE TABLE cubby_quotas (workspace BYTEA PRIMARY KEY, max_keys BIGINT NOT NULL,
                 max_bytes BIGINT NOT NULL);
             INSERT INTO cubby_quotas VALUES ('\\x61'::bytea, {}, {});
             UPDATE cubby_meta SET value = 2 WHERE name = 'schema_version';",
            QUOTA.max_keys, QUOTA.max_bytes
        ),
    );
}

/// Before stored quotas: every table of today but `cubby_quotas`.
fn postgres_schema_1(url: &str) {
    let mut statements = String::from(
        "CREATE TABLE cubby_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
         CREATE TABLE cubby_workspaces (workspace BYTEA PRIMARY KEY, keys BIGINT NOT NULL,
             bytes BIGINT NOT NULL, next_version BIGINT NOT NULL);
         CREATE TABLE cubby_namespaces (workspace BYTEA NOT NULL, namespace BYTEA NOT NULL,
             keys BIGINT NOT NULL, bytes BIGINT NOT NULL, PRIMARY KEY (workspace, namespace));
         CREATE TABLE cubby_entries (workspace BYTEA NOT NULL, namespace BYTEA NOT NULL,
             key BYTEA NOT NULL, value BYTEA NOT NULL, version BIGINT NOT NULL,
             expires_at BIGINT, PRIMARY KEY (workspace, namespace, key));
         CREATE TABLE cubby_retired_workspaces (workspace BYTEA PRIMARY KEY,
             next_version BIGINT NOT NULL);
         CREATE INDEX cubby_entries_workspace_expiry ON cubby_entries (workspace, expires_at);
         CREATE INDEX cubby_entries_expiry ON cubby_entries (expires_at);
         INSERT INTO cubby_meta VALUES ('schema_version', 1);",
    );
    let hex = |b: &[u8]| {
        format!(
            "'\\x{}'::bytea",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        )
    };
    let can = Can {
        namespaces: true,
        expiry: true,
        quotas: false,
    };
    for ws in ["a", "ab"] {
        let (keys, bytes) = counted(of(can, ws, None));
        statements.push_str(&format!(
            "INSERT INTO cubby_workspaces VALUES ({}, {keys}, {bytes}, {NEXT_VERSION});",
            hex(ws.as_bytes())
        ));
        for ns in ["", "n"] {
            let (keys, bytes) = counted(of(can, ws, Some(ns)));
            if keys > 0 {
                statements.push_str(&format!(
                    "INSERT INTO cubby_namespaces VALUES ({}, {}, {keys}, {bytes});",
                    hex(ws.as_bytes()),
                    hex(ns.as_bytes())
                ));
            }
        }
        for e in of(can, ws, None) {
            let expiry = e
                .expires_at_ms
                .map_or("NULL".to_owned(), |at| at.to_string());
            statements.push_str(&format!(
                "INSERT INTO cubby_entries VALUES ({}, {}, {}, {}, {}, {expiry});",
                hex(e.ws.as_bytes()),
                hex(e.ns.as_bytes()),
                hex(e.key.as_bytes()),
                hex(e.value),
                e.version
            ));
        }
    }
    sql(url, &statements);
}

#[test]
fn every_earlier_postgres_layout_is_upgraded_keeping_everything() {
    for &(version, write) in POSTGRES_LAYOUTS {
        let Some(place) = Place::postgres() else {
            return;
        };
        if place.is_citus() {
            // An old layout made by hand is undistributed: refused there
            // (`citus.rs`).
            eprintln!("note: skipped on Citus");
            return;
        }
        let url = place.db_arg();
        write(&url);
        let schema = || {
            query_i64s(
                &url,
                "SELECT value FROM cubby_meta WHERE name = 'schema_version'",
            )[0]
        };
        assert_eq!(schema(), version);
        let storage = Storage::connect(&url, clock_options()).unwrap();
        let can = Can {
            namespaces: true,
            expiry: true,
            quotas: version >= 2,
        };
        assert_kept(&storage, can);
        drop(storage);
        let current = crate::engine::backend::postgres::SCHEMA_VERSION;
        assert_eq!(schema(), current, "schema {version} was upgraded");
    }
}

/// When a change of either schema moves its version on, the layout it
/// leaves behind must be added above (written by frozen code, as these
/// are), so that every earlier version stays covered.
#[test]
fn every_earlier_schema_version_has_a_layout_here() {
    let redb: Vec<u64> = REDB_LAYOUTS.iter().map(|l| l.0).collect();
    let current = crate::engine::backend::redb::SCHEMA_VERSION;
    assert_eq!(redb, (1..current).collect::<Vec<_>>(), "redb layouts");
    let postgres: Vec<i64> = POSTGRES_LAYOUTS.iter().map(|l| l.0).collect();
    let current = crate::engine::backend::postgres::SCHEMA_VERSION;
    assert_eq!(
        postgres,
        (1..current).collect::<Vec<_>>(),
        "PostgreSQL layouts"
    );
}
