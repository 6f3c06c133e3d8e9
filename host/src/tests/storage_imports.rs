//! `cubby:storage` imports called as a guest calls them, with the
//! arguments a guest controls: keys, namespaces, values, cursors, page
//! sizes, deltas, times-to-live, batch sizes, conditions; and the error each
//! becomes.

use std::sync::Arc;

use super::{ctx, small_storage};
use crate::bindings::sync::cubby::storage::storage::{
    Action, Condition, Error, Host, Operation, Outcome, Put, WriteOptions,
};
use crate::options::Quota;
use crate::{StorageCtx, StorageError};

/// What a guest gets for a failed call: the WIT error.
fn wit(ctx: &mut StorageCtx, e: StorageError) -> Error {
    ctx.convert_error(e).unwrap()
}

fn no_options() -> WriteOptions {
    WriteOptions {
        ttl_ms: None,
        condition: None,
    }
}

fn set(ctx: &mut StorageCtx, ns: &str, key: &str, value: &[u8]) -> Result<u64, Error> {
    Host::set(ctx, ns.into(), key.into(), value.to_vec(), no_options()).map_err(|e| wit(ctx, e))
}

#[test]
fn keys_and_namespaces_a_guest_names_are_checked() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    assert!(
        matches!(set(&mut c, "", "", b"v"), Err(Error::InvalidKey(why)) if why.contains("empty"))
    );
    assert!(matches!(
        set(&mut c, "", "nine-byte", b"v"),
        Err(Error::InvalidKey(why)) if why.contains("9 bytes, the limit is 8")
    ));
    let long_ns = "n".repeat(129);
    assert!(matches!(
        set(&mut c, &long_ns, "k", b"v"),
        Err(Error::InvalidNamespace(_))
    ));
    let e = Host::usage(&mut c, Some(long_ns.clone())).unwrap_err();
    assert!(matches!(wit(&mut c, e), Error::InvalidNamespace(_)));
    let e = Host::clear(&mut c, long_ns).unwrap_err();
    assert!(matches!(wit(&mut c, e), Error::InvalidNamespace(_)));
    // A namespace of exactly 128 bytes, and keys that look like paths or
    // other workspaces, are just names inside this workspace.
    let ns = "n".repeat(128);
    set(&mut c, &ns, "../x", b"v").unwrap();
    set(&mut c, "", "w2:k", b"v").unwrap();
    assert_eq!(
        storage
            .workspace("w")
            .unwrap()
            .namespace(&ns)
            .unwrap()
            .get("../x")
            .unwrap(),
        Some(b"v".to_vec())
    );
    assert_eq!(storage.workspace("w2").unwrap().usage().unwrap().keys, 0);
}

#[test]
fn values_past_the_limit_are_refused_with_the_limit() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    set(&mut c, "", "k", &[7; 16]).unwrap();
    assert_eq!(
        set(&mut c, "", "k", &[7; 17]),
        Err(Error::ValueTooLarge(16))
    );
    let e = Host::set_many(&mut c, String::new(), vec![("a".into(), vec![0; 17])]).unwrap_err();
    assert_eq!(wit(&mut c, e), Error::ValueTooLarge(16));
    assert_eq!(
        Host::get(&mut c, String::new(), "k".into()).unwrap(),
        Some(vec![7; 16])
    );
}

