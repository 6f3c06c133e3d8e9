//! Durability: a write the host acknowledged survives a crash of the process
//! (durable mode), and relaxed mode makes writes durable within about a
//! second of the last one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use cubby_host::{Storage, StorageOptions};

#[test]
fn acknowledged_writes_survive_a_killed_process() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(&path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut acknowledged = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        acknowledged.push(line.unwrap());
        if acknowledged.len() == 200 {
            break;
        }
    }
    // SIGKILL: no destructor, no flush, no clean shutdown of redb.
    child.kill().unwrap();
    child.wait().unwrap();

    let storage = Storage::open(&path, StorageOptions::default()).unwrap();
    let ws = storage.workspace("crash").unwrap();
    for key in &acknowledged {
        assert_eq!(
            ws.get(key).unwrap().as_deref(),
            Some(key.as_bytes()),
            "{key} was lost"
        );
    }
    // The writer may have committed a few more before it died; usage must
    // match what is actually stored.
    let usage = ws.usage().unwrap();
    assert!(usage.keys >= acknowledged.len() as u64);
    assert_eq!(usage.keys, ws.keys(None).count() as u64);
}

#[test]
fn relaxed_writes_are_durable_a_second_after_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relaxed.redb");
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash-writer"))
        .arg(&path)
        .args(["--relaxed", "50"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "written");
    // Relaxed mode promises a durable commit within about a second after the
    // last write; give it that second and a generous margin, then crash it.
    std::thread::sleep(Duration::from_millis(2500));
    child.kill().unwrap();
    child.wait().unwrap();

    let storage = Storage::open(&path, StorageOptions::default()).unwrap();
    let ws = storage.workspace("crash").unwrap();
    for i in 0..50 {
        let key = format!("k{i}");
        assert_eq!(
            ws.get(&key).unwrap().as_deref(),
            Some(key.as_bytes()),
            "{key} was lost"
        );
    }
}
