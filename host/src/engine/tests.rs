//! Unit tests of the engine, called directly (no wasm).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Writes to the database file at `path` with raw redb, behind the engine's
/// back.
fn tamper(path: &std::path::Path, f: impl FnOnce(&redb::WriteTransaction)) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    f(&txn);
    txn.commit().unwrap();
}

fn mem() -> Storage {
    Storage::in_memory(StorageOptions::default()).unwrap()
}

fn with_limits(f: impl FnOnce(&mut Limits)) -> Storage {
    let mut options = StorageOptions::default();
    f(&mut options.limits);
    Storage::in_memory(options).unwrap()
}

fn all_keys(ws: &Workspace) -> Vec<String> {
    ws.keys(None).collect::<Result<_, _>>().unwrap()
}

#[test]
fn set_get_delete_exists() {
    let ws = mem().workspace("w").unwrap();
    assert_eq!(ws.get("k").unwrap(), None);
    assert!(!ws.exists("k").unwrap());
    ws.set("k", b"v1").unwrap();
    assert_eq!(ws.get("k").unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(ws.exists("k").unwrap());
    ws.set("k", b"").unwrap();
    assert_eq!(ws.get("k").unwrap().as_deref(), Some(&b""[..]));
    assert!(ws.delete("k").unwrap());
    assert!(
        !ws.delete("k").unwrap(),
        "deleting a missing key is not an error"
    );
    assert_eq!(ws.get("k").unwrap(), None);
}

#[test]
fn workspaces_are_isolated_even_when_ids_share_prefixes() {
    let storage = mem();
    let ids = ["a", "ab", "a.b", "a:b", "b"];
    for id in ids {
        let ws = storage.workspace(id).unwrap();
        ws.set("shared", id.as_bytes()).unwrap();
        ws.set(&format!("only-{id}"), b"x").unwrap();
    }
    for id in ids {
        let ws = storage.workspace(id).unwrap();
        assert_eq!(ws.get("shared").unwrap().unwrap(), id.as_bytes());
        assert_eq!(all_keys(&ws), vec![format!("only-{id}"), "shared".into()]);
        assert_eq!(ws.usage().unwrap().keys, 2);
    }
    storage.workspace("a").unwrap().delete("shared").unwrap();
    assert!(storage.workspace("ab").unwrap().exists("shared").unwrap());
}

#[test]
fn hostile_keys_are_distinct_and_confined() {
    let storage = mem();
    let a = storage.workspace("a").unwrap();
    let b = storage.workspace("b").unwrap();
    let long = "x".repeat(1024);
    let keys = [
        "\0", "\0\0", "/", "a/b", "a\0b", "a", "ab", "b", "🦀", "ä", "a\u{0}", &long,
    ];
    for (i, key) in keys.iter().enumerate() {
        a.set(key, i.to_string().as_bytes()).unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            a.get(key).unwrap().unwrap(),
            i.to_string().as_bytes(),
            "{key:?}"
        );
        assert_eq!(b.get(key).unwrap(), None, "{key:?} leaked into b");
    }
    let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sorted.sort();
    assert_eq!(all_keys(&a), sorted);
    assert!(all_keys(&b).is_empty());
    assert_eq!(b.usage().unwrap(), Usage::default());
}

#[test]
fn invalid_keys_and_values_are_typed_errors_and_write_nothing() {
    let storage = with_limits(|l| {
        l.max_key_bytes = 8;
        l.max_value_bytes = 16;
    });
    let ws = storage.workspace("w").unwrap();
    assert!(matches!(ws.set("", b"v"), Err(StorageError::InvalidKey(_))));
    assert!(matches!(ws.get(""), Err(StorageError::InvalidKey(_))));
    assert!(matches!(
        ws.set("123456789", b"v"),
        Err(StorageError::InvalidKey(_))
    ));
    assert!(matches!(
        ws.set("k", [0; 17]),
        Err(StorageError::ValueTooLarge { len: 17, limit: 16 })
    ));
    ws.set("12345678", [0; 16]).unwrap();
    assert_eq!(all_keys(&ws), vec!["12345678".to_string()]);
    assert_eq!(ws.usage().unwrap(), Usage { keys: 1, bytes: 24 });
}

