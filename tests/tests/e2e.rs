//! End-to-end tests through the library: real plugins, built from source,
//! against real storage. Each test asserts what the plugin returns and what
//! the database holds. The tests of storage behaviour run on redb and on
//! PostgreSQL (listed at the end).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

mod common;

use common::{call as probe, load, runtime_builder};
use cubby_artifacts as guests;
use cubby_host::testing::{Place, all_keys};
use cubby_host::{CallError, LoadError, Plugin, Storage, StorageOptions, Workspace};
use serde_json::{Value, json};

fn memory_storage() -> Storage {
    Storage::in_memory(StorageOptions::default()).unwrap()
}

/// Asserts that `plugin` still serves a call in `ws` and that its write
/// lands (after a call that failed or was stopped).
async fn serves_after(plugin: &Plugin, ws: &Workspace) {
    let r = probe(plugin, ws, json!({"op":"set","key":"after","value":"ok"})).await;
    assert_eq!(r, json!({"ok": null}));
    assert_eq!(ws.get("after").unwrap().unwrap(), b"ok");
}

async fn counter_persists_across_a_restart_of_the_host(place: &Place) {
    let run = |storage: &Storage, ws: &'static str| {
        let ws = storage.workspace(ws).unwrap();
        async move {
            let counter = load(guests::COUNTER).await;
            let out = counter.run(&ws, &["counter".into()]).await.unwrap();
            assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        }
    };
    {
        let storage = place.open(StorageOptions::default());
        assert_eq!(run(&storage, "a").await, "1\n");
        assert_eq!(run(&storage, "a").await, "2\n");
        assert_eq!(run(&storage, "b").await, "1\n");
    }
    let storage = place.open(StorageOptions::default());
    assert_eq!(run(&storage, "a").await, "3\n");
    let a = storage.workspace("a").unwrap();
    assert_eq!(a.get("counter").unwrap().unwrap(), b"3");
    assert_eq!(all_keys(a.keys(None)), vec!["counter".to_string()]);
}

async fn the_same_plugin_in_two_workspaces_sees_only_its_own_data(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let probe_plugin = load(guests::PROBE).await;
    let a = storage.workspace("a").unwrap();
    let b = storage.workspace("b").unwrap();
    for (ws, tag) in [(&a, "A"), (&b, "B")] {
        for key in ["shared", "config/theme", "config/lang"] {
            let r = probe(
                &probe_plugin,
                ws,
                json!({"op":"set","key":key,"value":format!("{tag}:{key}")}),
            )
            .await;
            assert_eq!(r, json!({"ok": null}));
        }
    }
    probe(
        &probe_plugin,
        &a,
        json!({"op":"set","key":"only-in-a","value":"x"}),
    )
    .await;

    for (ws, tag) in [(&a, "A"), (&b, "B")] {
        let r = probe(&probe_plugin, ws, json!({"op":"get","key":"shared"})).await;
        assert_eq!(r, json!({"ok": format!("{tag}:shared")}));
    }
    let r = probe(&probe_plugin, &b, json!({"op":"get","key":"only-in-a"})).await;
    assert_eq!(r, json!({"ok": null}));
    let r = probe(&probe_plugin, &b, json!({"op":"exists","key":"only-in-a"})).await;
    assert_eq!(r, json!({"ok": false}));
    let r = probe(&probe_plugin, &b, json!({"op":"delete","key":"only-in-a"})).await;
    assert_eq!(r, json!({"ok": false}));
    assert!(
        a.exists("only-in-a").unwrap(),
        "b's delete must not touch a"
    );

    let r = probe(&probe_plugin, &b, json!({"op":"keys"})).await;
    assert_eq!(r, json!({"ok": ["config/lang", "config/theme", "shared"]}));
    let r = probe(&probe_plugin, &a, json!({"op":"keys","prefix":"config/"})).await;
    assert_eq!(r, json!({"ok": ["config/lang", "config/theme"]}));

    // What the database holds, read without the plugin.
    assert_eq!(
        all_keys(a.keys(None)),
        ["config/lang", "config/theme", "only-in-a", "shared"]
    );
    assert_eq!(b.get("config/theme").unwrap().unwrap(), b"B:config/theme");
}

