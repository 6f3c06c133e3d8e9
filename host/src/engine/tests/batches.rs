//! Transactions, batches and namespaces, on every backend.

use super::*;
use crate::StorageError;
use crate::ops::{Condition, Op, Outcome, Usage, WriteOptions};
use crate::testing::{assert_usage_is_exact, audit};

fn transactions_are_all_or_nothing(place: &Place) {
    let storage = with_limits(place, |l| {
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
    assert_eq!(all_keys(ws.keys(None)), ["config"]);
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
    // Only checks: nothing is written, and the answer says they held.
    let checks = ws
        .transact(vec![Op::check(
            "config",
            Condition::ValueEquals(b"v2".to_vec()),
        )])
        .unwrap();
    assert_eq!(checks, [Outcome::Checked]);
    assert!(matches!(
        ws.transact(vec![Op::delete("x"); 5]),
        Err(StorageError::TooManyOperations { len: 5, limit: 4 })
    ));
    assert!(matches!(
        ws.transact(vec![Op::delete("x").in_namespace("n".repeat(129))]),
        Err(StorageError::InvalidNamespace(_))
    ));
    assert_usage_is_exact(&storage, "w");
}

fn namespaces_are_separate_and_clear_is_bounded(place: &Place) {
    let storage = with_limits(place, |l| l.max_page_size = 2);
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
    assert_eq!(all_keys(ws.keys(None)), ["k"]);
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
    while !ws.default_space().clear().unwrap().done {}
    assert_eq!(ws.usage().unwrap().keys, 1);
    assert_usage_is_exact(&storage, "w");
    // Clearing a workspace that never held anything is an empty step.
    let never = storage.workspace("never").unwrap();
    assert_eq!(never.clear_all().unwrap(), 0);
}

fn removing_a_workspace_leaves_nothing_of_it_and_touches_no_other(place: &Place) {
    let clock = ManualClock::new(1_000);
    // Three entries per step: the removal takes several transactions.
    let storage = manual(place, &clock, |o| o.limits.max_page_size = 3);
    let a = storage.workspace("a").unwrap();
    let ab = storage.workspace("ab").unwrap();
    for ws in [&a, &ab] {
        ws.set("k1", b"v").unwrap();
        ws.set("k2", b"v").unwrap();
        let x = ws.namespace("x").unwrap();
        for i in 0..4 {
            x.set(&format!("x{i}"), b"v").unwrap();
        }
        ws.namespace("y")
            .unwrap()
            .set_with("live", b"v".to_vec(), WriteOptions::default().ttl(SEC * 60))
            .unwrap();
        ws.set_with("gone", b"v".to_vec(), WriteOptions::default().ttl(SEC))
            .unwrap();
    }
    clock.advance(SEC); // "gone" has expired, and is not swept
    let last_version = a.set("k1", b"w").unwrap();
    let ab_before = audit(&storage, "ab");

    assert_eq!(
        a.clear_all().unwrap(),
        7,
        "the live entries of every namespace"
    );

    let left = audit(&storage, "a");
    assert_eq!(left.rows, 0, "no entry: {left:?}");
    assert_eq!(left.expiring_rows, 0, "no expiry row: {left:?}");
    assert!(!left.usage_row, "no usage row: {left:?}");
    assert_eq!(left.namespace_rows, 0, "no namespace: {left:?}");
    assert_eq!(a.usage().unwrap(), Usage::default());
    assert!(a.namespaces(None, None).unwrap().keys.is_empty());
    let listed = workspace_ids(&storage);
    assert_eq!(listed, ["ab"]);
    // The other workspace, whose id shares a prefix, is untouched.
    assert_eq!(audit(&storage, "ab"), ab_before);
    assert_eq!(all_keys(ab.keys(None)), ["k1", "k2"]);
    assert_eq!(ab.namespace("x").unwrap().usage().unwrap().keys, 4);
    // The id can be used again, and its versions still never repeat.
    assert!(a.set("k1", b"again").unwrap() > last_version);
    assert_usage_is_exact(&storage, "a");
    assert_usage_is_exact(&storage, "ab");
    // Removing a workspace that holds nothing removes nothing.
    assert_eq!(storage.workspace("never").unwrap().clear_all().unwrap(), 0);
}

crate::conformance_tests!(
    transactions_are_all_or_nothing,
    namespaces_are_separate_and_clear_is_bounded,
    removing_a_workspace_leaves_nothing_of_it_and_touches_no_other,
);
