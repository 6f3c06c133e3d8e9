//! Streamed values through a plugin: a value far larger than the plugin's
//! memory written and read back, with the host's memory measured in a
//! process of its own, on redb and on PostgreSQL.
//!
//! Each test starts this test binary again as a child process (the
//! environment variable `CUBBY_STREAM_CHILD` tells the child what to do),
//! so that the resident memory it measures is the host's alone. The size
//! is 64 MiB (`CUBBY_STREAM_MIB` sets another; the README reports 256).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{call, load_with, runtime_builder};
use cubby_artifacts as guests;
use cubby_host::testing::{Place, assert_usage_is_exact, audit};
use cubby_host::{Storage, StorageOptions};
use serde_json::json;

/// What the child is to do: `"redb PATH"` or `"postgres URL"`.
const CHILD: &str = "CUBBY_STREAM_CHILD";

/// The plugin's memory limit.
const PLUGIN_MEMORY: usize = 16 << 20;

/// The most the host's resident memory may grow while streaming.
const MAX_GROWTH: u64 = 32 << 20;

fn size() -> u64 {
    std::env::var("CUBBY_STREAM_MIB")
        .ok()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(64)
        << 20
}

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib << 10
}

/// The child: opens the database with redb's page cache bounded, loads the
/// probe with a 16 MiB memory limit, then has it write `size()` bytes as a
/// stream and read them back, and prints what it measured.
async fn child(spec: &str) {
    let mut options = StorageOptions::default();
    options.cache_size = Some(8 << 20);
    let storage = match spec.split_once(' ') {
        Some(("redb", path)) => Storage::open(path, options).unwrap(),
        Some(("postgres", url)) => Storage::connect(url, options).unwrap(),
        _ => panic!("{CHILD}={spec}"),
    };
    let runtime = runtime_builder()
        .max_memory_bytes(PLUGIN_MEMORY)
        .timeout(Duration::from_secs(1800))
        .build()
        .unwrap();
    let probe = load_with(&runtime, guests::PROBE).await;
    let ws = storage.workspace("files").unwrap();
    // A small value first, so everything the calls need is warm.
    call(
        &probe,
        &ws,
        json!({"op":"stream-write","key":"warm","size":300_000,"seed":1}),
    )
    .await;
    // From here on, the peak resident memory is measured afresh.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let before = status_bytes("VmRSS:");
    let size = size();
    let started = Instant::now();
    let written = call(
        &probe,
        &ws,
        json!({"op":"stream-write","key":"big","size":size,"seed":7}),
    )
    .await;
    let write_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let read = call(
        &probe,
        &ws,
        json!({"op":"stream-read","key":"big","seed":7}),
    )
    .await;
    let read_s = started.elapsed().as_secs_f64();
    let peak = status_bytes("VmHWM:");
    assert!(written["ok"].is_u64(), "{written}");
    assert_eq!(read["ok"]["size"], size, "{read}");
    assert_eq!(read["ok"]["matches"], true, "{read}");
    println!("growth {}", peak.saturating_sub(before));
    println!("write_s {write_s:.2}");
    println!("read_s {read_s:.2}");
}

/// Starts this test again as a child process doing `spec`, and checks what
/// it reports.
fn in_a_child(test: &str, spec: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, spec)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The test harness prints the test's name on the same line.
    let words: Vec<&str> = stdout.split_whitespace().collect();
    let field = |name: &str| -> f64 {
        words
            .windows(2)
            .find(|w| w[0] == name)
            .and_then(|w| w[1].parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the child's output:\n{stdout}"))
    };
    let growth = field("growth") as u64;
    let mib = size() as f64 / (1 << 20) as f64;
    eprintln!(
        "{spec}: {mib} MiB through a plugin of 16 MiB: written in {:.1} s, read in {:.1} s; host \
         resident memory grew by {:.1} MiB",
        field("write_s"),
        field("read_s"),
        growth as f64 / (1 << 20) as f64
    );
    assert!(
        growth < MAX_GROWTH,
        "the host's resident memory grew by {growth} bytes"
    );
}

