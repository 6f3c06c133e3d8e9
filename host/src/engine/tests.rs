//! Unit tests of the engine, called directly (no wasm).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use redb::ReadableTableMetadata;

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
                supported: 2,
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

fn manual(
    path: Option<&std::path::Path>,
    clock: &ManualClock,
    f: impl FnOnce(&mut StorageOptions),
) -> Storage {
    let mut options = StorageOptions {
        clock: Arc::new(clock.clone()),
        sweep_interval: None,
        ..StorageOptions::default()
    };
    f(&mut options);
    match path {
        Some(path) => Storage::open(path, options).unwrap(),
        None => Storage::in_memory(options).unwrap(),
    }
}

/// Rows stored for a workspace, read behind the engine's back (expired ones
/// included): what the sweeper has not removed.
fn raw_rows(storage: &Storage, ws: &str) -> usize {
    let txn = storage.inner.db.begin_read().unwrap();
    let table = txn.open_table(ENTRIES).unwrap();
    table
        .iter()
        .unwrap()
        .filter(|r| r.as_ref().unwrap().0.value().0 == ws)
        .count()
}

/// Usage recounted from the live entries themselves.
fn recount(storage: &Storage, ws: &str) -> Usage {
    let now = storage.now_ms();
    let txn = storage.inner.db.begin_read().unwrap();
    let table = txn.open_table(ENTRIES).unwrap();
    let mut usage = Usage::default();
    for row in table.iter().unwrap() {
        let (k, v) = row.unwrap();
        let (w, _, key) = k.value();
        let record = Record::decode(v.value()).unwrap();
        if w == ws && !record.is_expired(now) {
            usage.keys += 1;
            usage.bytes += (key.len() + record.value.len()) as u64;
        }
    }
    usage
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn expiry_follows_the_injected_clock_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let clock = ManualClock::new(1_000_000);
    let storage = manual(Some(&path), &clock, |_| {});
    let ws = storage.workspace("w").unwrap();
    ws.set_with("temp", b"t".to_vec(), WriteOptions::default().ttl(10 * SEC))
        .unwrap();
    ws.set_with(
        "session",
        b"s".to_vec(),
        WriteOptions::default().ttl(10 * SEC),
    )
    .unwrap();
    ws.set("forever", b"f").unwrap();

    clock.advance(Duration::from_millis(5_000));
    // Renew on read: the session now expires 10 s from here.
    let renewed = ws.get_and_renew("session", 10 * SEC).unwrap().unwrap();
    assert_eq!(renewed.expires_in, Some(10 * SEC));
    clock.advance(Duration::from_millis(4_999));
    assert_eq!(
        ws.entry("temp").unwrap().unwrap().expires_in,
        Some(Duration::from_millis(1))
    );
    assert_eq!(ws.usage().unwrap().keys, 3);

    clock.advance(Duration::from_millis(1)); // the deadline of "temp"
    assert_eq!(ws.get("temp").unwrap(), None);
    assert!(!ws.exists("temp").unwrap());
    assert_eq!(all_keys(&ws), ["forever", "session"]);
    assert_eq!(
        ws.usage().unwrap(),
        Usage {
            keys: 2,
            bytes: 7 + 8 + 1
        }
    );
    assert_eq!(ws.usage().unwrap(), recount(&storage, "w"));
    assert_eq!(storage.workspaces().unwrap()[0].1.keys, 2);
    assert_eq!(raw_rows(&storage, "w"), 3, "not swept yet, but invisible");

    assert_eq!(storage.prune().unwrap().removed, 1);
    assert_eq!(raw_rows(&storage, "w"), 2);
    assert_eq!(ws.usage().unwrap().keys, 2);
    drop((ws, storage));

    // After a restart the deadlines still hold.
    let storage = manual(Some(&path), &clock, |_| {});
    let ws = storage.workspace("w").unwrap();
    assert_eq!(ws.get("temp").unwrap(), None);
    assert_eq!(
        ws.entry("session").unwrap().unwrap().expires_in,
        Some(5 * SEC)
    );
    clock.advance(5 * SEC);
    assert_eq!(ws.get("session").unwrap(), None);
    assert_eq!(all_keys(&ws), ["forever"]);
    assert_eq!(ws.usage().unwrap(), recount(&storage, "w"));
    // Removing an expiry makes an entry permanent again; a zero TTL is refused.
    ws.set_with("k", b"v".to_vec(), WriteOptions::default().ttl(SEC))
        .unwrap();
    assert!(ws.expire("k", None).unwrap());
    clock.advance(10 * SEC);
    assert!(ws.exists("k").unwrap());
    assert!(!ws.expire("missing", Some(SEC)).unwrap());
    assert!(matches!(
        ws.set_with(
            "k",
            b"v".to_vec(),
            WriteOptions::default().ttl(Duration::ZERO)
        ),
        Err(StorageError::InvalidArgument(_))
    ));
}

