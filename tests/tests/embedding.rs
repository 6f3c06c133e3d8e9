//! The embedding parts an application with its own wasmtime setup uses:
//! `add_to_linker` (and `add_to_linker_async`, with `wasi:keyvalue`) next to
//! a host function of the application's own, the typed `PluginPre` bindings, and a `Runtime`
//! on the application's engine. On redb and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cubby_artifacts as guests;
use cubby_host::bindings;
use cubby_host::options::Quota;
use cubby_host::testing::{Backend, Place, backend_calls_on_this_thread};
use cubby_host::{Runtime, RuntimeError, Storage, StorageCtx, StorageOptions};
use serde_json::{Value, json};
use wasmtime::component::{Component, HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

mod app {
    #![allow(missing_docs)]
    wasmtime::component::bindgen!({
        path: "guests/embedded/wit",
        world: "app-plugin",
    });
}
use app::example::app::clock;

/// An application's store data: its own state next to WASI's and Cubby's.
struct App {
    wasi: WasiCtx,
    table: ResourceTable,
    storage: StorageCtx,
    now_ms: u64,
}

impl App {
    fn new(storage: &Storage, workspace: &str, now_ms: u64) -> Self {
        Self {
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            storage: StorageCtx::new(storage.workspace(workspace).unwrap()),
            now_ms,
        }
    }
}

impl WasiView for App {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl clock::Host for App {
    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }
}

fn json(reply: Vec<u8>) -> Value {
    serde_json::from_slice(&reply).unwrap()
}

/// The application's own linker: WASI, Cubby's storage (sync), its clock.
fn sync_linker(engine: &Engine) -> Linker<App> {
    let mut linker = Linker::<App>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
    cubby_host::add_to_linker(&mut linker, |app: &mut App| &mut app.storage).unwrap();
    clock::add_to_linker::<App, HasSelf<App>>(&mut linker, |app| app).unwrap();
    linker
}

fn a_plugin_runs_through_an_embedders_linker_with_a_host_function_of_its_own(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let engine = Engine::default();
    let component = Component::from_file(&engine, guests::EMBEDDED).unwrap();
    let linker = sync_linker(&engine);
    let pre = bindings::sync::PluginPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let visit = |workspace: &str, now_ms: u64| {
        let mut store = Store::new(&engine, App::new(&storage, workspace, now_ms));
        let instance = pre.instantiate(&mut store).unwrap();
        let reply = instance
            .cubby_storage_handler()
            .call_handle(&mut store, b"ada")
            .unwrap()
            .unwrap();
        json(reply)
    };
    assert_eq!(visit("a", 10), json!({"who":"ada","visits":1,"at":10}));
    assert_eq!(visit("a", 20), json!({"who":"ada","visits":2,"at":20}));
    assert_eq!(visit("b", 30), json!({"who":"ada","visits":1,"at":30}));
    // What the database holds, read without the plugin.
    let a = storage.workspace("a").unwrap();
    assert_eq!(a.get("visits/ada").unwrap().unwrap(), b"2");
    assert_eq!(a.get("last-visit").unwrap().unwrap(), b"20");
    let b = storage.workspace("b").unwrap();
    assert_eq!(b.get("last-visit").unwrap().unwrap(), b"30");
}

async fn the_async_parts_run_a_plugin_in_an_async_store(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let engine = Engine::default();
    let component = Component::from_file(&engine, guests::EMBEDDED).unwrap();
    let mut linker = Linker::<App>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    cubby_host::add_to_linker_async(&mut linker, |app: &mut App| &mut app.storage).unwrap();
    clock::add_to_linker::<App, HasSelf<App>>(&mut linker, |app| app).unwrap();
    let pre = bindings::PluginPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    // Concurrent calls on one workspace, each in its own store.
    let calls: Vec<_> = (0..8u64)
        .map(|i| {
            let (engine, pre, storage) = (engine.clone(), pre.clone(), storage.clone());
            tokio::spawn(async move {
                let mut store = Store::new(&engine, App::new(&storage, "a", i));
                let instance = pre.instantiate_async(&mut store).await.unwrap();
                let reply = instance
                    .cubby_storage_handler()
                    .call_handle(&mut store, b"ada")
                    .await
                    .unwrap()
                    .unwrap();
                json(reply)
            })
        })
        .collect();
    let mut visits = Vec::new();
    for call in calls {
        visits.push(call.await.unwrap()["visits"].as_i64().unwrap());
    }
    visits.sort();
    assert_eq!(
        visits,
        (1..=8).collect::<Vec<_>>(),
        "each visit counted once"
    );
    let a = storage.workspace("a").unwrap();
    assert_eq!(a.get("visits/ada").unwrap().unwrap(), b"8");
}

/// Runs the `kv-draft2` guest with `args` in an async store bound to
/// workspace `a`; returns its stdout.
async fn run_kv_draft2(
    engine: &Engine,
    pre: &CommandPre<App>,
    storage: &Storage,
    args: &[&str],
) -> String {
    let stdout = MemoryOutputPipe::new(1 << 16);
    let mut app = App::new(storage, "a", 0);
    app.wasi = WasiCtx::builder()
        .args(&[&["kv-draft2"], args].concat())
        .stdout(stdout.clone())
        .build();
    let mut store = Store::new(engine, app);
    let command = pre.instantiate_async(&mut store).await.unwrap();
    command
        .wasi_cli_run()
        .call_run(&mut store)
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(stdout.contents().to_vec()).unwrap()
}

/// `add_to_linker_async` links `wasi:keyvalue` too: a standard guest runs
/// in async stores, its compare-and-swaps racing on one key.
async fn the_async_parts_run_a_standard_keyvalue_guest(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let engine = Engine::default();
    let component = Component::from_file(&engine, guests::KV_DRAFT2).unwrap();
    let mut linker = Linker::<App>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    cubby_host::add_to_linker_async(&mut linker, |app: &mut App| &mut app.storage).unwrap();
    let pre = CommandPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let run = |args: &'static [&'static str]| {
        let (engine, pre, storage) = (engine.clone(), pre.clone(), storage.clone());
        async move { run_kv_draft2(&engine, &pre, &storage, args).await }
    };
    let runs: Vec<_> = (0..6)
        .map(|_| tokio::spawn(run(&["cas-incr", "b", "n", "10"])))
        .collect();
    for r in runs {
        assert!(r.await.unwrap().starts_with("lost "));
    }
    assert_eq!(run(&["get", "b", "n"]).await, "60\n");
    let a = storage.workspace("a").unwrap();
    assert_eq!(a.namespace("b").unwrap().get("n").unwrap().unwrap(), b"60");
}

