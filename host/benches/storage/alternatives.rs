//! The stores Cubby is compared with, each set up the way its users get it.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use redb::{ReadableDatabase, TableDefinition};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_keyvalue::{WasiKeyValue, WasiKeyValueCtx, WasiKeyValueCtxBuilder};

/// redb used directly, with the same tuple key as Cubby's.
const RAW: TableDefinition<(&str, &str, &str), &[u8]> = TableDefinition::new("raw");

pub struct RawRedb(redb::Database);

impl RawRedb {
    pub fn create(path: &Path) -> Self {
        let db = redb::Database::create(path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(RAW).unwrap();
        txn.commit().unwrap();
        Self(db)
    }

    /// Loads entries in one transaction.
    pub fn load(&self, entries: &[(String, Vec<u8>)]) {
        let txn = self.0.begin_write().unwrap();
        {
            let mut table = txn.open_table(RAW).unwrap();
            for (k, v) in entries {
                table.insert(("w", "", k.as_str()), v.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    /// Loads entries of workspace `ws` in one transaction.
    pub fn load_in(&self, ws: &str, entries: impl Iterator<Item = (String, Vec<u8>)>) {
        let txn = self.0.begin_write().unwrap();
        {
            let mut table = txn.open_table(RAW).unwrap();
            for (k, v) in entries {
                table.insert((ws, "", k.as_str()), v.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    /// One get in a read transaction of its own.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.get_in("w", key)
    }

    /// One get of workspace `ws`'s key in a read transaction of its own.
    pub fn get_in(&self, ws: &str, key: &str) -> Option<Vec<u8>> {
        let txn = self.0.begin_read().unwrap();
        let table = txn.open_table(RAW).unwrap();
        table
            .get((ws, "", key))
            .unwrap()
            .map(|g| g.value().to_vec())
    }

    /// One write in a durable (fsync'd) commit of its own.
    pub fn put(&self, key: &str, value: &[u8]) {
        let txn = self.0.begin_write().unwrap();
        txn.open_table(RAW)
            .unwrap()
            .insert(("w", "", key), value)
            .unwrap();
        txn.commit().unwrap();
    }
}

/// SQLite with Spin's key-value table.
pub struct Sqlite(rusqlite::Connection);

impl Sqlite {
    /// As Spin opens it: no pragmas, so a rollback journal and
    /// `synchronous = FULL`.
    pub fn spin(path: &Path) -> Self {
        Self::open(path, false)
    }

    /// In WAL mode with `synchronous = FULL` (every commit fsync'd).
    pub fn wal(path: &Path) -> Self {
        Self::open(path, true)
    }

    fn open(path: &Path, wal: bool) -> Self {
        let conn = rusqlite::Connection::open(path).unwrap();
        if wal {
            conn.pragma_update(None, "journal_mode", "WAL").unwrap();
            conn.pragma_update(None, "synchronous", "FULL").unwrap();
        }
        conn.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
                PRIMARY KEY (store, key))",
            [],
        )
        .unwrap();
        Self(conn)
    }

    pub fn load(&mut self, entries: &[(String, Vec<u8>)]) {
        let txn = self.0.transaction().unwrap();
        {
            let mut insert = txn
                .prepare("INSERT OR REPLACE INTO spin_key_value VALUES ('w', ?1, ?2)")
                .unwrap();
            for (k, v) in entries {
                insert.execute(rusqlite::params![k, v]).unwrap();
            }
        }
        txn.commit().unwrap();
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut select = self
            .0
            .prepare_cached("SELECT value FROM spin_key_value WHERE store = 'w' AND key = ?1")
            .unwrap();
        let mut rows = select.query([key]).unwrap();
        rows.next().unwrap().map(|r| r.get(0).unwrap())
    }

    /// One write, committed on its own (autocommit), as Spin's `set` does.
    pub fn put(&self, key: &str, value: &[u8]) {
        self.0
            .prepare_cached(
                "INSERT INTO spin_key_value (store, key, value) VALUES ('w', ?1, ?2)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
            )
            .unwrap()
            .execute(rusqlite::params![key, value])
            .unwrap();
    }
}

/// A `HashMap` behind a mutex, as an in-process cache would hold it.
pub struct MutexMap(Mutex<HashMap<String, Vec<u8>>>);

impl MutexMap {
    pub fn new(entries: &[(String, Vec<u8>)]) -> Self {
        Self(Mutex::new(entries.iter().cloned().collect()))
    }

    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.0.lock().unwrap().get(key).cloned()
    }
}

/// wasmtime's own `wasi:keyvalue` host (`wasmtime-wasi-keyvalue`): an
/// in-memory map, running a `wasi:keyvalue` command guest.
pub struct WasmtimeKeyvalue {
    engine: Engine,
    linker: Linker<KvState>,
    component: Component,
    data: HashMap<String, Vec<u8>>,
}

struct KvState {
    wasi: WasiCtx,
    table: ResourceTable,
    kv: WasiKeyValueCtx,
}

impl WasiView for KvState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasmtimeKeyvalue {
    pub fn new(engine: &Engine, guest: &Path, entries: &[(String, Vec<u8>)]) -> Self {
        let mut linker = Linker::<KvState>::new(engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
        wasmtime_wasi_keyvalue::add_to_linker(&mut linker, |s: &mut KvState| {
            WasiKeyValue::new(&s.kv, &mut s.table)
        })
        .unwrap();
        Self {
            engine: engine.clone(),
            linker,
            component: Component::from_file(engine, guest).unwrap(),
            data: entries.iter().cloned().collect(),
        }
    }

    /// Runs the guest's `main` with `args` (after the program name).
    pub fn run(&self, args: &[&str]) {
        let builder = WasiKeyValueCtxBuilder::new().in_memory_data(self.data.clone());
        let mut wasi = WasiCtx::builder();
        wasi.args(&[&["guest"], args].concat());
        let state = KvState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            kv: builder.build(),
        };
        let mut store = Store::new(&self.engine, state);
        // Cubby's engine (epoch interruption on, a tick every 10 ms): a
        // deadline years away.
        store.set_epoch_deadline(1 << 40);
        let command = Command::instantiate(&mut store, &self.component, &self.linker).unwrap();
        command
            .wasi_cli_run()
            .call_run(&mut store)
            .unwrap()
            .unwrap();
    }
}
