//! Usage and quotas, on every backend.

use super::*;
use crate::StorageError;
use crate::ops::{Usage, WriteOptions};
use crate::options::Quota;
use crate::testing::assert_usage_is_exact;

fn usage_is_exact_and_quotas_are_checked_before_writing(place: &Place) {
    let storage = with_limits(place, |l| {
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
    assert_usage_is_exact(&storage, "w");
}

fn racing_writers_never_pass_the_quota_and_usage_survives_restart(place: &Place) {
    let quota = Quota {
        max_keys: 1_000,
        max_bytes: 100,
    };
    let open = || {
        let mut options = StorageOptions::default();
        options.quota_overrides.insert("w".into(), quota);
        place.open(options)
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
    assert_eq!(all_keys(ws.keys(None)), stored);
    assert_eq!(ws.usage().unwrap(), Usage { keys: 7, bytes: 91 });
    assert_eq!(
        storage.workspace("other").unwrap().quota().unwrap(),
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
    assert_usage_is_exact(&storage, "w");
    // A quota raised at run time applies to the next write.
    storage
        .override_quota(
            "w",
            Some(Quota {
                max_keys: 1_000,
                max_bytes: 200,
            }),
        )
        .unwrap();
    ws.set("one-more-key", b"x").unwrap();
}

fn expired_entries_do_not_count_against_the_quota(place: &Place) {
    let clock = ManualClock::new(1_000);
    let storage = manual(place, &clock, |o| {
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
    assert_usage_is_exact(&storage, "w");
    assert_eq!(crate::testing::audit(&storage, "w").rows, 2, "a was swept");
}

fn a_lowered_quota_lets_a_workspace_shrink_but_not_grow(place: &Place) {
    let storage = open(place);
    let ws = storage.workspace("w").unwrap();
    ws.set_many((0..4).map(|i| (format!("k{i}"), b"12345".to_vec())))
        .unwrap();
    assert_eq!(ws.usage().unwrap(), Usage { keys: 4, bytes: 28 });
    storage
        .override_quota(
            "w",
            Some(Quota {
                max_keys: 2,
                max_bytes: 10,
            }),
        )
        .unwrap();
    assert_eq!(all_keys(ws.keys(None)).len(), 4, "stored entries are kept");
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
    storage.override_quota("w", None).unwrap();
    ws.set("new", b"").unwrap();
}

crate::conformance_tests!(
    usage_is_exact_and_quotas_are_checked_before_writing,
    reopen racing_writers_never_pass_the_quota_and_usage_survives_restart,
    expired_entries_do_not_count_against_the_quota,
    a_lowered_quota_lets_a_workspace_shrink_but_not_grow,
);