/// Under the async flavour, no import reaches the database on the
/// executor's thread (it would stall every task on it for a round trip to
/// PostgreSQL): a current-thread runtime, whose one thread is the test's,
/// runs the probe guest through the kinds of import (reads, writes,
/// listings, usage, the limits with a stored quota) and a standard
/// `wasi:keyvalue` guest, and the engine counts no backend call on this
/// thread while they run.
fn async_imports_wait_for_writes_and_the_network_off_the_executors_thread(place: &Place) {
    let storage = place.open(StorageOptions::default());
    let quota = Quota {
        max_keys: 77,
        max_bytes: 7_777,
    };
    storage.store_quota("a", Some(quota)).unwrap();
    let engine = Engine::default();
    let mut linker = Linker::<App>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    cubby_host::add_to_linker_async(&mut linker, |app: &mut App| &mut app.storage).unwrap();
    let probe = Component::from_file(&engine, guests::PROBE).unwrap();
    let probe = bindings::PluginPre::new(linker.instantiate_pre(&probe).unwrap()).unwrap();
    let kv = Component::from_file(&engine, guests::KV_DRAFT2).unwrap();
    let kv = CommandPre::new(linker.instantiate_pre(&kv).unwrap()).unwrap();
    let executor = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The answers to `requests`, and how many times they reached the
    // database on the executor's thread.
    let on_executor = |requests: &[Value]| {
        let before = backend_calls_on_this_thread();
        let answers = executor.block_on(async {
            let mut answers = Vec::new();
            for request in requests {
                let mut store = Store::new(&engine, App::new(&storage, "a", 0));
                let instance = probe.instantiate_async(&mut store).await.unwrap();
                let reply = instance
                    .cubby_storage_handler()
                    .call_handle(&mut store, request.to_string().as_bytes())
                    .await
                    .unwrap()
                    .unwrap();
                answers.push(json(reply));
            }
            answers
        });
        (answers, backend_calls_on_this_thread() - before)
    };
    let (writes, calls) = on_executor(&[
        json!({"op":"set","key":"k","value":"v"}),
        json!({"op":"incr","key":"n","delta":2}),
        json!({"op":"tx","ops":[{"key":"t","action":"set","value":"1"}]}),
    ]);
    assert_eq!(
        calls, 0,
        "a write reached the database on the executor's thread"
    );
    let before = backend_calls_on_this_thread();
    executor.block_on(run_kv_draft2(
        &engine,
        &kv,
        &storage,
        &["set", "b", "x", "y"],
    ));
    assert_eq!(
        backend_calls_on_this_thread(),
        before,
        "a wasi:keyvalue write did"
    );
    // Reads of a local database run on the executor's thread (a read there
    // waits for no other thread); reads over the network do not.
    let (reads, calls) = on_executor(&[
        json!({"op":"limits"}),
        json!({"op":"get","key":"k"}),
        json!({"op":"keys"}),
        json!({"op":"usage"}),
    ]);
    match place.backend() {
        Backend::Redb => assert!(calls >= 4, "{calls} reads on the executor's thread"),
        Backend::Postgres => assert_eq!(calls, 0, "a PostgreSQL read blocked the executor"),
    }
    // The calls did reach the database.
    assert_eq!(writes[1], json!({"ok":2}));
    assert_eq!(
        reads[0],
        json!({"ok":{"max_keys":77,"max_bytes":7777,"max_batch":1000}})
    );
    assert_eq!(reads[1], json!({"ok":"v"}));
    let a = storage.workspace("a").unwrap();
    assert_eq!(a.namespace("b").unwrap().get("x").unwrap().unwrap(), b"y");
    assert_eq!(a.get("t").unwrap().unwrap(), b"1");
}

