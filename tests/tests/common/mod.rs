//! Helpers shared by the end-to-end test files.

#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use cubby_artifacts as guests;
use cubby_host::{Output, Plugin, Runtime, RuntimeBuilder, Workspace};
use serde_json::Value;

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

/// Loads a guest built by `cubby-artifacts`.
pub async fn load(path: &str) -> Plugin {
    runtime_builder()
        .build()
        .unwrap()
        .load_file(path)
        .await
        .unwrap()
}

/// Sends one JSON request to a plugin and returns its JSON answer.
pub async fn call(plugin: &Plugin, ws: &Workspace, request: Value) -> Value {
    let out = plugin
        .call(ws, request.to_string().as_bytes())
        .await
        .unwrap();
    serde_json::from_slice(&out).unwrap()
}