#[test]
fn workspace_ids_are_validated() {
    let storage = mem();
    for bad in ["", "a/b", "a\0", "white space", "é", &"w".repeat(129)] {
        assert!(
            matches!(
                storage.workspace(bad),
                Err(StorageError::InvalidWorkspace { .. })
            ),
            "{bad:?} accepted"
        );
    }
    for good in ["a", "team-1", "org:team_2.prod", &"w".repeat(128)] {
        storage.workspace(good).unwrap();
    }
}

#[test]
fn usage_is_exact_and_quotas_are_checked_before_writing() {
    let storage = with_limits(|l| {
        l.max_keys_per_workspace = 2;
        l.max_bytes_per_workspace = 20;
    });
    let ws = storage.workspace("w").unwrap();
    ws.set("a", b"12345").unwrap(); // 6 bytes
    ws.set("b", b"1234").unwrap(); // 5 bytes
    assert_eq!(ws.usage().unwrap(), Usage { keys: 2, bytes: 11 });
    assert!(matches!(
        ws.set("c", b""),
        Err(StorageError::QuotaExceeded(_))
    ));
    assert!(!ws.exists("c").unwrap());
    // Replacing a value is not a new key; it may grow up to the byte quota.
    ws.set("a", b"12345678901234").unwrap(); // 15 bytes: 20 in all
    assert!(matches!(
        ws.set("b", b"12345"),
        Err(StorageError::QuotaExceeded(_))
    ));
    assert_eq!(ws.get("b").unwrap().unwrap(), b"1234");
    assert_eq!(ws.usage().unwrap(), Usage { keys: 2, bytes: 20 });
    // Shrinking is always allowed.
    ws.set("a", b"1").unwrap();
    assert_eq!(ws.usage().unwrap(), Usage { keys: 2, bytes: 7 });
    assert!(ws.delete("a").unwrap());
    assert_eq!(ws.usage().unwrap(), Usage { keys: 1, bytes: 5 });
    ws.set("c", b"").unwrap();
    // Another workspace has its own quota.
    storage.workspace("v").unwrap().set("a", b"x").unwrap();
    assert_eq!(
        storage.workspaces().unwrap(),
        vec![
            ("v".to_string(), Usage { keys: 1, bytes: 2 }),
            ("w".to_string(), Usage { keys: 2, bytes: 6 }),
        ]
    );
}

#[test]
fn listing_pages_with_prefix_and_cursor() {
    let storage = with_limits(|l| {
        l.default_page_size = 4;
        l.max_page_size = 10;
    });
    let ws = storage.workspace("w").unwrap();
    for i in 0..25 {
        ws.set(&format!("item/{i:02}"), b"x").unwrap();
    }
    ws.set("other", b"x").unwrap();
    ws.set("item", b"x").unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = ws
            .list_keys(Some("item/"), cursor.as_deref(), Some(1000))
            .unwrap();
        assert!(page.keys.len() <= 10, "page size is clamped");
        pages += 1;
        seen.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        (0..25).map(|i| format!("item/{i:02}")).collect::<Vec<_>>()
    );

    assert_eq!(
        ws.list_keys(None, None, None).unwrap().keys.len(),
        4,
        "default page size"
    );
    assert_eq!(
        ws.list_keys(None, None, Some(0)).unwrap().keys.len(),
        1,
        "0 means 1"
    );
    let exact = ws.list_keys(Some("item/2"), None, Some(5)).unwrap();
    assert_eq!(exact.keys.len(), 5);
    assert_eq!(exact.cursor, None, "no cursor when nothing follows");

    let first = ws.list_keys(Some("item/"), None, Some(2)).unwrap();
    let cursor = first.cursor.unwrap();
    assert!(matches!(
        ws.list_keys(Some("other"), Some(&cursor), None),
        Err(StorageError::InvalidCursor)
    ));
    for bad in ["zz", "", "ff", "abc"] {
        assert!(
            matches!(
                ws.list_keys(None, Some(bad), None),
                Err(StorageError::InvalidCursor)
            ),
            "{bad:?}"
        );
    }
    // A cursor past the workspace's last key is an empty last page, never
    // another workspace's keys.
    storage.workspace("x").unwrap().set("zzz", b"x").unwrap();
    let past = hex::encode("zz");
    assert_eq!(
        ws.list_keys(None, Some(&past), None).unwrap(),
        KeyPage::default()
    );
}

