//! redb under injected I/O faults (`testing::FaultyDisk`): for each fault
//! point of a write storm (sets, increments, transactions, batches, an
//! import, a streamed value, removing a workspace, a sweep), the faulted operation fails with a
//! typed error naming the I/O failure, the host reopens the database by
//! itself and goes on, and a plain reopen afterwards finds every
//! acknowledged write, the faulted one whole or not at all, and usage equal
//! to a recount.
//!
//! CI runs a seeded sample of fault points (`CUBBY_FAULT_POINTS`, default
//! 24); `CUBBY_FAULT_POINTS=all` sweeps every one (see the README).

use std::collections::BTreeMap;

use super::*;
use crate::StorageError;
use crate::ops::{Op, StreamOptions, WriteOptions};
use crate::testing::{Fault, FaultyDisk, assert_usage_is_exact, contents};
use crate::transfer::{ImportMode, TransferError};

/// What the storm's workspaces hold: (workspace, namespace, key) → value.
type State = BTreeMap<(String, String, String), Vec<u8>>;

/// Every live entry of the workspaces the storm touches, read back.
fn read_state(storage: &Storage) -> Result<State, StorageError> {
    let mut all = State::new();
    for id in ["w", "gone", "src"] {
        let ws = storage.workspace(id)?;
        for ((ns, key), v) in contents(&ws)? {
            all.insert((id.into(), ns, key), v);
        }
    }
    Ok(all)
}

/// [`read_state`], once the host serves reads: at once after a failed
/// write (the writer reopens the database before it answers), after a
/// moment when the fault hit one of these reads (which wakes the writer to
/// reopen it).
fn state(storage: &Storage) -> State {
    for _ in 0..500 {
        match read_state(storage) {
            Ok(state) => return state,
            Err(StorageError::Backend(_) | StorageError::Unavailable(_)) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("reading the state back: {e:?}"),
        }
    }
    panic!("the host did not serve reads again after the fault");
}

/// One step of the storm.
#[derive(Debug, Clone, Copy)]
enum Step {
    Set(u32),
    /// A value big enough to grow the file.
    Large,
    /// A value written as a stream (three chunks).
    Stream,
    Increment,
    Transaction(u32),
    Batch(u32),
    Import,
    RemoveWorkspace,
    Sweep,
}

const STORM: &[Step] = &[
    Step::Set(1),
    Step::Increment,
    Step::Set(2),
    Step::Transaction(1),
    Step::Batch(1),
    Step::Increment,
    Step::Import,
    Step::Stream,
    Step::Large,
    Step::Set(3),
    Step::RemoveWorkspace,
    Step::Transaction(2),
    Step::Sweep,
    Step::Batch(2),
    Step::Increment,
    Step::Set(4),
];

/// Runs `step` of the storm.
fn run(
    storage: &Storage,
    clock: &ManualClock,
    step: Step,
    export: &[u8],
) -> Result<(), StorageError> {
    let w = storage.workspace("w").unwrap();
    match step {
        Step::Set(i) => w.set(&format!("k{i}"), vec![i as u8; 300]).map(drop),
        Step::Large => w.set("large", vec![b'L'; 900_000]).map(drop),
        Step::Stream => {
            let mut writer = w.write_stream("streamed", StreamOptions::default())?;
            writer.write_bytes(&vec![b'S'; 600_000])?;
            writer.finish().map(drop)
        }
        Step::Increment => w.increment("n", 1, None).map(drop),
        Step::Transaction(i) => w
            .transact(vec![
                Op::set(format!("t{i}"), vec![b't'; 200]).in_namespace("tx"),
                Op::delete("k1"),
                Op::increment("n", 10),
            ])
            .map(drop),
        Step::Batch(i) => w
            .namespace("batch")
            .unwrap()
            .set_many((0..20).map(|j| (format!("b{i}-{j}"), vec![j as u8; 50])))
            .map(drop),
        Step::Import => w
            .import(export, ImportMode::Merge)
            .map(drop)
            .map_err(|e| match e {
                TransferError::Storage(e) => e,
                other => panic!("import failed other than in storage: {other}"),
            }),
        Step::RemoveWorkspace => storage.workspace("gone").unwrap().clear_all().map(drop),
        Step::Sweep => {
            clock.advance(SEC * 3600);
            storage.prune().map(drop)
        }
    }
}

