//! `wasi:keyvalue` imports called as a guest calls them: bucket names and
//! the host's allow list, handle limits, handles used after they are gone,
//! forged cursors, unsigned counters, compare-and-swap races, and the
//! `other("<kind>: …")` errors.

use wasmtime::component::Resource;

use super::{ctx, small_storage};
use crate::StorageCtx;
use crate::context::MAX_OPEN_HANDLES;
use crate::keyvalue::bindings::{draft, draft2};
use crate::keyvalue::{Bucket, KvError};

use draft2::sync::wasi::keyvalue::atomics::{CasError, Host as AtomicsHost, HostCas};
use draft2::sync::wasi::keyvalue::batch::Host as BatchHost;
use draft2::sync::wasi::keyvalue::store::{Host as StoreHost, HostBucket};

fn open(c: &mut StorageCtx, name: &str) -> Result<Resource<Bucket>, KvError> {
    StoreHost::open(c, name.into())
}

/// The message of an `other` error.
fn other(e: KvError) -> String {
    match e {
        KvError::Other(message) => message,
        e => panic!("not `other`: {e:?}"),
    }
}

#[test]
fn bucket_names_are_namespaces_and_the_allow_list_holds() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w").allow_buckets(["", "cache"]);
    assert!(matches!(
        open(&mut c, &"n".repeat(129)),
        Err(KvError::NoSuchStore)
    ));
    assert!(matches!(
        open(&mut c, "secrets"),
        Err(KvError::AccessDenied)
    ));
    let cache = open(&mut c, "cache").unwrap();
    HostBucket::set(
        &mut c,
        Resource::new_borrow(cache.rep()),
        "k".into(),
        b"v".to_vec(),
    )
    .unwrap();
    let ws = storage.workspace("w").unwrap();
    assert_eq!(
        ws.namespace("cache").unwrap().get("k").unwrap(),
        Some(b"v".to_vec())
    );
    let default = open(&mut c, "").unwrap();
    assert_eq!(HostBucket::get(&mut c, default, "k".into()).unwrap(), None);
}

#[test]
fn a_store_holds_a_bounded_number_of_handles_and_freed_ones_are_reused() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    let mut open_now: Vec<_> = (0..MAX_OPEN_HANDLES)
        .map(|_| open(&mut c, "").unwrap())
        .collect();
    let e = other(open(&mut c, "").unwrap_err());
    assert!(e.starts_with("too-many-handles: "), "{e}");
    // Dropping one makes room for one.
    let last = open_now.pop().unwrap();
    HostBucket::drop(&mut c, last).unwrap();
    open_now.push(open(&mut c, "").unwrap());
    assert!(open(&mut c, "").is_err());
}

#[test]
fn a_handle_that_is_gone_traps_rather_than_reaching_another_bucket() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    let bucket = open(&mut c, "a").unwrap();
    let rep = bucket.rep();
    HostBucket::drop(&mut c, bucket).unwrap();
    let stale = Resource::<Bucket>::new_borrow(rep);
    assert!(matches!(
        HostBucket::get(&mut c, stale, "k".into()),
        Err(KvError::Trap(_))
    ));
    let forged = Resource::<Bucket>::new_borrow(rep + 1000);
    assert!(matches!(
        HostBucket::exists(&mut c, forged, "k".into()),
        Err(KvError::Trap(_))
    ));
}

#[test]
fn engine_errors_are_other_with_the_kind_named_as_in_cubby_storage() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    let b = open(&mut c, "").unwrap().rep();
    let bucket = || Resource::<Bucket>::new_borrow(b);
    let e = other(HostBucket::set(&mut c, bucket(), "k".into(), vec![0; 17]).unwrap_err());
    assert_eq!(
        e,
        "value-too-large: the value is larger than the limit of 16 bytes"
    );
    let e = other(HostBucket::get(&mut c, bucket(), String::new()).unwrap_err());
    assert_eq!(e, "invalid-key: key is empty");
    let e = other(HostBucket::list_keys(&mut c, bucket(), Some("zz".into())).unwrap_err());
    assert!(e.starts_with("invalid-cursor: "), "{e}");
    let many = (0..5).map(|i| (format!("k{i}"), vec![])).collect();
    let e = other(BatchHost::set_many(&mut c, bucket(), many).unwrap_err());
    assert!(e.starts_with("too-many-operations: "), "{e}");
    HostBucket::set(&mut c, bucket(), "t".into(), b"text".to_vec()).unwrap();
    let e = other(AtomicsHost::increment(&mut c, bucket(), "t".into(), 1).unwrap_err());
    assert_eq!(
        e,
        "not-a-counter: the stored value is not a decimal integer in range"
    );
    // Missing keys are `none` in place; the found ones carry their key.
    let got = BatchHost::get_many(&mut c, bucket(), vec!["t".into(), "nope".into()]).unwrap();
    assert_eq!(got, vec![Some(("t".to_string(), b"text".to_vec())), None]);
}