#[tokio::test]
async fn a_runtime_can_run_on_the_embedders_engine() {
    let engine = Engine::new(&Runtime::engine_config()).unwrap();
    let runtime = Runtime::builder().engine(engine.clone()).build().unwrap();
    assert!(Engine::same(runtime.engine(), &engine));
    // The runtime compiles for, and runs on, the application's engine.
    let notes = runtime.load_file(guests::NOTES).await.unwrap();
    let storage = Storage::in_memory(StorageOptions::default()).unwrap();
    let ws = storage.workspace("w").unwrap();
    let reply = notes
        .call(&ws, br#"{"op":"add","text":"hi"}"#)
        .await
        .unwrap();
    assert_eq!(json(reply), json!({"id":1,"text":"hi"}));
    // The engine's configuration is the application's: no cache of ours.
    let err = Runtime::builder()
        .engine(engine)
        .cache_dir(guests::CACHE_DIR)
        .build()
        .unwrap_err();
    assert!(matches!(err, RuntimeError::CacheWithOwnEngine), "{err}");
}

cubby_host::conformance_tests!(
    a_plugin_runs_through_an_embedders_linker_with_a_host_function_of_its_own,
    async_imports_wait_for_writes_and_the_network_off_the_executors_thread,
    async the_async_parts_run_a_plugin_in_an_async_store,
    async the_async_parts_run_a_standard_keyvalue_guest,
);
