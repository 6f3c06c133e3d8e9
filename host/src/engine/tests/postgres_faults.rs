//! PostgreSQL faults: a connection the server ends before, in the middle of
//! and at the commit of a write, a commit whose answer never arrives, and a
//! statement timeout in the middle of a write. Each is a transparent retry
//! or a typed error; nothing is ever half-written; the pool recovers
//! without a restart. (A server restarted mid-storm is in
//! `tests/tests/shared_database.rs`; a write that times out waiting for a
//! held workspace, in `postgres_only.rs`.)
//!
//! The faults are placed with the test's own session (`pg_terminate_backend`
//! of Cubby's sessions, found by their application name), with triggers
//! that make a write slow at the point the test wants (not on Citus, whose
//! distributed tables take no triggers by default), and with a TCP proxy
//! that cuts the connection after the server has answered a `COMMIT`.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use super::*;
use crate::StorageError;
use crate::engine::blob::CHUNK_BYTES;
use crate::engine::error::cause_chain;
use crate::ops::StreamOptions;
use crate::testing::{assert_usage_is_exact, audit, query_i64s, sql};

/// The place, unless it is a Citus coordinator (for the tests that need
/// triggers).
fn plain_postgres() -> Option<Place> {
    let place = Place::postgres()?;
    if place.is_citus() {
        eprintln!("note: skipped on Citus: it needs a trigger on cubby_entries");
        return None;
    }
    Some(place)
}

/// `url` with Cubby's sessions named `app`.
fn named(url: &str, app: &str) -> String {
    url.replacen('?', &format!("?application_name={app}&"), 1)
}

/// Ends every session named `app` that `condition` (SQL on
/// `pg_stat_activity`) picks; returns how many.
fn terminate(place: &Place, app: &str, condition: &str) -> i64 {
    query_i64s(
        &place.db_arg(),
        &format!(
            "SELECT count(pg_terminate_backend(pid))::int8 FROM pg_stat_activity \
             WHERE application_name = '{app}' AND {condition}"
        ),
    )[0]
}

/// Waits (bounded) until a session named `app` sleeps in `pg_sleep`, then
/// ends it.
fn terminate_when_sleeping(place: &Place, app: &str) {
    for _ in 0..500 {
        if terminate(place, app, "wait_event = 'PgSleep'") > 0 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    panic!("no session of {app} ever slept");
}

/// The counter `n` of workspace `ws`.
fn counter(storage: &Storage, ws: &str) -> i64 {
    let value = storage.workspace(ws).unwrap().get("n").unwrap();
    value.map_or(0, |v| String::from_utf8(v).unwrap().parse().unwrap())
}

/// Makes every write of a row of `table` sleep for `seconds`: before the
/// row is written (in the middle of the transaction's statements), or at
/// the commit (a deferred constraint trigger).
fn slow_writes(place: &Place, table: &str, seconds: f64, at_commit: bool) {
    let trigger = if at_commit {
        format!(
            "CREATE CONSTRAINT TRIGGER slow_rows AFTER INSERT OR UPDATE ON {table} \
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_row()"
        )
    } else {
        format!(
            "CREATE TRIGGER slow_rows BEFORE INSERT OR UPDATE ON {table} \
             FOR EACH ROW EXECUTE FUNCTION slow_row()"
        )
    };
    sql(
        &place.db_arg(),
        &format!(
            "CREATE OR REPLACE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NEW; END $$; {trigger}"
        ),
    );
}

fn slow_entry_writes(place: &Place, seconds: f64, at_commit: bool) {
    slow_writes(place, "cubby_entries", seconds, at_commit);
}

fn fast_writes(place: &Place, table: &str) {
    sql(
        &place.db_arg(),
        &format!("DROP TRIGGER IF EXISTS slow_rows ON {table}"),
    );
}

fn fast_entry_writes(place: &Place) {
    fast_writes(place, "cubby_entries");
}

/// Sessions the server ended while idle in the pool are replaced: the next
/// request retries on a fresh connection and succeeds, without an error.
#[test]
fn connections_ended_between_requests_are_replaced_without_an_error() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let app = "cubby-fault-idle";
    let storage =
        Storage::connect(&named(&place.db_arg(), app), StorageOptions::default()).unwrap();
    let ws = storage.workspace("idle").unwrap();
    for expected in 1..=3 {
        assert_eq!(ws.increment("n", 1, None).unwrap(), expected);
        assert!(terminate(&place, app, "true") > 0, "no session to end");
    }
    assert_eq!(ws.get("n").unwrap(), Some(b"3".to_vec()));
    assert_usage_is_exact(&storage, "idle");
}

