//! Cubby against the stores its users would otherwise pick, on the same
//! workloads, in the same run, on the same disk: native redb, SQLite opened
//! as Spin opens it and in WAL mode, a `HashMap` behind a mutex, wasmtime's
//! in-memory `wasi:keyvalue` host, Cubby's engine API and Cubby through a
//! plugin. Prints a table with ratios and the performance goals checked
//! against it, and writes the same figures as JSON to a results file whose
//! path it prints. When `CUBBY_TEST_POSTGRES_URL` names a server, the
//! PostgreSQL backend is measured against redb too.
//!
//! ```sh
//! cargo bench -p cubby-host                        # full run, a few minutes
//! CUBBY_BENCH_SHORT=1 cargo bench -p cubby-host    # short run, under a minute
//! ```
//!
//! `cargo test` runs it once more in a smoke mode (tiny sizes, debug build)
//! only to prove it still works; it asserts no timing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "storage/alternatives.rs"]
mod alternatives;
#[path = "storage/report.rs"]
mod report;

use std::path::Path;
use std::time::{Duration, Instant};

use alternatives::{MutexMap, RawRedb, Sqlite, WasmtimeKeyvalue};
use cubby_host::options::Durability;
use cubby_host::testing::Place;
use cubby_host::{Plugin, Runtime, Storage, StorageOptions, Workspace};
use report::{Bound, Report};

/// How much work each measurement does.
struct Plan {
    mode: &'static str,
    rounds: usize,
    /// Keys of the read workload, and gets per measurement.
    keys: u32,
    gets: u32,
    calls: u32,
    writes: u32,
    instances: u32,
    writes_each: u32,
    compile_rounds: usize,
    /// (workspaces, keys in each) of the three database sizes.
    sizes: [(u32, u32); 3],
    lists: u32,
}

impl Plan {
    fn from_env() -> Self {
        let bench = std::env::args().any(|a| a == "--bench");
        let short = std::env::var_os("CUBBY_BENCH_SHORT").is_some_and(|v| v != "0");
        match (bench, short) {
            (true, false) => Self {
                mode: "full run, release build",
                rounds: 5,
                keys: 100_000,
                gets: 200_000,
                calls: 2_000,
                writes: 200,
                instances: 64,
                writes_each: 40,
                compile_rounds: 3,
                sizes: [(10, 1_000), (1_000, 1_000), (1_000, 10_000)],
                lists: 2_000,
            },
            (true, true) => Self {
                mode: "short run (CUBBY_BENCH_SHORT), release build",
                rounds: 3,
                keys: 100_000,
                gets: 100_000,
                calls: 500,
                writes: 40,
                instances: 64,
                writes_each: 10,
                compile_rounds: 2,
                sizes: [(10, 1_000), (100, 1_000), (1_000, 300)],
                lists: 500,
            },
            (false, _) => Self {
                mode: "smoke run under cargo test (tiny sizes; the figures mean nothing)",
                rounds: 1,
                keys: 2_000,
                gets: 2_000,
                calls: 20,
                writes: 5,
                instances: 8,
                writes_each: 2,
                compile_rounds: 1,
                sizes: [(2, 500), (4, 500), (8, 500)],
                lists: 20,
            },
        }
    }
}

/// Names of rows that goals and other rows refer to.
const NATIVE_GET: &str = "native redb get, 1 read txn per get";
const SQLITE_SPIN_GET: &str = "SQLite get, opened as Spin opens it";
const SQLITE_WAL_GET: &str = "SQLite get, WAL mode";
const MAP_GET: &str = "HashMap behind a mutex get (native, no wasm)";
const ENGINE_GET: &str = "Cubby Workspace::get (engine API)";
const PLUGIN_GET: &str = "Cubby plugin get (cubby:storage)";
const KV_WASMTIME_GET: &str = "plugin get, wasmtime-wasi-keyvalue in-memory host";
const KV_CUBBY_GET: &str = "plugin get, Cubby's wasi:keyvalue (same guest)";
const CALL_BLOCKING: &str = "whole call, call_blocking, pooled";
const CALL_ASYNC: &str = "whole call, async call (hand-off to blocking pool)";
const CALL_UNPOOLED: &str = "whole call, call_blocking, no pool";
const NATIVE_SET: &str = "native redb set, 1 durable commit per write";
const SQLITE_WAL_SET: &str = "SQLite WAL set, synchronous=FULL";
const SQLITE_SPIN_SET: &str = "SQLite set, opened as Spin opens it";
const ENGINE_SET: &str = "Cubby Workspace::set durable, 1 thread";
const PLUGIN_SET: &str = "Cubby plugin set durable, 1 instance";
const PLUGINS_SET: &str = "Cubby plugin set durable, concurrent instances";
const COMPILE: &str = "compile the plugin (no cache)";
const CACHED: &str = "load the plugin from the compile cache";

