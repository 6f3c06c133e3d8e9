//! Benchmarks of the storage path, each against a raw-redb baseline measured
//! in the same run on the same machine, and (when `CUBBY_TEST_POSTGRES_URL`
//! names a server) the PostgreSQL backend against the redb row of the same
//! operation. Prints a table.
//!
//! ```sh
//! cargo bench -p cubby-host --bench storage
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use cubby_host::testing::Place;
use cubby_host::{Runtime, Storage, StorageOptions, Workspace};
use redb::{ReadableDatabase, TableDefinition};

const ROUNDS: usize = 5;
const GETS: u32 = 50_000;
const CALLS: u32 = 400;
const WRITES: u32 = 100;
const WRITERS: u32 = 32;
const WRITES_EACH: u32 = 20;
/// Gets per round on PostgreSQL, where one costs a network round trip.
const PG_GETS: u32 = 2_000;
const RAW: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("raw");

struct Row {
    name: &'static str,
    per_op: Duration,
    baseline: Option<Duration>,
}

/// Times `n` runs of `f` (after `n / 10` warm-up runs); the time per run.
fn timed(n: u32, mut f: impl FnMut()) -> Duration {
    for _ in 0..n / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed() / n
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// This VM's timings drift by tens of percent from minute to minute, so each
/// candidate is measured in rounds that alternate with its baseline, and the
/// medians are compared.
fn versus(
    rounds: usize,
    mut baseline: impl FnMut() -> Duration,
    mut candidate: impl FnMut() -> Duration,
) -> (Duration, Duration) {
    let (mut b, mut c) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        b.push(baseline());
        c.push(candidate());
    }
    (median(b), median(c))
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let value = [7u8; 100];

    // Baseline store: raw redb with the same tuple key as ours.
    let raw = redb::Database::create(dir.path().join("raw.redb")).unwrap();
    let raw_put = |key: &str| {
        let txn = raw.begin_write().unwrap();
        txn.open_table(RAW)
            .unwrap()
            .insert(("w", "", key), &value[..])
            .unwrap();
        txn.commit().unwrap();
    };
    raw_put("key");
    let raw_get = || {
        timed(GETS, || {
            let txn = raw.begin_read().unwrap();
            let table = txn.open_table(RAW).unwrap();
            std::hint::black_box(
                table
                    .get(("w", "", "key"))
                    .unwrap()
                    .map(|g| g.value().to_vec()),
            );
        })
    };

    let storage = Storage::open(dir.path().join("cubby.redb"), StorageOptions::default()).unwrap();
    let ws = storage.workspace("w").unwrap();
    ws.set("key", value).unwrap();

    let (base, engine) = versus(ROUNDS, raw_get, || {
        timed(GETS, || drop(std::hint::black_box(ws.get("key").unwrap())))
    });
    rows.push(Row {
        name: "raw redb get, 1 read txn per get [baseline]",
        per_op: base,
        baseline: None,
    });
    rows.push(Row {
        name: "Workspace::get (engine)",
        per_op: engine,
        baseline: Some(base),
    });

    let runtime = Runtime::builder()
        .cache_dir(cubby_artifacts::CACHE_DIR)
        .build()
        .unwrap();
    let probe = runtime.load_file(cubby_artifacts::PROBE).await.unwrap();
    let request = format!(r#"{{"op":"repeat-get","key":"key","n":{GETS}}}"#);
    let mut guest = Vec::new();
    let mut base = Vec::new();
    for _ in 0..ROUNDS {
        base.push(raw_get());
        let start = Instant::now();
        let answer = probe.call(&ws, request.as_bytes()).await.unwrap();
        guest.push(start.elapsed() / GETS);
        assert_eq!(answer, format!(r#"{{"ok":{GETS}}}"#).as_bytes());
    }
    let base = median(base);
    rows.push(Row {
        name: "guest -> host -> redb get, many in one call",
        per_op: median(guest),
        baseline: Some(base),
    });

    let mut calls = Vec::new();
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..CALLS {
            probe
                .call(&ws, br#"{"op":"exists","key":"key"}"#)
                .await
                .unwrap();
        }
        calls.push(start.elapsed() / CALLS);
    }
    rows.push(Row {
        name: "whole call: fresh store, instantiate, 1 get",
        per_op: median(calls),
        baseline: Some(base),
    });

    // Baseline: raw redb, one durable (fsync'd) commit per write.
    let mut n = 0;
    let (base, single) = versus(
        3,
        || {
            timed(WRITES, || {
                n += 1;
                raw_put(&format!("k{n}"))
            })
        },
        || {
            timed(WRITES, || {
                ws.set(&format!("k{}", fastish_id()), value).unwrap();
            })
        },
    );
    rows.push(Row {
        name: "raw redb durable write, 1 thread [baseline]",
        per_op: base,
        baseline: None,
    });
    rows.push(Row {
        name: "Workspace::set durable, 1 thread",
        per_op: single,
        baseline: Some(base),
    });

    let redb_group = concurrent_writes(&storage);
    rows.push(Row {
        name: "Workspace::set durable, 32 threads (group commit)",
        per_op: redb_group,
        baseline: Some(base),
    });

    match Place::postgres() {
        Some(place) => postgres_rows(&place, &storage, &mut rows, redb_group),
        None => println!("(no PostgreSQL server: its rows are left out)"),
    }
    print_table(&rows);
}

/// The PostgreSQL backend, each row against the redb row of the same
/// operation, measured in alternating rounds.
fn postgres_rows(place: &Place, redb: &Storage, rows: &mut Vec<Row>, redb_group: Duration) {
    let value = [7u8; 100];
    let pg = place.open(StorageOptions::default());
    let (redb_ws, pg_ws) = (redb.workspace("w").unwrap(), pg.workspace("w").unwrap());
    pg_ws.set("key", value).unwrap();
    let get = |ws: &Workspace, n| timed(n, || drop(std::hint::black_box(ws.get("key").unwrap())));
    let (redb_get, pg_get) = versus(ROUNDS, || get(&redb_ws, GETS), || get(&pg_ws, PG_GETS));
    rows.push(Row {
        name: "PostgreSQL Workspace::get [vs redb Workspace::get]",
        per_op: pg_get,
        baseline: Some(redb_get),
    });
    let set = |ws: &Workspace| {
        timed(WRITES, || {
            ws.set(&format!("k{}", fastish_id()), value).unwrap();
        })
    };
    let (redb_set, pg_set) = versus(3, || set(&redb_ws), || set(&pg_ws));
    rows.push(Row {
        name: "PostgreSQL Workspace::set durable, 1 thread [vs redb, same]",
        per_op: pg_set,
        baseline: Some(redb_set),
    });
    rows.push(Row {
        name: "PostgreSQL Workspace::set durable, 32 threads [vs redb, same]",
        per_op: concurrent_writes(&pg),
        baseline: Some(redb_group),
    });
}

/// Time per write of 32 threads writing at once, each to a workspace of
/// its own (median of 3 rounds).
fn concurrent_writes(storage: &Storage) -> Duration {
    let value = [7u8; 100];
    let mut rounds = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for t in 0..WRITERS {
                let ws = storage.workspace(&format!("w{t}")).unwrap();
                let value = &value;
                s.spawn(move || {
                    for _ in 0..WRITES_EACH {
                        ws.set(&format!("k{}", fastish_id()), value).unwrap();
                    }
                });
            }
        });
        rounds.push(start.elapsed() / (WRITERS * WRITES_EACH));
    }
    median(rounds)
}

/// A fresh number for a fresh key on every write.
fn fastish_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn print_table(rows: &[Row]) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "\nmachine: {cpu}, {cores} cores; release build; ratios are against the baseline above each group\n"
    );
    println!("| operation | time per op | ops/s | vs baseline |");
    println!("| --- | ---: | ---: | ---: |");
    for row in rows {
        let ratio = row
            .baseline
            .map(|b| format!("{:.2}x", row.per_op.as_secs_f64() / b.as_secs_f64()))
            .unwrap_or_else(|| "1.00x".into());
        println!(
            "| {} | {:.2?} | {:.0} | {} |",
            row.name,
            row.per_op,
            1.0 / row.per_op.as_secs_f64(),
            ratio
        );
    }
}