#[test]
fn cursors_are_checked_and_page_sizes_clamped() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    for i in 0..5 {
        set(&mut c, "", &format!("k{i}"), b"v").unwrap();
    }
    let list = |c: &mut StorageCtx, prefix: Option<&str>, cursor: Option<&str>, limit| {
        Host::list_keys(
            c,
            String::new(),
            prefix.map(Into::into),
            cursor.map(Into::into),
            limit,
        )
    };
    // No limit: the default page (3); 0: at least one; huge: the maximum.
    assert_eq!(list(&mut c, None, None, None).unwrap().keys.len(), 3);
    assert_eq!(list(&mut c, None, None, Some(0)).unwrap().keys, ["k0"]);
    let all = list(&mut c, None, None, Some(u32::MAX)).unwrap();
    assert_eq!((all.keys.len(), all.cursor), (5, None));
    // A cursor is only good for the listing (prefix) that returned it.
    let first = list(&mut c, Some("k"), None, Some(2)).unwrap();
    let cursor = first.cursor.unwrap();
    assert_eq!(
        list(&mut c, Some("k"), Some(&cursor), Some(2))
            .unwrap()
            .keys,
        ["k2", "k3"]
    );
    for forged in [cursor.as_str(), "zz", "", "6b", "not hex at all"] {
        let e = list(&mut c, Some("x"), Some(forged), None).unwrap_err();
        assert_eq!(wit(&mut c, e), Error::InvalidCursor, "{forged:?}");
    }
    let e = Host::list_namespaces(&mut c, Some("zz".into()), None).unwrap_err();
    assert_eq!(wit(&mut c, e), Error::InvalidCursor);
}

#[test]
fn counters_refuse_what_is_not_a_counter_and_overflow() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    let incr = |c: &mut StorageCtx, key: &str, delta| {
        Host::increment(c, String::new(), key.into(), delta, None).map_err(|e| wit(c, e))
    };
    assert_eq!(incr(&mut c, "n", i64::MAX), Ok(i64::MAX));
    assert_eq!(incr(&mut c, "n", 1), Err(Error::Overflow));
    assert_eq!(incr(&mut c, "m", i64::MIN), Ok(i64::MIN));
    assert_eq!(incr(&mut c, "m", -1), Err(Error::Overflow));
    set(&mut c, "", "t", b"12 ").unwrap();
    assert_eq!(incr(&mut c, "t", 1), Err(Error::NotACounter));
    // Nothing changed by the refused calls.
    assert_eq!(
        Host::get(&mut c, String::new(), "n".into()).unwrap(),
        Some(i64::MAX.to_string().into_bytes())
    );
}

#[test]
fn times_to_live_of_zero_are_refused_and_huge_ones_saturate() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    let put = |c: &mut StorageCtx, ttl_ms| {
        let options = WriteOptions {
            ttl_ms,
            condition: None,
        };
        Host::set(c, String::new(), "k".into(), b"v".to_vec(), options).map_err(|e| wit(c, e))
    };
    assert!(matches!(
        put(&mut c, Some(0)),
        Err(Error::InvalidArgument(_))
    ));
    put(&mut c, Some(u64::MAX)).unwrap();
    let entry = Host::get_entry(&mut c, String::new(), "k".into())
        .unwrap()
        .unwrap();
    assert!(
        entry.expires_in_ms.is_some_and(|ms| ms > 1 << 60),
        "{entry:?}"
    );
    let e = Host::get_and_renew(&mut c, String::new(), "k".into(), 0).unwrap_err();
    assert!(matches!(wit(&mut c, e), Error::InvalidArgument(_)));
    let e = Host::expire(&mut c, String::new(), "k".into(), Some(0)).unwrap_err();
    assert!(matches!(wit(&mut c, e), Error::InvalidArgument(_)));
    let e = Host::increment(&mut c, String::new(), "n".into(), 1, Some(0)).unwrap_err();
    assert!(matches!(wit(&mut c, e), Error::InvalidArgument(_)));
}

fn op(key: &str, action: Action, condition: Option<Condition>) -> Operation {
    Operation {
        namespace: String::new(),
        key: key.into(),
        condition,
        action,
    }
}

fn put(value: &[u8]) -> Action {
    Action::Set(Put {
        value: value.to_vec(),
        ttl_ms: None,
    })
}

