//! The instrumentation's cost (see `cubby_host::telemetry`): a whole call and
//! a plugin get, measured the same way in the benchmark's own process
//! (with a recorder installed, and without) and in the `cubby-bench-child`
//! process, built with the `metrics` feature and without. Shared by both.

use std::path::Path;
use std::time::{Duration, Instant};

use cubby_host::{Plugin, Runtime, Storage, StorageOptions, Workspace};

/// Keys of the subject's workspace.
pub const KEYS: u32 = 1_000;

/// What the overhead rows measure: a database of [`KEYS`] keys and the
/// `getter` and `probe` plugins.
pub struct Subject {
    _storage: Storage,
    ws: Workspace,
    getter: Plugin,
    probe: Plugin,
}

impl Subject {
    /// A database in `dir` named `name`, and the plugins loaded (from the
    /// compile cache in `cache`) under names of their own.
    pub fn new(dir: &Path, name: &str, [getter, probe]: [&Path; 2], cache: &Path) -> Self {
        let path = dir.join(format!("{name}.redb"));
        let storage = Storage::open(&path, StorageOptions::default()).expect("open");
        let ws = storage.workspace("w").expect("workspace");
        let entries: Vec<(String, Vec<u8>)> = (0..KEYS)
            .map(|i| (format!("k{i}"), vec![7u8; 16]))
            .collect();
        ws.set_many(entries).expect("load");
        let runtime = Runtime::builder()
            .cache_dir(cache)
            .build()
            .expect("runtime");
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio");
        let load = |plugin: &str, path: &Path| {
            let bytes = std::fs::read(path).expect("read plugin");
            tokio
                .block_on(runtime.load_bytes(format!("{name}-{plugin}"), bytes))
                .expect("load plugin")
        };
        Self {
            getter: load("getter", getter),
            probe: load("probe", probe),
            _storage: storage,
            ws,
        }
    }

    /// One call of each kind (the first use registers the metrics' series).
    pub fn warm(&self) {
        self.whole_call(1);
        self.plugin_get(1);
    }

    /// Time per whole call of the getter: fresh store, instantiate, one get.
    pub fn whole_call(&self, calls: u32) -> Duration {
        timed(calls, |_| {
            let value = self.getter.call_blocking(&self.ws, b"k0").expect("call");
            assert_eq!(value, [7u8; 16]);
        })
    }

    /// Time per get of the probe's loop of `gets` gets, less the call.
    pub fn plugin_get(&self, gets: u32) -> Duration {
        per_get(gets, |n| {
            let request = format!(r#"{{"op":"repeat-get","key":"k","n":{n},"spread":{KEYS}}}"#);
            let out = self
                .probe
                .call_blocking(&self.ws, request.as_bytes())
                .expect("call");
            assert_eq!(out, format!(r#"{{"ok":{n}}}"#).as_bytes());
        })
    }
}

/// Times `n` runs of `f` (after `n / 10` warm-up runs); the time per run.
pub fn timed(n: u32, mut f: impl FnMut(usize)) -> Duration {
    for i in 0..n / 10 {
        f(i as usize);
    }
    let start = Instant::now();
    for i in 0..n {
        f(i as usize);
    }
    start.elapsed() / n.max(1)
}

/// Time per get of a guest loop of `n` gets, less the fixed cost of the call
/// around it (a call of 0 gets).
pub fn per_get(n: u32, mut call: impl FnMut(u32)) -> Duration {
    call(0);
    let start = Instant::now();
    call(0);
    let fixed = start.elapsed();
    let start = Instant::now();
    call(n);
    start.elapsed().saturating_sub(fixed) / n.max(1)
}