fn main() {
    let plan = Plan::from_env();
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(target).unwrap();
    // On the disk the build is on (not a tmpfs), so fsyncs are real.
    let dir = tempfile::tempdir_in(target).unwrap();
    let mut report = Report::default();
    let entries: Vec<(String, Vec<u8>)> = (0..plan.keys)
        .map(|i| (format!("k{i}"), vec![7u8; 16]))
        .collect();

    let storage = Storage::open(dir.path().join("cubby.redb"), StorageOptions::default()).unwrap();
    let ws = storage.workspace("w").unwrap();
    for chunk in entries.chunks(1_000) {
        ws.set_many(chunk.iter().cloned()).unwrap();
    }
    let runtime = Runtime::builder()
        .cache_dir(cubby_artifacts::CACHE_DIR)
        .max_instances(plan.instances.max(8) + 8)
        .build()
        .unwrap();
    let tokio = tokio::runtime::Runtime::new().unwrap();
    let probe = tokio
        .block_on(runtime.load_file(cubby_artifacts::PROBE))
        .unwrap();

    let kv_guest = tokio
        .block_on(runtime.load_file(cubby_artifacts::KV_DRAFT))
        .unwrap();
    reads(
        &plan,
        dir.path(),
        &entries,
        &ws,
        &runtime,
        [&probe, &kv_guest],
        &mut report,
    );
    calls(&plan, &ws, &probe, &tokio, &mut report);
    writes(&plan, dir.path(), &storage, &probe, &mut report);
    restart(&plan, &tokio, &mut report);
    sizes(&plan, dir.path(), &mut report);
    match Place::postgres() {
        Some(place) => postgres(&plan, &place, &storage, &mut report),
        None => println!("(no PostgreSQL server: its rows are left out)"),
    }
    goals(&mut report, &plan);
    let results = target.parent().unwrap_or(target).join("cubby-bench");
    report.finish(plan.mode, &results).unwrap();
}

/// Times `n` runs of `f` (after `n / 10` warm-up runs); the time per run.
fn timed(n: u32, mut f: impl FnMut(usize)) -> Duration {
    for i in 0..n / 10 {
        f(i as usize);
    }
    let start = Instant::now();
    for i in 0..n {
        f(i as usize);
    }
    start.elapsed() / n.max(1)
}

/// One measurement: runs the workload once, returns the time per operation.
type Measure<'a> = Box<dyn FnMut() -> Duration + 'a>;

/// This VM's timings drift by tens of percent from minute to minute, so the
/// measurements of a workload run in rounds, one of each per round, and each
/// keeps its median.
fn interleaved(
    rounds: usize,
    mut candidates: Vec<(&'static str, Measure<'_>)>,
) -> Vec<(&'static str, Duration)> {
    let mut times = vec![Vec::new(); candidates.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in candidates.iter_mut().enumerate() {
            times[i].push(f());
        }
    }
    candidates
        .iter()
        .zip(times)
        .map(|((name, _), mut t)| {
            t.sort();
            (*name, t[t.len() / 2])
        })
        .collect()
}

/// Time per get of a guest loop of `n` gets, less the fixed cost of the call
/// around it (a call of 0 gets).
fn per_get(n: u32, mut call: impl FnMut(u32)) -> Duration {
    call(0);
    let start = Instant::now();
    call(0);
    let fixed = start.elapsed();
    let start = Instant::now();
    call(n);
    start.elapsed().saturating_sub(fixed) / n.max(1)
}

