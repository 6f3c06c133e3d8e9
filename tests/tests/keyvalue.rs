//! Standard `wasi:keyvalue` guests (0.2.0-draft, and 0.2.0-draft2 in both
//! shapes of its `get-many`), written against the standard's interfaces
//! alone, on the same workspace storage as `cubby:storage`. Every test runs
//! on redb and on PostgreSQL.
//!
//! The guests (`tests/guests/kv-draft`, `kv-draft2`, `kv-draft2-spin`)
//! take `COMMAND BUCKET ARGS…` and print the result, or `err KIND` for the
//! interface's error (exit code 1).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

mod common;

use common::{load, load_with, runtime_builder};
use cubby_artifacts as guests;
use cubby_host::options::{ManualClock, Quota};
use cubby_host::testing::{Place, assert_usage_is_exact};
use cubby_host::{GetManyShape, LoadError, Plugin, Storage, StorageOptions, Workspace};

/// The two standard guests, and the name each passes as `argv[0]`.
type Guest = (&'static str, &'static str);
const DRAFT: Guest = (guests::KV_DRAFT, "kv-draft");
const DRAFT2: Guest = (guests::KV_DRAFT2, "kv-draft2");
/// `0.2.0-draft2` with Spin's `get-many`.
const DRAFT2_SPIN: Guest = (guests::KV_DRAFT2_SPIN, "kv-draft2-spin");
/// Every standard guest: both versions, and both shapes of draft2.
const ALL: [Guest; 3] = [DRAFT, DRAFT2, DRAFT2_SPIN];

