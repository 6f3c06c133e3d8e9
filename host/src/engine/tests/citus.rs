//! What only a Citus coordinator shows: Cubby's tables distributed by
//! workspace, every request on one workspace run on the one worker holding
//! it, workspaces spread over the workers, and undistributed tables
//! refused. Each test returns with a notice unless the test server
//! (`CUBBY_TEST_POSTGRES_URL`) is a Citus coordinator.

use super::*;
use crate::OpenError;
use crate::ops::{Condition, Op, WriteOptions};
use crate::testing::{query_i64s, sql};
use crate::transfer::ImportMode;

/// The application name of the routing test's sessions.
const APP: &str = "cubby-citus-routing";

/// The test's place, if the server is a Citus coordinator.
fn citus_place() -> Option<Place> {
    let place = Place::postgres()?;
    if place.is_citus() {
        Some(place)
    } else {
        eprintln!("note: skipped: the test server is not a Citus coordinator");
        None
    }
}

/// Citus's counts of statements run on one shard and on several, by the
/// sessions that count (`citus.enable_stat_counters`), since the server
/// started.
fn shard_counts(place: &Place) -> (i64, i64) {
    match query_i64s(
        &place.db_arg(),
        "SELECT query_execution_single_shard, query_execution_multi_shard
         FROM citus_stat_counters WHERE name = current_database()",
    )[..]
    {
        [single, multi] => (single, multi),
        ref other => panic!("citus_stat_counters: {other:?}"),
    }
}

/// Transactions of the routing test's sessions that Citus committed in two
/// phases: it keeps a row per prepared transaction, named after the
/// coordinator's session, until its recovery finds it done (so set
/// `citus.recover_2pc_interval = -1` for an exact count; creating the
/// tables, distributed DDL, is one).
fn two_phase_commits(place: &Place) -> i64 {
    match query_i64s(
        &place.db_arg(),
        &format!(
            "SELECT count(*) FROM pg_dist_transaction t JOIN pg_stat_activity a
               ON t.gid LIKE 'citus\\_%\\_' || a.pid || '\\_%'
             WHERE a.application_name = '{APP}'"
        ),
    )[..]
    {
        [n] => n,
        ref other => panic!("pg_dist_transaction: {other:?}"),
    }
}

/// Every kind of request on one workspace, from the engine's API: reads,
/// writes with and without conditions, counters, expiry, batches,
/// transactions, listings, usage, quotas, clearing a namespace, an export,
/// and removing the workspace.
fn one_workspace_of_everything(storage: &Storage, id: &str) {
    let ws = storage.workspace(id).unwrap();
    let ns = ws.namespace("n").unwrap();
    ws.set("a", b"1".to_vec()).unwrap();
    ws.set_with("b", b"2".to_vec(), WriteOptions::default().ttl(SEC * 60))
        .unwrap();
    let version = ws.entry("a").unwrap().unwrap().version;
    ws.set_with(
        "a",
        b"3".to_vec(),
        WriteOptions::default().if_version(version),
    )
    .unwrap();
    assert!(
        ws.set_with("a", b"4".to_vec(), WriteOptions::default().if_absent())
            .is_err()
    );
    ws.get("a").unwrap();
    ws.get_many(&["a", "b", "c"]).unwrap();
    ws.exists("b").unwrap();
    ws.get_and_renew("b", SEC * 90).unwrap();
    ws.expire("b", None).unwrap();
    ws.increment("n", 5, None).unwrap();
    ns.increment_unsigned("u", 2, None).unwrap();
    ws.transact(vec![
        Op::check("a", Condition::ValueEquals(b"3".to_vec())),
        Op::set("t", b"x".to_vec()).in_namespace("n"),
        Op::increment("n", 1),
    ])
    .unwrap();
    ws.set_many((0..10).map(|i| (format!("m{i}"), vec![i])))
        .unwrap();
    ws.delete_many(&["m0", "m1"]).unwrap();
    ws.delete_if("m2", Condition::ValueEquals(vec![2])).unwrap();
    ws.delete("m3").unwrap();
    let page = ws.list_keys(Some("m"), None, Some(3)).unwrap();
    ws.list_keys(Some("m"), page.cursor.as_deref(), Some(3))
        .unwrap();
    ws.namespaces(None, None).unwrap();
    ws.usage().unwrap();
    ns.usage().unwrap();
    storage
        .store_quota(
            id,
            Some(crate::options::Quota {
                max_keys: 100,
                max_bytes: 10_000,
            }),
        )
        .unwrap();
    ws.quota().unwrap();
    ns.clear_all().unwrap();
    let mut export = Vec::new();
    ws.export(&mut export).unwrap();
    ws.clear_all().unwrap();
    storage.store_quota(id, None).unwrap();
}

