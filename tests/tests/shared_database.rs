//! What only a database shared by several host processes can break: races
//! between OS processes (not threads), two processes sweeping at once, many
//! more concurrent calls than connections, and a server that stops and
//! starts again. PostgreSQL only: skipped with a notice without a test
//! server, and failing under `CI=true`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{call, load};
use cubby_artifacts as guests;
use cubby_host::ops::{Action, Op, Usage};
use cubby_host::testing::{HeldWorkspace, Place, Server, assert_usage_is_exact, audit};
use cubby_host::{StorageError, StorageOptions};
use serde_json::json;

/// Starts one `storage-worker` per argument list, all at once, and returns
/// each one's output lines once all have exited successfully.
fn workers(url: &str, jobs: &[Vec<String>]) -> Vec<Vec<String>> {
    let children: Vec<_> = jobs
        .iter()
        .map(|args| {
            Command::new(env!("CARGO_BIN_EXE_storage-worker"))
                .arg(url)
                .args(args)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|child| {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "a worker failed: {out:?}");
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(String::from)
                .collect()
        })
        .collect()
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

#[test]
fn processes_incrementing_one_counter_lose_no_increment() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let jobs = vec![args(&["incr", "w", "250"]); 4];
    workers(&place.db_arg(), &jobs);
    let storage = place.open(StorageOptions::default());
    let ws = storage.workspace("w").unwrap();
    assert_eq!(ws.get("counter").unwrap().unwrap(), b"1000");
    assert_usage_is_exact(&storage, "w");
}

#[test]
fn processes_racing_for_the_last_bytes_never_pass_the_quota() {
    let Some(place) = Place::postgres() else {
        return;
    };
    // 32 keys of 14 bytes (4-byte key, 10-byte value) against 100 bytes:
    // exactly 7 fit, whoever wins them.
    let jobs: Vec<_> = (0..4)
        .map(|p| {
            let (from, to) = ((p * 8).to_string(), (p * 8 + 8).to_string());
            args(&["fill", "w", "100", &from, &to])
        })
        .collect();
    let lines: Vec<String> = workers(&place.db_arg(), &jobs).concat();
    assert_eq!(lines.len(), 32, "{lines:?}");
    let storage = place.open(StorageOptions::default());
    let ws = storage.workspace("w").unwrap();
    let mut stored = 0;
    for line in &lines {
        let (verdict, key) = line.split_once(' ').unwrap();
        match verdict {
            "stored" => {
                stored += 1;
                assert!(ws.exists(key).unwrap(), "{key} acknowledged but missing");
            }
            "refused" => assert!(!ws.exists(key).unwrap(), "{key} refused but stored"),
            other => panic!("{other}"),
        }
    }
    assert_eq!(stored, 7, "{lines:?}");
    assert_eq!(ws.usage().unwrap(), Usage { keys: 7, bytes: 98 });
    assert_usage_is_exact(&storage, "w");
}

#[test]
fn compare_and_swap_races_between_processes_have_one_winner_per_round() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let storage = place.open(StorageOptions::default());
    storage.workspace("w").unwrap().set("round", b"0").unwrap();
    let jobs = vec![args(&["cas", "w", "100"]); 4];
    let mut won: Vec<u64> = workers(&place.db_arg(), &jobs)
        .concat()
        .iter()
        .map(|line| line.strip_prefix("won ").unwrap().parse().unwrap())
        .collect();
    won.sort();
    assert_eq!(
        won,
        (1..=100).collect::<Vec<_>>(),
        "each round won exactly once"
    );
    let round = storage.workspace("w").unwrap().get("round").unwrap();
    assert_eq!(round.unwrap(), b"100");
}