/// A session ended in the middle of a write's statements (the row being
/// written, the commit not reached): the server rolled it back, so it is
/// retried on a fresh connection and lands once, without an error.
/// A session ended while it commits (a deferred trigger runs then): the
/// outcome is unknown to the host, so the write fails as
/// [`StorageError::Unavailable`], never retried, and is there whole or not
/// at all. Either way the next write works.
#[test]
fn a_session_ended_in_the_middle_of_a_write_or_at_its_commit_leaves_it_whole_or_absent() {
    let Some(place) = plain_postgres() else {
        return;
    };
    let app = "cubby-fault-mid";
    let storage =
        Storage::connect(&named(&place.db_arg(), app), StorageOptions::default()).unwrap();
    let ws = storage.workspace("mid").unwrap();
    for (i, at_commit) in [false, true].into_iter().enumerate() {
        let before = counter(&storage, "mid");
        let key = format!("with-{i}");
        slow_entry_writes(&place, 1.0, at_commit);
        let writer = {
            let (ws, key) = (ws.clone(), key.clone());
            std::thread::spawn(move || {
                ws.transact(vec![
                    crate::ops::Op::increment("n", 1),
                    crate::ops::Op::set(key, b"with it".to_vec()),
                ])
            })
        };
        terminate_when_sleeping(&place, app);
        let result = writer.join().unwrap();
        fast_entry_writes(&place);
        let after = counter(&storage, "mid");
        let other = ws.get(&key).unwrap();
        if at_commit {
            let err = result.unwrap_err();
            assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
            assert!(
                (after, other.is_some()) == (before, false)
                    || (after, other.is_some()) == (before + 1, true),
                "half a transaction: counter {before} -> {after}, {key}: {other:?}"
            );
        } else {
            result.unwrap();
            assert_eq!(after, before + 1, "applied once");
            assert_eq!(other.as_deref(), Some(&b"with it"[..]));
        }
        assert_usage_is_exact(&storage, "mid");
        assert_eq!(ws.increment("n", 1, None).unwrap(), after + 1);
    }
}

/// A streamed write under the same faults: a session ended while a chunk
/// is written is retried on a fresh connection and the stream goes on; a
/// session ended at the commit of the finish fails it as
/// [`StorageError::Unavailable`], the value there whole or not at all, and
/// once the writer is gone no chunk is left that no entry holds.
#[test]
fn a_session_ended_during_a_streamed_write_leaves_the_value_whole_or_absent() {
    let Some(place) = plain_postgres() else {
        return;
    };
    let app = "cubby-fault-stream";
    let storage =
        Storage::connect(&named(&place.db_arg(), app), StorageOptions::default()).unwrap();
    let ws = storage.workspace("streams").unwrap();
    let value: Vec<u8> = (0..2 * CHUNK_BYTES + 777)
        .map(|i| (i % 251) as u8)
        .collect();
    let ns = ws.default_space().clone();

    // In the middle of a chunk: retried, the write goes on.
    let mut writer = ns.write_stream("mid", StreamOptions::default()).unwrap();
    writer.write_all(&value[..CHUNK_BYTES]).unwrap();
    slow_writes(&place, "cubby_chunks", 1.0, false);
    let put = std::thread::spawn(move || writer.write_all(&value[CHUNK_BYTES..]).map(|()| writer));
    terminate_when_sleeping(&place, app);
    let writer = put.join().unwrap().unwrap();
    fast_writes(&place, "cubby_chunks");
    writer.finish().unwrap();
    let expected: Vec<u8> = (0..2 * CHUNK_BYTES + 777)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut back = Vec::new();
    ns.read_stream("mid")
        .unwrap()
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == expected, "the value read back differs");

    // At the finish's commit: unknown to the host, whole or absent.
    let mut writer = ns
        .write_stream("at-commit", StreamOptions::default())
        .unwrap();
    writer.write_all(&expected).unwrap();
    slow_entry_writes(&place, 1.0, true);
    let finish = std::thread::spawn(move || writer.finish());
    terminate_when_sleeping(&place, app);
    let err = finish.join().unwrap().unwrap_err();
    fast_entry_writes(&place);
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    match ns.read_stream("at-commit").unwrap() {
        Some(mut reader) => {
            let mut back = Vec::new();
            reader.read_to_end(&mut back).unwrap();
            assert!(back == expected, "a streamed value not whole");
        }
        None => assert_eq!(ns.get("at-commit").unwrap(), None),
    }
    assert_usage_is_exact(&storage, "streams");
    let a = audit(&storage, "streams");
    assert_eq!(a.loose_blobs, 0, "a write in progress left behind: {a:?}");
    let held = if ns.exists("at-commit").unwrap() {
        2
    } else {
        1
    };
    assert_eq!(a.chunk_rows, held * 3, "chunks no entry holds: {a:?}");
}