/// On Citus, no request on one workspace runs a statement on more than one
/// shard, by Citus's own statistics (`citus_stat_counters`, counted for the
/// sessions of this test only). Importing, which touches the workspace and
/// its staging area, stays on one shard too: the staging area is made in the
/// workspace's shard.
#[test]
fn on_citus_a_request_on_one_workspace_runs_on_one_shard() {
    let Some(place) = citus_place() else {
        return;
    };
    // The sweeper looks at every workspace; not counted here.
    let options = StorageOptions {
        sweep_interval: None,
        ..StorageOptions::default()
    };
    let url = place
        .db_arg_with(&[("citus.enable_stat_counters", "on")])
        .replacen('?', &format!("?application_name={APP}&"), 1);
    let storage = Storage::connect(&url, options).unwrap();
    let (single, multi) = shard_counts(&place);
    let two_phase = two_phase_commits(&place);
    for id in ["tenant-1", "tenant-2", "tenant-3"] {
        one_workspace_of_everything(&storage, id);
    }
    let (single_after, multi_after) = shard_counts(&place);
    assert!(single_after > single, "the requests were counted");
    assert_eq!(
        multi_after - multi,
        0,
        "statements on several shards ({} on one)",
        single_after - single
    );
    assert_eq!(
        two_phase_commits(&place),
        two_phase,
        "transactions committed in two phases"
    );

    let source = storage.workspace("source").unwrap();
    source
        .set_many((0..50).map(|i| (format!("k{i}"), vec![i])))
        .unwrap();
    let mut file = Vec::new();
    source.export(&mut file).unwrap();
    // The first import of a process also looks for abandoned staging
    // areas, in every workspace (then not again for an hour).
    storage
        .workspace("warm-up")
        .unwrap()
        .import(&file[..], ImportMode::Merge)
        .unwrap();
    let (_, multi) = shard_counts(&place);
    for id in ["copy-1", "copy-2", "copy-3"] {
        let copy = storage.workspace(id).unwrap();
        copy.set("old", b"x".to_vec()).unwrap();
        copy.import(&file[..], ImportMode::Replace).unwrap();
        assert_eq!(copy.usage().unwrap().keys, 50);
    }
    let (_, multi_after) = shard_counts(&place);
    assert_eq!(multi_after - multi, 0, "an import ran on several shards");
}

/// On Citus, Cubby's tables are distributed by workspace, colocated, with
/// `cubby_meta` a reference table, and the rows of different workspaces
/// are spread over the workers.
#[test]
fn on_citus_workspaces_are_spread_over_the_workers() {
    let Some(place) = citus_place() else {
        return;
    };
    let storage = open(&place);
    for i in 0..16 {
        storage
            .workspace(&format!("spread-{i}"))
            .unwrap()
            .set("k", b"v".to_vec())
            .unwrap();
    }
    let [tables, colocations, reference] = query_i64s(
        &place.db_arg(),
        "SELECT count(*) FILTER (WHERE partmethod = 'h'
                 AND column_to_column_name(logicalrelid, partkey) = 'workspace'),
                count(DISTINCT colocationid) FILTER (WHERE partmethod = 'h'),
                count(*) FILTER (WHERE partmethod = 'n')
         FROM pg_dist_partition
         WHERE logicalrelid IN ('cubby_workspaces'::regclass, 'cubby_namespaces'::regclass,
             'cubby_entries'::regclass, 'cubby_retired_workspaces'::regclass,
             'cubby_quotas'::regclass, 'cubby_meta'::regclass)",
    )[..] else {
        panic!("three counts")
    };
    assert_eq!((tables, colocations, reference), (5, 1, 1));
    let [workers] = query_i64s(
        &place.db_arg(),
        "SELECT count(DISTINCT p.nodeport) FROM cubby_entries e
         JOIN pg_dist_shard_placement p
           ON p.shardid = get_shard_id_for_distribution_column('cubby_entries', e.workspace)",
    )[..] else {
        panic!("one count")
    };
    assert!(workers >= 2, "16 workspaces on {workers} worker(s)");
}

/// Cubby's tables made undistributed on a Citus coordinator (as by a Cubby
/// that connected before Citus was installed) are refused, naming them and
/// the statements that distribute them; nothing is changed.
#[test]
fn on_citus_undistributed_tables_are_refused_with_the_statements_that_fix_them() {
    let Some(place) = citus_place() else {
        return;
    };
    sql(
        &place.db_arg(),
        "CREATE TABLE cubby_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
         INSERT INTO cubby_meta VALUES ('schema_version', 2);
         CREATE TABLE cubby_workspaces (workspace BYTEA PRIMARY KEY, keys BIGINT NOT NULL,
             bytes BIGINT NOT NULL, next_version BIGINT NOT NULL);
         CREATE TABLE cubby_namespaces (workspace BYTEA NOT NULL, namespace BYTEA NOT NULL,
             keys BIGINT NOT NULL, bytes BIGINT NOT NULL, PRIMARY KEY (workspace, namespace));
         CREATE TABLE cubby_entries (workspace BYTEA NOT NULL, namespace BYTEA NOT NULL,
             key BYTEA NOT NULL, value BYTEA NOT NULL, version BIGINT NOT NULL,
             expires_at BIGINT, PRIMARY KEY (workspace, namespace, key));
         CREATE TABLE cubby_retired_workspaces (workspace BYTEA PRIMARY KEY,
             next_version BIGINT NOT NULL);
         CREATE TABLE cubby_quotas (workspace BYTEA PRIMARY KEY, max_keys BIGINT NOT NULL,
             max_bytes BIGINT NOT NULL)",
    );
    let err = Storage::connect(&place.db_arg(), StorageOptions::default()).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, OpenError::NotDistributed { .. }), "{err:?}");
    assert!(message.contains("cubby_entries"), "{message}");
    assert!(
        message.contains("SELECT create_reference_table('cubby_meta')")
            && message.contains(
                "SELECT create_distributed_table('cubby_entries', 'workspace', \
                 colocate_with => 'cubby_workspaces')"
            ),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");
    let [distributed] = query_i64s(
        &place.db_arg(),
        "SELECT count(*) FROM pg_dist_partition WHERE logicalrelid = 'cubby_entries'::regclass",
    )[..] else {
        panic!("one count")
    };
    assert_eq!(distributed, 0, "nothing was changed");
    // Running what the message says makes the database usable.
    let fix = message.rsplit(": ").next().unwrap();
    sql(&place.db_arg(), fix);
    let storage = open(&place);
    storage
        .workspace("w")
        .unwrap()
        .set("k", b"v".to_vec())
        .unwrap();
}