fn reads(
    plan: &Plan,
    dir: &Path,
    entries: &[(String, Vec<u8>)],
    ws: &Workspace,
    runtime: &Runtime,
    [probe, kv_guest]: [&Plugin; 2],
    report: &mut Report,
) {
    let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
    let key = |i: usize| keys[i % keys.len()];
    let raw = RawRedb::create(&dir.join("raw.redb"));
    raw.load(entries);
    let mut spin = Sqlite::spin(&dir.join("spin.sqlite"));
    spin.load(entries);
    let mut wal = Sqlite::wal(&dir.join("wal.sqlite"));
    wal.load(entries);
    let map = MutexMap::new(entries);
    let wasmtime_kv = WasmtimeKeyvalue::new(
        runtime.engine(),
        Path::new(cubby_artifacts::KV_DRAFT),
        entries,
    );
    let (n, spread) = (plan.gets, plan.keys);
    let hit = |v: Option<Vec<u8>>| assert!(v.is_some());
    let results = interleaved(
        plan.rounds,
        vec![
            (NATIVE_GET, Box::new(|| timed(n, |i| hit(raw.get(key(i)))))),
            (
                SQLITE_SPIN_GET,
                Box::new(|| timed(n / 4, |i| hit(spin.get(key(i))))),
            ),
            (
                SQLITE_WAL_GET,
                Box::new(|| timed(n / 4, |i| hit(wal.get(key(i))))),
            ),
            (MAP_GET, Box::new(|| timed(n, |i| hit(map.get(key(i)))))),
            (
                ENGINE_GET,
                Box::new(|| timed(n, |i| hit(ws.get(key(i)).unwrap()))),
            ),
            (
                PLUGIN_GET,
                Box::new(|| {
                    per_get(n, |n| {
                        let request =
                            format!(r#"{{"op":"repeat-get","key":"k","n":{n},"spread":{spread}}}"#);
                        let out = probe.call_blocking(ws, request.as_bytes()).unwrap();
                        assert_eq!(out, format!(r#"{{"ok":{n}}}"#).as_bytes());
                    })
                }),
            ),
            (
                KV_WASMTIME_GET,
                Box::new(|| {
                    per_get(n, |n| {
                        wasmtime_kv.run(&["get-loop", "", "k", &n.to_string(), &spread.to_string()])
                    })
                }),
            ),
            (
                KV_CUBBY_GET,
                Box::new(|| {
                    per_get(n, |n| {
                        let args: Vec<String> = [
                            "kv",
                            "get-loop",
                            "",
                            "k",
                            &n.to_string(),
                            &spread.to_string(),
                        ]
                        .map(String::from)
                        .into();
                        let out = kv_guest.run_blocking(ws, &args).unwrap();
                        assert_eq!(out.exit_code, 0);
                    })
                }),
            ),
        ],
    );
    let workload = "get, 100k keys, 16-byte values";
    for (name, t) in results {
        if name == NATIVE_GET {
            report.baseline(workload, name, t);
        } else if name == KV_CUBBY_GET {
            report.row(workload, name, t, KV_WASMTIME_GET);
        } else {
            report.row(workload, name, t, NATIVE_GET);
        }
    }
}

fn calls(
    plan: &Plan,
    ws: &Workspace,
    probe: &Plugin,
    tokio: &tokio::runtime::Runtime,
    report: &mut Report,
) {
    let request = br#"{"op":"get","key":"k0"}"#;
    let unpooled = tokio
        .block_on(async {
            Runtime::builder()
                .cache_dir(cubby_artifacts::CACHE_DIR)
                .pooling(false)
                .build()
                .unwrap()
                .load_file(cubby_artifacts::PROBE)
                .await
        })
        .unwrap();
    let results = interleaved(
        plan.rounds,
        vec![
            (
                CALL_BLOCKING,
                Box::new(|| {
                    timed(plan.calls, |_| {
                        drop(probe.call_blocking(ws, request).unwrap())
                    })
                }),
            ),
            (
                CALL_ASYNC,
                Box::new(|| {
                    tokio.block_on(async {
                        let start = Instant::now();
                        for _ in 0..plan.calls {
                            probe.call(ws, request).await.unwrap();
                        }
                        start.elapsed() / plan.calls
                    })
                }),
            ),
            (
                CALL_UNPOOLED,
                Box::new(|| {
                    timed(plan.calls, |_| {
                        drop(unpooled.call_blocking(ws, request).unwrap())
                    })
                }),
            ),
        ],
    );
    // Resident memory over calls of their own, after the pool is warm.
    let rss_before = resident_bytes();
    for _ in 0..plan.calls {
        probe.call_blocking(ws, request).unwrap();
    }
    let rss_growth = resident_bytes().saturating_sub(rss_before);
    let leftover = probe.call_blocking(ws, br#"{"op":"leftover"}"#).unwrap();
    let pages: u64 = serde_json::from_slice::<serde_json::Value>(&leftover).unwrap()["ok"]["pages"]
        .as_u64()
        .unwrap();
    let calls_made = u64::from(plan.calls);
    let memory = format!(
        "guest linear memory {} KiB per instance; process RSS grew {} bytes per call over {calls_made} calls",
        pages * 64,
        rss_growth / calls_made.max(1)
    );
    let workload = "whole call: fresh store, instantiate, 1 get, return";
    for (name, t) in results {
        let note = if name == CALL_BLOCKING {
            memory.clone()
        } else {
            String::new()
        };
        report.noted(workload, name, t, NATIVE_GET, note);
    }
}

/// Resident set size of this process (Linux; 0 elsewhere).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn writes(plan: &Plan, dir: &Path, storage: &Storage, probe: &Plugin, report: &mut Report) {
    let raw = RawRedb::create(&dir.join("raw-writes.redb"));
    let spin = Sqlite::spin(&dir.join("spin-writes.sqlite"));
    let wal = Sqlite::wal(&dir.join("wal-writes.sqlite"));
    let ws = storage.workspace("writes").unwrap();
    let value = [7u8; 16];
    let fresh = || format!("k{}", fastish_id());
    let n = plan.writes;
    let mut concurrent_fsyncs = Vec::new();
    let results = interleaved(
        plan.rounds.min(3),
        vec![
            (
                NATIVE_SET,
                Box::new(|| timed(n, |_| raw.put(&fresh(), &value))),
            ),
            (
                SQLITE_WAL_SET,
                Box::new(|| timed(n, |_| wal.put(&fresh(), &value))),
            ),
            (
                SQLITE_SPIN_SET,
                Box::new(|| timed(n, |_| spin.put(&fresh(), &value))),
            ),
            (
                ENGINE_SET,
                Box::new(|| {
                    timed(n, |_| {
                        ws.set(&fresh(), value).unwrap();
                    })
                }),
            ),
            (
                PLUGIN_SET,
                Box::new(|| {
                    let request = format!(
                        r#"{{"op":"repeat-set","key":"p{}-","n":{n}}}"#,
                        fastish_id()
                    );
                    let start = Instant::now();
                    probe.call_blocking(&ws, request.as_bytes()).unwrap();
                    start.elapsed() / n
                }),
            ),
            (
                PLUGINS_SET,
                Box::new(|| {
                    let before = storage.commit_stats();
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for t in 0..plan.instances {
                            let ws = storage.workspace(&format!("writer{t}")).unwrap();
                            s.spawn(move || {
                                let request = format!(
                                    r#"{{"op":"repeat-set","key":"r{}-","n":{}}}"#,
                                    fastish_id(),
                                    plan.writes_each
                                );
                                probe.call_blocking(&ws, request.as_bytes()).unwrap();
                            });
                        }
                    });
                    let elapsed = start.elapsed();
                    let after = storage.commit_stats();
                    concurrent_fsyncs.push(
                        (after.durable_commits - before.durable_commits) as f64
                            / (after.writes - before.writes) as f64,
                    );
                    elapsed / (plan.instances * plan.writes_each)
                }),
            ),
        ],
    );
    concurrent_fsyncs.sort_by(f64::total_cmp);
    let fsyncs = concurrent_fsyncs[concurrent_fsyncs.len() / 2];
    let workload = "durable set, 16-byte value";
    for (name, t) in results {
        match name {
            NATIVE_SET => report.baseline(workload, name, t),
            PLUGINS_SET => report.noted(
                workload,
                PLUGINS_SET,
                t,
                NATIVE_SET,
                format!(
                    "{} instances; {fsyncs:.3} fsyncs per acknowledged write",
                    plan.instances
                ),
            ),
            _ => report.row(workload, name, t, NATIVE_SET),
        }
    }
}

fn restart(plan: &Plan, tokio: &tokio::runtime::Runtime, report: &mut Report) {
    let bytes = std::fs::read(cubby_artifacts::PROBE).unwrap();
    let load = |builder: cubby_host::RuntimeBuilder| {
        let runtime = builder.build().unwrap();
        let start = Instant::now();
        tokio
            .block_on(runtime.load_bytes("probe", bytes.clone()))
            .unwrap();
        start.elapsed()
    };
    let results = interleaved(
        plan.compile_rounds,
        vec![
            (COMPILE, Box::new(|| load(Runtime::builder()))),
            (
                CACHED,
                Box::new(|| {
                    let cache = tempfile::tempdir().unwrap();
                    load(Runtime::builder().cache_dir(cache.path()));
                    // A new process would build a new runtime on the same
                    // cache folder.
                    load(Runtime::builder().cache_dir(cache.path()))
                }),
            ),
        ],
    );
    let workload = "restart: load a compiled plugin";
    for (name, t) in results {
        match name {
            COMPILE => report.baseline(workload, name, t),
            _ => report.row(workload, name, t, COMPILE),
        }
    }
}

fn size_name(what: &str, (workspaces, each): (u32, u32)) -> String {
    format!(
        "{what} at {} keys ({workspaces} workspaces)",
        workspaces * each
    )
}

fn sizes(plan: &Plan, dir: &Path, report: &mut Report) {
    for (i, &size) in plan.sizes.iter().enumerate() {
        let (workspaces, each) = size;
        let mut options = StorageOptions::default();
        options.durability = Durability::Relaxed;
        let storage = Storage::open(dir.join(format!("size{i}.redb")), options).unwrap();
        let started = Instant::now();
        for w in 0..workspaces {
            let ws = storage.workspace(&format!("ws{w}")).unwrap();
            for start in (0..each).step_by(1_000) {
                ws.set_many(
                    (start..each.min(start + 1_000)).map(|k| (format!("k{k}"), vec![7u8; 16])),
                )
                .unwrap();
            }
        }
        println!(
            "loaded {} keys in {:.1?}",
            workspaces * each,
            started.elapsed()
        );
        let handles: Vec<Workspace> = (0..workspaces)
            .map(|w| storage.workspace(&format!("ws{w}")).unwrap())
            .collect();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u32| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % u64::from(n)) as u32
        };
        let picks: Vec<(usize, String)> = (0..plan.gets)
            .map(|_| (next(workspaces) as usize, format!("k{}", next(each))))
            .collect();
        let results = interleaved(
            plan.rounds,
            vec![
                (
                    "get",
                    Box::new(|| {
                        timed(plan.gets, |i| {
                            let (w, k) = &picks[i % picks.len()];
                            assert!(handles[*w].get(k).unwrap().is_some());
                        })
                    }),
                ),
                (
                    "list",
                    Box::new(|| {
                        timed(plan.lists, |i| {
                            let page = handles[picks[i % picks.len()].0]
                                .list_keys(None, None, Some(100))
                                .unwrap();
                            assert_eq!(page.keys.len(), 100.min(each as usize));
                        })
                    }),
                ),
            ],
        );
        for (what, t) in results {
            let (name, workload) = match what {
                "get" => (size_name("random get", size), "get as the database grows"),
                _ => (
                    size_name("list a page of 100 keys", size),
                    "list 100 keys of one workspace as the database grows",
                ),
            };
            let smallest = size_name(
                if what == "get" {
                    "random get"
                } else {
                    "list a page of 100 keys"
                },
                plan.sizes[0],
            );
            if i == 0 {
                report.baseline(workload, &name, t);
            } else {
                report.row(workload, &name, t, &smallest);
            }
        }
    }
}