/// Runs one command; its stdout (trimmed), or `err …` for an error.
async fn run(guest: &(Plugin, &str), ws: &Workspace, args: &[&str]) -> String {
    let mut argv = vec![guest.1.to_string()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let out = guest.0.run(ws, &argv).await.unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stdout = stdout.trim_end().to_string();
    assert_eq!(
        out.exit_code != 0,
        stdout.starts_with("err "),
        "exit {} with {stdout:?} (stderr: {})",
        out.exit_code,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The cursor a bucket's first page ends with (there must be more).
async fn first_page_cursor(guest: &(Plugin, &str), ws: &Workspace, bucket: &str) -> String {
    let page = run(guest, ws, &["page", bucket]).await;
    let cursor = page
        .lines()
        .last()
        .unwrap()
        .strip_prefix("cursor ")
        .unwrap();
    assert_ne!(cursor, "none");
    cursor.to_string()
}

fn keys_of(ws: &Workspace, ns: &str) -> Vec<String> {
    ws.namespace(ns)
        .unwrap()
        .keys(None)
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn store_atomics_and_batch_work_on_a_fresh_workspace(place: &Place) {
    let storage = place.open(StorageOptions::default());
    for guest in ALL {
        let g = (load(guest.0).await, guest.1);
        let ws = storage.workspace(&format!("fresh-{}", g.1)).unwrap();
        assert_eq!(run(&g, &ws, &["get", "b", "k"]).await, "none");
        assert_eq!(run(&g, &ws, &["exists", "b", "k"]).await, "false");
        assert_eq!(run(&g, &ws, &["set", "b", "k", "v1"]).await, "ok");
        assert_eq!(run(&g, &ws, &["get", "b", "k"]).await, "v1");
        assert_eq!(run(&g, &ws, &["exists", "b", "k"]).await, "true");
        assert_eq!(run(&g, &ws, &["incr", "b", "n", "5"]).await, "5");
        assert_eq!(run(&g, &ws, &["incr", "b", "n", "2", "3"]).await, "11");
        let set_many = ["set-many", "b", "x=1", "y=2", "z=3"];
        assert_eq!(run(&g, &ws, &set_many).await, "ok");
        assert_eq!(
            run(&g, &ws, &["get-many", "b", "x", "nope", "z"]).await,
            "x=1\nnope: none\nz=3"
        );
        // In the order asked, a key asked twice answered twice.
        assert_eq!(
            run(&g, &ws, &["get-many", "b", "z", "nope", "x", "z"]).await,
            "z=3\nnope: none\nx=1\nz=3"
        );
        assert_eq!(run(&g, &ws, &["list", "b"]).await, "k\nn\nx\ny\nz\npages 1");
        assert_eq!(
            run(&g, &ws, &["delete-many", "b", "x", "y", "nope"]).await,
            "ok"
        );
        assert_eq!(run(&g, &ws, &["delete", "b", "k"]).await, "ok");
        assert_eq!(run(&g, &ws, &["delete", "b", "k"]).await, "ok");
        assert_eq!(keys_of(&ws, "b"), ["n", "z"]);
        let b = ws.namespace("b").unwrap();
        assert_eq!(b.get("n").unwrap().unwrap(), b"11");
        assert_eq!(b.get("z").unwrap().unwrap(), b"3");
        // Nothing outside the bucket's namespace.
        assert!(keys_of(&ws, "").is_empty());
        assert_usage_is_exact(&storage, ws.id());
    }
}

async fn data_is_shared_with_cubby_storage_both_ways(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let ws = storage.workspace("a").unwrap();
    let (d1, d2) = (
        (load(DRAFT.0).await, DRAFT.1),
        (load(DRAFT2.0).await, DRAFT2.1),
    );
    // The bucket "" is the default space.
    assert_eq!(run(&d2, &ws, &["set", "", "hello", "from kv"]).await, "ok");
    assert_eq!(ws.get("hello").unwrap().unwrap(), b"from kv");
    ws.set("greeting", "from cubby").unwrap();
    assert_eq!(run(&d1, &ws, &["get", "", "greeting"]).await, "from cubby");
    // A named bucket is the namespace of that name.
    let cfg = ws.namespace("config").unwrap();
    cfg.set("theme", "dark").unwrap();
    assert_eq!(run(&d1, &ws, &["get", "config", "theme"]).await, "dark");
    assert_eq!(run(&d2, &ws, &["get", "", "theme"]).await, "none");
    // One counter encoding for all three interfaces.
    cfg.increment("hits", 40, None).unwrap();
    assert_eq!(run(&d1, &ws, &["incr", "config", "hits", "1"]).await, "41");
    assert_eq!(run(&d2, &ws, &["incr", "config", "hits", "-2"]).await, "39");
    assert_eq!(cfg.increment("hits", 1, None).unwrap(), 40);
    // And what a guest wrote through cubby:storage (the SDK) is there too.
    let probe = load(guests::PROBE).await;
    let r = common::call(
        &probe,
        &ws,
        serde_json::json!({"op":"set","ns":"config","key":"lang","value":"en"}),
    )
    .await;
    assert_eq!(r, serde_json::json!({"ok": null}));
    assert_eq!(run(&d2, &ws, &["get", "config", "lang"]).await, "en");
    assert_eq!(
        run(&d2, &ws, &["list", "config"]).await,
        "hits\nlang\ntheme\npages 1"
    );
}

async fn workspaces_stay_apart_through_wasi_keyvalue(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let (a, b) = (
        storage.workspace("a").unwrap(),
        storage.workspace("b").unwrap(),
    );
    for guest in ALL {
        let g = (load(guest.0).await, guest.1);
        assert_eq!(run(&g, &a, &["set", "shared", "secret", "a's"]).await, "ok");
        assert_eq!(run(&g, &b, &["get", "shared", "secret"]).await, "none");
        assert_eq!(run(&g, &b, &["exists", "shared", "secret"]).await, "false");
        assert_eq!(run(&g, &b, &["list", "shared"]).await, "pages 1");
        assert_eq!(run(&g, &b, &["incr", "shared", "secret", "1"]).await, "1");
        assert_eq!(
            run(&g, &b, &["delete-many", "shared", "secret"]).await,
            "ok"
        );
        assert_eq!(run(&g, &a, &["get", "shared", "secret"]).await, "a's");
    }
    assert!(keys_of(&b, "shared").is_empty());
    // A draft2 cursor names a key, but only ever within the caller's own
    // workspace: a's cursor used in b pages b's keys.
    let d2 = (load(DRAFT2.0).await, DRAFT2.1);
    for i in 0..150 {
        a.namespace("p")
            .unwrap()
            .set(&format!("a{i:03}"), "x")
            .unwrap();
    }
    b.namespace("p").unwrap().set("b-only", "y").unwrap();
    let cursor = first_page_cursor(&d2, &a, "p").await;
    assert_eq!(
        run(&d2, &b, &["page", "p", &cursor]).await,
        "b-only\ncursor none"
    );
}

async fn paging_ten_thousand_keys_returns_each_once_in_order(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let ws = storage.workspace("big").unwrap();
    let ns = ws.namespace("many").unwrap();
    let expected: Vec<String> = (0..10_000).map(|i| format!("key-{i:05}")).collect();
    for chunk in expected.chunks(1000) {
        ns.set_many(chunk.iter().map(|k| (k.clone(), b"v".to_vec())))
            .unwrap();
    }
    let page_size = storage.limits().default_page_size as usize;
    for guest in ALL {
        let g = (load(guest.0).await, guest.1);
        let out = run(&g, &ws, &["list", "many"]).await;
        let mut lines: Vec<&str> = out.lines().collect();
        let pages = lines.pop().unwrap();
        assert_eq!(lines, expected, "{} listed each key once, in order", g.1);
        // A page at a time, never the whole bucket.
        assert_eq!(pages, format!("pages {}", expected.len() / page_size));
    }
}

async fn thirty_two_instances_increment_one_counter_exactly(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let ws = storage.workspace("count").unwrap();
    let runtime = runtime_builder().build().unwrap();
    let guests = [
        (load_with(&runtime, DRAFT.0).await, DRAFT.1),
        (load_with(&runtime, DRAFT2.0).await, DRAFT2.1),
    ];
    let runs: Vec<_> = (0..32)
        .map(|i| {
            // Half through each version, on the same counter.
            let (plugin, name) = guests[i % 2].clone();
            let ws = ws.clone();
            tokio::spawn(
                async move { run(&(plugin, name), &ws, &["incr", "c", "n", "1", "20"]).await },
            )
        })
        .collect();
    for r in runs {
        assert!(!r.await.unwrap().starts_with("err"));
    }
    assert_eq!(
        ws.namespace("c").unwrap().get("n").unwrap().unwrap(),
        b"640"
    );
}

async fn racing_compare_and_swaps_have_one_winner(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let ws = storage.workspace("cas").unwrap();
    let d2 = (load(DRAFT2.0).await, DRAFT2.1);
    // Two handles read the same (absent) entry: one swap wins, the other
    // fails with a fresh handle that holds the winner's value.
    assert_eq!(
        run(&d2, &ws, &["cas-race", "b", "k"]).await,
        "before=none\nfirst: swapped\nsecond: cas-failed current=one\nretry: swapped"
    );
    assert_eq!(
        ws.namespace("b").unwrap().get("k").unwrap().unwrap(),
        b"three"
    );
    // And with an existing entry (a version to compare).
    assert_eq!(
        run(&d2, &ws, &["cas-race", "b", "k"]).await,
        "before=three\nfirst: swapped\nsecond: cas-failed current=one\nretry: swapped"
    );
    // Instances racing on one key: every increment lands exactly once.
    let runs: Vec<_> = (0..8)
        .map(|_| {
            let (d2, ws) = (d2.clone(), ws.clone());
            tokio::spawn(async move { run(&d2, &ws, &["cas-incr", "b", "n", "10"]).await })
        })
        .collect();
    for r in runs {
        assert!(r.await.unwrap().starts_with("lost "));
    }
    assert_eq!(ws.namespace("b").unwrap().get("n").unwrap().unwrap(), b"80");
}

async fn limits_quotas_and_counters_are_typed_errors_that_change_nothing(place: &Place) {
    let mut options = StorageOptions::default();
    options.quota_overrides.insert(
        "small".into(),
        Quota {
            max_keys: 3,
            max_bytes: 10_000,
        },
    );
    let storage = place.open(options);
    let ws = storage.workspace("small").unwrap();
    let max_value = storage.limits().max_value_bytes;
    for guest in ALL {
        let g = (load(guest.0).await, guest.1);
        let too_big = (max_value + 1).to_string();
        let out = run(&g, &ws, &["set-size", "b", "big", &too_big]).await;
        assert!(out.starts_with("err other: value-too-large: "), "{out}");
        let long_key = "k".repeat(storage.limits().max_key_bytes + 1);
        let out = run(&g, &ws, &["set", "b", &long_key, "v"]).await;
        assert!(out.starts_with("err other: invalid-key: "), "{out}");
        let out = run(&g, &ws, &["set", "b", "", "v"]).await;
        assert!(out.starts_with("err other: invalid-key: "), "{out}");
        // The quota is checked before anything is written.
        let out = run(&g, &ws, &["set-size", "b", "k", "20000"]).await;
        assert!(out.starts_with("err other: quota-exceeded: "), "{out}");
        let out = run(&g, &ws, &["set-many", "b", "a=1", "b=2", "c=3", "d=4"]).await;
        assert!(out.starts_with("err other: quota-exceeded: "), "{out}");
        let out = run(&g, &ws, &["set", "b", "text", "hello"]).await;
        assert_eq!(out, "ok");
        let out = run(&g, &ws, &["incr", "b", "text", "1"]).await;
        assert!(out.starts_with("err other: not-a-counter: "), "{out}");
        assert_eq!(run(&g, &ws, &["delete", "b", "text"]).await, "ok");
    }
    assert!(keys_of(&ws, "b").is_empty());
    assert_usage_is_exact(&storage, "small");

    // Counters: overflow changes nothing, in either width.
    let ws = storage.workspace("counters").unwrap();
    let c = ws.namespace("c").unwrap();
    let (d1, d2) = (
        (load(DRAFT.0).await, DRAFT.1),
        (load(DRAFT2.0).await, DRAFT2.1),
    );
    c.set("n", i64::MAX.to_string()).unwrap();
    let out = run(&d2, &ws, &["incr", "c", "n", "1"]).await;
    assert_eq!(out, "err other: overflow: the counter would overflow");
    let out = run(&d1, &ws, &["incr", "c", "n", "1"]).await;
    assert_eq!(out, "err other: overflow: the counter would overflow");
    assert_eq!(
        c.get("n").unwrap().unwrap(),
        i64::MAX.to_string().as_bytes()
    );
    // A u64 delta beyond what a counter holds.
    let out = run(&d1, &ws, &["incr", "c", "m", &u64::MAX.to_string()]).await;
    assert!(out.starts_with("err other: overflow"), "{out}");
    assert_eq!(c.get("m").unwrap(), None);
    // A negative counter is not a u64 counter: draft refuses it, unchanged.
    c.set("neg", "-5").unwrap();
    let out = run(&d1, &ws, &["incr", "c", "neg", "10"]).await;
    assert!(out.starts_with("err other: not-a-counter: "), "{out}");
    assert_eq!(c.get("neg").unwrap().unwrap(), b"-5");
    assert_eq!(run(&d2, &ws, &["incr", "c", "neg", "10"]).await, "5");
    // Too many keys in one batch.
    let max = storage.limits().max_batch_ops as usize;
    let many: Vec<String> = (0..=max).map(|i| format!("k{i}=v")).collect();
    let mut args = vec!["set-many", "c"];
    args.extend(many.iter().map(String::as_str));
    let out = run(&d2, &ws, &args).await;
    assert!(out.starts_with("err other: too-many-operations: "), "{out}");
    assert_eq!(keys_of(&ws, "c"), ["n", "neg"]);
}

async fn expired_entries_are_absent_through_wasi_keyvalue(place: &Place) {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut options = StorageOptions::default();
    options.clock = Arc::new(clock.clone());
    options.sweep_interval = None;
    let storage = place.open(options);
    let ws = storage.workspace("ttl").unwrap();
    let ns = ws.namespace("b").unwrap();
    let mut write = cubby_host::ops::WriteOptions::default();
    write.ttl = Some(Duration::from_secs(60));
    ns.set_with("session", b"s".to_vec(), write).unwrap();
    ns.set("keep", "k").unwrap();
    for guest in ALL {
        let g = (load(guest.0).await, guest.1);
        assert_eq!(run(&g, &ws, &["get", "b", "session"]).await, "s");
    }
    clock.advance(Duration::from_secs(61));
    for guest in ALL {
        let g = (load(guest.0).await, guest.1);
        assert_eq!(run(&g, &ws, &["get", "b", "session"]).await, "none");
        assert_eq!(run(&g, &ws, &["exists", "b", "session"]).await, "false");
        assert_eq!(run(&g, &ws, &["list", "b"]).await, "keep\npages 1");
        assert_eq!(
            run(&g, &ws, &["get-many", "b", "session", "keep"]).await,
            "session: none\nkeep=k"
        );
    }
    // A set through wasi:keyvalue replaces the entry and its expiry.
    let mut write = cubby_host::ops::WriteOptions::default();
    write.ttl = Some(Duration::from_secs(1));
    ns.set_with("token", b"old".to_vec(), write).unwrap();
    assert_eq!(
        run(
            &(load(DRAFT2.0).await, DRAFT2.1),
            &ws,
            &["set", "b", "token", "new"]
        )
        .await,
        "ok"
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(ns.entry("token").unwrap().unwrap().expires_in, None);
    assert_eq!(
        run(&(load(DRAFT.0).await, DRAFT.1), &ws, &["get", "b", "token"]).await,
        "new"
    );
    // An expired counter starts again from zero.
    let mut write = cubby_host::ops::WriteOptions::default();
    write.ttl = Some(Duration::from_secs(1));
    ns.set_with("n", b"7".to_vec(), write).unwrap();
    clock.advance(Duration::from_secs(2));
    assert_eq!(
        run(
            &(load(DRAFT.0).await, DRAFT.1),
            &ws,
            &["incr", "b", "n", "1"]
        )
        .await,
        "1"
    );
}

async fn forged_and_stale_cursors_are_errors(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let ws = storage.workspace("cur").unwrap();
    let ns = ws.namespace("b").unwrap();
    for i in 0..250 {
        ns.set(&format!("k{i:03}"), "v").unwrap();
    }
    let invalid = "err other: invalid-cursor: this cursor was not returned by this bucket's \
                   list-keys, or is too old; list again without a cursor";
    // draft: a number the bucket did not issue.
    let d1 = (load(DRAFT.0).await, DRAFT.1);
    for forged in ["0", "1", "12345", &u64::MAX.to_string()] {
        assert_eq!(run(&d1, &ws, &["page", "b", forged]).await, invalid);
    }
    // A real cursor outlives neither its bucket handle nor its instance.
    let cursor = first_page_cursor(&d1, &ws, "b").await;
    assert_eq!(run(&d1, &ws, &["page", "b", &cursor]).await, invalid);
    // draft2: a string that is no cursor at all.
    let d2 = (load(DRAFT2.0).await, DRAFT2.1);
    for forged in ["not hex", "zz", ""] {
        assert_eq!(run(&d2, &ws, &["page", "b", forged]).await, invalid);
    }
}

async fn bucket_names_and_the_hosts_allow_list(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let ws = storage.workspace("names").unwrap();
    let too_long = "n".repeat(cubby_host::ops::MAX_NAMESPACE_BYTES + 1);
    for guest in ALL {
        let g = (load(guest.0).await, guest.1);
        assert_eq!(run(&g, &ws, &["open", ""]).await, "ok");
        assert_eq!(run(&g, &ws, &["open", "any name/at all"]).await, "ok");
        assert_eq!(
            run(&g, &ws, &["open", &too_long]).await,
            "err no-such-store"
        );
        let runtime = runtime_builder()
            .allow_buckets(["", "cache"])
            .build()
            .unwrap();
        let g = (load_with(&runtime, guest.0).await, guest.1);
        assert_eq!(run(&g, &ws, &["open", ""]).await, "ok");
        assert_eq!(run(&g, &ws, &["set", "cache", "k", "v"]).await, "ok");
        assert_eq!(
            run(&g, &ws, &["open", "secrets"]).await,
            "err access-denied"
        );
        assert_eq!(
            run(&g, &ws, &["open", &too_long]).await,
            "err no-such-store"
        );
    }
}

/// Handles are host memory: an instance holds at most 1024 at once (the
/// command's own bucket is one of them), and a fresh instance starts again.
#[tokio::test]
async fn an_instance_cannot_hold_unbounded_handles() {
    let storage = Storage::in_memory(StorageOptions::default()).unwrap();
    let ws = storage.workspace("h").unwrap();
    for guest in ALL {
        let g = (load(guest.0).await, guest.1);
        assert_eq!(
            run(&g, &ws, &["open-many", "b", "1023"]).await,
            "opened 1023"
        );
        let out = run(&g, &ws, &["open-many", "b", "1024"]).await;
        assert!(out.starts_with("err other: too-many-handles: "), "{out}");
    }
}

#[tokio::test]
async fn a_guest_importing_a_version_the_host_lacks_fails_to_load_naming_it() {
    let runtime = runtime_builder().build().unwrap();
    let err = runtime.load_file(guests::KV_UNKNOWN).await.unwrap_err();
    match &err {
        LoadError::UnsatisfiedImport { import, .. } => {
            assert_eq!(import, "wasi:keyvalue/store@0.2.0-draft9")
        }
        other => panic!("expected UnsatisfiedImport, got {other:?}"),
    }
    assert!(
        err.to_string().contains("wasi:keyvalue/store@0.2.0-draft9"),
        "{err}"
    );
}

/// A guest whose draft2 `get-many` is of neither shape in use is refused at
/// load, naming the import, what it has, and the two shapes served.
#[tokio::test]
async fn a_guest_with_a_get_many_of_a_third_shape_fails_to_load_naming_the_shapes() {
    let runtime = runtime_builder().build().unwrap();
    let err = runtime.load_file(guests::KV_ODD_SHAPE).await.unwrap_err();
    assert!(matches!(err, LoadError::UnservedShape { .. }), "{err:?}");
    let line = format!("{:#}", anyhow::Error::from(err));
    for part in [
        "imports `wasi:keyvalue/batch@0.2.0-draft2` in a shape this host does not serve",
        "its `get-many` of `wasi:keyvalue/batch@0.2.0-draft2` is a function returning \
         result<list<list<u8>>, variant>",
        GetManyShape::Upstream.wit(),
        GetManyShape::Spin.wit(),
    ] {
        assert!(line.contains(part), "{part:?} in {line}");
    }
}

/// Each draft2 guest is told the shape of `get-many` it imports, without a
/// word from the embedder.
#[tokio::test]
async fn each_draft2_guest_is_linked_with_its_own_get_many() {
    let engine = wasmtime::Engine::default();
    for (guest, shape) in [
        (DRAFT2, GetManyShape::Upstream),
        (DRAFT2_SPIN, GetManyShape::Spin),
        (DRAFT, GetManyShape::Upstream),
    ] {
        let component = wasmtime::component::Component::from_file(&engine, guest.0).unwrap();
        assert_eq!(
            GetManyShape::of(&engine, &component).unwrap(),
            shape,
            "{}",
            guest.1
        );
    }
}

#[tokio::test]
async fn the_guestbook_example_signs_counts_and_forgets() {
    let storage = Storage::in_memory(StorageOptions::default()).unwrap();
    let ws = storage.workspace("a").unwrap();
    let sign = |visitor: &'static str| {
        let ws = ws.clone();
        async move {
            // A later value for the same key wins.
            let runtime = runtime_builder()
                .env("VISITOR", "nobody")
                .env("VISITOR", visitor)
                .build()
                .unwrap();
            let book = runtime.load_file(guests::GUESTBOOK).await.unwrap();
            let out = book.run(&ws, &["guestbook".into()]).await.unwrap();
            assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        }
    };
    assert_eq!(
        sign("ada").await,
        "hello, ada!\nada has visited 1 time(s)\nsigned by: ada\n"
    );
    sign("bob").await;
    assert_eq!(
        sign("ada").await,
        "hello, ada!\nada has visited 2 time(s)\nsigned by: ada, bob\n"
    );
    assert_eq!(
        keys_of(&ws, "guestbook"),
        [
            "greeting/ada",
            "greeting/bob",
            "last-visitor",
            "visits/ada",
            "visits/bob"
        ]
    );
    let runtime = runtime_builder()
        .env("VISITOR", "bob")
        .env("FORGET", "1")
        .build()
        .unwrap();
    let book = runtime.load_file(guests::GUESTBOOK).await.unwrap();
    let out = book.run(&ws, &["guestbook".into()]).await.unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "forgot bob\n");
    assert_eq!(
        keys_of(&ws, "guestbook"),
        ["greeting/ada", "last-visitor", "visits/ada"]
    );
}

cubby_host::conformance_tests!(
    async store_atomics_and_batch_work_on_a_fresh_workspace,
    async data_is_shared_with_cubby_storage_both_ways,
    async workspaces_stay_apart_through_wasi_keyvalue,
    async paging_ten_thousand_keys_returns_each_once_in_order,
    async thirty_two_instances_increment_one_counter_exactly,
    async racing_compare_and_swaps_have_one_winner,
    async limits_quotas_and_counters_are_typed_errors_that_change_nothing,
    async expired_entries_are_absent_through_wasi_keyvalue,
    async forged_and_stale_cursors_are_errors,
    async bucket_names_and_the_hosts_allow_list,
);
