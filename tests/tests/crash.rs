//! Durability: a write the host acknowledged survives a crash of the process
//! (durable mode), and relaxed mode makes writes durable within about a
//! second of the last one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Lines};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use cubby_host::{Storage, StorageOptions, Workspace};

/// Starts the `crash-writer` helper on `db`; returns it and its output lines.
fn spawn_writer(db: &Path, args: &[&str]) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(db)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// SIGKILL: no destructor, no flush, no clean shutdown of redb.
fn crash(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Reopens `db` and checks that every key holds its own name as value.
fn assert_stored(db: &Path, keys: impl IntoIterator<Item = String>) -> (Storage, Workspace) {
    let storage = Storage::open(db, StorageOptions::default()).unwrap();
    let ws = storage.workspace("crash").unwrap();
    for key in keys {
        assert_eq!(
            ws.get(&key).unwrap().as_deref(),
            Some(key.as_bytes()),
            "{key} was lost"
        );
    }
    (storage, ws)
}

#[test]
fn acknowledged_writes_survive_a_killed_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.redb");
    let (child, lines) = spawn_writer(&db, &[]);
    let acknowledged: Vec<String> = lines.take(200).map(Result::unwrap).collect();
    crash(child);

    let (_storage, ws) = assert_stored(&db, acknowledged.iter().cloned());
    // The writer may have committed a few more before it died; usage must
    // match what is actually stored.
    let usage = ws.usage().unwrap();
    assert!(usage.keys >= acknowledged.len() as u64);
    assert_eq!(usage.keys, ws.keys(None).count() as u64);
}

#[test]
fn relaxed_writes_are_durable_a_second_after_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relaxed.redb");
    let (child, mut lines) = spawn_writer(&db, &["--relaxed", "50"]);
    assert_eq!(lines.next().unwrap().unwrap(), "written");
    // Relaxed mode promises a durable commit within about a second after the
    // last write; give it that second and a generous margin, then crash it.
    std::thread::sleep(Duration::from_millis(2500));
    crash(child);

    assert_stored(&db, (0..50).map(|i| format!("k{i}")));
}