/// A statement that runs past the statement timeout in the middle of a
/// write fails it as [`StorageError::Unavailable`], nothing written.
#[test]
fn a_statement_timeout_in_the_middle_of_a_write_writes_nothing() {
    let Some(place) = plain_postgres() else {
        return;
    };
    let mut options = StorageOptions::default();
    options.postgres.statement_timeout = std::time::Duration::from_millis(300);
    let storage = place.open(options);
    let ws = storage.workspace("slow").unwrap();
    ws.increment("n", 1, None).unwrap();
    slow_entry_writes(&place, 2.0, false);
    let err = ws
        .transact(vec![
            crate::ops::Op::increment("n", 1),
            crate::ops::Op::set("other", b"with it".to_vec()),
        ])
        .unwrap_err();
    let line = cause_chain(&err);
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert!(line.contains("statement timeout"), "{line}");
    fast_entry_writes(&place);
    assert_eq!(counter(&storage, "slow"), 1);
    assert_eq!(ws.get("other").unwrap(), None);
    assert_eq!(ws.increment("n", 1, None).unwrap(), 2);
    assert_usage_is_exact(&storage, "slow");
}

/// A TCP proxy to the test server that, once armed, lets the next `COMMIT`
/// through, waits for the server's answer to it, and then cuts the
/// connection instead of passing the answer on.
struct CommitCutter {
    port: u16,
    armed: Arc<AtomicBool>,
    _accepting: JoinHandle<()>,
}

impl CommitCutter {
    fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let armed = Arc::new(AtomicBool::new(false));
        let armed_for_links = armed.clone();
        let accepting = std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                link(client, server, armed_for_links.clone());
            }
        });
        Self {
            port,
            armed,
            _accepting: accepting,
        }
    }

    /// The next `COMMIT` through the proxy loses its answer.
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

/// Relays one connection both ways, cutting it as [`CommitCutter`] says.
fn link(client: TcpStream, server: TcpStream, armed: Arc<AtomicBool>) {
    let cutting = Arc::new(AtomicBool::new(false));
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (mut from_server, mut to_client) = (server, client);
    let cut = cutting.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_client.read(&mut buf) {
            let commit = buf[..n].windows(6).any(|w| w == b"COMMIT");
            // Claimed before the COMMIT goes on, so its answer is held.
            if commit && armed.swap(false, Ordering::SeqCst) {
                cut.store(true, Ordering::SeqCst);
            }
            if to_server.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_server.shutdown(Shutdown::Both);
    });
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut held = Vec::new();
        while let Ok(n @ 1..) = from_server.read(&mut buf) {
            if cutting.load(Ordering::SeqCst) {
                // The server's `CommandComplete` of the commit ends with
                // its tag: once it came, the commit is done.
                held.extend_from_slice(&buf[..n]);
                if held.windows(7).any(|w| w == b"COMMIT\0") {
                    break;
                }
            } else if to_client.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(Shutdown::Both);
        let _ = from_server.shutdown(Shutdown::Both);
    });
}

/// A commit the server made whose answer was lost on the way: the write
/// fails as [`StorageError::Unavailable`] (which says the write may have
/// been applied), and it was applied whole, exactly once (never retried);
/// the next write works on a fresh connection.
#[test]
fn a_commit_whose_answer_is_lost_is_reported_and_applied_whole_once() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let url = place.db_arg();
    // postgres://user@HOST:PORT/db?…
    let upstream = url
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(authority, _)| authority.to_owned())
        .unwrap_or_else(|| panic!("the test server's URL has no host:port: {url}"));
    let proxy = CommitCutter::start(upstream.clone());
    let proxied = url.replacen(&upstream, &format!("127.0.0.1:{}", proxy.port), 1);
    let proxied = proxied.replacen('?', "?sslmode=disable&", 1);
    let storage = Storage::connect(&proxied, StorageOptions::default()).unwrap();
    let ws = storage.workspace("cut").unwrap();
    ws.increment("n", 1, None).unwrap();
    proxy.arm();
    let err = ws
        .transact(vec![
            crate::ops::Op::increment("n", 1),
            crate::ops::Op::set("other", b"with it".to_vec()),
        ])
        .unwrap_err();
    assert!(matches!(err, StorageError::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string().contains("unavailable") || cause_chain(&err).contains("closed"),
        "{}",
        cause_chain(&err)
    );
    // Applied, whole, once.
    assert_eq!(counter(&storage, "cut"), 2);
    assert_eq!(ws.get("other").unwrap(), Some(b"with it".to_vec()));
    assert_eq!(ws.increment("n", 1, None).unwrap(), 3);
    assert_usage_is_exact(&storage, "cut");
}