#[test]
fn transactions_are_bounded_and_report_the_failed_condition() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    let five = (0..5)
        .map(|i| op(&format!("k{i}"), put(b"v"), None))
        .collect();
    let e = Host::transaction(&mut c, five).unwrap_err();
    assert_eq!(wit(&mut c, e), Error::TooManyOperations(4));
    // Each condition sees what the earlier operations left.
    let ops = vec![
        op("a", put(b"1"), Some(Condition::Absent)),
        op(
            "a",
            Action::Increment(1),
            Some(Condition::ValueEquals(b"1".to_vec())),
        ),
        op("b", Action::Check, None),
    ];
    let outcomes = Host::transaction(&mut c, ops).unwrap();
    assert!(matches!(
        outcomes[..],
        [Outcome::Set(_), Outcome::Incremented(2), Outcome::Checked]
    ));
    let ops = vec![
        op("c", put(b"x"), None),
        op(
            "a",
            Action::Delete,
            Some(Condition::VersionEquals(u64::MAX)),
        ),
    ];
    let e = Host::transaction(&mut c, ops).unwrap_err();
    match wit(&mut c, e) {
        Error::Conflict(conflict) => {
            assert_eq!(conflict.index, 1);
            assert_eq!(conflict.current.unwrap().value, b"2");
        }
        other => panic!("{other:?}"),
    }
    // All or nothing: `c` was not written.
    assert!(!Host::exists(&mut c, String::new(), "c".into()).unwrap());
    let e = Host::set_many(
        &mut c,
        String::new(),
        (0..5).map(|i| (format!("m{i}"), vec![])).collect(),
    )
    .unwrap_err();
    assert_eq!(wit(&mut c, e), Error::TooManyOperations(4));
}

#[test]
fn a_full_quota_is_an_error_and_limits_show_the_quota_that_applies() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    let limits = Host::limits(&mut c).unwrap();
    assert_eq!(
        (
            limits.max_keys,
            limits.max_key_bytes,
            limits.max_value_bytes,
            limits.max_batch,
            limits.max_page
        ),
        (5, 8, 16, 4, 10)
    );
    for i in 0..5 {
        set(&mut c, "", &format!("k{i}"), b"v").unwrap();
    }
    assert!(matches!(
        set(&mut c, "", "k5", b"v"),
        Err(Error::QuotaExceeded(_))
    ));
    let stored = Quota {
        max_keys: 7,
        max_bytes: 700,
    };
    storage.store_quota("w", Some(stored)).unwrap();
    assert_eq!(Host::limits(&mut c).unwrap().max_keys, 7);
    storage
        .override_quota(
            "w",
            Some(Quota {
                max_keys: 9,
                max_bytes: 900,
            }),
        )
        .unwrap();
    let limits = Host::limits(&mut c).unwrap();
    assert_eq!((limits.max_keys, limits.max_bytes), (9, 900));
}

#[test]
fn host_failures_reach_the_guest_as_a_short_internal_error() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    let failures = [
        StorageError::Backend(Arc::new(std::io::Error::other("/var/lib/cubby: EIO"))),
        StorageError::Unavailable(Arc::new(std::io::Error::other("db.internal:5432"))),
        StorageError::Corrupt("page 7 of /var/lib/cubby/cubby.redb".into()),
        StorageError::Closed,
        StorageError::internal("an invariant"),
    ];
    for failure in failures {
        match wit(&mut c, failure) {
            Error::Internal(message) => {
                assert!(
                    !message.contains("cubby") && !message.contains("5432"),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}

/// The async flavour runs the same imports; `limits` too goes through the
/// blocking pool (see the embedding test that counts calls per thread).
#[tokio::test]
async fn the_async_flavour_answers_as_the_sync_one() {
    use crate::bindings::cubby::storage::storage::{Error as AsyncError, Host as AsyncHost};
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    storage
        .store_quota(
            "w",
            Some(Quota {
                max_keys: 3,
                max_bytes: 30,
            }),
        )
        .unwrap();
    assert_eq!(AsyncHost::limits(&mut c).await.unwrap().max_keys, 3);
    let e = AsyncHost::get(&mut c, String::new(), String::new())
        .await
        .unwrap_err();
    assert!(matches!(
        AsyncHost::convert_error(&mut c, e).unwrap(),
        AsyncError::InvalidKey(_)
    ));
    let n = AsyncHost::increment(&mut c, "ns".into(), "n".into(), 5, None)
        .await
        .unwrap();
    assert_eq!(n, 5);
}
