//! Test support for Cubby's own test suites (cargo feature `testing`); not
//! part of the public API.
//!
//! One conformance suite runs against every backend: [`conformance_tests!`](crate::conformance_tests)
//! turns each test body into a `redb` and a `postgres` test that get a
//! [`Place`] to open storage at. The PostgreSQL server is named by
//! [`POSTGRES_URL_VAR`]; each place gets a schema of its own on it, dropped
//! afterwards. Without that variable the PostgreSQL tests are skipped with
//! a notice, except under `CI=true`, where they fail: a green CI run cannot
//! hide a missing server.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Storage, StorageOptions};

pub use crate::engine::{Audit, RawStatement, backend_calls_on_this_thread};
pub use faults::{Fault, FaultyDisk};
pub use postgres::{Certificates, HeldWorkspace, Server, query_i64s, sql};

mod faults;
mod postgres;

/// The environment variable naming the PostgreSQL server the tests use,
/// e.g. `postgres://cubby@127.0.0.1:55432/postgres` (`.ci/postgres start`
/// prints one).
pub const POSTGRES_URL_VAR: &str = "CUBBY_TEST_POSTGRES_URL";

/// The backends a conformance test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// redb, in memory or in a file.
    Redb,
    /// PostgreSQL.
    Postgres,
}

/// Where a test's database lives.
#[derive(Debug)]
pub struct Place {
    backend: Backend,
    dir: tempfile::TempDir,
    file: bool,
    postgres: Option<Schema>,
}

impl Place {
    /// redb in memory: every [`open`](Self::open) is a fresh database.
    pub fn redb_memory() -> Self {
        Self::redb(false)
    }

    /// A redb file in a temporary folder: [`open`](Self::open) opens the
    /// same file again (a restart).
    pub fn redb_file() -> Self {
        Self::redb(true)
    }

    fn redb(file: bool) -> Self {
        Self {
            backend: Backend::Redb,
            dir: temp_dir(),
            file,
            postgres: None,
        }
    }

    /// A fresh schema on the test server; `None` (after a notice) when no
    /// server is configured. Panics under `CI=true` without one.
    pub fn postgres() -> Option<Self> {
        let url = postgres_url()?;
        Some(Self {
            backend: Backend::Postgres,
            dir: temp_dir(),
            file: false,
            postgres: Some(Schema::create(&url)),
        })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Opens storage here (for PostgreSQL and redb files, the same data
    /// every time).
    pub fn open(&self, options: StorageOptions) -> Storage {
        let opened = match &self.postgres {
            Some(schema) => Storage::connect(&schema.url, options),
            None if self.file => Storage::open(self.redb_path(), options),
            None => Storage::in_memory(options),
        };
        opened.unwrap_or_else(|e| panic!("cannot open test storage: {e:?}"))
    }

    /// What `cubby --db` takes to reach this place (a redb place is always
    /// a file here: the CLI is a separate process).
    pub fn db_arg(&self) -> String {
        match &self.postgres {
            Some(schema) => schema.url.clone(),
            None => self.redb_path().display().to_string(),
        }
    }

    /// [`db_arg`](Self::db_arg) of a PostgreSQL place with these session
    /// settings (`-c NAME=VALUE`) added to its connection options.
    pub fn db_arg_with(&self, settings: &[(&str, &str)]) -> String {
        let mut url = self.db_arg();
        // The place's URL ends with its `options` (the search path).
        assert!(url.contains("options="), "not a PostgreSQL place: {url}");
        for (name, value) in settings {
            url.push_str(&format!("%20-c%20{name}%3D{value}"));
        }
        url
    }

    /// Whether this place is on a Citus coordinator.
    pub fn is_citus(&self) -> bool {
        self.postgres.is_some()
            && query_i64s(
                &self.db_arg(),
                "SELECT count(*) FROM pg_extension WHERE extname = 'citus'",
            ) == [1]
    }

    /// A temporary folder that lives as long as the place.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn redb_path(&self) -> PathBuf {
        self.dir.path().join("cubby.redb")
    }
}

/// Every key a listing iterator yields, in order (e.g. `all_keys(ws.keys(None))`).
#[track_caller]
pub fn all_keys(keys: crate::ops::Keys<'_>) -> Vec<String> {
    keys.collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("listing keys: {e:?}"))
}

