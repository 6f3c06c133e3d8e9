//! Helpers shared by the end-to-end test files.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use cubby_artifacts as guests;
use cubby_host::options::Output;
use cubby_host::testing::Place;
use cubby_host::{Plugin, Runtime, RuntimeBuilder, StorageOptions, Workspace};
use serde_json::{Value, json};

/// A runtime builder for tests: stdout and stderr captured, and compiled
/// components cached on disk so each is compiled once for the whole suite.
/// The timeout is generous for the heavy concurrency tests; tests of the
/// timeout set their own.
pub fn runtime_builder() -> RuntimeBuilder {
    Runtime::builder()
        .cache_dir(guests::CACHE_DIR)
        .stdout(Output::Capture)
        .stderr(Output::Capture)
        .timeout(Duration::from_secs(120))
}

/// Loads a guest built by `cubby-artifacts` (or `cubby-polyglot`) on
/// `runtime`. Loads are one at a time: the first load of a component
/// compiles it (seconds of Cranelift for the 12-19 MB Python and JavaScript
/// ones) into the shared cache, and every later one, in any test, reads it
/// from there.
pub async fn load_with(runtime: &Runtime, path: &str) -> Plugin {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    runtime.load_file(path).await.unwrap()
}

/// Loads a guest on a runtime of its own, built by [`runtime_builder`].
pub async fn load(path: &str) -> Plugin {
    load_with(&runtime_builder().build().unwrap(), path).await
}

/// Sends one JSON request to a plugin and returns its JSON answer.
pub async fn call(plugin: &Plugin, ws: &Workspace, request: Value) -> Value {
    let out = plugin
        .call(ws, request.to_string().as_bytes())
        .await
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}

/// The end-to-end test of a `notes` plugin (the Rust example and its Python
/// and JavaScript ports): notes added, listed and removed through JSON
/// requests in workspace `ws`, and stored as the plugin documents.
pub async fn notes_are_added_listed_and_removed_as_json(place: &Place, plugin: &str, ws: &str) {
    let storage = place.open(StorageOptions::default());
    let notes = load(plugin).await;
    let ws = storage.workspace(ws).unwrap();
    let call = |req: Value| {
        let notes = notes.clone();
        let ws = ws.clone();
        async move {
            let out = notes.call(&ws, req.to_string().as_bytes()).await.unwrap();
            serde_json::from_slice::<Value>(&out).unwrap()
        }
    };
    assert_eq!(
        call(json!({"op":"add","text":"buy milk"})).await,
        json!({"id":1,"text":"buy milk"})
    );
    assert_eq!(
        call(json!({"op":"add","text":"call mum"})).await,
        json!({"id":2,"text":"call mum"})
    );
    assert_eq!(
        call(json!({"op":"list"})).await,
        json!([{"id":1,"text":"buy milk"},{"id":2,"text":"call mum"}])
    );
    assert_eq!(
        call(json!({"op":"remove","id":1})).await,
        json!({"removed":true})
    );
    assert_eq!(
        call(json!({"op":"remove","id":1})).await,
        json!({"removed":false})
    );
    assert_eq!(
        call(json!({"op":"list"})).await,
        json!([{"id":2,"text":"call mum"}])
    );
    let keys: Vec<String> = ws.keys(None).collect::<Result<_, _>>().unwrap();
    assert_eq!(keys, ["last-id", "note/00000000000000000002"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&ws.get("note/00000000000000000002").unwrap().unwrap())
            .unwrap(),
        json!({"id":2,"text":"call mum"})
    );
}