#[test]
fn every_write_gets_a_new_version() {
    let storage = mem();
    let ws = storage.workspace("w").unwrap();
    let version = |key: &str| {
        let txn = storage.inner.db.begin_read().unwrap();
        let table = txn.open_table(ENTRIES).unwrap();
        let raw = table.get(("w", "", key)).unwrap().unwrap();
        Record::decode(raw.value()).unwrap().version
    };
    ws.set("k", b"same").unwrap();
    let v1 = version("k");
    ws.set("k", b"same").unwrap();
    let v2 = version("k");
    ws.delete("k").unwrap();
    ws.set("k", b"same").unwrap();
    let v3 = version("k");
    assert!(v1 < v2 && v2 < v3, "{v1} {v2} {v3}");
}

#[test]
fn concurrent_writers_are_all_committed() {
    let storage = mem();
    std::thread::scope(|s| {
        for t in 0..8 {
            let ws = storage.workspace(&format!("w{}", t % 2)).unwrap();
            s.spawn(move || {
                for i in 0..100 {
                    ws.set(&format!("t{t}-{i}"), b"v").unwrap();
                }
            });
        }
    });
    for w in ["w0", "w1"] {
        let ws = storage.workspace(w).unwrap();
        assert_eq!(all_keys(&ws).len(), 400);
        assert_eq!(ws.usage().unwrap().keys, 400);
    }
}

#[test]
fn data_persists_across_reopen_in_both_durability_modes() {
    for durability in [Durability::Durable, Durability::Relaxed] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/folder/db.redb");
        let options = StorageOptions {
            durability,
            ..StorageOptions::default()
        };
        {
            let storage = Storage::open(&path, options.clone()).unwrap();
            storage.workspace("w").unwrap().set("k", b"v").unwrap();
        }
        let storage = Storage::open(&path, options).unwrap();
        let ws = storage.workspace("w").unwrap();
        assert_eq!(ws.get("k").unwrap().unwrap(), b"v", "{durability:?}");
        assert_eq!(ws.usage().unwrap(), Usage { keys: 1, bytes: 2 });
    }
}

#[test]
fn a_second_open_of_the_same_file_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let _first = Storage::open(&path, StorageOptions::default()).unwrap();
    let err = Storage::open(&path, StorageOptions::default()).unwrap_err();
    assert!(matches!(err, OpenError::Locked { .. }), "{err}");
    assert!(err.to_string().contains("in use"), "{err}");
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
                supported: 1,
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
        all_keys(&ws),
        vec!["bad".to_string()],
        "listing still works"
    );
    // It can still be overwritten or deleted, and other keys work.
    ws.set("bad", b"good").unwrap();
    assert_eq!(ws.get("bad").unwrap().unwrap(), b"good");
    assert!(ws.delete("bad").unwrap());
}

#[test]
fn expired_entries_are_never_returned() {
    let storage = mem();
    let ws = storage.workspace("w").unwrap();
    ws.set("live", b"x").unwrap();
    {
        let txn = storage.inner.db.begin_write().unwrap();
        txn.open_table(ENTRIES)
            .unwrap()
            .insert(
                ("w", "", "old"),
                Record::encode(1, Some(1), b"x").as_slice(),
            )
            .unwrap();
        txn.commit().unwrap();
    }
    assert_eq!(ws.get("old").unwrap(), None);
    assert!(!ws.exists("old").unwrap());
    assert_eq!(all_keys(&ws), vec!["live".to_string()]);
    assert!(!ws.delete("old").unwrap(), "an expired entry was not there");
}

/// Random sequences of operations against the engine and a `BTreeMap` model:
/// every answer, every listing page and the usage must agree.
mod model {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const WORKSPACES: [&str; 3] = ["a", "ab", "b"];

