//! Transactions, batches and namespaces, on every backend.

use super::*;
use crate::testing::assert_usage_is_exact;
use crate::{Condition, Op, Outcome, StorageError, Usage};

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
    assert_usage_is_exact(&storage, "w");
    // Clearing a workspace that never held anything is an empty step.
    let never = storage.workspace("never").unwrap();
    assert_eq!(never.clear_all().unwrap(), 0);
}

crate::conformance_tests!(
    transactions_are_all_or_nothing,
    namespaces_are_separate_and_clear_is_bounded,
);
