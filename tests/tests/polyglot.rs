//! Plugins written in Python and JavaScript, built from source by
//! `cubby-polyglot` (componentize-py and componentize-js, pinned), on the same
//! workspace storage as the Rust plugins: they pass the Rust `notes` plugin's
//! end-to-end test, answer byte for byte alike, read each other's data, stay
//! in their workspace, return storage errors as their own, and run within
//! the default limits. The data tests run on redb and on PostgreSQL.
//!
//! Where Python/pip or Node/npm is missing locally, the tests of that
//! language print a notice and pass without running; with `CI=true` the
//! build fails instead (see `tests/polyglot/build.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{load, load_with, runtime_builder};
use cubby_artifacts as guests;
use cubby_host::options::Quota;
use cubby_host::testing::Place;
use cubby_host::{CallError, Plugin, Runtime, StorageOptions, Workspace};
use cubby_polyglot::{JS_HELPERS, JS_NOTES, PY_COUNTER, PY_HELPERS, PY_NOTES};
use serde_json::{Value, json};

/// The notes plugins built here: the Rust example first, then the ports
/// whose toolchain is available (all of them under `CI=true`).
fn notes_plugins() -> Vec<(&'static str, &'static str)> {
    let mut plugins = vec![("rust", guests::NOTES)];
    for port in [PY_NOTES, JS_NOTES] {
        if let Some(path) = port.path() {
            plugins.push((port.name, path));
        }
    }
    plugins
}

