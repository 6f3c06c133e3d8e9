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
//! CUBBY_BENCH_ONLY=streams,postgres cargo bench -p cubby-host   # some sections only
//! ```
//!
//! `cargo test` runs it once more in a smoke mode (tiny sizes, debug build)
//! only to prove it still works; it asserts no timing.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "storage/alternatives.rs"]
mod alternatives;
#[path = "storage/overhead.rs"]
mod overhead;
#[path = "../../tests/guests/probe/src/pattern.rs"]
mod pattern;
#[path = "storage/report.rs"]
mod report;

use std::path::Path;
use std::time::{Duration, Instant};

use alternatives::{MutexMap, RawRedb, Sqlite, WasmtimeKeyvalue};
use cubby_host::options::Durability;
use cubby_host::testing::{Place, RawStatement};
use cubby_host::{Plugin, Runtime, Storage, StorageOptions, Workspace};
use overhead::{Subject, per_get, timed};
use pattern::Pattern;
use report::{Bound, Report};
use serde_json::json;

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
    /// Size of the streamed value, in MiB.
    stream_mib: u64,
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
                stream_mib: 256,
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
                stream_mib: 64,
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
                stream_mib: 1,
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
const CALL_ASYNC: &str = "whole call, async call (on the awaiting task)";
const CALL_UNPOOLED: &str = "whole call, call_blocking, no pool";
const CALL_PROBE: &str = "whole call, call_blocking, pooled: the probe (every import)";
const NOTES_RUST: &str = "notes list (1 note), async call: Rust `notes`";
const NOTES_PY: &str = "notes list (1 note), async call: Python `py-notes`";
const NOTES_JS: &str = "notes list (1 note), async call: JavaScript `js-notes`";
const NATIVE_SET: &str = "native redb set, 1 durable commit per write";
const SQLITE_WAL_SET: &str = "SQLite WAL set, synchronous=FULL";
const SQLITE_SPIN_SET: &str = "SQLite set, opened as Spin opens it";
const ENGINE_SET: &str = "Cubby Workspace::set durable, 1 thread";
const PLUGIN_SET: &str = "Cubby plugin set durable, 1 instance";
const PLUGINS_SET: &str = "Cubby plugin set durable, concurrent instances";
const PLUGINS_SET_RELAXED: &str =
    "Cubby plugin set relaxed (fsync once a second), concurrent instances";
const COMPILE: &str = "compile the plugin (no cache)";
const CACHED: &str = "load the plugin from the compile cache";
const FILE_WRITE: &str = "plain file: write in 64 KiB pieces, fsync";
const FILE_READ: &str = "plain file: read in 64 KiB pieces, check";
const STREAM_WRITE: &str = "plugin streams it into Cubby (redb), durable";
const STREAM_READ: &str = "plugin streams it out of Cubby (redb), check";
const PG_STREAM_WRITE: &str = "plugin streams it into Cubby (PostgreSQL), durable";
const NATIVE_AT_SIZE: &str = "native redb get (1 read txn per get), one workspace's keys in turn,";
const PLUGIN_AT_SIZE: &str = "Cubby plugin get, one workspace's keys in turn,";
const PG_PLUGIN_GET: &str = "PostgreSQL: plugin get (cubby:storage), per get";
const PG_RAW_SELECT: &str = "PostgreSQL: prepared SELECT of the same row, same pool";
const PG_SET: &str = "PostgreSQL Workspace::set durable, 1 thread";
const PG_RAW_UPSERT: &str = "PostgreSQL: INSERT … ON CONFLICT DO UPDATE of one row, same pool";
const PG_STREAM_READ: &str = "plugin streams it out of Cubby (PostgreSQL), check";
const OVH_CALL_NONE: &str = "whole call (getter), metrics compiled in, no recorder";
const OVH_CALL_RECORDER: &str = "whole call (getter), Prometheus recorder installed";
const OVH_CALL_CHILD_IN: &str =
    "whole call (getter), child process, metrics compiled in, no recorder";