#[test]
fn a_lost_compare_and_swap_returns_the_winner_in_a_fresh_handle() {
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    let b = open(&mut c, "").unwrap().rep();
    let bucket = || Resource::<Bucket>::new_borrow(b);
    let mine = HostCas::new(&mut c, bucket(), "k".into()).unwrap();
    assert_eq!(
        HostCas::current(&mut c, Resource::new_borrow(mine.rep())).unwrap(),
        None
    );
    // Another writer gets in first.
    storage
        .workspace("w")
        .unwrap()
        .set("k", b"theirs".to_vec())
        .unwrap();
    let fresh = match AtomicsHost::swap(&mut c, mine, b"mine".to_vec()).unwrap() {
        Err(CasError::CasFailed(fresh)) => fresh,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        HostCas::current(&mut c, Resource::new_borrow(fresh.rep())).unwrap(),
        Some(b"theirs".to_vec())
    );
    // Swapping with the fresh handle wins.
    assert!(matches!(
        AtomicsHost::swap(&mut c, fresh, b"mine".to_vec()),
        Ok(Ok(()))
    ));
    assert_eq!(
        HostBucket::get(&mut c, bucket(), "k".into()).unwrap(),
        Some(b"mine".to_vec())
    );
}

#[test]
fn draft_cursors_are_the_buckets_own_and_counters_stay_unsigned() {
    use draft::sync::wasi::keyvalue::atomics::Host as DraftAtomics;
    use draft::sync::wasi::keyvalue::store::{Host as DraftStore, HostBucket as DraftBucket};
    let storage = small_storage();
    let mut c = ctx(&storage, "w");
    let b = DraftStore::open(&mut c, String::new()).unwrap().rep();
    let bucket = || Resource::<Bucket>::new_borrow(b);
    for i in 0..4 {
        DraftBucket::set(&mut c, bucket(), format!("k{i}"), vec![]).unwrap();
    }
    // Pages of the default size (3), resumed with the number the bucket
    // issued; any other number is refused.
    let first = DraftBucket::list_keys(&mut c, bucket(), None).unwrap();
    assert_eq!(first.keys, ["k0", "k1", "k2"]);
    let cursor = first.cursor.unwrap();
    let second = DraftBucket::list_keys(&mut c, bucket(), Some(cursor)).unwrap();
    assert_eq!((second.keys, second.cursor), (vec!["k3".to_string()], None));
    for forged in [cursor.wrapping_add(1), 0, u64::MAX] {
        let e = other(DraftBucket::list_keys(&mut c, bucket(), Some(forged)).unwrap_err());
        assert!(e.starts_with("invalid-cursor: "), "{e}");
    }
    // Another bucket does not resolve this bucket's numbers.
    let b2 = DraftStore::open(&mut c, String::new()).unwrap();
    assert!(DraftBucket::list_keys(&mut c, b2, Some(cursor)).is_err());
    // `u64` counters: a negative stored counter is not one of them, and a
    // delta past `i64::MAX` overflows; neither changes anything.
    let ws = storage.workspace("w").unwrap();
    ws.delete_many(&["k0", "k1", "k2", "k3"]).unwrap();
    ws.set("neg", b"-1".to_vec()).unwrap();
    let e = other(DraftAtomics::increment(&mut c, bucket(), "neg".into(), 1).unwrap_err());
    assert!(e.starts_with("not-a-counter: "), "{e}");
    let e = other(DraftAtomics::increment(&mut c, bucket(), "n".into(), u64::MAX).unwrap_err());
    assert!(e.starts_with("overflow: "), "{e}");
    assert_eq!(
        DraftBucket::get(&mut c, bucket(), "n".into()).unwrap(),
        None
    );
    assert_eq!(
        DraftAtomics::increment(&mut c, bucket(), "n".into(), 2).unwrap(),
        2
    );
}
