//! What only the redb backend has: files, locks, damaged files, and its
//! schema (the upgrades of earlier ones: `old_layouts.rs`).

use redb::TableDefinition;

use super::*;
use crate::engine::backend::redb::{ENTRIES, META, META_NEXT_VERSION, META_SCHEMA};
use crate::{OpenError, StorageError};

/// Writes to the database file at `path` with raw redb, behind the engine's
/// back.
fn tamper(path: &std::path::Path, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    f(&txn);
    txn.commit().unwrap();
}

#[test]
fn a_second_open_of_the_same_file_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let _first = Storage::open(&path, StorageOptions::default()).unwrap();
    let err = Storage::open(&path, StorageOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
    assert!(
        err.to_string().contains("postgres://"),
        "says how to share data between processes: {err}"
    );
}

#[test]
fn garbage_files_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let garbage = b"this is not a database, just some bytes........".repeat(200);
    std::fs::write(&path, &garbage).unwrap();
    let err = Storage::open(&path, StorageOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage);
}

#[test]
fn damaged_database_files_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        let storage = Storage::open(&path, StorageOptions::default()).unwrap();
        let ws = storage.workspace("w").unwrap();
        for i in 0..200 {
            ws.set(&format!("key-{i}"), [i as u8; 300]).unwrap();
        }
    }
    let clean = std::fs::read(&path).unwrap();
    // Overwrite stretches of the file with junk at several places; whatever
    // redb makes of it, opening and reading must not panic.
    let mut detected = 0;
    for start in [0usize, 4096, clean.len() / 2, clean.len() - 4096] {
        let mut bytes = clean.clone();
        for b in bytes.iter_mut().skip(start).take(2048) {
            *b = 0xA5;
        }
        std::fs::write(&path, &bytes).unwrap();
        let opened = Storage::open(&path, StorageOptions::default());
        detected += matches!(opened, Err(OpenError::Corrupt { .. })) as usize;
        // Damage in unused space is harmless; the database must then work.
        if let Ok(storage) = opened {
            let ws = storage.workspace("w").unwrap();
            let _ = ws.get("key-1");
            let _ = ws.list_keys(None, None, Some(1000));
            let _ = ws.set("new", b"value");
        }
    }
    assert!(detected > 0, "no damaged site was detected");
}

#[test]
fn unknown_schema_and_foreign_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    drop(Storage::open(&path, StorageOptions::default()).unwrap());
    tamper(&path, |txn| {
        txn.open_table(META)
            .unwrap()
            .insert(META_SCHEMA, 99)
            .unwrap();
    });
    let err = Storage::open(&path, StorageOptions::default()).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::UnsupportedSchema {
                found: 99,
                supported: crate::engine::backend::redb::SCHEMA_VERSION,
                ..
            }
        ),
        "{err}"
    );

    let foreign = dir.path().join("foreign.redb");
    tamper(&foreign, |txn| {
        let def: TableDefinition<&str, &str> = TableDefinition::new("something_else");
        txn.open_table(def).unwrap().insert("a", "b").unwrap();
    });
    let err = Storage::open(&foreign, StorageOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::NotCubby { .. }), "{err}");
}

#[test]
fn a_malformed_stored_record_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    drop(Storage::open(&path, StorageOptions::default()).unwrap());
    tamper(&path, |txn| {
        txn.open_table(ENTRIES)
            .unwrap()
            .insert(("w", "", "bad"), &b"\x01short"[..])
            .unwrap();
    });
    let storage = Storage::open(&path, StorageOptions::default()).unwrap();
    let ws = storage.workspace("w").unwrap();
    assert!(matches!(ws.get("bad"), Err(StorageError::Corrupt(_))));
    assert!(matches!(ws.exists("bad"), Err(StorageError::Corrupt(_))));
    assert_eq!(
        all_keys(ws.keys(None)),
        vec!["bad".to_string()],
        "listing still works"
    );
    // It can still be overwritten or deleted, and other keys work.
    ws.set("bad", b"good").unwrap();
    assert_eq!(ws.get("bad").unwrap().unwrap(), b"good");
    assert!(ws.delete("bad").unwrap());
}

/// The file's version counter is moved ahead in blocks, not on every
/// commit: versions handed out still grow across a block's end, a reopen and
/// a refused write, and never repeat.
#[test]
fn versions_grow_across_reserved_blocks_reopens_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let version_of = |storage: &Storage, key: &str| {
        let ws = storage.workspace("w").unwrap();
        ws.entry(key).unwrap().unwrap().version
    };
    let mut last = 0;
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..3 {
        let storage = Storage::open(&path, StorageOptions::default()).unwrap();
        let ws = storage.workspace("w").unwrap();
        // Past the end of at least one reserved block (65,536 versions).
        for batch in 0..35 {
            ws.set_many((0..1_000).map(|i| (format!("k{i}"), vec![round, batch])))
                .unwrap();
            let v = version_of(&storage, "k999");
            assert!(v > last, "round {round}: {v} after {last}");
            last = v;
        }
        // A refused write hands out no version that a later one repeats.
        let refused = ws.set_with(
            "k0",
            "x",
            crate::engine::WriteOptions::default().if_version(1),
        );
        assert!(
            matches!(refused, Err(StorageError::Conflict { .. })),
            "{refused:?}"
        );
        let v = ws.set("fresh", "y").unwrap();
        assert!(
            v > last && seen.insert(v),
            "round {round}: {v} after {last}"
        );
        last = v;
        // The stored mark is at or past every version handed out.
        drop((ws, storage));
        let db = redb::Database::create(&path).unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let mark = txn
            .open_table(META)
            .unwrap()
            .get(META_NEXT_VERSION)
            .unwrap()
            .unwrap()
            .value();
        assert!(mark > last, "mark {mark} not past {last}");
    }
}