const OVH_CALL_CHILD_OUT: &str = "whole call (getter), child process, instrumentation compiled out";
const OVH_GET_NONE: &str = "plugin get, metrics compiled in, no recorder";
const OVH_GET_RECORDER: &str = "plugin get, Prometheus recorder installed";
const OVH_GET_CHILD_IN: &str = "plugin get, child process, metrics compiled in, no recorder";
const OVH_GET_CHILD_OUT: &str = "plugin get, child process, instrumentation compiled out";

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
    if wanted("reads") {
        reads(
            &plan,
            dir.path(),
            &entries,
            &ws,
            &runtime,
            [&probe, &kv_guest],
            &mut report,
        );
    }
    if wanted("calls") {
        calls(&plan, &ws, &probe, &tokio, &mut report);
        languages(&plan, &runtime, &storage, &tokio, &mut report);
    }
    if wanted("writes") {
        writes(&plan, dir.path(), &probe, &mut report);
    }
    if wanted("overhead") {
        overhead(&plan, dir.path(), &mut report);
    }
    if wanted("restart") {
        restart(&plan, &tokio, &mut report);
    }
    if wanted("sizes") {
        sizes(&plan, dir.path(), &probe, &mut report);
    }
    let place = Place::postgres();
    if wanted("streams") {
        streams(&plan, dir.path(), &tokio, place.as_ref(), &mut report);
    }
    match &place {
        Some(place) if wanted("postgres") => postgres(&plan, place, &storage, &probe, &mut report),
        Some(_) => {}
        None => println!("(no PostgreSQL server: its rows are left out)"),
    }
    goals(&mut report, &plan);
    let results = target.parent().unwrap_or(target).join("cubby-bench");
    report.finish(plan.mode, &results).unwrap();
}

