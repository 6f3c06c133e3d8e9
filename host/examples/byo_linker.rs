//! Cubby inside an application's own wasmtime setup: the application owns
//! the `Engine`, the `Linker` (WASI, Cubby's storage, and a host function of
//! its own) and each `Store`, and calls the plugin's `handle` through the
//! typed bindings. Cubby only decides which workspace each store sees.
//!
//! ```sh
//! cargo run -p cubby-host --example byo_linker
//! ```
//!
//! The plugin is the `embedded` test guest (built from source by
//! `cubby-artifacts`): it counts visits in the workspace and asks the
//! application's clock for the time.

use anyhow::Result;
use cubby_host::bindings::sync::PluginPre;
use cubby_host::{Storage, StorageCtx, StorageOptions};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The application's own interface, `example:app/clock`.
mod app {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "../tests/guests/embedded/wit",
        world: "app-plugin",
    });
}
use app::example;

/// The application's store data: its own state next to WASI's and Cubby's.
struct App {
    wasi: WasiCtx,
    table: ResourceTable,
    storage: StorageCtx,
    now_ms: u64,
}

impl WasiView for App {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl example::app::clock::Host for App {
    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }
}

fn main() -> Result<()> {
    let engine = Engine::default();
    let mut linker = Linker::<App>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    cubby_host::add_to_linker(&mut linker, |app: &mut App| &mut app.storage)?;
    example::app::clock::add_to_linker::<App, HasSelf<App>>(&mut linker, |app| app)?;

    let component = Component::from_file(&engine, cubby_artifacts::EMBEDDED)?;
    let plugin = PluginPre::new(linker.instantiate_pre(&component)?)?;

    let storage = Storage::in_memory(StorageOptions::default())?;
    for (workspace, now_ms) in [("team-a", 1_000), ("team-a", 2_000), ("team-b", 3_000)] {
        // A fresh store per call, bound by the application to one workspace.
        let app = App {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            storage: StorageCtx::new(storage.workspace(workspace)?),
            now_ms,
        };
        let mut store = Store::new(&engine, app);
        let instance = plugin.instantiate(&mut store)?;
        let reply = instance
            .cubby_storage_handler()
            .call_handle(&mut store, b"ada")?
            .map_err(anyhow::Error::msg)?;
        println!("{workspace}: {}", String::from_utf8_lossy(&reply));
    }
    let team_a = storage.workspace("team-a")?;
    println!(
        "team-a holds: {:?}",
        team_a.keys(None).collect::<Result<Vec<_>, _>>()?
    );
    Ok(())
}