/// The parent's side: runs `test` again as a child on `place` (named to it
/// as `backend`), then checks what the child left behind.
async fn measured_in_a_child(test: &'static str, backend: &str, place: Place) {
    let spec = format!("{backend} {}", place.db_arg());
    tokio::task::spawn_blocking(move || in_a_child(test, &spec))
        .await
        .unwrap();
    let storage = place.open(StorageOptions::default());
    assert_usage_is_exact(&storage, "files");
    assert_eq!(audit(&storage, "files").loose_blobs, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn redb_a_plugin_of_16_mib_streams_a_large_value_in_bounded_host_memory() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec).await;
    }
    measured_in_a_child(
        "redb_a_plugin_of_16_mib_streams_a_large_value_in_bounded_host_memory",
        "redb",
        Place::redb_file(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_a_plugin_of_16_mib_streams_a_large_value_in_bounded_host_memory() {
    if let Ok(spec) = std::env::var(CHILD) {
        return child(&spec).await;
    }
    let Some(place) = Place::postgres() else {
        return;
    };
    measured_in_a_child(
        "postgres_a_plugin_of_16_mib_streams_a_large_value_in_bounded_host_memory",
        "postgres",
        place,
    )
    .await;
}

/// A plugin's writes, finished or not, and what is left of them: an
/// unfinished one (dropped by the plugin, or cut off by a trap) leaves
/// nothing; readers get the value whole; a plain `get` of a value over the
/// value limit says to read it as a stream.
async fn unfinished_plugin_writes_leave_nothing(place: &Place) {
    let mut options = StorageOptions::default();
    options.limits.max_value_bytes = 100_000;
    let storage = place.open(options);
    let probe = load_with(&runtime_builder().build().unwrap(), guests::PROBE).await;
    let ws = storage.workspace("w").unwrap();
    let quiet = || {
        let a = audit(&storage, "w");
        (a.chunk_rows, a.loose_blobs)
    };
    let answer = call(
        &probe,
        &ws,
        json!({"op":"stream-write","key":"f","size":2_000_000,"seed":3,"abandon_after":600_000}),
    )
    .await;
    assert_eq!(answer["ok"], "abandoned", "{answer}");
    assert_eq!(ws.get("f").unwrap(), None);
    assert_eq!(quiet(), (0, 0));
    // A call cut off by its timeout mid-write: the store goes with the
    // writer in it.
    let hasty = runtime_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let cut = load_with(&hasty, guests::PROBE).await;
    let request = json!({"op":"stream-write","key":"f","size":200u64 << 20,"seed":3});
    let out = cut.call(&ws, request.to_string().as_bytes()).await;
    assert!(out.is_err(), "the call was not cut off: {out:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while quiet() != (0, 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(quiet(), (0, 0));
    let written = call(
        &probe,
        &ws,
        json!({"op":"stream-write","key":"f","size":1_000_000,"seed":4,"compress":true}),
    )
    .await;
    assert!(written["ok"].is_u64(), "{written}");
    let read = call(&probe, &ws, json!({"op":"stream-read","key":"f","seed":4})).await;
    assert_eq!(read["ok"]["matches"], true, "{read}");
    let plain = call(&probe, &ws, json!({"op":"get","key":"f"})).await;
    assert_eq!(plain["err"], "value-too-large", "{plain}");
    let info = call(&probe, &ws, json!({"op":"stream-info","key":"f"})).await;
    assert_eq!(info["ok"]["size"], 1_000_000);
    assert_eq!(info["ok"]["compressed"], true);
    assert_usage_is_exact(&storage, "w");
}

#[tokio::test(flavor = "multi_thread")]
async fn unfinished_plugin_writes_leave_nothing_redb() {
    unfinished_plugin_writes_leave_nothing(&Place::redb_file()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unfinished_plugin_writes_leave_nothing_postgres() {
    if let Some(place) = Place::postgres() {
        unfinished_plugin_writes_leave_nothing(&place).await;
    }
}