async fn call_raw(plugin: &Plugin, ws: &Workspace, request: &str) -> Result<Vec<u8>, CallError> {
    plugin.call(ws, request.as_bytes()).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Every key and value of a workspace, in key order.
type Contents = Vec<(String, Vec<u8>)>;

fn contents(ws: &Workspace) -> Contents {
    ws.keys(None)
        .map(|key| {
            let key = key.unwrap();
            let value = ws.get(&key).unwrap().unwrap();
            (key, value)
        })
        .collect()
}

async fn python_and_javascript_notes_pass_the_rust_notes_test(place: &Place) {
    for port in [PY_NOTES, JS_NOTES] {
        let Some(path) = port.path() else { continue };
        common::notes_are_added_listed_and_removed_as_json(place, path, port.name).await;
    }
}

/// One script of requests, run by each language in a workspace of its own:
/// the same response bytes, the same stored bytes, and bad requests refused
/// alike.
async fn every_language_answers_and_stores_byte_for_byte_alike(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let script = [
        json!({"op":"add","text":"buy milk"}),
        json!({"op":"add","text":"naïve ☃ \"quoted\"\n\ttabbed \u{1}"}),
        json!({"op":"add","text":""}),
        json!({"op":"list"}),
        json!({"op":"remove","id":1}),
        json!({"op":"remove","id":1}),
        json!({"op":"remove","id":99}),
        json!({"op":"add","text":"after removal"}),
        json!({"op":"list","extra":"ignored"}),
    ];
    let bad = [
        "not json",
        "[]",
        r#"{"op":"nope"}"#,
        r#"{"op":"add"}"#,
        r#"{"op":"add","text":5}"#,
        r#"{"op":"remove","id":-1}"#,
        r#"{"op":"remove","id":"1"}"#,
    ];
    let mut answers: Vec<(&str, Vec<String>, Contents)> = Vec::new();
    for (lang, path) in notes_plugins() {
        let plugin = load(path).await;
        let ws = storage.workspace(&format!("script-{lang}")).unwrap();
        let mut responses = Vec::new();
        for request in &script {
            let out = call_raw(&plugin, &ws, &request.to_string()).await;
            responses.push(text(
                &out.unwrap_or_else(|e| panic!("{lang}: {request}: {e}")),
            ));
        }
        for request in bad {
            match call_raw(&plugin, &ws, request).await {
                Err(CallError::Plugin(message)) => {
                    assert!(message.starts_with("bad request ("), "{lang}: {message}");
                    assert!(
                        message.ends_with(
                            r#"expected {"op":"add","text":…}, {"op":"list"} or {"op":"remove","id":…}"#
                        ),
                        "{lang}: {message}"
                    );
                }
                other => panic!("{lang}: {request} gave {other:?}"),
            }
        }
        answers.push((lang, responses, contents(&ws)));
    }
    let (_, rust_responses, rust_contents) = &answers[0];
    assert_eq!(
        rust_responses[3],
        r#"[{"id":1,"text":"buy milk"},{"id":2,"text":"naïve ☃ \"quoted\"\n\ttabbed \u0001"},{"id":3,"text":""}]"#
    );
    assert_eq!(rust_responses[7], r#"{"id":4,"text":"after removal"}"#);
    assert_eq!(rust_contents.len(), 4, "{rust_contents:?}");
    for (lang, responses, stored) in &answers[1..] {
        assert_eq!(
            responses, rust_responses,
            "{lang} answers differ from Rust's"
        );
        assert_eq!(stored, rust_contents, "{lang} stores different bytes");
    }
}

/// Notes added by each language in one workspace are listed, and removed,
/// by every other: one storage, whatever the plugin is written in.
async fn notes_written_in_one_language_are_read_in_the_others(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let ws = storage.workspace("shared").unwrap();
    let mut plugins = Vec::new();
    for (lang, path) in notes_plugins() {
        plugins.push((lang, load(path).await));
    }
    let mut expected = Vec::new();
    for (i, (lang, plugin)) in plugins.iter().enumerate() {
        let request = json!({"op":"add","text":format!("from {lang}")}).to_string();
        let added: Value =
            serde_json::from_slice(&call_raw(plugin, &ws, &request).await.unwrap()).unwrap();
        assert_eq!(added, json!({"id": i + 1, "text": format!("from {lang}")}));
        expected.push(added);
    }
    for (lang, plugin) in &plugins {
        let listed = call_raw(plugin, &ws, r#"{"op":"list"}"#).await.unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&listed).unwrap(),
            Value::Array(expected.clone()),
            "{lang}"
        );
    }
    // The last language removes the first one's note.
    let (_, last) = plugins.last().unwrap();
    let removed = call_raw(last, &ws, r#"{"op":"remove","id":1}"#)
        .await
        .unwrap();
    assert_eq!(text(&removed), r#"{"removed":true}"#);
    let (_, first) = &plugins[0];
    let listed: Value =
        serde_json::from_slice(&call_raw(first, &ws, r#"{"op":"list"}"#).await.unwrap()).unwrap();
    assert_eq!(listed, Value::Array(expected[1..].to_vec()));
}

/// The same Python plugin bound to two workspaces sees only the one it is
/// bound to, for notes and for counters.
async fn python_and_javascript_plugins_see_only_their_own_workspace(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let a = storage.workspace("a").unwrap();
    let b = storage.workspace("b").unwrap();
    for port in [PY_NOTES, JS_NOTES] {
        let Some(path) = port.path() else { continue };
        let notes = load(path).await;
        let add = |ws: &Workspace, text: &str| {
            let request = json!({"op":"add","text":text}).to_string();
            let notes = notes.clone();
            let ws = ws.clone();
            async move { text_of(call_raw(&notes, &ws, &request).await) }
        };
        assert_eq!(
            add(&a, "a1").await,
            r#"{"id":1,"text":"a1"}"#,
            "{}",
            port.name
        );
        assert_eq!(
            add(&a, "a2").await,
            r#"{"id":2,"text":"a2"}"#,
            "{}",
            port.name
        );
        assert_eq!(
            add(&b, "b1").await,
            r#"{"id":1,"text":"b1"}"#,
            "{}",
            port.name
        );
        let list_b = text_of(call_raw(&notes, &b, r#"{"op":"list"}"#).await);
        assert_eq!(list_b, r#"[{"id":1,"text":"b1"}]"#, "{}", port.name);
        // Removing note 2 in b cannot reach a's note 2.
        let removed = text_of(call_raw(&notes, &b, r#"{"op":"remove","id":2}"#).await);
        assert_eq!(removed, r#"{"removed":false}"#, "{}", port.name);
        let list_a = text_of(call_raw(&notes, &a, r#"{"op":"list"}"#).await);
        assert_eq!(
            list_a, r#"[{"id":1,"text":"a1"},{"id":2,"text":"a2"}]"#,
            "{}",
            port.name
        );
        // Start the next language afresh.
        a.clear_all().unwrap();
        b.clear_all().unwrap();
    }
    if let Some(path) = PY_COUNTER.path() {
        let counter = load(path).await;
        for (ws, expected) in [(&a, "1\n"), (&a, "2\n"), (&b, "1\n")] {
            let out = counter.run(ws, &["counter".into()]).await.unwrap();
            assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
            assert_eq!(text(&out.stdout), expected);
        }
        assert_eq!(contents(&a), [("counter".to_string(), b"2".to_vec())]);
        assert_eq!(contents(&b), [("counter".to_string(), b"1".to_vec())]);
    }
}

fn text_of(out: Result<Vec<u8>, CallError>) -> String {
    text(&out.unwrap())
}

/// A storage error inside the plugin (here the quota) comes back as the
/// plugin's own error, with the same message in every language, and the
/// refused write leaves nothing.
async fn a_storage_error_is_the_plugins_error_in_every_language(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let mut messages = Vec::new();
    for (lang, path) in notes_plugins() {
        let plugin = load(path).await;
        let id = format!("quota-{lang}");
        // Room for the id counter, not for the note.
        let quota = Quota {
            max_keys: 100,
            max_bytes: 40,
        };
        storage.override_quota(&id, Some(quota)).unwrap();
        let ws = storage.workspace(&id).unwrap();
        let request = r#"{"op":"add","text":"a note longer than the workspace's quota allows"}"#;
        match call_raw(&plugin, &ws, request).await {
            Err(CallError::Plugin(message)) => messages.push((lang, message)),
            other => panic!("{lang}: expected the plugin's error, got {other:?}"),
        }
        assert_eq!(
            contents(&ws),
            [("last-id".to_string(), b"1".to_vec())],
            "{lang}: only the counter was written"
        );
    }
    let (_, rust) = &messages[0];
    assert!(
        rust.starts_with("notes: quota exceeded: the workspace would hold "),
        "{rust}"
    );
    for (lang, message) in &messages[1..] {
        assert_eq!(message, rust, "{lang}");
    }
}

/// The Python command plugin and the Rust `counter` take turns on one
/// counter, print alike, and fail alike (exit status 1, the same message).
async fn the_python_command_plugin_behaves_as_the_rust_counter(place: &Place) {
    let Some(path) = PY_COUNTER.path() else {
        return;
    };
    let storage = place.open(StorageOptions::default());
    let ws = storage.workspace("turns").unwrap();
    let python = load(path).await;
    let rust = load(guests::COUNTER).await;
    for (i, plugin) in [&rust, &python, &rust, &python].into_iter().enumerate() {
        let out = plugin.run(&ws, &["counter".into()]).await.unwrap();
        assert_eq!(out.exit_code, 0, "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), format!("{}\n", i + 1));
    }
    // The argument names the counter.
    let out = python
        .run(&ws, &["counter".into(), "visits".into()])
        .await
        .unwrap();
    assert_eq!(text(&out.stdout), "1\n");
    assert_eq!(ws.get("visits").unwrap().unwrap(), b"1");

    ws.set("words", b"not a number").unwrap();
    let args = ["counter".to_string(), "words".to_string()];
    let from_rust = rust.run(&ws, &args).await.unwrap();
    let from_python = python.run(&ws, &args).await.unwrap();
    for out in [&from_rust, &from_python] {
        assert_eq!(out.exit_code, 1);
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    }
    assert_eq!(
        text(&from_python.stderr),
        text(&from_rust.stderr),
        "the same message"
    );
    assert_eq!(
        text(&from_rust.stderr),
        "counter: cannot bump \"words\": the stored value is not a counter\n"
    );
    assert_eq!(ws.get("words").unwrap().unwrap(), b"not a number");
}

/// What the helper test guests print: every helper of `cubby.py` and
/// `cubby.js` in turn (see `tests/guests/py-helpers/app.py`).
const HELPERS_OUTPUT: &str = "\
string: héllo ☃
json: {\"a\":[1,2],\"b\":\"x\"}
json default: none
missing: None
bytes: 00ff
exists: True False
get many: ['00ff', None]
paged keys: 250 k/000 k/249
all keys: 250
namespaces: ['ns']
delete many: 2
ns usage: 248 248
counter: 5 4 4 14
counter reset: True 0
ns counter: 1
negative with ttl: -3 True True
not a counter: not-a-counter | the stored value is not a counter
conflict: conflict | condition of operation 0 does not hold | 0 b'1'
if version: True
stale delete: conflict | condition of operation 0 does not hold
delete if version: True None
invalid key: invalid-key | invalid key: key is empty
too large: value-too-large | value too large: the limit is 1048576 bytes
zero ttl: invalid-argument | invalid argument: a time-to-live must be at least 1 ms
decode: decode
ttl: True
expire none: True None
renew: True
delete: True False
stream info: 1200000 True True True
stream read: 1200000 00000000
stream abandoned: False
stream get: value-too-large | value too large: the limit is 1048576 bytes
stream delete: True
clear: 249
after clear: 0 []
keys: ['badjson', 'bin', 'cfg', 'greeting', 'word']
";

/// Every helper of the Python and JavaScript modules, run by a test guest in
/// each language: both print the expected lines (listings paged across three
/// pages, counters, conditions, expiry, every error kind and message) and
/// the host finds what they wrote.
async fn the_python_and_javascript_helpers_do_what_they_document(place: &Place) {
    let storage = place.open(StorageOptions::default());
    for guest in [PY_HELPERS, JS_HELPERS] {
        let Some(path) = guest.path() else { continue };
        let plugin = load(path).await;
        let ws = storage.workspace(guest.name).unwrap();
        let out = plugin.run(&ws, &[guest.name.into()]).await.unwrap();
        assert_eq!(out.exit_code, 0, "{}: {}", guest.name, text(&out.stderr));
        assert_eq!(text(&out.stdout), HELPERS_OUTPUT, "{}", guest.name);
        let keys: Vec<String> = ws.keys(None).collect::<Result<_, _>>().unwrap();
        assert_eq!(keys, ["badjson", "bin", "cfg", "greeting", "word"]);
        assert_eq!(ws.get("greeting").unwrap().unwrap(), "héllo ☃".as_bytes());
        assert_eq!(ws.get("cfg").unwrap().unwrap(), br#"{"a":[1,2],"b":"x"}"#);
        assert_eq!(ws.get("bin").unwrap().unwrap(), [0, 255]);
        assert_eq!(ws.usage().unwrap().keys, 5, "namespace ns was emptied");
    }
}

/// A Python plugin (CPython in ~13 MB of linear memory) works within the
/// default memory limit, also with a hundred notes of 4 KB; below its
/// needs, or sent a request larger than the limit, it is stopped at the
/// limit, writes nothing, and the runtime keeps serving.
#[tokio::test]
async fn a_python_plugin_runs_within_the_default_memory_limit_and_is_stopped_past_it() {
    let Some(path) = PY_NOTES.path() else { return };
    let storage = cubby_host::Storage::in_memory(StorageOptions::default()).unwrap();
    let ws = storage.workspace("mem").unwrap();
    // The test runtime changes no limit but the timeout.
    let runtime = runtime_builder().build().unwrap();
    let default_limit = Runtime::DEFAULT_MAX_MEMORY_BYTES;
    let notes = load_with(&runtime, path).await;
    let text4k = "x".repeat(4096);
    for _ in 0..100 {
        let request = json!({"op":"add","text":text4k}).to_string();
        call_raw(&notes, &ws, &request).await.unwrap();
    }
    let listed: Value =
        serde_json::from_slice(&call_raw(&notes, &ws, r#"{"op":"list"}"#).await.unwrap()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 100);

    // A request bigger than the whole limit cannot even be handed over.
    let huge = format!(r#"{{"op":"add","text":"{}"}}"#, "y".repeat(default_limit));
    match call_raw(&notes, &ws, &huge).await {
        Err(CallError::MemoryLimit { limit, requested }) => {
            assert_eq!(limit, default_limit);
            assert!(requested > limit);
        }
        other => panic!("expected the memory limit, got {other:?}"),
    }

    let small = runtime_builder().max_memory_bytes(8 << 20).build().unwrap();
    let cramped = load_with(&small, path).await;
    match call_raw(&cramped, &ws, r#"{"op":"add","text":"no room"}"#).await {
        Err(CallError::MemoryLimit { limit, .. }) => assert_eq!(limit, 8 << 20),
        other => panic!("expected the memory limit, got {other:?}"),
    }
    assert_eq!(ws.usage().unwrap().keys, 101, "nothing more was written");
    let again = call_raw(&notes, &ws, r#"{"op":"remove","id":100}"#).await;
    assert_eq!(text_of(again), r#"{"removed":true}"#);
}

/// Every polyglot plugin type-checks against its world: loaded by the
/// runtime, a request/response plugin is not a command and the command is
/// not a handler (the same errors as for Rust plugins).
#[tokio::test]
async fn polyglot_plugins_export_exactly_their_world() {
    let storage = cubby_host::Storage::in_memory(StorageOptions::default()).unwrap();
    let ws = storage.workspace("w").unwrap();
    for port in [PY_NOTES, JS_NOTES] {
        let Some(path) = port.path() else { continue };
        let plugin = load(path).await;
        assert!(!plugin.is_command(), "{}", port.name);
        let err = plugin.run(&ws, &[]).await.unwrap_err();
        assert!(matches!(err, CallError::NotACommand { .. }), "{err}");
    }
    for command in [PY_COUNTER, JS_HELPERS] {
        let Some(path) = command.path() else { continue };
        let plugin = load(path).await;
        assert!(plugin.is_command(), "{}", command.name);
        let err = plugin.call(&ws, b"{}").await.unwrap_err();
        assert!(matches!(err, CallError::NotAHandler { .. }), "{err}");
    }
    assert!(contents(&ws).is_empty());
}

cubby_host::conformance_tests!(
    async python_and_javascript_notes_pass_the_rust_notes_test,
    async every_language_answers_and_stores_byte_for_byte_alike,
    async notes_written_in_one_language_are_read_in_the_others,
    async python_and_javascript_plugins_see_only_their_own_workspace,
    async a_storage_error_is_the_plugins_error_in_every_language,
    async the_python_command_plugin_behaves_as_the_rust_counter,
    async the_python_and_javascript_helpers_do_what_they_document,
);