/// Every live entry of a workspace, read back through the API: (namespace,
/// key) → value, the default space as `""`.
pub fn contents(
    ws: &crate::Workspace,
) -> Result<std::collections::BTreeMap<(String, String), Vec<u8>>, crate::StorageError> {
    let mut all = std::collections::BTreeMap::new();
    let mut spaces = vec![String::new()];
    let mut cursor: Option<String> = None;
    loop {
        let page = ws.namespaces(cursor.as_deref(), None)?;
        spaces.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    for ns in spaces {
        let space = ws.namespace(&ns)?;
        for key in space.keys(None) {
            let key = key?;
            if let Some(v) = space.get(&key)? {
                all.insert((ns.clone(), key), v);
            }
        }
    }
    Ok(all)
}

/// What the backend stores for workspace `ws`, next to a recount of it.
pub fn audit(storage: &Storage, ws: &str) -> Audit {
    storage
        .audit(ws)
        .unwrap_or_else(|e| panic!("audit of {ws}: {e:?}"))
}

/// Asserts the two invariants of usage accounting for workspace `ws`: the
/// workspace's stored counters equal the sum of its namespaces' counters,
/// and the usage the API reports equals a recount of the live entries.
#[track_caller]
pub fn assert_usage_is_exact(storage: &Storage, ws: &str) {
    let a = audit(storage, ws);
    assert_eq!(a.stored_usage, a.stored_namespace_usage, "{ws}: {a:?}");
    let reported = storage
        .workspace(ws)
        .and_then(|w| w.usage())
        .unwrap_or_else(|e| panic!("usage of {ws}: {e:?}"));
    assert_eq!(
        reported, a.recounted,
        "{ws}: usage differs from a recount: {a:?}"
    );
}

/// The test server's URL, or `None` after printing why the PostgreSQL
/// tests are skipped. Panics under `CI=true` when it is missing.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => panic!(
            "CI=true but {POSTGRES_URL_VAR} is not set: the PostgreSQL tests must run in CI \
             (.ci/run starts a server)"
        ),
        _ => {
            eprintln!(
                "note: PostgreSQL tests skipped: set {POSTGRES_URL_VAR} (e.g. from `.ci/postgres start`)"
            );
            None
        }
    }
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temporary folder: {e}"))
}

/// A PostgreSQL schema of one test's own, dropped with it.
#[derive(Debug)]
struct Schema {
    server: String,
    name: String,
    /// The server's URL with `search_path` set to the schema.
    url: String,
}

impl Schema {
    fn create(server: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "cubby_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        sql(server, &format!("CREATE SCHEMA {name}"));
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-c%20search_path%3D{name}");
        Self {
            server: server.to_owned(),
            name,
            url,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        sql(
            &self.server,
            &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name),
        );
    }
}

/// Runs conformance tests on every backend. Each test is a plain function
/// `fn name(place: &Place)` (or `async fn`); the macro adds, next to it, a
/// module `name` with a test `redb` and a test `postgres` that call it with
/// their [`Place`]. The redb place is in memory, or a file for names listed
/// as `reopen name` (tests that open the same database again). `async`
/// names become tokio tests with 4 worker threads.
///
/// ```text
/// fn set_and_get(place: &Place) { /* … */ }
/// async fn through_a_plugin(place: &Place) { /* … */ }
/// conformance_tests!(set_and_get, reopen survives_restart, async through_a_plugin);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    () => {};
    (reopen async $name:ident $(, $($rest:tt)*)?) => {
        $crate::conformance_tests!(@async redb_file $name);
        $crate::conformance_tests!($($($rest)*)?);
    };
    (async $name:ident $(, $($rest:tt)*)?) => {
        $crate::conformance_tests!(@async redb_memory $name);
        $crate::conformance_tests!($($($rest)*)?);
    };
    (reopen $name:ident $(, $($rest:tt)*)?) => {
        $crate::conformance_tests!(@sync redb_file $name);
        $crate::conformance_tests!($($($rest)*)?);
    };
    ($name:ident $(, $($rest:tt)*)?) => {
        $crate::conformance_tests!(@sync redb_memory $name);
        $crate::conformance_tests!($($($rest)*)?);
    };
    (@sync $redb:ident $name:ident) => {
        mod $name {
            #[test]
            fn redb() {
                super::$name(&$crate::testing::Place::$redb());
            }
            #[test]
            fn postgres() {
                if let Some(place) = $crate::testing::Place::postgres() {
                    super::$name(&place);
                }
            }
        }
    };
    (@async $redb:ident $name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn redb() {
                super::$name(&$crate::testing::Place::$redb()).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(place) = $crate::testing::Place::postgres() {
                    super::$name(&place).await;
                }
            }
        }
    };
}