#[test]
fn two_processes_sweeping_at_once_remove_each_entry_once() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let mut options = StorageOptions::default();
    options.sweep_interval = None;
    let storage = place.open(options);
    let ids = ["a", "b", "c"];
    for id in ids {
        let ws = storage.workspace(id).unwrap();
        for chunk in 0..3 {
            let ops = (0..500)
                .map(|i| {
                    Op::new(
                        format!("k{chunk}-{i:03}"),
                        Action::Set {
                            value: b"v".to_vec(),
                            ttl: Some(Duration::from_millis(1)),
                        },
                    )
                })
                .collect();
            ws.transact(ops).unwrap();
        }
        ws.set("keep", b"v").unwrap();
        ws.namespace("n").unwrap().set("keep", b"v").unwrap();
    }
    std::thread::sleep(Duration::from_millis(20)); // past every deadline
    let removed: u64 = workers(&place.db_arg(), &vec![args(&["prune"]); 2])
        .concat()
        .iter()
        .map(|line| {
            line.strip_prefix("removed ")
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(removed, 3 * 1500, "each expired entry removed exactly once");
    for id in ids {
        let a = audit(&storage, id);
        assert_eq!(a.rows, 2, "{id}: {a:?}");
        assert_eq!(a.stored_usage, Usage { keys: 2, bytes: 10 }, "{id}: {a:?}");
        assert_usage_is_exact(&storage, id);
    }
}

/// 1,000 plugin calls at once against a pool of 16 connections, on a tokio
/// runtime with a single worker thread. While the calls wait for a row lock
/// that another session holds, that worker must still run other tasks
/// (storage calls never block it); once the lock goes, every call
/// completes. The test thread watches from outside that runtime, so a
/// blocked worker fails the test instead of hanging it.
#[test]
fn a_thousand_concurrent_calls_on_sixteen_connections_all_complete() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let mut options = StorageOptions::default();
    options.postgres.pool_size = 16;
    let storage = place.open(options);
    let ws = storage.workspace("w").unwrap();
    ws.set("first", b"x").unwrap();

    // Another session holds the workspace's lock: every write waits.
    let held = HeldWorkspace::hold(&place.db_arg(), "w");

    let host = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (free, worker_free) = std::sync::mpsc::channel();
    let scenario = host.spawn({
        let ws = ws.clone();
        async move {
            let probe = load(guests::PROBE).await;
            let calls: Vec<_> = (0..1000)
                .map(|_| {
                    let (probe, ws) = (probe.clone(), ws.clone());
                    tokio::spawn(async move {
                        call(&probe, &ws, json!({"op":"incr","key":"hits","delta":1})).await
                    })
                })
                .collect();
            // The calls are under way; the one worker still runs a new task.
            tokio::task::yield_now().await;
            let _ = free.send(tokio::spawn(async { 42 }).await.unwrap_or_default());
            let mut answers = Vec::new();
            for c in calls {
                answers.push(c.await.unwrap());
            }
            answers
        }
    });
    let checked = worker_free.recv_timeout(Duration::from_secs(120));
    let waiting = ws.get("hits").unwrap();
    held.release();
    if checked != Ok(42) {
        host.shutdown_background();
        panic!("the runtime's only worker thread was blocked by storage calls");
    }
    assert_eq!(waiting, None, "no increment passed the held lock");
    let answers = host.block_on(scenario).unwrap();
    assert_eq!(answers.len(), 1000);
    for answer in answers {
        assert!(answer["ok"].is_i64(), "{answer}");
    }
    assert_eq!(ws.get("hits").unwrap().unwrap(), b"1000");
    assert_usage_is_exact(&storage, "w");
}

/// Waits (bounded, not a timing assertion) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_server_that_stops_during_a_write_storm_loses_nothing_acknowledged() {
    // Only where the shared server is configured too: the same condition
    // as every other PostgreSQL test.
    if cubby_host::testing::postgres_url().is_none() {
        return;
    }
    let Some(server) = Server::start() else {
        return;
    };
    let mut options = StorageOptions::default();
    options.postgres.connect_timeout = Duration::from_secs(1);
    options.postgres.statement_timeout = Duration::from_secs(3);
    let storage = cubby_host::Storage::connect(&server.url(), options).unwrap();
    let acked = Mutex::new(Vec::new());
    let unavailable = AtomicU64::new(0);
    let other: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..4 {
            let ws = storage.workspace("storm").unwrap();
            let (acked, unavailable, other, stop) = (&acked, &unavailable, &other, &stop);
            s.spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("t{t}-{i:06}");
                    match ws.set(&key, key.as_bytes()) {
                        Ok(_) => acked.lock().unwrap().push(key),
                        Err(StorageError::Unavailable(_)) => {
                            unavailable.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        Err(e) => other.lock().unwrap().push(format!("{e:?}")),
                    }
                    i += 1;
                }
            });
        }
        let count = || acked.lock().unwrap().len();
        wait_until("200 writes were acknowledged", || count() >= 200);
        server.down();
        wait_until("calls failed as unavailable", || {
            unavailable.load(Ordering::Relaxed) >= 8
        });
        let before = count();
        server.up();
        wait_until("writes were acknowledged again", || count() >= before + 200);
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        other.lock().unwrap().as_slice(),
        &[] as &[String],
        "only typed unavailability"
    );
    assert!(unavailable.load(Ordering::Relaxed) >= 8);
    // Every acknowledged write is there, read through the same storage (it
    // recovered without a restart) and through a fresh connection.
    let acked = acked.into_inner().unwrap();
    let fresh = cubby_host::Storage::connect(&server.url(), StorageOptions::default()).unwrap();
    for storage in [&storage, &fresh] {
        let ws = storage.workspace("storm").unwrap();
        let stored: BTreeMap<String, Vec<u8>> = ws
            .keys(None)
            .map(|k| {
                let k = k.unwrap();
                let v = ws.get(&k).unwrap().unwrap();
                (k, v)
            })
            .collect();
        for key in &acked {
            assert_eq!(
                stored.get(key).map(Vec::as_slice),
                Some(key.as_bytes()),
                "{key} lost"
            );
        }
    }
    assert_usage_is_exact(&fresh, "storm");
}