/// What `state` becomes after `step` succeeds.
fn expect(state: &State, step: Step, imported: &State) -> State {
    let mut s = state.clone();
    let w = |ns: &str, k: &str| ("w".to_owned(), ns.to_owned(), k.to_owned());
    let counter = |s: &State| -> i64 {
        s.get(&w("", "n"))
            .map_or(0, |v| String::from_utf8_lossy(v).parse().unwrap())
    };
    match step {
        Step::Set(i) => {
            s.insert(w("", &format!("k{i}")), vec![i as u8; 300]);
        }
        Step::Large => {
            s.insert(w("", "large"), vec![b'L'; 900_000]);
        }
        Step::Stream => {
            s.insert(w("", "streamed"), vec![b'S'; 600_000]);
        }
        Step::Increment => {
            let n = counter(&s) + 1;
            s.insert(w("", "n"), n.to_string().into_bytes());
        }
        Step::Transaction(i) => {
            s.insert(w("tx", &format!("t{i}")), vec![b't'; 200]);
            s.remove(&w("", "k1"));
            let n = counter(&s) + 10;
            s.insert(w("", "n"), n.to_string().into_bytes());
        }
        Step::Batch(i) => {
            for j in 0..20u8 {
                s.insert(w("batch", &format!("b{i}-{j}")), vec![j; 50]);
            }
        }
        Step::Import => {
            for ((_, ns, k), v) in imported {
                s.insert(("w".into(), ns.clone(), k.clone()), v.clone());
            }
        }
        Step::RemoveWorkspace => s.retain(|(ws, _, _), _| ws != "gone"),
        // The clock moved past its expiry: gone whether or not the sweep
        // removes it.
        Step::Sweep => {
            s.remove(&w("ttl", "soon"));
        }
    }
    s
}

/// How `a` and `b` differ, briefly (values by length).
fn diff(a: &State, b: &State) -> String {
    let mut out = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push(format!("{k:?}: {} bytes, then none", v.len())),
            Some(w) if w != v => out.push(format!("{k:?}: {v:?} then {w:?}")),
            Some(_) => {}
        }
    }
    for (k, w) in b {
        if !a.contains_key(k) {
            out.push(format!("{k:?}: none, then {} bytes", w.len()));
        }
    }
    out.join("; ")
}

/// Asserts that `now` is `expected`, saying how it is not.
#[track_caller]
fn assert_state(now: &State, expected: &State, what: &str) {
    assert!(now == expected, "{what}: {}", diff(expected, now));
}

/// Fills the storm's other workspaces, and returns what importing `src`'s
/// export adds to `w`.
fn prepare(storage: &Storage) -> (Vec<u8>, State) {
    let gone = storage.workspace("gone").unwrap();
    gone.set_many((0..10).map(|i| (format!("g{i}"), vec![1u8; 40])))
        .unwrap();
    let ttl = WriteOptions::default().ttl(SEC);
    storage
        .workspace("w")
        .unwrap()
        .namespace("ttl")
        .unwrap()
        .set_with("soon", b"gone in a second".to_vec(), ttl)
        .unwrap();
    let src = storage.workspace("src").unwrap();
    src.namespace("imported")
        .unwrap()
        .set_many((0..15).map(|i| (format!("i{i}"), vec![i as u8; 70])))
        .unwrap();
    let mut export = Vec::new();
    src.export(&mut export).unwrap();
    let imported = state(storage)
        .into_iter()
        .filter(|((ws, _, _), _)| ws == "src")
        .collect();
    (export, imported)
}

/// How the faulted step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    /// Its error came, and it was all there after the reopen.
    Whole,
    /// Its error came, and nothing of it was there.
    Absent,
}

/// What one storm found: the kind of each disk operation it did, which
/// kind the fault hit ("closing" when it hit the writes of closing the
/// database), and how the step it hit ended (`None`: no step failed, as
/// when the fault hit a read that only warmed a cache, or one of redb's
/// best-effort writes of a cached page, which it writes again later).
struct Run {
    kinds: Vec<&'static str>,
    fired: Option<&'static str>,
    outcome: Option<Outcome>,
}

/// The whole storm on a fresh disk, with `fault` at operation `point`
/// (counted from the storm's start; `None`: no fault).
fn storm(point: Option<(u64, Fault)>) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::new(&dir.path().join("cubby.redb"));
    let clock = ManualClock::new(1_000_000);
    let options = StorageOptions {
        clock: Arc::new(clock.clone()),
        sweep_interval: None,
        // A small cache, so that reads reach the disk too.
        cache_size: Some(64 * 1024),
        ..StorageOptions::default()
    };
    let storage = disk.open(options.clone()).unwrap();
    let (export, imported) = prepare(&storage);
    let mut model = state(&storage);
    let start = disk.ops();
    if let Some((n, fault)) = point {
        disk.fail_in(n, fault);
    }
    let mut faulted = false;
    let mut outcome = None;
    for &step in STORM {
        let after = expect(&model, step, &imported);
        match run(&storage, &clock, step, &export) {
            Ok(()) => model = after,
            Err(e) => {
                let line = crate::engine::error::cause_chain(&e);
                assert!(
                    matches!(e, StorageError::Backend(_) | StorageError::DiskFull(_)),
                    "{step:?} at {point:?}: {e:?}"
                );
                assert!(line.contains("injected"), "{step:?} at {point:?}: {line}");
                assert!(!faulted, "a second failure at {point:?}: {line}");
                faulted = true;
                // Whole, or not at all (after a failed sync, either).
                let now = state(&storage);
                assert!(
                    now == model || now == after,
                    "{step:?} at {point:?} ({:?}) left half a write: {}",
                    disk.fired(),
                    diff(&after, &now)
                );
                assert_eq!(
                    crate::guest_error::GuestError::from(e).kind(),
                    crate::ErrorKind::Internal,
                    "a plugin is told `internal`"
                );
                outcome = Some(if now == after {
                    Outcome::Whole
                } else {
                    Outcome::Absent
                });
                model = now;
            }
        }
    }
    let kinds = disk.kinds()[start as usize..].to_vec();
    assert_state(&state(&storage), &model, &format!("fault at {point:?}"));
    drop(storage);
    // A plain reopen, no faults: every acknowledged write is there.
    let reopened = Storage::open(dir.path().join("cubby.redb"), options).unwrap();
    assert_state(
        &state(&reopened),
        &model,
        &format!("after reopening, fault at {point:?}"),
    );
    for id in ["w", "gone", "src"] {
        assert_usage_is_exact(&reopened, id);
    }
    let fired = disk.fired().map(|(at, kind)| {
        if at > start + kinds.len() as u64 {
            "closing"
        } else {
            kind
        }
    });
    Run {
        kinds,
        fired,
        outcome,
    }
}