#[test]
fn the_background_sweeper_removes_expired_entries() {
    let clock = ManualClock::new(1_000);
    let storage = manual(None, &clock, |o| {
        o.sweep_interval = Some(Duration::from_millis(5))
    });
    let ws = storage.workspace("w").unwrap();
    for i in 0..5 {
        ws.set_with(
            &format!("k{i}"),
            b"v".to_vec(),
            WriteOptions::default().ttl(SEC),
        )
        .unwrap();
    }
    ws.namespace("n")
        .unwrap()
        .set_with("k", b"v".to_vec(), WriteOptions::default().ttl(SEC))
        .unwrap();
    ws.set("keep", b"v").unwrap();
    clock.advance(SEC);
    // Bounded wait for the background thread, not a timing assertion.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while raw_rows(&storage, "w") > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(all_keys(&ws), ["keep"]);
    assert_eq!(ws.usage().unwrap(), Usage { keys: 1, bytes: 5 });
    assert_eq!(
        ws.namespaces(None, None).unwrap().keys,
        Vec::<String>::new()
    );
    let txn = storage.inner.db.begin_read().unwrap();
    assert_eq!(txn.open_table(EXPIRY).unwrap().len().unwrap(), 0);
    assert_eq!(
        txn.open_table(USAGE)
            .unwrap()
            .get("w")
            .unwrap()
            .unwrap()
            .value(),
        (1, 5)
    );
}

