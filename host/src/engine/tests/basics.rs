//! Reads, writes, scoping, validation, listing, versions, counters and
//! compare-and-swap, on every backend.

use super::*;
use crate::StorageError;
use crate::ops::{Condition, KeyPage, Usage, WriteOptions};
use crate::testing::assert_usage_is_exact;

fn set_get_delete_exists(place: &Place) {
    let ws = open(place).workspace("w").unwrap();
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

fn workspaces_are_isolated_even_when_ids_share_prefixes(place: &Place) {
    let storage = open(place);
    let ids = ["a", "ab", "a.b", "a:b", "b"];
    for id in ids {
        let ws = storage.workspace(id).unwrap();
        ws.set("shared", id.as_bytes()).unwrap();
        ws.set(&format!("only-{id}"), b"x").unwrap();
    }
    for id in ids {
        let ws = storage.workspace(id).unwrap();
        assert_eq!(ws.get("shared").unwrap().unwrap(), id.as_bytes());
        assert_eq!(
            all_keys(ws.keys(None)),
            vec![format!("only-{id}"), "shared".into()]
        );
        assert_eq!(ws.usage().unwrap().keys, 2);
        assert_usage_is_exact(&storage, id);
    }
    storage.workspace("a").unwrap().delete("shared").unwrap();
    assert!(storage.workspace("ab").unwrap().exists("shared").unwrap());
    let listed = workspace_ids(&storage);
    assert_eq!(listed, ["a", "a.b", "a:b", "ab", "b"], "byte order");
}

fn hostile_keys_are_distinct_and_confined(place: &Place) {
    let storage = open(place);
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
    assert_eq!(
        all_keys(a.keys(None)),
        sorted,
        "byte order, whatever the database's collation"
    );
    assert!(all_keys(b.keys(None)).is_empty());
    assert_eq!(b.usage().unwrap(), Usage::default());
    // Namespace names that join into the same string stay apart.
    a.namespace("x\0").unwrap().set("y", b"1").unwrap();
    a.namespace("x").unwrap().set("\0y", b"2").unwrap();
    assert_eq!(a.namespace("x\0").unwrap().get("y").unwrap().unwrap(), b"1");
    assert_eq!(a.namespace("x").unwrap().get("\0y").unwrap().unwrap(), b"2");
    assert_eq!(a.namespace("x").unwrap().get("y").unwrap(), None);
    assert_usage_is_exact(&storage, "a");
}

fn invalid_keys_and_values_are_typed_errors_and_write_nothing(place: &Place) {
    let storage = with_limits(place, |l| {
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
    assert_eq!(all_keys(ws.keys(None)), vec!["12345678".to_string()]);
    assert_eq!(ws.usage().unwrap(), Usage { keys: 1, bytes: 24 });
}

fn workspace_ids_are_validated(place: &Place) {
    let storage = open(place);
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

fn listing_pages_with_prefix_and_cursor(place: &Place) {
    let storage = with_limits(place, |l| {
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
    // Prefixes ending in the highest characters still bound the listing.
    ws.set("\u{10FFFF}", b"x").unwrap();
    ws.set("\u{10FFFF}a", b"x").unwrap();
    assert_eq!(
        ws.list_keys(Some("\u{10FFFF}"), None, None).unwrap().keys,
        ["\u{10FFFF}", "\u{10FFFF}a"]
    );
}

fn every_write_gets_a_new_version(place: &Place) {
    let storage = open(place);
    let ws = storage.workspace("w").unwrap();
    let version = |key: &str| ws.entry(key).unwrap().unwrap().version;
    ws.set("k", b"same").unwrap();
    let v1 = version("k");
    ws.set("k", b"same").unwrap();
    let v2 = version("k");
    ws.delete("k").unwrap();
    ws.set("k", b"same").unwrap();
    let v3 = version("k");
    assert!(v1 < v2 && v2 < v3, "{v1} {v2} {v3}");
    // Only the expiry changes: the version stays.
    ws.expire("k", Some(SEC * 60)).unwrap();
    assert_eq!(version("k"), v3);
}

fn concurrent_writers_are_all_committed(place: &Place) {
    let storage = open(place);
    let before = storage.commit_stats();
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
        assert_eq!(all_keys(ws.keys(None)).len(), 400);
        assert_eq!(ws.usage().unwrap().keys, 400);
        assert_usage_is_exact(&storage, w);
    }
    let after = storage.commit_stats();
    assert_eq!(after.writes - before.writes, 800, "{after:?}");
    let commits = after.commits - before.commits;
    assert!((1..=800).contains(&commits), "{after:?}");
    assert_eq!(
        after.durable_commits - before.durable_commits,
        commits,
        "durable by default: every commit flushed"
    );
}

/// Reads share a snapshot between commits (redb); a read must still see
/// every write acknowledged before it began, on any thread, as a read in a
/// transaction of its own would. Readers check that against a counter the
/// writer publishes only after each acknowledgement.
fn a_read_sees_every_write_acknowledged_before_it_began(place: &Place) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let storage = open(place);
    let ws = storage.workspace("w").unwrap();
    let acknowledged = AtomicU64::new(0);
    let rounds = match place.backend() {
        crate::testing::Backend::Redb => 500,
        crate::testing::Backend::Postgres => 100,
    };
    std::thread::scope(|s| {
        for _ in 0..3 {
            let (ws, acknowledged) = (&ws, &acknowledged);
            s.spawn(move || {
                loop {
                    let floor = acknowledged.load(Ordering::SeqCst);
                    let seen: u64 = ws
                        .get("n")
                        .unwrap()
                        .map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap());
                    assert!(seen >= floor, "read {seen} after {floor} was acknowledged");
                    if floor == rounds {
                        return;
                    }
                }
            });
        }
        for i in 1..=rounds {
            ws.set("n", i.to_string()).unwrap();
            acknowledged.store(i, Ordering::SeqCst);
            // An unrelated workspace's write is a commit too.
            storage.workspace("other").unwrap().set("x", b"y").unwrap();
        }
    });
}

fn counters_are_decimal_text_and_their_errors_are_typed(place: &Place) {
    let ws = open(place).workspace("w").unwrap();
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

fn compare_and_swap_is_aba_safe(place: &Place) {
    let ws = open(place).workspace("w").unwrap();
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

fn racing_compare_and_swaps_have_exactly_one_winner_per_round(place: &Place) {
    let storage = open(place);
    let ws = storage.workspace("w").unwrap();
    ws.set("round", b"0").unwrap();
    let wins: Vec<Vec<u64>> = std::thread::scope(|s| {
        let racers: Vec<_> = (0..6)
            .map(|_| {
                let ws = ws.clone();
                s.spawn(move || {
                    let mut won = Vec::new();
                    loop {
                        let entry = ws.entry("round").unwrap().unwrap();
                        let round: u64 =
                            std::str::from_utf8(&entry.value).unwrap().parse().unwrap();
                        if round >= 60 {
                            return won;
                        }
                        let next = (round + 1).to_string();
                        let cas = WriteOptions::default().if_version(entry.version);
                        match ws.set_with("round", next, cas) {
                            Ok(_) => won.push(round + 1),
                            Err(StorageError::Conflict { .. }) => {}
                            Err(e) => panic!("{e:?}"),
                        }
                    }
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let mut all: Vec<u64> = wins.into_iter().flatten().collect();
    all.sort();
    assert_eq!(
        all,
        (1..=60).collect::<Vec<_>>(),
        "each round won exactly once"
    );
}

fn a_batch_keeps_the_last_value_of_a_repeated_key(place: &Place) {
    let ws = open(place).workspace("w").unwrap();
    ws.set_many([
        ("k".to_string(), b"1".to_vec()),
        ("k".to_string(), b"2".to_vec()),
    ])
    .unwrap();
    assert_eq!(ws.get("k").unwrap().unwrap(), b"2");
    assert_eq!(ws.usage().unwrap(), Usage { keys: 1, bytes: 2 });
    assert_eq!(ws.delete_many(&["k", "k", "missing"]).unwrap(), 1);
    assert_eq!(ws.usage().unwrap(), Usage::default());
    assert_eq!(ws.get_many(&["k", "missing"]).unwrap(), vec![None, None]);
}

fn data_persists_across_reopen_in_both_durability_modes(place: &Place) {
    for durability in [
        crate::options::Durability::Durable,
        crate::options::Durability::Relaxed,
    ] {
        let options = StorageOptions {
            durability,
            ..StorageOptions::default()
        };
        {
            let storage = place.open(options.clone());
            storage
                .workspace("w")
                .unwrap()
                .set("k", format!("{durability:?}"))
                .unwrap();
        }
        let storage = place.open(options);
        let ws = storage.workspace("w").unwrap();
        assert_eq!(
            ws.get("k").unwrap().unwrap(),
            format!("{durability:?}").as_bytes()
        );
        assert_usage_is_exact(&storage, "w");
    }
}

crate::conformance_tests!(
    set_get_delete_exists,
    workspaces_are_isolated_even_when_ids_share_prefixes,
    hostile_keys_are_distinct_and_confined,
    invalid_keys_and_values_are_typed_errors_and_write_nothing,
    workspace_ids_are_validated,
    listing_pages_with_prefix_and_cursor,
    every_write_gets_a_new_version,
    concurrent_writers_are_all_committed,
    a_read_sees_every_write_acknowledged_before_it_began,
    counters_are_decimal_text_and_their_errors_are_typed,
    compare_and_swap_is_aba_safe,
    racing_compare_and_swaps_have_exactly_one_winner_per_round,
    a_batch_keeps_the_last_value_of_a_repeated_key,
    reopen data_persists_across_reopen_in_both_durability_modes,
);