/// The PostgreSQL backend, each row against the redb row of the same
/// operation.
fn postgres(plan: &Plan, place: &Place, redb: &Storage, report: &mut Report) {
    let value = [7u8; 16];
    let pg = place.open(StorageOptions::default());
    let (redb_ws, pg_ws) = (redb.workspace("w").unwrap(), pg.workspace("w").unwrap());
    pg_ws.set("k0", value).unwrap();
    let results = interleaved(
        plan.rounds,
        vec![
            (
                "PostgreSQL Workspace::get",
                Box::new(|| timed(plan.gets / 50, |_| drop(pg_ws.get("k0").unwrap()))),
            ),
            (
                "redb Workspace::get",
                Box::new(|| timed(plan.gets, |_| drop(redb_ws.get("k0").unwrap()))),
            ),
            (
                "PostgreSQL Workspace::set durable, 1 thread",
                Box::new(|| {
                    timed(plan.writes, |_| {
                        pg_ws.set(&format!("k{}", fastish_id()), value).unwrap();
                    })
                }),
            ),
            (
                "redb Workspace::set durable, 1 thread",
                Box::new(|| {
                    timed(plan.writes, |_| {
                        redb_ws.set(&format!("k{}", fastish_id()), value).unwrap();
                    })
                }),
            ),
        ],
    );
    let workload = "PostgreSQL backend against redb";
    for (name, t) in results {
        let against = if name.contains("get") {
            "redb Workspace::get"
        } else {
            "redb Workspace::set durable, 1 thread"
        };
        if name.starts_with("redb") {
            report.baseline(workload, name, t);
        } else {
            report.row(workload, name, t, against);
        }
    }
}

