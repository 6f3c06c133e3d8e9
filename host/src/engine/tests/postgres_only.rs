//! What only the PostgreSQL backend has: URLs, connections, logins, its
//! schema in a shared database, retries and the connection pool. Skipped
//! with a notice without a test server (failing under `CI=true`).

use super::*;
use crate::testing::{assert_usage_is_exact, postgres_url, sql};
use crate::{OpenError, StorageError};

/// The whole error chain on one line, as the CLI prints it.
fn chain(e: &OpenError) -> String {
    crate::engine::error::cause_chain(e)
}

fn connect(url: &str) -> Result<Storage, OpenError> {
    let mut options = StorageOptions::default();
    options.postgres.connect_timeout = SEC * 3;
    Storage::connect(url, options)
}

#[test]
fn a_malformed_url_is_a_clear_error_without_the_password() {
    for url in [
        "postgres://ada:s3cret@localhost:notaport/db",
        "postgres://ada:s3cret@localhost/db?sslmode=sometimes",
        "postgres://ada:s3cret@localhost/db?frobnicate=1",
        "postgres://ada:s3cret@[::1/db",
    ] {
        let err = connect(url).unwrap_err();
        assert!(
            matches!(err, OpenError::InvalidUrl { .. }),
            "{url}: {err:?}"
        );
        let line = chain(&err);
        assert!(line.starts_with("invalid database URL"), "{line}");
        assert!(!line.contains("s3cret"), "the password leaked: {line}");
    }
}

#[test]
fn an_unreachable_server_is_one_error_naming_host_and_port() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = connect(&format!("postgres://ada:s3cret@127.0.0.1:{port}/cubby")).unwrap_err();
    assert!(matches!(err, OpenError::Connect { .. }), "{err:?}");
    let line = chain(&err);
    assert!(
        line.contains(&format!("127.0.0.1:{port}/cubby")),
        "names host, port and database: {line}"
    );
    assert!(line.to_lowercase().contains("refused"), "{line}");
    assert!(!line.contains("s3cret"), "the password leaked: {line}");
}

#[test]
fn a_wrong_password_is_refused_naming_the_server() {
    let Some(server) = postgres_url() else { return };
    // `.ci/postgres` makes the server check this role's password.
    sql(
        &server,
        "DO $$ BEGIN
           IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cubby_auth') THEN
             CREATE ROLE cubby_auth LOGIN PASSWORD 'right-password';
           END IF;
         END $$",
    );
    let url = server.replacen("://cubby@", "://cubby_auth:wrong-password@", 1);
    assert_ne!(url, server, "the test server's URL names the user cubby");
    match connect(&url) {
        Err(err) => {
            assert!(matches!(err, OpenError::Connect { .. }), "{err:?}");
            let line = chain(&err);
            assert!(line.contains("password authentication failed"), "{line}");
            assert!(
                !line.contains("wrong-password"),
                "the password leaked: {line}"
            );
        }
        Ok(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the test server accepts any password; start it with .ci/postgres")
        }
        Ok(_) => eprintln!("note: skipped: this server does not check passwords"),
    }
}

#[test]
fn a_database_that_is_not_cubbys_is_refused_and_left_alone() {
    for foreign in [
        "CREATE TABLE cubby_entries (id INT PRIMARY KEY)",
        "CREATE TABLE cubby_meta (name TEXT, value TEXT);
         INSERT INTO cubby_meta VALUES ('schema_version', 'one')",
        "CREATE TABLE cubby_meta (name TEXT, value BIGINT)",
        "CREATE TABLE cubby_meta (id INT)",
    ] {
        let Some(place) = Place::postgres() else {
            return;
        };
        sql(&place.db_arg(), foreign);
        let err = connect(&place.db_arg()).unwrap_err();
        assert!(
            matches!(err, OpenError::NotCubby { .. }),
            "{foreign}: {err:?}"
        );
        assert!(chain(&err).contains("is not a Cubby database"), "{err}");
        // Nothing was created next to the foreign table.
        for table in ["cubby_workspaces", "cubby_namespaces"] {
            let probe = connect_raw_count(&place.db_arg(), table);
            assert_eq!(probe, None, "{table} was created in a refused database");
        }
    }
}

/// Rows in `table`, or `None` if it does not exist.
fn connect_raw_count(url: &str, table: &str) -> Option<i64> {
    let url = url.to_owned();
    let table = table.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .ok()
                .map(|r| r.get::<_, i64>(0))
        })
    })
    .join()
    .unwrap()
}