/// The fault points to try, given the kind of each operation of the storm
/// (the first is point 1): every point with each fault, or
/// (`CUBBY_FAULT_POINTS=N`, default 24) a fixed sample of about N spread
/// evenly over each kind of operation, faults alternating.
fn points(kinds: &[&'static str]) -> Vec<(u64, Fault)> {
    let numbered = (1u64..).zip(kinds.iter().copied());
    match std::env::var("CUBBY_FAULT_POINTS").as_deref() {
        Ok("all") => numbered
            .flat_map(|(n, _)| [(n, Fault::Fail), (n, Fault::Torn)])
            .collect(),
        other => {
            let n: usize = other.ok().and_then(|n| n.parse().ok()).unwrap_or(24);
            let mut by_kind: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
            for (point, kind) in numbered {
                by_kind.entry(kind).or_default().push(point);
            }
            let each = n.div_ceil(by_kind.len()).max(1);
            let mut sample = Vec::new();
            for points in by_kind.values() {
                let stride = points.len().div_ceil(each).max(1);
                sample.extend(points.iter().step_by(stride).copied());
            }
            sample.sort_unstable();
            let faults = [Fault::Fail, Fault::Torn];
            (sample.into_iter().enumerate())
                .map(|(i, point)| (point, faults[i % 2]))
                .collect()
        }
    }
}

#[test]
fn every_fault_point_of_a_write_storm_leaves_acknowledged_writes_whole() {
    let kinds = storm(None).kinds;
    let total = kinds.len();
    for kind in ["read", "write", "set_len", "sync_data"] {
        assert!(kinds.contains(&kind), "the storm did no {kind}");
    }
    let points = points(&kinds);
    let mut found: BTreeMap<(&str, Option<Outcome>), u32> = BTreeMap::new();
    for &point in &points {
        let run = storm(Some(point));
        *found
            .entry((run.fired.unwrap_or("none"), run.outcome))
            .or_default() += 1;
    }
    // The summary the README quotes for the full sweep.
    eprintln!(
        "faults: {} points of a storm of {total} disk operations: {found:?}",
        points.len()
    );
}

/// A fault that lasts (here a full disk): the host answers with an error
/// while it lasts, and serves again by itself, on the same `Storage`, once
/// it clears.
#[test]
fn the_host_reopens_the_database_by_itself_once_a_fault_clears() {
    let dir = tempfile::tempdir().unwrap();
    let disk = FaultyDisk::new(&dir.path().join("cubby.redb"));
    let storage = disk.open(StorageOptions::default()).unwrap();
    let w = storage.workspace("w").unwrap();
    w.set("before", b"kept".to_vec()).unwrap();
    disk.fill();
    let refused = w.set("during", vec![7u8; 100_000]).unwrap_err();
    assert!(matches!(refused, StorageError::DiskFull(_)), "{refused:?}");
    // Reads while the fault lasts: served, or refused as unavailable.
    match w.get("before") {
        Ok(value) => assert_eq!(value.as_deref(), Some(&b"kept"[..])),
        Err(e) => assert!(matches!(e, StorageError::Unavailable(_)), "{e:?}"),
    }
    assert!(w.set("still", vec![7u8; 100_000]).is_err());
    disk.clear();
    assert!(w.set("after", b"written".to_vec()).is_ok());
    assert_eq!(w.get("before").unwrap().as_deref(), Some(&b"kept"[..]));
    assert_eq!(w.get("during").unwrap(), None);
    assert_eq!(w.get("after").unwrap().as_deref(), Some(&b"written"[..]));
    assert_usage_is_exact(&storage, "w");
}
