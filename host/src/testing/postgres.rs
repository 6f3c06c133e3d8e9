//! PostgreSQL servers and sessions for tests: a server of a test's own
//! ([`Server`], plain or TLS with [`Certificates`]), statements and queries
//! on a server ([`sql`], [`query_i64s`]), and a session holding a
//! workspace's lock ([`HeldWorkspace`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::temp_dir;

/// Runs statements on the test server, on a runtime of its own (tests
/// may or may not run inside one).
pub fn sql(server: &str, statements: &str) {
    query(server, statements, |client, statements| {
        Box::pin(async move {
            client
                .batch_execute(statements)
                .await
                .unwrap_or_else(|e| panic!("{statements}: {e:?}"));
        })
    });
}

/// The first row of a query's answer, its columns as `i64`.
pub fn query_i64s(server: &str, query_text: &str) -> Vec<i64> {
    query(server, query_text, |client, text| {
        Box::pin(async move {
            let row = client
                .query_one(text, &[])
                .await
                .unwrap_or_else(|e| panic!("{text}: {e:?}"));
            (0..row.len())
                .map(|i| {
                    row.try_get::<_, i64>(i)
                        .unwrap_or_else(|e| panic!("{text}: column {i}: {e:?}"))
                })
                .collect()
        })
    })
}

/// Another session's transaction holding workspace `ws`'s row lock, as a
/// writer in the middle of its transaction does, until
/// [`release`](Self::release)d or dropped. Every write to the workspace
/// waits for it.
pub struct HeldWorkspace {
    runtime: tokio::runtime::Runtime,
    client: Option<tokio_postgres::Client>,
}

impl std::fmt::Debug for HeldWorkspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldWorkspace").finish_non_exhaustive()
    }
}

impl HeldWorkspace {
    /// Locks the row of workspace `ws` (which must exist) in a transaction
    /// on a connection of its own to `url`.
    pub fn hold(url: &str, ws: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let client = runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to {url}: {e:?}"));
            tokio::spawn(connection);
            client
                .batch_execute("BEGIN")
                .await
                .unwrap_or_else(|e| panic!("BEGIN: {e:?}"));
            let locked = client
                .query(
                    "SELECT 1 FROM cubby_workspaces WHERE workspace = $1 FOR UPDATE",
                    &[&ws.as_bytes()],
                )
                .await
                .unwrap_or_else(|e| panic!("locking {ws}: {e:?}"));
            assert_eq!(locked.len(), 1, "workspace {ws} has no row to lock");
            client
        });
        Self {
            runtime,
            client: Some(client),
        }
    }

    /// Ends the transaction, freeing the lock.
    pub fn release(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.batch_execute("COMMIT"));
        }
    }
}

impl Drop for HeldWorkspace {
    fn drop(&mut self) {
        self.end();
    }
}

type ClientFuture<'a, T> = std::pin::Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Runs `f` with a plain (no TLS) connection to `server`, on a thread and
/// runtime of its own.
fn query<T: Send + 'static>(
    server: &str,
    text: &str,
    f: for<'a> fn(&'a tokio_postgres::Client, &'a str) -> ClientFuture<'a, T>,
) -> T {
    let (server, text) = (server.to_owned(), text.to_owned());
    let run = move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to {server}: {e:?}"));
            let connection = tokio::spawn(connection);
            let answer = f(&client, &text).await;
            drop(client);
            let _ = connection.await;
            answer
        })
    };
    // A thread of its own, so that this works inside an async test too.
    std::thread::spawn(run)
        .join()
        .unwrap_or_else(|_| panic!("a query on the test server failed"))
}

/// A PostgreSQL server of a test's own, started with `.ci/postgres` on a
/// free port in a temporary folder, for tests that stop and start it or
/// configure it (TLS). Stopped when dropped.
#[derive(Debug)]
pub struct Server {
    script: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    /// The certificate and key of a TLS server.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Server {
    /// A plain server; `None` (after a notice) where no PostgreSQL server
    /// is installed, a panic under `CI=true`.
    pub fn start() -> Option<Self> {
        Self::start_with(None)
    }

    /// A server that accepts TCP connections only over TLS, with this
    /// certificate and key (its Unix socket, [`socket_url`](Self::socket_url),
    /// stays open without TLS).
    pub fn start_tls(cert: &Path, key: &Path) -> Option<Self> {
        Self::start_with(Some((cert.to_path_buf(), key.to_path_buf())))
    }

    fn start_with(tls: Option<(PathBuf, PathBuf)>) -> Option<Self> {
        let installed = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .any(|v| v.path().join("bin/pg_ctl").exists());
        if !installed {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but no PostgreSQL server is installed (.ci/postgres install)");
            }
            eprintln!("note: skipped: no PostgreSQL server installed (.ci/postgres install)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let server = Self {
            script: Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/postgres"),
            dir: temp_dir(),
            port,
            tls,
        };
        server.up();
        Some(server)
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://cubby@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://cubby@127.0.0.1:{}/postgres", self.port)
    }

    /// A connection string for the server's Unix socket.
    pub fn socket_url(&self) -> String {
        format!(
            "host={} port={} user=cubby dbname=postgres",
            self.dir.path().display(),
            self.port
        )
    }

    /// Starts the server (again).
    pub fn up(&self) {
        let dir = self.dir.path().display().to_string();
        let port = self.port.to_string();
        match &self.tls {
            None => self.ctl(&["start", &dir, &port]),
            Some((cert, key)) => self.ctl(&[
                "start-tls",
                &dir,
                &port,
                &cert.display().to_string(),
                &key.display().to_string(),
            ]),
        }
    }

    /// Stops the server, ending its sessions.
    pub fn down(&self) {
        self.ctl(&["stop", &self.dir.path().display().to_string()]);
    }

    fn ctl(&self, args: &[&str]) {
        let out = Command::new("bash")
            .arg(&self.script)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", self.script.display()));
        assert!(out.status.success(), "{args:?}: {out:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(&self.script)
            .args(["stop", &self.dir.path().display().to_string()])
            .output();
    }
}

/// Certificates for TLS tests, written as PEM files into a folder of their
/// own: an authority (`ca.pem`), a server certificate it signed for the
/// name `localhost` only (`server.crt`, `server.key`), and an unrelated
/// authority (`other-ca.pem`).
#[derive(Debug)]
pub struct Certificates {
    dir: tempfile::TempDir,
}

impl Certificates {
    /// Generates them.
    pub fn generate() -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let fail = |e: rcgen::Error| -> ! { panic!("generating test certificates: {e}") };
        let authority = |name: &str| {
            let key = KeyPair::generate().unwrap_or_else(|e| fail(e));
            let mut params =
                CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail(e));
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            let cert = params.self_signed(&key).unwrap_or_else(|e| fail(e));
            (cert, Issuer::new(params, key))
        };
        let (ca, issuer) = authority("Cubby test authority");
        let (other, _) = authority("Another authority");
        let server_key = KeyPair::generate().unwrap_or_else(|e| fail(e));
        let server = CertificateParams::new(vec!["localhost".to_owned()])
            .and_then(|p| p.signed_by(&server_key, &issuer))
            .unwrap_or_else(|e| fail(e));
        let certs = Self { dir: temp_dir() };
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("other-ca.pem", other.pem()),
            ("server.crt", server.pem()),
            ("server.key", server_key.serialize_pem()),
        ] {
            std::fs::write(certs.path(name), pem).unwrap_or_else(|e| panic!("writing {name}: {e}"));
        }
        certs
    }

    /// One of the files: `ca.pem`, `other-ca.pem`, `server.crt`, `server.key`.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}