#[test]
fn a_schema_from_a_newer_cubby_is_refused() {
    let Some(place) = Place::postgres() else {
        return;
    };
    drop(connect(&place.db_arg()).unwrap());
    sql(
        &place.db_arg(),
        "UPDATE cubby_meta SET value = 99 WHERE name = 'schema_version'",
    );
    let err = connect(&place.db_arg()).unwrap_err();
    assert!(
        matches!(
            err,
            OpenError::UnsupportedSchema {
                found: 99,
                supported: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!chain(&err).contains("password"), "{err}");
}

#[test]
fn processes_creating_the_schema_at_once_all_succeed() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let url = place.db_arg();
    std::thread::scope(|s| {
        for i in 0..6 {
            let url = &url;
            s.spawn(move || {
                let storage = connect(url).unwrap();
                storage
                    .workspace("w")
                    .unwrap()
                    .set(&format!("k{i}"), b"v")
                    .unwrap();
            });
        }
    });
    let storage = connect(&url).unwrap();
    assert_eq!(storage.workspace("w").unwrap().usage().unwrap().keys, 6);
    assert_eq!(connect_raw_count(&url, "cubby_meta"), Some(1));
}

#[test]
fn serialization_failures_are_retried_until_every_write_lands() {
    let Some(place) = Place::postgres() else {
        return;
    };
    // Under SERIALIZABLE, writers of one workspace fail with 40001 whenever
    // they overlap; Cubby must retry them without losing or doubling any.
    let url = format!(
        "{}%20-c%20default_transaction_isolation%3Dserializable",
        place.db_arg()
    );
    let storage = connect(&url).unwrap();
    std::thread::scope(|s| {
        for _ in 0..8 {
            let ws = storage.workspace("w").unwrap();
            s.spawn(move || {
                for _ in 0..50 {
                    ws.increment("n", 1, None).unwrap();
                }
            });
        }
    });
    let ws = storage.workspace("w").unwrap();
    assert_eq!(ws.get("n").unwrap().unwrap(), b"400");
    assert_usage_is_exact(&storage, "w");
}

#[test]
fn calls_beyond_the_pool_size_wait_for_a_connection() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let mut options = StorageOptions::default();
    options.postgres.pool_size = 2;
    let storage = place.open(options);
    std::thread::scope(|s| {
        for t in 0..32 {
            let ws = storage.workspace("w").unwrap();
            s.spawn(move || {
                for i in 0..10 {
                    ws.set(&format!("{t}-{i}"), b"v").unwrap();
                    assert!(ws.exists(&format!("{t}-{i}")).unwrap());
                }
            });
        }
    });
    assert_eq!(storage.workspace("w").unwrap().usage().unwrap().keys, 320);
}

#[test]
fn the_location_never_shows_the_password() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let url = place.db_arg().replacen("://cubby@", "://cubby:s3cret@", 1);
    let storage = connect(&url).unwrap();
    assert!(!storage.location().contains("s3cret"), "{storage:?}");
    assert!(
        storage
            .location()
            .starts_with("postgres://cubby@127.0.0.1:"),
        "{}",
        storage.location()
    );
    // A storage error never carries the URL either.
    let err = storage.workspace("w").unwrap().get("").unwrap_err();
    assert!(matches!(err, StorageError::InvalidKey(_)));
}

/// The storage API blocks, but an embedder may still call it from async
/// code (blocking that task's thread): it must then work, however many
/// calls in a row. The test thread watches from outside the runtime, so a
/// spinning call fails the test instead of hanging it.
#[test]
fn storage_calls_work_from_inside_async_code() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let storage = open(&place);
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let total = runtime.block_on(async move {
            let ws = storage.workspace("w").unwrap();
            for i in 0..300 {
                ws.set(&format!("k{i}"), b"v").unwrap();
                assert!(ws.exists(&format!("k{i}")).unwrap());
            }
            ws.usage().unwrap().keys
        });
        let _ = done.send(total);
    });
    let total = finished
        .recv_timeout(Duration::from_secs(120))
        .expect("storage calls inside async code never finished");
    assert_eq!(total, 300);
}

