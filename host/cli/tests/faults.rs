//! Faults an operator meets: a disk that fills up, and a process killed
//! with SIGKILL at any moment (the short kill -9 campaign; the long one is
//! `tests/crash/campaign`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod campaign;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cubby_artifacts as guests;
use cubby_host::testing::{Place, assert_usage_is_exact};
use cubby_host::{Storage, StorageError, StorageOptions};

/// Whether this is CI, where a test that cannot run fails instead of
/// skipping.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A small `tmpfs` mounted for one test (as root, or through `sudo -n`
/// when this is not root); unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

/// `program`, run as root: directly when this process is root, else
/// through `sudo -n` (which fails rather than ask for a password).
fn as_root(program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"));
    if root {
        Command::new(program)
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", program]);
        sudo
    }
}

impl Tmpfs {
    /// Mounts a `tmpfs` of `size` (e.g. "3m"); `None` (after a notice) when
    /// this process may not mount, which fails the test under `CI=true`.
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let options = format!("size={size},mode=1777");
        let mounted = as_root("mount")
            .args(["-t", "tmpfs", "-o", &options, "cubby-test"])
            .arg(dir.path())
            .output();
        let why = match mounted {
            Ok(out) if out.status.success() => return Some(Self { dir }),
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            Err(e) => format!("cannot run mount: {e}"),
        };
        assert!(
            !in_ci(),
            "CI=true, but the full-disk test cannot mount its tmpfs (it needs root or sudo): {why}"
        );
        eprintln!("note: full-disk test skipped: cannot mount a tmpfs (needs root or sudo): {why}");
        None
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = as_root("umount").arg(self.dir.path()).status();
    }
}

/// `cubby --db DB ARGS…`, with a home and caches of the test's own.
fn cubby(home: &Path, db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cubby"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env("CUBBY_CACHE_DIR", guests::CACHE_DIR)
        .env_remove("CUBBY_DB")
        .env_remove("CUBBY_LOG")
        .env("HOME", home)
        .output()
        .unwrap()
}

/// The keys `writer` acknowledged (`set k…` lines) and its last counter.
fn acknowledged(stdout: &[u8]) -> (Vec<String>, i64) {
    let text = String::from_utf8_lossy(stdout);
    let keys = text
        .lines()
        .filter_map(|l| l.strip_prefix("set "))
        .map(str::to_owned);
    let last_n = text
        .lines()
        .filter_map(|l| l.strip_prefix("n "))
        .next_back();
    (keys.collect(), last_n.map_or(0, |n| n.parse().unwrap()))
}

#[test]
fn a_full_disk_refuses_writes_clearly_keeps_every_acknowledged_one_and_takes_writes_once_freed() {
    let Some(fs) = Tmpfs::mount("6m") else { return };
    let home = tempfile::tempdir().unwrap();
    let db = fs.path().join("cubby.redb");
    // Room to free later, as an operator would by deleting something.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 3 << 20]).unwrap();

    // A plugin writes 8 KiB values until the host refuses.
    let out = cubby(
        home.path(),
        &db,
        &["run", "-w", "fill", guests::WRITER, "--", "8192"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused: storage failure on the host: the host's storage is full"),
        "the plugin is told the storage is full: {stderr}"
    );
    let (keys, last_n) = acknowledged(&out.stdout);
    assert!(keys.len() > 20, "only {} writes fitted", keys.len());

    // The CLI says it in one line.
    let big = home.path().join("big");
    std::fs::write(&big, vec![b'x'; 600_000]).unwrap();
    let value = format!("@{}", big.display());
    let out = cubby(
        home.path(),
        &db,
        &["kv", "set", "-w", "fill", "big", &value],
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("the disk holding the database is full"),
        "{stderr}"
    );

    // The database opens while the disk is still full, for reads and
    // writes: every acknowledged write is there.
    let out = cubby(home.path(), &db, &["kv", "get", "-w", "fill", &keys[0]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let storage = Storage::open(&db, StorageOptions::default()).unwrap();
    let ws = storage.workspace("fill").unwrap();
    for (key, value) in keys.iter().zip(ws.get_many(&keys).unwrap()) {
        let value = value.unwrap_or_else(|| panic!("acknowledged {key} is missing"));
        assert!(
            value.starts_with(key.as_bytes()) && value.len() == 8192,
            "{key}"
        );
    }
    let n: i64 = String::from_utf8(ws.get("n").unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        n >= last_n,
        "the counter {n} is behind its acknowledged {last_n}"
    );
    assert_usage_is_exact(&storage, "fill");
    // An embedder is told the disk is full, and nothing was written.
    let refused = ws.set("big", vec![1u8; 600_000]).unwrap_err();
    assert!(matches!(refused, StorageError::DiskFull(_)), "{refused:?}");
    assert_eq!(ws.get("big").unwrap(), None);

    // Space freed: the same open database takes writes again, no restart.
    std::fs::remove_file(&ballast).unwrap();
    ws.set("big", vec![1u8; 600_000]).unwrap();
    assert_eq!(ws.get("big").unwrap().map(|v| v.len()), Some(600_000));
    assert_usage_is_exact(&storage, "fill");
    drop((ws, storage));
    // And so does the next process.
    let out = cubby(
        home.path(),
        &db,
        &["run", "-w", "fill", guests::COUNTER, "--", "after"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n", "{stderr}");
}

/// The short kill -9 campaign CI runs on each backend.
fn kill_campaign(db: String) {
    let campaign = campaign::Campaign {
        cubby: PathBuf::from(env!("CARGO_BIN_EXE_cubby")),
        plugin: PathBuf::from(guests::WRITER),
        cache_dir: PathBuf::from(guests::CACHE_DIR),
        db,
        runs: 20,
        max_life: Duration::from_millis(800),
        seed: 21,
        streams_every: 4,
    };
    let report = campaign.run(|_| {});
    eprintln!("{report:?}");
    assert_eq!(report.broken, 0, "{:#?}", report.problems);
    assert_eq!(report.lost, 0);
    assert!(
        report.acknowledged > 100,
        "the runs acknowledged too little to prove anything: {report:?}"
    );
}

#[test]
fn redb_acknowledged_writes_survive_twenty_kills() {
    let place = Place::redb_file();
    kill_campaign(place.db_arg());
}

#[test]
fn postgres_acknowledged_writes_survive_twenty_kills() {
    let Some(place) = Place::postgres() else {
        return;
    };
    kill_campaign(place.db_arg());
}