    #[derive(Debug, Clone)]
    enum Op {
        Set(usize, String, Vec<u8>),
        Delete(usize, String),
        Get(usize, String),
        Exists(usize, String),
        List(usize, Option<String>, u32),
    }

    /// Short keys over an alphabet with separator-like and multi-byte
    /// characters, so keys collide, nest as prefixes and sort unusually.
    fn key() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop::sample::select(vec!['a', 'b', '/', '\0', 'é', '🦀']),
            0..4,
        )
        .prop_map(|chars| chars.into_iter().collect())
    }

    fn op() -> impl Strategy<Value = Op> {
        let ws = 0..WORKSPACES.len();
        prop_oneof![
            4 => (ws.clone(), key(), proptest::collection::vec(any::<u8>(), 0..20))
                .prop_map(|(w, k, v)| Op::Set(w, k, v)),
            2 => (ws.clone(), key()).prop_map(|(w, k)| Op::Delete(w, k)),
            2 => (ws.clone(), key()).prop_map(|(w, k)| Op::Get(w, k)),
            1 => (ws.clone(), key()).prop_map(|(w, k)| Op::Exists(w, k)),
            2 => (ws, proptest::option::of(key()), 0..5u32)
                .prop_map(|(w, p, n)| Op::List(w, p, n)),
        ]
    }

    type Model = BTreeMap<(usize, String), Vec<u8>>;

    fn model_keys(model: &Model, w: usize, prefix: &str) -> Vec<String> {
        model
            .keys()
            .filter(|(mw, k)| *mw == w && k.starts_with(prefix))
            .map(|(_, k)| k.clone())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn engine_matches_a_btreemap(ops in proptest::collection::vec(op(), 1..60)) {
            let storage = Storage::in_memory(StorageOptions::default()).unwrap();
            let handles: Vec<Workspace> =
                WORKSPACES.iter().map(|w| storage.workspace(w).unwrap()).collect();
            let mut model = Model::new();
            for op in ops {
                match op {
                    Op::Set(w, k, v) => {
                        let got = handles[w].set(&k, v.as_slice());
                        if k.is_empty() {
                            prop_assert!(matches!(got, Err(StorageError::InvalidKey(_))));
                        } else {
                            prop_assert!(got.is_ok());
                            model.insert((w, k), v);
                        }
                    }
                    Op::Delete(w, k) => {
                        let got = handles[w].delete(&k);
                        if k.is_empty() {
                            prop_assert!(got.is_err());
                        } else {
                            prop_assert_eq!(got.unwrap(), model.remove(&(w, k)).is_some());
                        }
                    }
                    Op::Get(w, k) if !k.is_empty() => {
                        prop_assert_eq!(handles[w].get(&k).unwrap(), model.get(&(w, k)).cloned());
                    }
                    Op::Exists(w, k) if !k.is_empty() => {
                        prop_assert_eq!(handles[w].exists(&k).unwrap(), model.contains_key(&(w, k)));
                    }
                    Op::Get(..) | Op::Exists(..) => {}
                    Op::List(w, prefix, page) => {
                        let mut listed = Vec::new();
                        let mut cursor = None;
                        loop {
                            let p = handles[w].list_keys(prefix.as_deref(), cursor.as_deref(), Some(page)).unwrap();
                            prop_assert!(p.keys.len() <= page.max(1) as usize);
                            listed.extend(p.keys);
                            match p.cursor {
                                Some(c) => cursor = Some(c),
                                None => break,
                            }
                        }
                        prop_assert_eq!(listed, model_keys(&model, w, prefix.as_deref().unwrap_or("")));
                    }
                }
            }
            for (w, ws) in handles.iter().enumerate() {
                let entries: Vec<_> = model.iter().filter(|((mw, _), _)| *mw == w).collect();
                let bytes: usize = entries.iter().map(|((_, k), v)| k.len() + v.len()).sum();
                prop_assert_eq!(
                    ws.usage().unwrap(),
                    Usage { keys: entries.len() as u64, bytes: bytes as u64 }
                );
            }
        }
    }
}