async fn hostile_keys_neither_reach_nor_alias_another_workspace(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let probe_plugin = load(guests::PROBE).await;
    let a = storage.workspace("a").unwrap();
    let b = storage.workspace("b").unwrap();
    let a_dot = storage.workspace("a.b").unwrap();
    let max_key = "k".repeat(storage.limits().max_key_bytes);
    let keys = [
        "\0",
        "\0\0",
        "a\0",
        "\0a",
        "b\0",
        "/",
        "//",
        "a/b",
        "../b",
        "b/",
        "🦀",
        "ä",
        "a\u{0}b",
        "\u{FFFF}",
        " ",
        max_key.as_str(),
    ];
    b.set("victim", b"b's secret").unwrap();
    for key in keys {
        let r = probe(&probe_plugin, &a, json!({"op":"set","key":key,"value":key})).await;
        assert_eq!(r, json!({"ok": null}), "{key:?}");
    }
    for key in keys {
        let r = probe(&probe_plugin, &a, json!({"op":"get","key":key})).await;
        assert_eq!(r, json!({"ok": key}), "{key:?} read back");
        for other in [&b, &a_dot] {
            let r = probe(&probe_plugin, other, json!({"op":"get","key":key})).await;
            assert_eq!(r, json!({"ok": null}), "{key:?} visible in {}", other.id());
        }
    }
    // Keys that try to name the other workspace reach only a's own entries.
    for key in ["b\0victim", "b/victim", "\0b\0victim", "victim"] {
        let r = probe(&probe_plugin, &a, json!({"op":"get","key":key})).await;
        assert_eq!(r, json!({"ok": null}), "{key:?}");
    }
    let r = probe(&probe_plugin, &a, json!({"op":"keys","prefix":"b"})).await;
    assert_eq!(
        r,
        json!({"ok": ["b\0", "b/"]}),
        "byte order: NUL sorts first"
    );

    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(all_keys(a.keys(None)), expected);
    assert_eq!(all_keys(b.keys(None)), ["victim"]);
    assert_eq!(b.get("victim").unwrap().unwrap(), b"b's secret");
    assert!(all_keys(a_dot.keys(None)).is_empty());

    // Invalid keys are typed errors and write nothing.
    let too_long = "k".repeat(storage.limits().max_key_bytes + 1);
    for key in ["", too_long.as_str()] {
        let r = probe(&probe_plugin, &a, json!({"op":"set","key":key,"value":"x"})).await;
        assert_eq!(r["err"], "invalid-key", "{key:?}: {r}");
    }
    assert_eq!(all_keys(a.keys(None)).len(), keys.len());
    let r = probe(
        &probe_plugin,
        &a,
        json!({"op":"page","cursor":"not-a-cursor"}),
    )
    .await;
    assert_eq!(r["err"], "invalid-cursor");
}

async fn an_oversized_value_is_a_typed_error_and_nothing_is_written(place: &Place) {
    let mut options = StorageOptions::default();
    options.limits.max_value_bytes = 1024;
    let storage = place.open(options);
    let probe_plugin = load(guests::PROBE).await;
    let ws = storage.workspace("w").unwrap();
    ws.set("kept", b"old").unwrap();
    let before = ws.usage().unwrap();

    for key in ["new", "kept"] {
        let r = probe(
            &probe_plugin,
            &ws,
            json!({"op":"set-bytes","key":key,"len":1025}),
        )
        .await;
        assert_eq!(r["err"], "value-too-large", "{r}");
        assert!(r["message"].as_str().unwrap().contains("1024"), "{r}");
    }
    assert_eq!(ws.get("new").unwrap(), None);
    assert_eq!(ws.get("kept").unwrap().unwrap(), b"old");
    assert_eq!(ws.usage().unwrap(), before);

    let r = probe(
        &probe_plugin,
        &ws,
        json!({"op":"set-bytes","key":"new","len":1024}),
    )
    .await;
    assert_eq!(r, json!({"ok": null}));
    assert_eq!(ws.get("new").unwrap().unwrap().len(), 1024);
}