fn goals(report: &mut Report, plan: &Plan) {
    report.goal(
        "whole call ≤ 15 µs",
        CALL_BLOCKING,
        "",
        Bound::Under(Duration::from_micros(15)),
    );
    // (goal, candidate row, baseline row, highest ratio allowed)
    let ratios = [
        (
            "plugin get ≤ 1.0x native redb (1 read txn per get)",
            PLUGIN_GET,
            NATIVE_GET,
            1.0,
        ),
        (
            "plugin get ≥ 4x faster than SQLite as Spin opens it",
            PLUGIN_GET,
            SQLITE_SPIN_GET,
            0.25,
        ),
        (
            "plugin get ≥ 2x faster than SQLite WAL",
            PLUGIN_GET,
            SQLITE_WAL_GET,
            0.5,
        ),
        (
            "plugin get ≤ 2x an in-memory map host (same wasi:keyvalue guest)",
            KV_CUBBY_GET,
            KV_WASMTIME_GET,
            2.0,
        ),
        (
            "concurrent durable plugin writes ≥ 20x one commit per write",
            PLUGINS_SET,
            NATIVE_SET,
            0.05,
        ),
        (
            "lone durable set ≤ SQLite WAL (synchronous=FULL)",
            ENGINE_SET,
            SQLITE_WAL_SET,
            1.0,
        ),
        (
            "cached load ≥ 25x faster than compiling",
            CACHED,
            COMPILE,
            0.04,
        ),
    ];
    for (text, candidate, baseline, max) in ratios {
        report.goal(text, candidate, baseline, Bound::AtMost(max));
    }
    let [small, middle, large] = plan.sizes;
    report.goal(
        "get at the largest size ≤ 1.3x the smallest",
        &size_name("random get", large),
        &size_name("random get", small),
        Bound::AtMost(1.3),
    );
    report.goal(
        "listing 100 keys among 1,000 workspaces does not grow with the data (≤ 1.3x)",
        &size_name("list a page of 100 keys", middle),
        &size_name("list a page of 100 keys", small),
        Bound::AtMost(1.3),
    );
}

/// A fresh number for a fresh key on every write.
fn fastish_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