/// Whether this run measures `section`: every section unless
/// `CUBBY_BENCH_ONLY` lists some (comma-separated: reads, calls, writes,
/// overhead, restart, sizes, streams, postgres).
fn wanted(section: &str) -> bool {
    std::env::var("CUBBY_BENCH_ONLY")
        .map_or(true, |only| only.split(',').any(|s| s.trim() == section))
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

/// Time per get of a probe plugin's loop of `n` gets of `key` (with
/// `spread`, of `{key}0` … in turn), less the call around it.
fn plugin_gets(probe: &Plugin, ws: &Workspace, key: &str, spread: u32, n: u32) -> Duration {
    per_get(n, |n| {
        let request = format!(r#"{{"op":"repeat-get","key":"{key}","n":{n},"spread":{spread}}}"#);
        let out = probe.call_blocking(ws, request.as_bytes()).unwrap();
        assert_eq!(out, format!(r#"{{"ok":{n}}}"#).as_bytes());
    })
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
                Box::new(|| plugin_gets(probe, ws, "k", spread, n)),
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

/// The whole call: a fresh instance of the `getter` plugin (which imports
/// what one `get` needs) answers the value of one key; and the same for the
/// probe, which imports every storage operation.
fn calls(
    plan: &Plan,
    ws: &Workspace,
    probe: &Plugin,
    tokio: &tokio::runtime::Runtime,
    report: &mut Report,
) {
    let request = b"k0";
    let probe_request = br#"{"op":"get","key":"k0"}"#;
    let load = |builder: cubby_host::RuntimeBuilder| {
        tokio
            .block_on(async {
                builder
                    .cache_dir(cubby_artifacts::CACHE_DIR)
                    .build()
                    .unwrap()
                    .load_file(cubby_artifacts::GETTER)
                    .await
            })
            .unwrap()
    };
    let getter = load(Runtime::builder());
    let unpooled = load(Runtime::builder().pooling(false));
    let results = interleaved(
        plan.rounds,
        vec![
            (
                CALL_BLOCKING,
                Box::new(|| {
                    timed(plan.calls, |_| {
                        drop(getter.call_blocking(ws, request).unwrap())
                    })
                }),
            ),
            (
                CALL_ASYNC,
                Box::new(|| {
                    tokio.block_on(async {
                        let start = Instant::now();
                        for _ in 0..plan.calls {
                            getter.call(ws, request).await.unwrap();
                        }
                        start.elapsed() / plan.calls
                    })
                }),
            ),
            (
                CALL_PROBE,
                Box::new(|| {
                    timed(plan.calls, |_| {
                        drop(probe.call_blocking(ws, probe_request).unwrap())
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
        getter.call_blocking(ws, request).unwrap();
    }
    let rss_growth = resident_bytes().saturating_sub(rss_before);
    let leftover = probe.call_blocking(ws, br#"{"op":"leftover"}"#).unwrap();
    let pages: u64 = serde_json::from_slice::<serde_json::Value>(&leftover).unwrap()["ok"]["pages"]
        .as_u64()
        .unwrap();
    let calls_made = u64::from(plan.calls);
    let workload = "whole call: fresh store, instantiate, 1 get, return";
    for (name, t) in results {
        let note = match name {
            CALL_BLOCKING => format!(
                "process RSS grew {} bytes per call over {calls_made} calls",
                rss_growth / calls_made.max(1)
            ),
            CALL_PROBE => format!("guest linear memory {} KiB per instance", pages * 64),
            _ => String::new(),
        };
        report.noted(workload, name, t, NATIVE_GET, note);
    }
}

/// One async call of the `notes` plugin and of its Python and JavaScript
/// ports (`{"op":"list"}` with one note stored), each loaded once from the
/// compile cache; a fresh instance per call, as always.
fn languages(
    plan: &Plan,
    runtime: &Runtime,
    storage: &Storage,
    tokio: &tokio::runtime::Runtime,
    report: &mut Report,
) {
    let ports = [
        (NOTES_RUST, Some(cubby_artifacts::NOTES)),
        (NOTES_PY, cubby_polyglot::PY_NOTES.path()),
        (NOTES_JS, cubby_polyglot::JS_NOTES.path()),
    ];
    let mut candidates: Vec<(&'static str, Measure<'_>)> = Vec::new();
    for (name, path) in ports {
        let Some(path) = path else { continue };
        let plugin = tokio.block_on(runtime.load_file(path)).unwrap();
        let ws = storage
            .workspace(&format!("notes-{}", fastish_id()))
            .unwrap();
        tokio
            .block_on(plugin.call(&ws, br#"{"op":"add","text":"buy milk"}"#))
            .unwrap();
        let calls = if name == NOTES_RUST {
            plan.calls
        } else {
            (plan.calls / 20).max(2)
        };
        candidates.push((
            name,
            Box::new(move || {
                tokio.block_on(async {
                    let start = Instant::now();
                    for _ in 0..calls {
                        plugin.call(&ws, br#"{"op":"list"}"#).await.unwrap();
                    }
                    start.elapsed() / calls
                })
            }),
        ));
    }
    let workload = "a plugin's language: one call of the notes port";
    for (name, t) in interleaved(plan.rounds, candidates) {
        if name == NOTES_RUST {
            report.baseline(workload, name, t);
        } else {
            report.row(workload, name, t, NOTES_RUST);
        }
    }
}

/// The instrumentation's cost, two ways, in interleaved rounds: in this
/// process, the same whole call and plugin get on a subject whose metrics go
/// to a Prometheus recorder and on one with no recorder; and in child
/// processes (`cubby-bench-child`) built with the `metrics` feature (no
/// recorder) and without it, so that the two compared differ in the feature
/// only. Each subject has a database of its own with the same 1,000 keys.
fn overhead(plan: &Plan, dir: &Path, report: &mut Report) {
    let plugins = [
        Path::new(cubby_artifacts::GETTER),
        Path::new(cubby_artifacts::PROBE),
    ];
    let cache = Path::new(cubby_artifacts::CACHE_DIR);
    let plain = Subject::new(dir, "plain", plugins, cache);
    plain.warm();
    // Cubby registers a series on its first use, with the recorder of that
    // moment: this subject's are the recorder's from then on.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let recorded = metrics::with_local_recorder(&recorder, || {
        let subject = Subject::new(dir, "recorded", plugins, cache);
        subject.warm();
        subject
    });
    let children = bench_children(plan);
    let gets = plan.gets / 4;
    let child_args = |child: &Path| {
        let run = std::process::Command::new(child)
            .arg(dir)
            .args(plugins)
            .arg(cache)
            .args([plan.calls.to_string(), gets.to_string()])
            .output()
            .unwrap();
        assert!(run.status.success(), "{run:?}");
        let text = String::from_utf8(run.stdout).unwrap();
        let ns: Vec<u64> = text
            .split_whitespace()
            .map(|n| n.parse().unwrap())
            .collect();
        (Duration::from_nanos(ns[0]), Duration::from_nanos(ns[1]))
    };
    // Call rows, then get rows: in this process without and with a
    // recorder, then the children with and without the feature.
    let mut times: [Vec<Duration>; 8] = Default::default();
    for _ in 0..plan.rounds {
        times[0].push(plain.whole_call(plan.calls));
        times[1].push(recorded.whole_call(plan.calls));
        times[4].push(plain.plugin_get(gets));
        times[5].push(recorded.plugin_get(gets));
        for (i, child) in children.iter().enumerate() {
            let (call, get) = child_args(child);
            times[2 + i].push(call);
            times[6 + i].push(get);
        }
    }
    let workload = "instrumentation: recorder, none, compiled out";
    let rows = [
        (OVH_CALL_NONE, None),
        (OVH_CALL_RECORDER, Some(OVH_CALL_NONE)),
        (OVH_CALL_CHILD_IN, None),
        (OVH_CALL_CHILD_OUT, Some(OVH_CALL_CHILD_IN)),
        (OVH_GET_NONE, None),
        (OVH_GET_RECORDER, Some(OVH_GET_NONE)),
        (OVH_GET_CHILD_IN, None),
        (OVH_GET_CHILD_OUT, Some(OVH_GET_CHILD_IN)),
    ];
    for ((name, against), mut t) in rows.into_iter().zip(times) {
        t.sort();
        let Some(&median) = t.get(t.len() / 2) else {
            continue;
        };
        match against {
            None => report.baseline(workload, name, median),
            Some(b) => report.row(workload, name, median, b),
        }
    }
}

/// The `cubby-bench-child` binaries, built (release) with cubby-host's
/// `metrics` feature and without, in a target folder of their own; none in
/// the smoke run under `cargo test`, where they would be a second full
/// build.
fn bench_children(plan: &Plan) -> Vec<std::path::PathBuf> {
    if plan.mode.starts_with("smoke") {
        println!("(smoke run: the rows of the child processes are left out)");
        return Vec::new();
    }
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("bench-child");
    println!(
        "building cubby-bench-child into {} (the first time, several minutes)",
        target.display()
    );
    ["instrumented", "uninstrumented"]
        .into_iter()
        .map(|kind| {
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = std::process::Command::new(cargo);
            build
                .args([
                    "build",
                    "--release",
                    "-p",
                    "cubby-bench-child",
                    "--target-dir",
                ])
                .arg(&target)
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
            if kind == "instrumented" {
                build.args(["--features", "metrics"]);
            }
            // The outer cargo's settings are not the child's.
            cubby_artifacts::without_outer_cargo(&mut build);
            assert!(
                build.status().unwrap().success(),
                "building cubby-bench-child failed"
            );
            // Both builds write the same binary: keep each under its kind.
            let kept = target.join(format!("cubby-bench-child-{kind}"));
            std::fs::copy(target.join("release/cubby-bench-child"), &kept).unwrap();
            kept
        })
        .collect()
}

/// Resident set size of this process (Linux; 0 elsewhere).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Durable writes. Every store here starts from an empty file of its own,
/// as native redb's does, and the lone writes have one to themselves (the
/// plugins write many more keys): a write to a larger tree touches more
/// pages.
fn writes(plan: &Plan, dir: &Path, probe: &Plugin, report: &mut Report) {
    let storage = &Storage::open(dir.join("writes.redb"), StorageOptions::default()).unwrap();
    let lone = Storage::open(dir.join("lone-writes.redb"), StorageOptions::default()).unwrap();
    let lone = lone.workspace("writes").unwrap();
    let raw = RawRedb::create(&dir.join("raw-writes.redb"));
    let spin = Sqlite::spin(&dir.join("spin-writes.sqlite"));
    let wal = Sqlite::wal(&dir.join("wal-writes.sqlite"));
    let ws = storage.workspace("writes").unwrap();
    let mut options = StorageOptions::default();
    options.durability = Durability::Relaxed;
    let relaxed = Storage::open(dir.join("relaxed-writes.redb"), options).unwrap();
    let value = [7u8; 16];
    let fresh = || format!("k{}", fastish_id());
    let n = plan.writes;
    let mut concurrent_fsyncs = Vec::new();
    // `instances` plugins each making `writes_each` writes to a workspace
    // of its own in `storage`; the time per write.
    let concurrently = |storage: &Storage| {
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
        start.elapsed() / (plan.instances * plan.writes_each)
    };
    let results = interleaved(
        plan.rounds,
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
                        lone.set(&fresh(), value).unwrap();
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
                    let per_write = concurrently(storage);
                    let after = storage.commit_stats();
                    concurrent_fsyncs.push(
                        (after.durable_commits - before.durable_commits) as f64
                            / (after.writes - before.writes) as f64,
                    );
                    per_write
                }),
            ),
            (PLUGINS_SET_RELAXED, Box::new(|| concurrently(&relaxed))),
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

fn sizes(plan: &Plan, dir: &Path, probe: &Plugin, report: &mut Report) {
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
        if i == plan.sizes.len() - 1 {
            largest_against_native(plan, dir, size, probe, &handles[0], report);
        }
    }
}

/// At the largest size: a plugin's gets of one workspace's keys, in turn,
/// against native redb's gets of the same keys in the same order from a file
/// holding the same keys.
fn largest_against_native(
    plan: &Plan,
    dir: &Path,
    (workspaces, each): (u32, u32),
    probe: &Plugin,
    ws: &Workspace,
    report: &mut Report,
) {
    let raw = RawRedb::create(&dir.join("size-native.redb"));
    for w in 0..workspaces {
        raw.load_in(
            &format!("ws{w}"),
            (0..each).map(|k| (format!("k{k}"), vec![7u8; 16])),
        );
    }
    let n = plan.gets / 4;
    let results = interleaved(
        plan.rounds,
        vec![
            ("plugin", Box::new(|| plugin_gets(probe, ws, "k", each, n))),
            (
                "native",
                Box::new(|| {
                    timed(n, |i| {
                        let key = format!("k{}", i as u32 % each);
                        assert!(raw.get_in("ws0", &key).is_some());
                    })
                }),
            ),
        ],
    );
    let workload = "get as the database grows";
    let native = size_name(NATIVE_AT_SIZE, (workspaces, each));
    for (what, t) in results {
        match what {
            "native" => report.baseline(workload, &native, t),
            _ => report.row(
                workload,
                &size_name(PLUGIN_AT_SIZE, (workspaces, each)),
                t,
                &native,
            ),
        }
    }
}

/// The PostgreSQL backend, each row against the redb row of the same
/// operation, and against the barest statement that does the same through
/// the same pool.
fn postgres(plan: &Plan, place: &Place, redb: &Storage, probe: &Plugin, report: &mut Report) {
    let value = [7u8; 16];
    let pg = place.open(StorageOptions::default());
    let (redb_ws, pg_ws) = (redb.workspace("w").unwrap(), pg.workspace("w").unwrap());
    pg_ws.set("k0", value).unwrap();
    let gets = plan.gets / 50;
    let select = RawStatement::Select {
        ws: "w".into(),
        ns: String::new(),
        key: "k0".into(),
    };
    let results = interleaved(
        plan.rounds,
        vec![
            (
                PG_PLUGIN_GET,
                Box::new(|| plugin_gets(probe, &pg_ws, "k0", 0, gets)),
            ),
            (
                PG_RAW_SELECT,
                Box::new(|| timed(gets, |_| pg.raw_statement(&select).unwrap())),
            ),
            (
                PG_RAW_UPSERT,
                Box::new(|| {
                    timed(plan.writes, |_| {
                        let key = format!("k{}", fastish_id());
                        let upsert = RawStatement::Upsert {
                            key,
                            value: value.to_vec(),
                        };
                        pg.raw_statement(&upsert).unwrap();
                    })
                }),
            ),
            (
                "PostgreSQL Workspace::get",
                Box::new(|| timed(plan.gets / 50, |_| drop(pg_ws.get("k0").unwrap()))),
            ),
            (
                "redb Workspace::get",
                Box::new(|| timed(plan.gets, |_| drop(redb_ws.get("k0").unwrap()))),
            ),
            (
                PG_SET,
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
    let workload = "PostgreSQL backend against redb and against bare SQL";
    for (name, t) in results {
        let against = match name {
            PG_PLUGIN_GET => PG_RAW_SELECT,
            PG_SET => PG_RAW_UPSERT,
            _ if name.contains("get") => "redb Workspace::get",
            _ => "redb Workspace::set durable, 1 thread",
        };
        if name.starts_with("redb") || name == PG_RAW_SELECT || name == PG_RAW_UPSERT {
            report.baseline(workload, name, t);
        } else {
            report.row(workload, name, t, against);
        }
    }
}

fn goals(report: &mut Report, plan: &Plan) {
    // (goal, candidate row, baseline row, highest ratio allowed)
    let ratios = [
        (
            "whole call (call_blocking, pooled) ≤ 15x a native redb get",
            CALL_BLOCKING,
            NATIVE_GET,
            15.0,
        ),
        (
            "whole call through the async call ≤ 1.5x call_blocking",
            CALL_ASYNC,
            CALL_BLOCKING,
            1.5,
        ),
        (
            "a Python plugin's call ≤ 5x the Rust plugin's (notes port)",
            NOTES_PY,
            NOTES_RUST,
            5.0,
        ),
        (
            "a JavaScript plugin's call ≤ 5x the Rust plugin's (notes port)",
            NOTES_JS,
            NOTES_RUST,
            5.0,
        ),
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
            "… or within 1.25x of the same writes in relaxed durability",
            PLUGINS_SET,
            PLUGINS_SET_RELAXED,
            1.25,
        ),
        (
            "lone durable set ≤ 1.15x a native redb commit of one key",
            ENGINE_SET,
            NATIVE_SET,
            1.15,
        ),
        (
            "lone durable set ≤ SQLite WAL (synchronous=FULL)",
            ENGINE_SET,
            SQLITE_WAL_SET,
            1.0,
        ),
        (
            "PostgreSQL: plugin get ≤ 1.5x a prepared SELECT of the row (same pool)",
            PG_PLUGIN_GET,
            PG_RAW_SELECT,
            1.5,
        ),
        (
            "PostgreSQL: durable set ≤ 1.5x one upsert round trip (same pool)",
            PG_SET,
            PG_RAW_UPSERT,
            1.5,
        ),
        (
            "a recorder costs ≤ 3% of the whole call",
            OVH_CALL_RECORDER,
            OVH_CALL_NONE,
            1.03,
        ),
        (
            "no recorder: the whole call within 3% of the instrumentation compiled out",
            OVH_CALL_CHILD_IN,
            OVH_CALL_CHILD_OUT,
            1.03,
        ),
        (
            "no recorder: a plugin get within 3% of the instrumentation compiled out",
            OVH_GET_CHILD_IN,
            OVH_GET_CHILD_OUT,
            1.03,
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
    report.goal(
        "streamed write ≥ 50% of a plain file's throughput (≤ 2x its time per MiB)",
        STREAM_WRITE,
        FILE_WRITE,
        Bound::AtMost(2.0),
    );
    report.goal(
        "streamed read ≥ 50% of a plain file's throughput (≤ 2x its time per MiB)",
        STREAM_READ,
        FILE_READ,
        Bound::AtMost(2.0),
    );
    let [small, middle, large] = plan.sizes;
    report.goal(
        "plugin get at the largest size ≤ 1.0x native redb's at that size",
        &size_name(PLUGIN_AT_SIZE, large),
        &size_name(NATIVE_AT_SIZE, large),
        Bound::AtMost(1.0),
    );
    report.goal(
        "listing 100 keys among 1,000 workspaces does not grow with the data (≤ 1.3x)",
        &size_name("list a page of 100 keys", middle),
        &size_name("list a page of 100 keys", small),
        Bound::AtMost(1.3),
    );
}

/// Writes `size` bytes of `Pattern(seed)` to a new file at `path` in
/// pieces of 64 KiB, and fsyncs it.
fn file_write(path: &Path, size: u64, seed: u64) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let (mut pattern, mut piece, mut left) = (Pattern::new(seed), vec![0u8; 64 << 10], size);
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        pattern.fill(&mut piece[..n]);
        file.write_all(&piece[..n]).unwrap();
        left -= n as u64;
    }
    file.sync_all().unwrap();
    // The directory entry too, as a durable new file needs.
    std::fs::File::open(path.parent().unwrap())
        .unwrap()
        .sync_all()
        .unwrap();
}

/// Reads the file at `path` in pieces of 64 KiB and checks it against
/// `Pattern(seed)`.
fn file_read(path: &Path, size: u64, seed: u64) {
    use std::io::Read;
    let mut file = std::fs::File::open(path).unwrap();
    let (mut pattern, mut piece) = (Pattern::new(seed), vec![0u8; 64 << 10]);
    let mut total = 0u64;
    loop {
        let n = file.read(&mut piece).unwrap();
        if n == 0 {
            break;
        }
        assert!(pattern.check(&piece[..n]), "the file read back differs");
        total += n as u64;
    }
    assert_eq!(total, size);
}

/// A field of `/proc/self/status` (Linux), in bytes; 0 elsewhere.
fn status_bytes(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib << 10)
}

/// A large value streamed through a plugin with a 16 MiB memory limit,
/// into and out of Cubby (redb with its page cache bounded to 8 MiB, and
/// PostgreSQL when there is a server), against the same bytes written to
/// and read from a plain file on the same disk; each time per MiB, and the
/// host's peak resident memory growth while the plugin streams.
fn streams(
    plan: &Plan,
    dir: &Path,
    tokio: &tokio::runtime::Runtime,
    place: Option<&Place>,
    report: &mut Report,
) {
    let size = plan.stream_mib << 20;
    let runtime = Runtime::builder()
        .cache_dir(cubby_artifacts::CACHE_DIR)
        .max_memory_bytes(16 << 20)
        .timeout(Duration::from_secs(1800))
        .build()
        .unwrap();
    let probe = tokio
        .block_on(runtime.load_file(cubby_artifacts::PROBE))
        .unwrap();
    let mut options = StorageOptions::default();
    options.cache_size = Some(8 << 20);
    let pg = place.map(|p| p.open(options.clone()));
    let call = |ws: &Workspace, request: serde_json::Value| -> serde_json::Value {
        let out = probe
            .call_blocking(ws, request.to_string().as_bytes())
            .unwrap();
        let answer: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(answer.get("ok").is_some(), "{answer}");
        answer
    };
    let per_mib = |t: Duration| t / plan.stream_mib as u32;
    let mut times: Vec<(&'static str, Vec<Duration>)> = [
        FILE_WRITE,
        FILE_READ,
        STREAM_WRITE,
        STREAM_READ,
        PG_STREAM_WRITE,
        PG_STREAM_READ,
    ]
    .into_iter()
    .map(|name| (name, Vec::new()))
    .collect();
    let mut growth = 0u64;
    for round in 0..plan.rounds.min(3) {
        let seed = 11 + round as u64;
        let mut timed_once = |i: usize, f: &mut dyn FnMut()| {
            let start = Instant::now();
            f();
            times[i].1.push(per_mib(start.elapsed()));
        };
        let file = dir.join("plain-stream.bin");
        timed_once(0, &mut || file_write(&file, size, seed));
        timed_once(1, &mut || file_read(&file, size, seed));
        std::fs::remove_file(&file).unwrap();
        // A fresh database each round, so no chunks of an earlier round
        // (kept 10 minutes for readers) are in the way.
        let path = dir.join("stream.redb");
        let storage = Storage::open(&path, options.clone()).unwrap();
        let ws = storage.workspace("files").unwrap();
        call(
            &ws,
            json!({"op":"stream-write","key":"warm","size":300_000,"seed":1}),
        );
        // From here on, the peak resident memory is measured afresh.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = status_bytes("VmRSS:");
        let write = json!({"op":"stream-write","key":"big","size":size,"seed":seed});
        let read = json!({"op":"stream-read","key":"big","seed":seed});
        timed_once(2, &mut || drop(call(&ws, write.clone())));
        let mut answer = serde_json::Value::Null;
        timed_once(3, &mut || answer = call(&ws, read.clone()));
        growth = growth.max(status_bytes("VmHWM:").saturating_sub(before));
        assert_eq!(answer["ok"]["size"], size, "{answer}");
        assert_eq!(answer["ok"]["matches"], true, "{answer}");
        drop((ws, storage));
        std::fs::remove_file(&path).unwrap();
        if let Some(pg) = &pg {
            let ws = pg
                .workspace(&format!("bench-stream-{}", fastish_id()))
                .unwrap();
            timed_once(4, &mut || drop(call(&ws, write.clone())));
            timed_once(5, &mut || answer = call(&ws, read.clone()));
            assert_eq!(answer["ok"]["matches"], true, "{answer}");
            ws.clear_all().unwrap();
        }
    }
    let workload = "a large value streamed, time per MiB";
    let mib = plan.stream_mib;
    for (name, mut t) in times {
        if t.is_empty() {
            continue;
        }
        t.sort();
        let t = t[t.len() / 2];
        match name {
            FILE_WRITE | FILE_READ => report.baseline(workload, name, t),
            STREAM_WRITE => report.noted(
                workload,
                name,
                t,
                FILE_WRITE,
                format!(
                    "{mib} MiB value; plugin memory limit 16 MiB, redb cache 8 MiB; host peak \
                     resident growth while streaming {:.1} MiB",
                    growth as f64 / f64::from(1 << 20)
                ),
            ),
            STREAM_READ | PG_STREAM_READ => {
                report.noted(workload, name, t, FILE_READ, format!("{mib} MiB value"));
            }
            _ => report.noted(workload, name, t, FILE_WRITE, format!("{mib} MiB value")),
        }
    }
}

/// A fresh number for a fresh key on every write.
fn fastish_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
