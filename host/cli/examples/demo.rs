//! The quick-start demo: runs the example plugins (built from source by
//! `cubby-artifacts`) against the default database, as the `cubby` CLI would.
//!
//! ```sh
//! cargo run -p cubby-cli --example demo
//! ```

use anyhow::{Context, Result};
use cubby_host::options::Output;
use cubby_host::{Runtime, Storage, StorageOptions};

#[tokio::main]
async fn main() -> Result<()> {
    let path = match std::env::var_os("CUBBY_DB") {
        Some(path) => path.into(),
        None => cubby_cli::defaults::database_path()
            .context("no home folder; set CUBBY_DB to a file path")?,
    };
    let storage = Storage::open(&path, StorageOptions::default())?;
    println!("database: {}", path.display());

    let mut runtime = Runtime::builder()
        .stdout(Output::Capture)
        .stderr(Output::Inherit);
    if let Some(dir) = cubby_cli::defaults::cache_dir() {
        runtime = runtime.cache_dir(dir);
    }
    let runtime = runtime.build()?;

    // A command-style plugin, bound to a different workspace on each run.
    let counter = runtime.load_file(cubby_artifacts::COUNTER).await?;
    for workspace in ["demo", "demo", "other"] {
        let ws = storage.workspace(workspace)?;
        let out = counter.run(&ws, &["counter".into()]).await?;
        let value = String::from_utf8_lossy(&out.stdout);
        println!("counter in workspace {workspace:?}: {}", value.trim());
    }

    // A request/response plugin.
    let notes = runtime.load_file(cubby_artifacts::NOTES).await?;
    let demo = storage.workspace("demo")?;
    let added = notes
        .call(&demo, br#"{"op":"add","text":"try cubby"}"#)
        .await?;
    println!("notes add  -> {}", String::from_utf8_lossy(&added));
    let listed = notes.call(&demo, br#"{"op":"list"}"#).await?;
    println!("notes list -> {}", String::from_utf8_lossy(&listed));

    let page = demo.list_keys(None, None, None)?;
    println!("keys in workspace \"demo\": {}", page.keys.join(", "));
    for (id, usage) in storage.workspaces()? {
        println!(
            "workspace {id:?}: keys {}, bytes {}",
            usage.keys, usage.bytes
        );
    }
    println!(
        "\nNext, with the CLI (same database):\n  \
         cargo run -p cubby-cli -- run {} --workspace demo\n  \
         cargo run -p cubby-cli -- kv list --workspace demo",
        cubby_artifacts::COUNTER
    );
    Ok(())
}