#[tokio::test]
async fn a_plugin_that_loops_forever_is_stopped_and_the_host_keeps_serving() {
    let storage = memory_storage();
    let runtime = runtime_builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let probe_plugin = runtime.load_file(guests::PROBE).await.unwrap();
    let a = storage.workspace("a").unwrap();
    let b = storage.workspace("b").unwrap();

    let spinning = probe_plugin.call(&a, br#"{"op":"spin"}"#);
    let meanwhile = probe(&probe_plugin, &b, json!({"op":"set","key":"k","value":"v"}));
    let (spun, other) = tokio::join!(spinning, meanwhile);
    match spun {
        Err(CallError::Timeout { limit }) => assert_eq!(limit, Duration::from_millis(300)),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(
        other,
        json!({"ok": null}),
        "another workspace is served meanwhile"
    );

    serves_after(&probe_plugin, &a).await;
    assert_eq!(b.get("k").unwrap().unwrap(), b"v");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_instance_pool_makes_async_calls_wait_and_blocking_calls_busy() {
    let storage = memory_storage();
    let runtime = runtime_builder()
        .max_instances(1)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let probe_plugin = runtime.load_file(guests::PROBE).await.unwrap();
    let (a, b) = (
        storage.workspace("a").unwrap(),
        storage.workspace("b").unwrap(),
    );
    let spinning = probe_plugin.call(&a, br#"{"op":"spin"}"#);
    let meanwhile = async {
        // Give the spinning call time to take the only slot.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (plugin, ws) = (probe_plugin.clone(), b.clone());
        let blocking = tokio::task::spawn_blocking(move || {
            plugin.call_blocking(&ws, br#"{"op":"set","key":"k","value":"v"}"#)
        })
        .await
        .unwrap();
        assert_eq!(b.get("k").unwrap(), None, "the refused call did nothing");
        let waited = probe(&probe_plugin, &b, json!({"op":"set","key":"k","value":"v"})).await;
        (blocking, waited)
    };
    let (spun, (blocking, waited)) = tokio::join!(spinning, meanwhile);
    assert!(matches!(spun, Err(CallError::Timeout { .. })), "{spun:?}");
    let busy = blocking.unwrap_err();
    assert!(matches!(busy, CallError::Busy(_)), "{busy:?}");
    assert!(busy.to_string().contains("max_instances"), "{busy}");
    assert_eq!(
        waited,
        json!({"ok": null}),
        "the async call waited for the slot"
    );
    assert_eq!(b.get("k").unwrap().unwrap(), b"v");
}

#[tokio::test]
async fn dropping_an_async_call_stops_its_plugin_and_frees_its_slot() {
    let storage = memory_storage();
    let ws = storage.workspace("a").unwrap();
    let runtime = runtime_builder().max_instances(1).build().unwrap();
    let probe_plugin = runtime.load_file(guests::PROBE).await.unwrap();
    // The spinning plugin runs on this (only) thread and yields at every
    // epoch tick, so the timer gets to fire and drop the call.
    let spun = tokio::time::timeout(
        Duration::from_millis(100),
        probe_plugin.call(&ws, br#"{"op":"spin"}"#),
    )
    .await;
    assert!(spun.is_err(), "the call ran past the embedder's timeout");
    // Its one slot is free again, and the next call is served.
    serves_after(&probe_plugin, &ws).await;
}

/// How many times one async call of the probe's `get` reached `storage`'s
/// database on the executor's own thread.
fn gets_on_the_executors_thread(storage: &Storage) -> u64 {
    let ws = storage.workspace("a").unwrap();
    ws.set("k", "v").unwrap();
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let runtime = runtime_builder().build().unwrap();
    let probe_plugin = executor.block_on(runtime.load_file(guests::PROBE)).unwrap();
    let before = cubby_host::testing::backend_calls_on_this_thread();
    let answer = executor.block_on(probe(&probe_plugin, &ws, json!({"op":"get","key":"k"})));
    assert_eq!(answer, json!({"ok":"v"}));
    cubby_host::testing::backend_calls_on_this_thread() - before
}

#[test]
fn the_async_call_runs_a_plugin_on_the_awaiting_task_with_a_local_database_only() {
    assert_eq!(
        gets_on_the_executors_thread(&memory_storage()),
        1,
        "with redb, the plugin's get runs on the executor's thread: no hand-off"
    );
    if let Some(place) = Place::postgres() {
        assert_eq!(
            gets_on_the_executors_thread(&place.open(StorageOptions::default())),
            0,
            "with PostgreSQL, the call runs on a blocking thread"
        );
    }
}

#[test]
fn nothing_of_one_call_is_visible_to_the_next_on_a_reused_instance_slot() {
    let storage = memory_storage();
    let (a, b) = (
        storage.workspace("a").unwrap(),
        storage.workspace("b").unwrap(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let runtime = runtime_builder().max_instances(1).build().unwrap();
    let probe_plugin = rt.block_on(runtime.load_file(guests::PROBE)).unwrap();
    // Each call finds the probe's statics as built (a zeroed array, an
    // array of data from its image, a call counter) and overwrites them,
    // so a slot reset that missed a page written by the last call shows.
    let leftover = |ws, mark: u64| {
        let request = json!({"op": "leftover", "mark": mark}).to_string();
        let out = probe_plugin.call_blocking(ws, request.as_bytes()).unwrap();
        serde_json::from_slice::<serde_json::Value>(&out).unwrap()["ok"].clone()
    };
    let first = leftover(&a, 1);
    assert_eq!(first["calls_before"], 0, "{first}");
    assert_eq!(first["zeroed_changed"], 0, "{first}");
    assert_eq!(first["initialised_changed"], 0, "{first}");
    assert_eq!(first["stack_below_data"], true, "{first}");
    assert_eq!(leftover(&b, 2), first, "the marks of the first call stayed");
    for i in 0..20 {
        // A call that grows its memory by many megabytes in the one slot.
        let r = probe_plugin
            .call_blocking(
                if i % 2 == 0 { &a } else { &b },
                br#"{"op":"set-bytes","key":"big","len":1000}"#,
            )
            .unwrap();
        assert_eq!(r, br#"{"ok":null}"#);
        let _ = probe_plugin.call_blocking(&a, br#"{"op":"grow"}"#);
        assert_eq!(
            leftover(&b, 3 + i),
            first,
            "call {i} saw what an earlier one left"
        );
    }
}

#[tokio::test]
async fn a_plugin_that_eats_memory_is_stopped_at_the_limit_and_the_host_keeps_serving() {
    let storage = memory_storage();
    let runtime = runtime_builder()
        .max_memory_bytes(16 << 20)
        .build()
        .unwrap();
    let probe_plugin = runtime.load_file(guests::PROBE).await.unwrap();
    let ws = storage.workspace("w").unwrap();

    match probe_plugin.call(&ws, br#"{"op":"grow"}"#).await {
        Err(CallError::MemoryLimit { limit, requested }) => {
            assert_eq!(limit, 16 << 20);
            assert!(requested > limit);
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }
    serves_after(&probe_plugin, &ws).await;
}

#[tokio::test]
async fn a_plugin_has_no_files_environment_or_network() {
    let storage = memory_storage();
    let probe_plugin = load(guests::PROBE).await;
    let ws = storage.workspace("w").unwrap();
    // A real listener, so that a connection would succeed if the policy let it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    assert!(std::env::vars().count() > 0, "the host has an environment");
    let r = probe(&probe_plugin, &ws, json!({"op":"ambient","port":port})).await;
    assert_eq!(r, json!({"ok": {"files": false, "env": 0, "tcp": false}}));
}

#[tokio::test]
async fn a_panicking_plugin_is_a_trap_error_that_ends_only_that_call() {
    let storage = memory_storage();
    let probe_plugin = load(guests::PROBE).await;
    let ws = storage.workspace("w").unwrap();
    let err = probe_plugin
        .call(&ws, br#"{"op":"panic"}"#)
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Trap(_)), "{err:?}");
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    let r = probe(&probe_plugin, &ws, json!({"op":"exists","key":"x"})).await;
    assert_eq!(r, json!({"ok": false}));
    let err = probe_plugin.call(&ws, b"not json").await.unwrap_err();
    assert!(
        matches!(err, CallError::Plugin(ref m) if m.contains("bad request")),
        "{err:?}"
    );
}

#[tokio::test]
async fn bad_components_are_clear_errors() {
    let runtime = runtime_builder().build().unwrap();
    let load = |bytes: Vec<u8>| runtime.load_bytes("test.wasm", bytes);

    let err = load(b"#!/bin/sh\necho hi\n".to_vec()).await.unwrap_err();
    assert!(matches!(err, LoadError::NotWasm { .. }), "{err}");

    let core_module = wat::parse_str("(module (func (export \"run\")))").unwrap();
    let err = load(core_module).await.unwrap_err();
    assert!(matches!(err, LoadError::CoreModule { .. }), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");

    let err = load(wat::parse_str("(component)").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::MissingExport { .. }), "{err}");
    assert!(
        err.to_string().contains("`cubby:storage/handler@0.2.0`"),
        "names the versioned interface the bindings look for: {err}"
    );

    let imports_unknown =
        wat::parse_str(r#"(component (import "acme:db/sql" (instance (export "query" (func)))))"#)
            .unwrap();
    let err = load(imports_unknown).await.unwrap_err();
    assert!(matches!(err, LoadError::UnsatisfiedImport { .. }), "{err}");
    assert!(err.to_string().contains("acme:db/sql"), "{err}");

    // More linear memories than a pooled instance may have (4): refused
    // when loaded, not on every call.
    let memories =
        "(core module $m (memory 1)) ".to_owned() + &"(core instance (instantiate $m)) ".repeat(5);
    let err = load(wat::parse_str(format!("(component {memories})")).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");
    assert!(
        format!("{:?}", anyhow::Error::from(err)).contains("memories"),
        "names what is over the limit"
    );

    let mut truncated = std::fs::read(guests::NOTES).unwrap();
    truncated.truncate(truncated.len() / 2);
    let err = load(truncated).await.unwrap_err();
    assert!(matches!(err, LoadError::Invalid { .. }), "{err}");

    let err = runtime.load_file("/no/such/plugin.wasm").await.unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }), "{err}");

    // A component without the export the caller asked for.
    let storage = memory_storage();
    let ws = storage.workspace("w").unwrap();
    let counter = runtime.load_file(guests::COUNTER).await.unwrap();
    let err = counter.call(&ws, b"").await.unwrap_err();
    assert!(matches!(err, CallError::NotAHandler { .. }), "{err}");
    assert!(err.to_string().contains("@0.2.0"), "{err}");
    let notes = runtime.load_file(guests::NOTES).await.unwrap();
    let err = notes.run(&ws, &[]).await.unwrap_err();
    assert!(matches!(err, CallError::NotACommand { .. }), "{err}");
    assert!(all_keys(ws.keys(None)).is_empty());
}

async fn notes_are_added_listed_and_removed_as_json(place: &Place) {
    // The Python and JavaScript ports pass the same test (tests/polyglot.rs).
    common::notes_are_added_listed_and_removed_as_json(place, guests::NOTES, "team").await;
}

async fn listing_pages_through_many_keys_from_a_guest(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let kvsh = load(guests::KVSH).await;
    let ws = storage.workspace("w").unwrap();
    let run = |args: &[&str]| {
        let argv: Vec<String> = std::iter::once("kvsh")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let kvsh = kvsh.clone();
        let ws = ws.clone();
        async move {
            let out = kvsh.run(&ws, &argv).await.unwrap();
            assert_eq!(out.exit_code, 0, "{}", String::from_utf8_lossy(&out.stderr));
            String::from_utf8(out.stdout).unwrap()
        }
    };
    run(&["fill", "item/", "250"]).await;
    run(&["put", "other", "x"]).await;
    // 250 keys is three pages at the default page size of 100.
    assert_eq!(run(&["count", "item/"]).await, "250\n");
    assert_eq!(run(&["count"]).await, "251\n");
    let listed = run(&["ls", "item/"]).await;
    let expected: String = (0..250).map(|i| format!("item/{i:05}\n")).collect();
    assert_eq!(listed, expected);

    let page = run(&["page", "item/", "", "3"]).await;
    let lines: Vec<&str> = page.lines().collect();
    assert_eq!(lines[..3], ["item/00000", "item/00001", "item/00002"]);
    let cursor = lines[3].strip_prefix("cursor: ").unwrap();
    let next = run(&["page", "item/", cursor, "2"]).await;
    assert!(
        next.starts_with("item/00003\nitem/00004\ncursor: "),
        "{next}"
    );
    assert_eq!(ws.usage().unwrap().keys, 251);
}

async fn concurrent_calls_across_workspaces_stay_apart(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let notes = load(guests::NOTES).await;
    let mut calls = Vec::new();
    for i in 0..24 {
        let ws = storage.workspace(&format!("ws-{}", i % 4)).unwrap();
        let notes = notes.clone();
        calls.push(tokio::spawn(async move {
            let req = json!({"op":"add","text":format!("note {i}")}).to_string();
            notes.call(&ws, req.as_bytes()).await.unwrap()
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    for w in 0..4 {
        let ws = storage.workspace(&format!("ws-{w}")).unwrap();
        let notes: Vec<String> = all_keys(ws.keys(None))
            .into_iter()
            .filter(|k| k.starts_with("note/"))
            .collect();
        // Ids come from an atomic counter: no add is lost, none leaks across.
        assert_eq!(notes.len(), 6, "{notes:?}");
        for key in notes {
            let note: Value = serde_json::from_slice(&ws.get(&key).unwrap().unwrap()).unwrap();
            let n: usize = note["text"].as_str().unwrap()[5..].parse().unwrap();
            assert_eq!(n % 4, w, "note {n} landed in ws-{w}");
        }
    }
}

cubby_host::conformance_tests!(
    reopen async counter_persists_across_a_restart_of_the_host,
    async the_same_plugin_in_two_workspaces_sees_only_its_own_data,
    async hostile_keys_neither_reach_nor_alias_another_workspace,
    async an_oversized_value_is_a_typed_error_and_nothing_is_written,
    async notes_are_added_listed_and_removed_as_json,
    async listing_pages_through_many_keys_from_a_guest,
    async concurrent_calls_across_workspaces_stay_apart,
);