/// TLS as libpq's `sslmode` says, against a server of the test's own that
/// accepts TCP connections only over TLS, with a certificate for
/// `localhost` signed by a test authority: `require` and `prefer` encrypt
/// (every Cubby session on the server is in `pg_stat_ssl` with TLS);
/// `verify-full` accepts the right authority and name and refuses another
/// authority, or an address the certificate does not name; `verify-ca`
/// checks the authority only; `disable` is refused by the server. No
/// message shows the password.
#[test]
fn tls_is_used_and_checked_as_sslmode_says() {
    let certs = crate::testing::Certificates::generate();
    let Some(server) =
        crate::testing::Server::start_tls(&certs.path("server.crt"), &certs.path("server.key"))
    else {
        return;
    };
    let port = server.port();
    let (ca, other_ca) = (certs.path("ca.pem"), certs.path("other-ca.pem"));
    let url = |host: &str, query: String| {
        format!("postgres://cubby:s3cret@{host}:{port}/postgres?{query}")
    };
    let works = |url: String| {
        let storage = connect(&url).unwrap_or_else(|e| panic!("{url}: {}", chain(&e)));
        let ws = storage.workspace("w").unwrap();
        ws.set("k", b"v".to_vec()).unwrap();
        assert_eq!(ws.get("k").unwrap(), Some(b"v".to_vec()));
        storage
    };
    let refused = |url: String| {
        let e = chain(
            &connect(&url)
                .err()
                .unwrap_or_else(|| panic!("{url} connected")),
        );
        assert!(
            e.starts_with("cannot connect to the database server at "),
            "{e}"
        );
        assert!(!e.contains("s3cret") && !e.contains('\n'), "{e}");
        e
    };
    // Kept open while their sessions are counted.
    let _open = [
        works(url("127.0.0.1", "sslmode=require".into())),
        works(url("127.0.0.1", String::new())),
        works(url(
            "localhost",
            format!("sslmode=verify-full&sslrootcert={}", ca.display()),
        )),
        works(url(
            "127.0.0.1",
            format!("sslmode=verify-ca&sslrootcert={}", ca.display()),
        )),
    ];
    let [tls, all] = crate::testing::query_i64s(
        &server.socket_url(),
        "SELECT count(*) FILTER (WHERE s.ssl), count(*)
         FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
         WHERE a.application_name = 'cubby'",
    )[..] else {
        panic!("two counts")
    };
    assert!(
        all >= 4 && tls == all,
        "{tls} of {all} Cubby sessions use TLS"
    );

    let e = refused(url(
        "localhost",
        format!("sslmode=verify-full&sslrootcert={}", other_ca.display()),
    ));
    assert!(e.contains("invalid peer certificate: UnknownIssuer"), "{e}");
    let e = refused(url(
        "127.0.0.1",
        format!("sslmode=verify-full&sslrootcert={}", ca.display()),
    ));
    assert!(
        e.contains("certificate not valid for name \"127.0.0.1\""),
        "{e}"
    );
    let e = refused(url(
        "127.0.0.1",
        format!("sslmode=verify-ca&sslrootcert={}", other_ca.display()),
    ));
    assert!(e.contains("UnknownIssuer"), "{e}");
    let e = refused(url("127.0.0.1", "sslmode=disable".into()));
    assert!(e.contains("no encryption"), "{e}");
    // A verifying mode without an authority's certificate is the URL's
    // mistake, said before connecting.
    let e = connect(&url(
        "localhost",
        "sslmode=verify-full&sslrootcert=/no/such.pem".into(),
    ))
    .err()
    .unwrap();
    assert!(matches!(e, OpenError::InvalidUrl { .. }), "{e:?}");
    assert!(chain(&e).contains("/no/such.pem"), "{}", chain(&e));
}

/// A write that waits for a workspace row another session holds fails,
/// typed, once the statement timeout passes on the server (on Citus too,
/// which forwards `statement_timeout` to the worker holding the row), and
/// writes nothing; the next write after the lock goes works.
#[test]
fn a_write_waiting_on_a_held_workspace_fails_at_the_statement_timeout() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let mut options = StorageOptions::default();
    options.postgres.statement_timeout = SEC;
    let storage = place.open(options);
    let ws = storage.workspace("held").unwrap();
    ws.set("k", b"v").unwrap();
    let held = crate::testing::HeldWorkspace::hold(&place.db_arg(), "held");
    let err = ws.set("k", b"w").unwrap_err();
    let line = crate::engine::error::cause_chain(&err);
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert!(
        line.contains("canceling statement due to statement timeout"),
        "{line}"
    );
    held.release();
    assert_eq!(ws.get("k").unwrap(), Some(b"v".to_vec()));
    ws.set("k", b"w").unwrap();
    assert_usage_is_exact(&storage, "held");
}
