//! Cubby with batteries included: a `Runtime` compiles a plugin once and
//! runs each call in a fresh sandboxed store, bound to the workspace the
//! application names for that call.
//!
//! ```sh
//! cargo run -p cubby-host --example runtime
//! ```
//!
//! For an application that owns its wasmtime `Engine`, `Linker` and
//! `Store`, see the `byo_linker` example.

use anyhow::Result;
use cubby_host::{Runtime, Storage, StorageOptions};

#[tokio::main]
async fn main() -> Result<()> {
    let storage = Storage::in_memory(StorageOptions::default())?;
    let runtime = Runtime::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let notes = runtime.load_file(cubby_artifacts::NOTES).await?;
    for (workspace, text) in [
        ("team-a", "ship it"),
        ("team-a", "celebrate"),
        ("team-b", "plan"),
    ] {
        let ws = storage.workspace(workspace)?;
        let request = format!(r#"{{"op":"add","text":"{text}"}}"#);
        let reply = notes.call(&ws, request.as_bytes()).await?;
        println!("{workspace}: {}", String::from_utf8_lossy(&reply));
    }
    let listed = notes
        .call(&storage.workspace("team-a")?, br#"{"op":"list"}"#)
        .await?;
    println!("team-a lists: {}", String::from_utf8_lossy(&listed));
    Ok(())
}