#[test]
fn racing_writers_never_pass_the_quota_and_usage_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    let quota = Quota {
        max_keys: 1_000,
        max_bytes: 100,
    };
    let open = || {
        let mut options = StorageOptions::default();
        options.quotas.insert("w".into(), quota);
        Storage::open(&path, options).unwrap()
    };
    let storage = open();
    // 16 writers of 13 bytes each (3-byte key, 10-byte value): 7 fit in 100.
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|i| {
                let ws = storage.workspace("w").unwrap();
                s.spawn(move || (i, ws.set(&format!("k{i:02}"), vec![0u8; 10])))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ws = storage.workspace("w").unwrap();
    let mut stored = Vec::new();
    for (i, result) in results {
        match result {
            Ok(_) => stored.push(format!("k{i:02}")),
            Err(StorageError::QuotaExceeded(_)) => {
                assert!(!ws.exists(&format!("k{i:02}")).unwrap())
            }
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(stored.len(), 7);
    stored.sort();
    assert_eq!(all_keys(&ws), stored);
    assert_eq!(ws.usage().unwrap(), Usage { keys: 7, bytes: 91 });
    assert_eq!(
        storage.workspace("other").unwrap().quota(),
        Limits::default().default_quota()
    );
    // Deleting frees exactly what the entry took, and the space is usable.
    assert!(ws.delete(&stored[0]).unwrap());
    assert_eq!(ws.usage().unwrap(), Usage { keys: 6, bytes: 78 });
    ws.set("new", vec![0u8; 10]).unwrap();
    assert!(matches!(
        ws.set("one-more-key", b"x"),
        Err(StorageError::QuotaExceeded(_))
    ));
    drop((ws, storage));
    let storage = open();
    let ws = storage.workspace("w").unwrap();
    assert_eq!(ws.usage().unwrap(), Usage { keys: 7, bytes: 91 });
    assert_eq!(ws.usage().unwrap(), recount(&storage, "w"));
    // A quota raised at run time applies to the next write.
    storage
        .set_quota(
            "w",
            Some(Quota {
                max_keys: 1_000,
                max_bytes: 200,
            }),
        )
        .unwrap();
    ws.set("one-more-key", b"x").unwrap();
}

#[test]
fn expired_entries_do_not_count_against_the_quota() {
    let clock = ManualClock::new(1_000);
    let storage = manual(None, &clock, |o| {
        o.limits.max_keys_per_workspace = 2;
    });
    let ws = storage.workspace("w").unwrap();
    ws.set_with("a", b"1".to_vec(), WriteOptions::default().ttl(SEC))
        .unwrap();
    ws.set("b", b"2").unwrap();
    assert!(matches!(
        ws.set("c", b"3"),
        Err(StorageError::QuotaExceeded(_))
    ));
    clock.advance(SEC);
    // "a" expired but is not swept: it must not block the write.
    ws.set("c", b"3").unwrap();
    assert_eq!(ws.usage().unwrap().keys, 2);
    assert_eq!(ws.usage().unwrap(), recount(&storage, "w"));
}

#[test]
fn transactions_are_all_or_nothing() {
    let storage = with_limits(|l| {
        l.max_bytes_per_workspace = 40;
        l.max_batch_ops = 4;
    });
    let ws = storage.workspace("w").unwrap();
    let v = ws.set("config", b"v1").unwrap();
    // A failing precondition (op 2) writes nothing of ops 0 and 1.
    let err = ws
        .transact(vec![
            Op::set("a", b"1".to_vec()),
            Op::increment("n", 1).in_namespace("stats"),
            Op::check("config", Condition::VersionEquals(v + 1)),
        ])
        .unwrap_err();
    match err {
        StorageError::Conflict {
            index: 2,
            current: Some(e),
        } => {
            assert_eq!((e.value.as_slice(), e.version), (&b"v1"[..], v));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ws.get("a").unwrap(), None);
    assert_eq!(ws.usage().unwrap(), Usage { keys: 1, bytes: 8 });
    // An op that passes the quota midway writes nothing either.
    let err = ws
        .transact(vec![
            Op::set("b", vec![0u8; 10]),
            Op::delete("config"),
            Op::set("c", vec![0u8; 40]),
        ])
        .unwrap_err();
    assert!(matches!(err, StorageError::QuotaExceeded(_)), "{err:?}");
    assert_eq!(all_keys(&ws), ["config"]);
    // Conditions see the earlier ops of the same transaction.
    let out = ws
        .transact(vec![
            Op::check("config", Condition::ValueEquals(b"v1".to_vec())),
            Op::set("config", b"v2".to_vec()),
            Op::check("config", Condition::ValueEquals(b"v2".to_vec())),
            Op::delete("lock").when(Condition::Absent),
        ])
        .unwrap();
    assert_eq!(out[0], Outcome::Checked);
    assert!(matches!(out[1], Outcome::Set { .. }));
    assert_eq!(out[3], Outcome::Deleted(false));
    assert!(matches!(
        ws.transact(vec![Op::delete("x"); 5]),
        Err(StorageError::TooManyOperations { len: 5, limit: 4 })
    ));
    assert!(matches!(
        ws.transact(vec![Op::delete("x").in_namespace("n".repeat(129))]),
        Err(StorageError::InvalidNamespace(_))
    ));
}

#[test]
fn namespaces_are_separate_and_clear_is_bounded() {
    let storage = with_limits(|l| l.max_page_size = 2);
    let ws = storage.workspace("w").unwrap();
    let a = ws.namespace("a").unwrap();
    let b = ws.namespace("a/b").unwrap();
    ws.set("k", b"default").unwrap();
    a.set("k", b"in a").unwrap();
    b.set("k", b"in a/b").unwrap();
    a.set("b/k", b"a, b/k").unwrap();
    assert_eq!(ws.get("k").unwrap().unwrap(), b"default");
    assert_eq!(a.get("k").unwrap().unwrap(), b"in a");
    assert_eq!(b.get("k").unwrap().unwrap(), b"in a/b");
    assert_eq!(ws.usage().unwrap().keys, 4);
    assert_eq!(
        a.usage().unwrap(),
        Usage {
            keys: 2,
            bytes: 1 + 4 + 3 + 6
        }
    );
    assert_eq!(all_keys(&ws), ["k"]);
    let names = ws.namespaces(None, Some(1)).unwrap();
    assert_eq!(names.keys, ["a"]);
    let rest = ws.namespaces(names.cursor.as_deref(), Some(1)).unwrap();
    assert_eq!((rest.keys, rest.cursor), (vec!["a/b".to_string()], None));
    assert!(
        storage
            .workspace("other")
            .unwrap()
            .namespaces(None, None)
            .unwrap()
            .keys
            .is_empty()
    );

    for i in 0..5 {
        a.set(&format!("x{i}"), b"v").unwrap();
    }
    // Seven keys, two per call: four calls.
    let mut calls = 0;
    let mut deleted = 0;
    loop {
        let step = a.clear().unwrap();
        calls += 1;
        deleted += step.deleted;
        if step.done {
            break;
        }
    }
    assert_eq!((calls, deleted), (4, 7));
    assert_eq!(a.usage().unwrap(), Usage::default());
    assert_eq!(ws.get("k").unwrap().unwrap(), b"default");
    assert_eq!(b.get("k").unwrap().unwrap(), b"in a/b");
    assert_eq!(ws.namespaces(None, None).unwrap().keys, ["a/b"]);
    assert_eq!(ws.usage().unwrap().keys, 2);
    // Clearing the default space leaves the namespaces alone.
    while !ws.clear().unwrap().done {}
    assert_eq!(ws.usage().unwrap().keys, 1);
}

#[test]
fn counters_are_decimal_text_and_their_errors_are_typed() {
    let ws = mem().workspace("w").unwrap();
    assert_eq!(ws.increment("n", 5, None).unwrap(), 5);
    assert_eq!(ws.increment("n", -7, None).unwrap(), -2);
    assert_eq!(ws.get("n").unwrap().unwrap(), b"-2");
    ws.set("text", b"twelve").unwrap();
    assert!(matches!(
        ws.increment("text", 1, None),
        Err(StorageError::NotACounter)
    ));
    assert_eq!(ws.get("text").unwrap().unwrap(), b"twelve");
    ws.set("big", i64::MAX.to_string()).unwrap();
    assert!(matches!(
        ws.increment("big", 1, None),
        Err(StorageError::Overflow)
    ));
    assert_eq!(
        ws.get("big").unwrap().unwrap(),
        i64::MAX.to_string().as_bytes()
    );
    ws.set("json", b"41").unwrap();
    assert_eq!(ws.increment("json", 1, None).unwrap(), 42);
}

#[test]
fn compare_and_swap_is_aba_safe() {
    let ws = mem().workspace("w").unwrap();
    let v1 = ws.set("k", b"same").unwrap();
    assert!(ws.delete("k").unwrap());
    let v2 = ws.set("k", b"same").unwrap();
    assert_ne!(v1, v2, "the same value written again has a new version");
    let stale = ws.set_with("k", b"new".to_vec(), WriteOptions::default().if_version(v1));
    match stale {
        Err(StorageError::Conflict {
            index: 0,
            current: Some(e),
        }) => assert_eq!(e.version, v2),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(
            ws.set_with(
                "missing",
                b"x".to_vec(),
                WriteOptions::default().if_version(v2)
            ),
            Err(StorageError::Conflict { current: None, .. })
        ),
        "a compare-and-swap on a missing key never upserts"
    );
    assert!(!ws.exists("missing").unwrap());
    assert!(matches!(
        ws.delete_if("k", Condition::VersionEquals(v1)),
        Err(StorageError::Conflict { .. })
    ));
    assert!(ws.delete_if("k", Condition::VersionEquals(v2)).unwrap());
    ws.set_with("k", b"first".to_vec(), WriteOptions::default().if_absent())
        .unwrap();
    assert!(matches!(
        ws.set_with("k", b"second".to_vec(), WriteOptions::default().if_absent()),
        Err(StorageError::Conflict { .. })
    ));
    assert_eq!(ws.get("k").unwrap().unwrap(), b"first");
}

#[test]
fn schema_1_databases_are_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.redb");
    {
        // The layout Cubby 0.1 wrote.
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut meta = txn.open_table(META).unwrap();
            meta.insert(META_SCHEMA, 1).unwrap();
            meta.insert(META_NEXT_VERSION, 3).unwrap();
            let mut entries = txn.open_table(ENTRIES).unwrap();
            entries
                .insert(("w", "", "a"), Record::encode(1, None, b"12").as_slice())
                .unwrap();
            entries
                .insert(("w", "", "bc"), Record::encode(2, None, b"3").as_slice())
                .unwrap();
            txn.open_table(USAGE).unwrap().insert("w", (2, 6)).unwrap();
            txn.open_table(EXPIRY_V1).unwrap();
        }
        txn.commit().unwrap();
    }
    let storage = Storage::open(&path, StorageOptions::default()).unwrap();
    let ws = storage.workspace("w").unwrap();
    assert_eq!(ws.get("a").unwrap().unwrap(), b"12");
    assert_eq!(ws.usage().unwrap(), Usage { keys: 2, bytes: 6 });
    assert_eq!(
        ws.default_space().usage().unwrap(),
        Usage { keys: 2, bytes: 6 }
    );
    assert!(ws.set("d", b"4").unwrap() >= 3, "versions are never reused");
    drop((ws, storage));
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    assert_eq!(
        txn.open_table(META)
            .unwrap()
            .get(META_SCHEMA)
            .unwrap()
            .unwrap()
            .value(),
        2
    );
}

#[test]
fn a_lowered_quota_lets_a_workspace_shrink_but_not_grow() {
    let storage = mem();
    let ws = storage.workspace("w").unwrap();
    ws.set_many((0..4).map(|i| (format!("k{i}"), b"12345".to_vec())))
        .unwrap();
    assert_eq!(ws.usage().unwrap(), Usage { keys: 4, bytes: 28 });
    storage
        .set_quota(
            "w",
            Some(Quota {
                max_keys: 2,
                max_bytes: 10,
            }),
        )
        .unwrap();
    assert_eq!(all_keys(&ws).len(), 4, "stored entries are kept");
    assert!(matches!(
        ws.set("k0", b"123456"),
        Err(StorageError::QuotaExceeded(_))
    ));
    assert!(matches!(
        ws.set("new", b""),
        Err(StorageError::QuotaExceeded(_))
    ));
    ws.set("k0", b"1").unwrap(); // shrinking is allowed
    assert!(ws.delete("k1").unwrap());
    assert_eq!(ws.usage().unwrap(), Usage { keys: 3, bytes: 17 });
    storage.set_quota("w", None).unwrap();
    ws.set("new", b"").unwrap();
}

#[test]
fn a_batch_keeps_the_last_value_of_a_repeated_key() {
    let ws = mem().workspace("w").unwrap();
    ws.set_many([
        ("k".to_string(), b"1".to_vec()),
        ("k".to_string(), b"2".to_vec()),
    ])
    .unwrap();
    assert_eq!(ws.get("k").unwrap().unwrap(), b"2");
    assert_eq!(ws.usage().unwrap(), Usage { keys: 1, bytes: 2 });
    assert_eq!(ws.delete_many(&["k", "k", "missing"]).unwrap(), 1);
    assert_eq!(ws.usage().unwrap(), Usage::default());
}

#[test]
fn a_sweep_pass_does_bounded_work() {
    let clock = ManualClock::new(1_000);
    let storage = manual(None, &clock, |_| {});
    let ws = storage.workspace("w").unwrap();
    let total = writer::SWEEP_BUDGET + 500;
    for chunk in (0..total).collect::<Vec<_>>().chunks(500) {
        let ops = chunk
            .iter()
            .map(|i| {
                Op::new(
                    format!("k{i:05}"),
                    Action::Set {
                        value: b"v".to_vec(),
                        ttl: Some(SEC),
                    },
                )
            })
            .collect();
        ws.transact(ops).unwrap();
    }
    clock.advance(SEC);
    let pass = |from| match storage.inner.writer.submit(Work::Sweep { from }).unwrap() {
        Done::Swept(pass) => pass,
        _ => panic!("not a sweep"),
    };
    let first = pass(None);
    assert_eq!(first.removed as usize, writer::SWEEP_BUDGET);
    assert_eq!(
        first.next.as_deref(),
        Some("w"),
        "resumes in the same workspace"
    );
    let second = pass(first.next);
    assert_eq!((second.removed, second.next), (500, None));
    assert_eq!(raw_rows(&storage, "w"), 0);
}

mod model {
    //! Random sequences of operations against the engine and a plain
    //! in-memory model (a `BTreeMap` and a clock), compared after every step.

    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    const WORKSPACES: [&str; 2] = ["a", "ab"];
    /// The default space, a namespace, and one that extends its name.
    const NAMESPACES: [&str; 3] = ["", "n", "n\0"];

    #[derive(Debug, Clone)]
    enum Step {
        Set(Slot, Vec<u8>, Option<u64>),
        Delete(Slot),
        Get(Slot),
        Exists(Slot),
        Increment(Slot, i64, Option<u64>),
        /// Compare-and-swap with the current version (`true`) or a stale one.
        Cas(Slot, Vec<u8>, bool),
        InsertIfAbsent(Slot, Vec<u8>),
        Renew(Slot, u64),
        Expire(Slot, Option<u64>),
        /// Sets both slots, the second only if absent: all or nothing.
        Transaction(Slot, Vec<u8>, Slot, Vec<u8>),
        DeleteMany(usize, usize, Vec<String>),
        Clear(usize, usize),
        List(usize, usize, Option<String>, u32),
        Advance(u64),
        Prune,
    }

    /// (workspace, namespace, key)
    type Slot = (usize, usize, String);

    #[derive(Debug, Clone)]
    struct Stored {
        value: Vec<u8>,
        version: u64,
        expires_at: Option<u64>,
    }

    #[derive(Default)]
    struct Model {
        now: u64,
        entries: BTreeMap<(usize, usize, String), Stored>,
        last_version: u64,
    }

    impl Model {
        fn live(&self, slot: &Slot) -> Option<&Stored> {
            self.entries
                .get(slot)
                .filter(|e| e.expires_at.is_none_or(|at| at > self.now))
        }

        fn keys(&self, w: usize, n: usize, prefix: &str) -> Vec<String> {
            self.entries
                .iter()
                .filter(|((mw, mn, k), _)| *mw == w && *mn == n && k.starts_with(prefix))
                .filter(|(slot, _)| self.live(slot).is_some())
                .map(|((_, _, k), _)| k.clone())
                .collect()
        }

        fn usage(&self, w: usize, n: Option<usize>) -> Usage {
            let live: Vec<_> = self
                .entries
                .iter()
                .filter(|((mw, mn, _), _)| *mw == w && n.is_none_or(|n| n == *mn))
                .filter(|(slot, _)| self.live(slot).is_some())
                .collect();
            Usage {
                keys: live.len() as u64,
                bytes: live
                    .iter()
                    .map(|((_, _, k), e)| (k.len() + e.value.len()) as u64)
                    .sum(),
            }
        }

        /// Records a write the engine made with `version`, which must be new.
        fn wrote(&mut self, slot: Slot, value: Vec<u8>, version: u64, expires_at: Option<u64>) {
            assert!(version > self.last_version, "version {version} was not new");
            self.last_version = version;
            self.entries.insert(
                slot,
                Stored {
                    value,
                    version,
                    expires_at,
                },
            );
        }
    }

    fn key() -> impl Strategy<Value = String> {
        proptest::collection::vec(prop::sample::select(vec!['a', 'b', '/', '\0', '🦀']), 1..3)
            .prop_map(|chars| chars.into_iter().collect())
    }

    /// Values that are sometimes counters ("12", "-1") and sometimes not.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(prop::sample::select(vec![b'1', b'2', b'-', b'x']), 0..3)
    }

    fn slot() -> impl Strategy<Value = Slot> {
        (0..WORKSPACES.len(), 0..NAMESPACES.len(), key())
    }

    fn ttl() -> impl Strategy<Value = Option<u64>> {
        proptest::option::of(1..40u64)
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (slot(), value(), ttl()).prop_map(|(s, v, t)| Step::Set(s, v, t)),
            2 => slot().prop_map(Step::Delete),
            3 => slot().prop_map(Step::Get),
            1 => slot().prop_map(Step::Exists),
            3 => (slot(), prop_oneof![-3..4i64, Just(i64::MAX), Just(i64::MIN)], ttl())
                .prop_map(|(s, d, t)| Step::Increment(s, d, t)),
            2 => (slot(), value(), any::<bool>()).prop_map(|(s, v, f)| Step::Cas(s, v, f)),
            1 => (slot(), value()).prop_map(|(s, v)| Step::InsertIfAbsent(s, v)),
            1 => (slot(), 1..40u64).prop_map(|(s, t)| Step::Renew(s, t)),
            1 => (slot(), ttl()).prop_map(|(s, t)| Step::Expire(s, t)),
            1 => (slot(), value(), slot(), value())
                .prop_map(|(a, va, b, vb)| { let b = (a.0, b.1, b.2); Step::Transaction(a, va, b, vb) }),
            1 => (0..2usize, 0..3usize, proptest::collection::vec(key(), 0..3))
                .prop_map(|(w, n, k)| Step::DeleteMany(w, n, k)),
            1 => (0..2usize, 0..3usize).prop_map(|(w, n)| Step::Clear(w, n)),
            2 => (0..2usize, 0..3usize, proptest::option::of(key()), 1..4u32)
                .prop_map(|(w, n, p, l)| Step::List(w, n, p, l)),
            2 => (0..30u64).prop_map(Step::Advance),
            1 => Just(Step::Prune),
        ]
    }

    fn ms(t: Option<u64>) -> Option<Duration> {
        t.map(Duration::from_millis)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(192))]

        #[test]
        fn engine_matches_a_model(steps in proptest::collection::vec(step(), 1..60)) {
            let clock = ManualClock::new(1_000);
            let mut options = StorageOptions {
                clock: Arc::new(clock.clone()),
                sweep_interval: None,
                ..StorageOptions::default()
            };
            options.limits.max_page_size = 2;
            let storage = Storage::in_memory(options).unwrap();
            let handles: Vec<Vec<Namespace>> = WORKSPACES
                .iter()
                .map(|w| {
                    let ws = storage.workspace(w).unwrap();
                    NAMESPACES.iter().map(|n| ws.namespace(n).unwrap()).collect()
                })
                .collect();
            let ns = |s: &Slot| &handles[s.0][s.1];
            let mut model = Model { now: 1_000, ..Model::default() };
            for step in steps {
                let touched = match &step {
                    Step::Set(s, ..) | Step::Delete(s) | Step::Get(s) | Step::Exists(s)
                    | Step::Increment(s, ..) | Step::Cas(s, ..) | Step::InsertIfAbsent(s, _)
                    | Step::Renew(s, _) | Step::Expire(s, _) | Step::Transaction(s, ..) => Some(s.clone()),
                    _ => None,
                };
                match step {
                    Step::Set(s, v, t) => {
                        let version = ns(&s).set_with(&s.2, v.clone(), WriteOptions { ttl: ms(t), condition: None }).unwrap();
                        let at = t.map(|t| model.now + t);
                        model.wrote(s, v, version, at);
                    }
                    Step::Delete(s) => {
                        let existed = model.live(&s).is_some();
                        prop_assert_eq!(ns(&s).delete(&s.2).unwrap(), existed);
                        model.entries.remove(&s);
                    }
                    Step::Get(s) => {
                        let want = model.live(&s).map(|e| e.value.clone());
                        prop_assert_eq!(ns(&s).get(&s.2).unwrap(), want);
                        let entry = ns(&s).entry(&s.2).unwrap();
                        let want = model.live(&s).map(|e| (e.version, e.expires_at.map(|at| Duration::from_millis(at - model.now))));
                        prop_assert_eq!(entry.map(|e| (e.version, e.expires_in)), want);
                    }
                    Step::Exists(s) => {
                        prop_assert_eq!(ns(&s).exists(&s.2).unwrap(), model.live(&s).is_some());
                    }
                    Step::Increment(s, delta, t) => {
                        let got = ns(&s).increment(&s.2, delta, ms(t));
                        let current = model.live(&s).cloned();
                        let old = match &current {
                            None => Some(0),
                            Some(e) => std::str::from_utf8(&e.value).ok().and_then(|v| v.parse::<i64>().ok()),
                        };
                        match (old, old.and_then(|o| o.checked_add(delta))) {
                            (None, _) => prop_assert!(matches!(got, Err(StorageError::NotACounter)), "{got:?}"),
                            (Some(_), None) => prop_assert!(matches!(got, Err(StorageError::Overflow)), "{got:?}"),
                            (Some(_), Some(n)) => {
                                prop_assert_eq!(got.unwrap(), n);
                                let version = ns(&s).entry(&s.2).unwrap().unwrap().version;
                                let at = match &current {
                                    Some(e) => e.expires_at,
                                    None => t.map(|t| model.now + t),
                                };
                                model.wrote(s, n.to_string().into_bytes(), version, at);
                            }
                        }
                    }
                    Step::Cas(s, v, fresh) => {
                        let current = model.live(&s).map(|e| e.version);
                        let asked = match (fresh, current) {
                            (true, Some(version)) => version,
                            _ => model.last_version + 1_000,
                        };
                        let got = ns(&s).set_with(&s.2, v.clone(), WriteOptions::default().if_version(asked));
                        if current == Some(asked) {
                            model.wrote(s, v, got.unwrap(), None);
                        } else {
                            match got {
                                Err(StorageError::Conflict { index: 0, current: now }) => {
                                    prop_assert_eq!(now.map(|e| e.version), current);
                                }
                                other => prop_assert!(false, "expected a conflict, got {other:?}"),
                            }
                        }
                    }
                    Step::InsertIfAbsent(s, v) => {
                        let got = ns(&s).set_with(&s.2, v.clone(), WriteOptions::default().if_absent());
                        if model.live(&s).is_none() {
                            model.wrote(s, v, got.unwrap(), None);
                        } else {
                            prop_assert!(matches!(got, Err(StorageError::Conflict { .. })), "{got:?}");
                        }
                    }
                    Step::Renew(s, t) => {
                        let got = ns(&s).get_and_renew(&s.2, Duration::from_millis(t)).unwrap();
                        prop_assert_eq!(got.as_ref().map(|e| e.value.clone()), model.live(&s).map(|e| e.value.clone()));
                        if got.is_some() {
                            let now = model.now;
                            if let Some(e) = model.entries.get_mut(&s) {
                                e.expires_at = Some(now + t);
                            }
                        }
                    }
                    Step::Expire(s, t) => {
                        let found = ns(&s).expire(&s.2, ms(t)).unwrap();
                        prop_assert_eq!(found, model.live(&s).is_some());
                        if found {
                            let now = model.now;
                            if let Some(e) = model.entries.get_mut(&s) {
                                e.expires_at = t.map(|t| now + t);
                            }
                        }
                    }
                    Step::Transaction(a, va, b, vb) => {
                        let ws = storage.workspace(WORKSPACES[a.0]).unwrap();
                        let got = ws.transact(vec![
                            Op::set(a.2.clone(), va.clone()).in_namespace(NAMESPACES[a.1]),
                            Op::set(b.2.clone(), vb.clone()).in_namespace(NAMESPACES[b.1]).when(Condition::Absent),
                        ]);
                        // The second op sees the first: the same slot is
                        // then never absent.
                        let b_absent = a != b && model.live(&b).is_none();
                        if b_absent {
                            let outcomes = got.unwrap();
                            let version = |o: &Outcome| match o { Outcome::Set { version } => *version, _ => 0 };
                            model.wrote(a, va, version(&outcomes[0]), None);
                            model.wrote(b, vb, version(&outcomes[1]), None);
                        } else {
                            prop_assert!(matches!(got, Err(StorageError::Conflict { index: 1, .. })), "{got:?}");
                        }
                    }
                    Step::DeleteMany(w, n, keys) => {
                        let mut unique = keys.clone();
                        unique.sort();
                        unique.dedup();
                        let existed = unique.iter().filter(|k| model.live(&(w, n, (*k).clone())).is_some()).count();
                        prop_assert_eq!(handles[w][n].delete_many(&keys).unwrap(), existed as u64);
                        for k in keys {
                            model.entries.remove(&(w, n, k));
                        }
                    }
                    Step::Clear(w, n) => {
                        let mut deleted = 0;
                        loop {
                            let step = handles[w][n].clear().unwrap();
                            deleted += step.deleted;
                            if step.done { break; }
                        }
                        prop_assert_eq!(deleted, model.keys(w, n, "").len() as u64);
                        model.entries.retain(|(mw, mn, _), _| (*mw, *mn) != (w, n));
                    }
                    Step::List(w, n, prefix, page) => {
                        let prefix = prefix.unwrap_or_default();
                        let listed: Vec<String> = {
                            let mut listed = Vec::new();
                            let mut cursor = None;
                            loop {
                                let p = handles[w][n].list_keys(Some(&prefix), cursor.as_deref(), Some(page)).unwrap();
                                prop_assert!(p.keys.len() <= page as usize);
                                listed.extend(p.keys);
                                match p.cursor { Some(c) => cursor = Some(c), None => break }
                            }
                            listed
                        };
                        prop_assert_eq!(listed, model.keys(w, n, &prefix));
                    }
                    Step::Advance(by) => {
                        clock.advance(Duration::from_millis(by));
                        model.now += by;
                    }
                    Step::Prune => {
                        storage.prune().unwrap();
                        let now = model.now;
                        model.entries.retain(|_, e| e.expires_at.is_none_or(|at| at > now));
                    }
                }
                // The entry the step touched, with its version and expiry.
                if let Some(s) = touched {
                    let got = ns(&s).entry(&s.2).unwrap().map(|e| (e.value, e.version, e.expires_in));
                    let want = model.live(&s).map(|e| {
                        (e.value.clone(), e.version, e.expires_at.map(|at| Duration::from_millis(at - model.now)))
                    });
                    prop_assert_eq!(got, want);
                }
                for w in 0..WORKSPACES.len() {
                    let ws = storage.workspace(WORKSPACES[w]).unwrap();
                    prop_assert_eq!(ws.usage().unwrap(), model.usage(w, None));
                    for (n, handle) in handles[w].iter().enumerate() {
                        prop_assert_eq!(handle.usage().unwrap(), model.usage(w, Some(n)));
                    }
                    let names: Vec<String> = (1..NAMESPACES.len())
                        .filter(|n| model.usage(w, Some(*n)).keys > 0)
                        .map(|n| NAMESPACES[n].to_owned())
                        .collect();
                    prop_assert_eq!(ws.namespaces(None, Some(1000)).unwrap().keys, names);
                }
            }
        }
    }
}
