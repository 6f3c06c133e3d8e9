//! Expiry on an injected clock, the background sweeper and `prune`, on
//! every backend.

use super::*;
use crate::StorageError;
use crate::engine::sweeper::SWEEP_BUDGET;
use crate::ops::{Action, Op, Usage, WriteOptions};
use crate::testing::{assert_usage_is_exact, audit};

fn expired_entries_are_never_returned(place: &Place) {
    let clock = ManualClock::new(1_000);
    let storage = manual(place, &clock, |_| {});
    let ws = storage.workspace("w").unwrap();
    ws.set("live", b"x").unwrap();
    ws.set_with("old", b"x".to_vec(), WriteOptions::default().ttl(SEC))
        .unwrap();
    ws.namespace("n")
        .unwrap()
        .set_with("old", b"x".to_vec(), WriteOptions::default().ttl(SEC))
        .unwrap();
    clock.advance(SEC);
    assert_eq!(ws.get("old").unwrap(), None);
    assert_eq!(ws.entry("old").unwrap(), None);
    assert_eq!(ws.get_many(&["old", "live"]).unwrap()[0], None);
    assert!(!ws.exists("old").unwrap());
    assert_eq!(all_keys(ws.keys(None)), vec!["live".to_string()]);
    assert!(ws.namespaces(None, None).unwrap().keys.is_empty());
    assert!(!ws.delete("old").unwrap(), "an expired entry was not there");
    assert!(!ws.expire("old", Some(SEC)).unwrap());
    assert_eq!(ws.get_and_renew("old", SEC).unwrap(), None);
    assert_eq!(ws.usage().unwrap(), Usage { keys: 1, bytes: 5 });
    assert_usage_is_exact(&storage, "w");
}

fn expiry_follows_the_injected_clock_and_survives_restart(place: &Place) {
    let clock = ManualClock::new(1_000_000);
    let storage = manual(place, &clock, |_| {});
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
    assert_eq!(all_keys(ws.keys(None)), ["forever", "session"]);
    assert_eq!(
        ws.usage().unwrap(),
        Usage {
            keys: 2,
            bytes: 7 + 8 + 1
        }
    );
    assert_usage_is_exact(&storage, "w");
    assert_eq!(storage.workspaces().unwrap()[0].1.keys, 2);
    assert_eq!(audit(&storage, "w").rows, 3, "not swept yet, but invisible");

    assert_eq!(storage.prune().unwrap(), 1);
    assert_eq!(audit(&storage, "w").rows, 2);
    assert_eq!(ws.usage().unwrap().keys, 2);
    drop((ws, storage));

    // After a restart the deadlines still hold.
    let storage = manual(place, &clock, |_| {});
    let ws = storage.workspace("w").unwrap();
    assert_eq!(ws.get("temp").unwrap(), None);
    assert_eq!(
        ws.entry("session").unwrap().unwrap().expires_in,
        Some(5 * SEC)
    );
    clock.advance(5 * SEC);
    assert_eq!(ws.get("session").unwrap(), None);
    assert_eq!(all_keys(ws.keys(None)), ["forever"]);
    assert_usage_is_exact(&storage, "w");
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
    // A time-to-live past every clock is stored and reported, not wrapped.
    ws.set_with(
        "far",
        b"v".to_vec(),
        WriteOptions::default().ttl(Duration::MAX),
    )
    .unwrap();
    assert!(ws.entry("far").unwrap().unwrap().expires_in > Some(SEC * 86_400 * 365_000));
}

fn the_background_sweeper_removes_expired_entries(place: &Place) {
    let clock = ManualClock::new(1_000);
    let storage = manual(place, &clock, |o| {
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
    while audit(&storage, "w").rows > 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweeper never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(all_keys(ws.keys(None)), ["keep"]);
    assert_eq!(ws.usage().unwrap(), Usage { keys: 1, bytes: 5 });
    assert_eq!(
        ws.namespaces(None, None).unwrap().keys,
        Vec::<String>::new()
    );
    let a = audit(&storage, "w");
    assert_eq!(a.expiring_rows, 0, "{a:?}");
    assert_eq!(a.stored_usage, Usage { keys: 1, bytes: 5 }, "{a:?}");
    assert_usage_is_exact(&storage, "w");
}

fn a_sweep_pass_does_bounded_work(place: &Place) {
    let clock = ManualClock::new(1_000);
    let storage = manual(place, &clock, |_| {});
    let ws = storage.workspace("w").unwrap();
    let total = SWEEP_BUDGET + 500;
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
    let pass = |resume| {
        storage
            .backend()
            .sweep(resume, SWEEP_BUDGET, storage.now_ms())
            .unwrap()
    };
    let first = pass(None);
    assert_eq!(first.removed as usize, SWEEP_BUDGET);
    assert!(first.resume.is_some(), "more is left");
    assert_eq!(audit(&storage, "w").rows, 500);
    let second = pass(first.resume);
    assert_eq!((second.removed, second.resume), (500, None));
    assert_eq!(audit(&storage, "w").rows, 0);
    assert_usage_is_exact(&storage, "w");
}

crate::conformance_tests!(
    expired_entries_are_never_returned,
    reopen expiry_follows_the_injected_clock_and_survives_restart,
    the_background_sweeper_removes_expired_entries,
    a_sweep_pass_does_bounded_work,
);
