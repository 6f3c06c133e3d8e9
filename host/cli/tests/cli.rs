//! End-to-end tests of the `cubby` binary, as an operator uses it. The
//! tests of data run on a redb file and on PostgreSQL (listed at the end).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use cubby_artifacts as guests;
use cubby_host::testing::{Certificates, Place, Server};

struct Env {
    dir: tempfile::TempDir,
    /// What `--db` names: a redb file, or a PostgreSQL URL.
    db: String,
}

impl Env {
    /// A redb file in a folder of its own.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data/cubby.redb").display().to_string();
        Self { dir, db }
    }

    /// The database of a conformance test's place.
    fn on(place: &Place) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            db: place.db_arg(),
        }
    }

    /// The redb file (for tests of redb files).
    fn db(&self) -> PathBuf {
        PathBuf::from(&self.db)
    }

    /// `cubby --db <the test's database> ARGS…`
    fn cubby(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cubby"));
        cmd.arg("--db").arg(&self.db);
        self.run(cmd, args)
    }

    /// `cubby ARGS…` with no `--db`.
    fn cubby_bare(&self, args: &[&str]) -> Output {
        self.run(Command::new(env!("CARGO_BIN_EXE_cubby")), args)
    }

    /// `cubby --db <the test's database> ARGS…`, to start.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cubby"));
        cmd.arg("--db").arg(&self.db);
        self.prepare(&mut cmd, args);
        cmd
    }

    fn run(&self, mut cmd: Command, args: &[&str]) -> Output {
        self.prepare(&mut cmd, args);
        cmd.output().unwrap()
    }

    fn prepare(&self, cmd: &mut Command, args: &[&str]) {
        cmd.args(args)
            .env("CUBBY_CACHE_DIR", guests::CACHE_DIR)
            .env_remove("CUBBY_DB")
            .env_remove("CUBBY_LOG")
            .env("HOME", self.dir.path().join("home"))
            .env("XDG_DATA_HOME", self.dir.path().join("xdg-data"))
            .env("XDG_CACHE_HOME", self.dir.path().join("xdg-cache"));
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[track_caller]
fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout(&out)
}

/// The command failed with exit code 1 and said why in exactly one line, the
/// last one (a plugin's own stderr, which the CLI passes through, may come
/// before it). Returns that line.
#[track_caller]
fn one_line_error(out: Output) -> String {
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert_eq!(stderr.lines().last(), Some(errors[0]), "{stderr}");
    assert!(errors[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("thread 'main' panicked"), "{stderr}");
    assert!(!stderr.contains("thread 'tokio"), "{stderr}");
    errors[0].to_string()
}

fn counter_counts_per_workspace_and_in_memory_starts_afresh(place: &Place) {
    let env = Env::on(place);
    let run = |args: &[&str]| ok(env.cubby(args));
    assert_eq!(run(&["run", guests::COUNTER, "--workspace", "a"]), "1\n");
    assert_eq!(run(&["run", guests::COUNTER, "--workspace", "a"]), "2\n");
    assert_eq!(run(&["run", guests::COUNTER, "--workspace", "b"]), "1\n");
    for _ in 0..2 {
        let out = env.cubby_bare(&["--in-memory", "run", guests::COUNTER, "-w", "a"]);
        assert_eq!(ok(out), "1\n");
    }
    // Arguments after `--` reach the plugin.
    assert_eq!(
        run(&["run", guests::COUNTER, "-w", "a", "--", "visits"]),
        "1\n"
    );
    assert_eq!(run(&["kv", "list", "-w", "a"]), "counter\nvisits\n");
    assert_eq!(run(&["kv", "get", "-w", "a", "counter"]), "2");
}

#[test]
fn the_default_database_lives_in_the_user_data_folder() {
    let env = Env::new();
    ok(env.cubby_bare(&["run", guests::COUNTER, "-w", "a"]));
    let expected = env.dir.path().join("xdg-data/cubby/cubby.redb");
    assert!(expected.exists(), "no database at {}", expected.display());
    assert_eq!(
        ok(env.cubby_bare(&["kv", "get", "-w", "a", "counter"])),
        "1"
    );
    let help = ok(env.cubby_bare(&["--help"]));
    assert!(help.contains("~/.local/share/cubby"), "{help}");
}

fn notes_and_kv_inspection(place: &Place) {
    let env = Env::on(place);
    let call =
        |ws: &str, input: &str| ok(env.cubby(&["call", guests::NOTES, "-w", ws, "--input", input]));
    assert_eq!(
        call("a", r#"{"op":"add","text":"buy milk"}"#),
        r#"{"id":1,"text":"buy milk"}"#
    );
    assert_eq!(
        call("a", r#"{"op":"add","text":"call mum"}"#),
        r#"{"id":2,"text":"call mum"}"#
    );
    assert_eq!(
        call("b", r#"{"op":"add","text":"other team"}"#),
        r#"{"id":1,"text":"other team"}"#
    );
    assert_eq!(
        call("a", r#"{"op":"list"}"#),
        r#"[{"id":1,"text":"buy milk"},{"id":2,"text":"call mum"}]"#
    );
    let request = env.dir.path().join("request.json");
    std::fs::write(&request, r#"{"op":"list"}"#).unwrap();
    let from_file = format!("@{}", request.display());
    assert_eq!(call("b", &from_file), r#"[{"id":1,"text":"other team"}]"#);

    // kv list shows exactly that workspace's keys.
    assert_eq!(
        ok(env.cubby(&["kv", "list", "--workspace", "a"])),
        "last-id\nnote/00000000000000000001\nnote/00000000000000000002\n"
    );
    assert_eq!(
        ok(env.cubby(&["kv", "list", "-w", "a", "--prefix", "note/", "--limit", "1"])),
        "note/00000000000000000001\n"
    );
    assert_eq!(
        ok(env.cubby(&["kv", "list", "-w", "b"])),
        "last-id\nnote/00000000000000000001\n"
    );
    assert_eq!(ok(env.cubby(&["kv", "list", "-w", "nobody"])), "");

    let missing = one_line_error(env.cubby(&["kv", "get", "-w", "a", "nope"]));
    assert!(missing.contains("not found"), "{missing}");

    ok(env.cubby(&["kv", "set", "-w", "c", "greeting", "hello"]));
    assert_eq!(
        ok(env.cubby(&["kv", "get", "-w", "c", "greeting"])),
        "hello"
    );
    ok(env.cubby(&["kv", "delete", "-w", "c", "greeting"]));
    one_line_error(env.cubby(&["kv", "delete", "-w", "c", "greeting"]));
    assert_eq!(
        ok(env.cubby(&["workspace", "list"])),
        "workspace\tkeys\tbytes\tquota_keys\tquota_bytes\tused\n\
         a\t3\t110\t1000000\t1073741824\t0.0%\nb\t2\t61\t1000000\t1073741824\t0.0%\n"
    );
    // The old name still works.
    assert!(ok(env.cubby(&["workspaces"])).contains("\nb\t2\t61\t"));
}

/// The README's "Plugins in other languages": the Python notes plugin
/// called from the command line, its data listed with `kv list` and read by
/// the JavaScript port, a storage error printed as the plugin's error, and
/// the Python command plugin run with arguments.
fn python_and_javascript_plugins_from_the_command_line(place: &Place) {
    // The redb and PostgreSQL runs take turns: the first compiles each large
    // component into the shared cache, the second loads it from there.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let env = Env::on(place);
    if let Some(py_notes) = cubby_polyglot::PY_NOTES.path() {
        let add = r#"{"op":"add","text":"x"}"#;
        assert_eq!(
            ok(env.cubby(&["call", py_notes, "-w", "a", "--input", add])),
            r#"{"id":1,"text":"x"}"#
        );
        assert_eq!(
            ok(env.cubby(&["kv", "list", "-w", "a"])),
            "last-id\nnote/00000000000000000001\n"
        );
        assert_eq!(
            ok(env.cubby(&["kv", "get", "-w", "a", "note/00000000000000000001"])),
            r#"{"id":1,"text":"x"}"#
        );
        assert_eq!(ok(env.cubby(&["kv", "list", "-w", "b"])), "");
        let refused = one_line_error(env.cubby(&[
            "call", py_notes, "-w", "a", "--input", add, "--quota", "a=20",
        ]));
        assert!(
            refused.starts_with("error: plugin returned an error: notes: quota exceeded: "),
            "{refused}"
        );
        let bad = one_line_error(env.cubby(&["call", py_notes, "-w", "a", "--input", "{"]));
        assert!(bad.contains("bad request"), "{bad}");
    }
    if let Some(js_notes) = cubby_polyglot::JS_NOTES.path() {
        let added = ok(env.cubby(&[
            "call",
            js_notes,
            "-w",
            "a",
            "--input",
            r#"{"op":"add","text":"y"}"#,
        ]));
        let listed = ok(env.cubby(&["call", js_notes, "-w", "a", "--input", r#"{"op":"list"}"#]));
        if cubby_polyglot::PY_NOTES.path().is_some() {
            // Id 2 went to the add the quota refused: its counter step kept
            // the usage as it was, so it was allowed (as in Rust's notes).
            assert_eq!(added, r#"{"id":3,"text":"y"}"#);
            assert_eq!(listed, r#"[{"id":1,"text":"x"},{"id":3,"text":"y"}]"#);
        } else {
            assert_eq!(listed, format!("[{added}]"));
        }
    }
    if let Some(py_counter) = cubby_polyglot::PY_COUNTER.path() {
        assert_eq!(ok(env.cubby(&["run", py_counter, "-w", "c"])), "1\n");
        assert_eq!(ok(env.cubby(&["run", guests::COUNTER, "-w", "c"])), "2\n");
        assert_eq!(
            ok(env.cubby(&["run", py_counter, "-w", "c", "--", "visits"])),
            "1\n"
        );
        assert_eq!(
            ok(env.cubby(&["kv", "list", "-w", "c"])),
            "counter\nvisits\n"
        );
        ok(env.cubby(&["kv", "set", "-w", "c", "words", "hello"]));
        let out = env.cubby(&["run", py_counter, "-w", "c", "--", "words"]);
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr
                .starts_with("counter: cannot bump \"words\": the stored value is not a counter\n"),
            "{stderr}"
        );
    }
}

/// Under an address-space limit far too small for the instance pool (which
/// reserves address space for 100 instances), the runtime allocates each
/// instance per call instead, says so once, and plugins still run.
#[cfg(target_os = "linux")]
#[test]
fn without_address_space_for_the_pool_plugins_still_run() {
    let env = Env::new();
    let mut cmd = Command::new("sh");
    // 64 GiB: room for one instance, not for the pool.
    cmd.args(["-c", r#"ulimit -v 67108864 && exec "$0" "$@""#])
        .arg(env!("CARGO_BIN_EXE_cubby"))
        .args(["--db", &env.db, "call", guests::NOTES, "-w", "a"])
        .args(["--input", r#"{"op":"add","text":"x"}"#]);
    env.prepare(&mut cmd, &[]);
    let out = cmd.env("CUBBY_LOG", "warn").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(ok(out).trim(), r#"{"id":1,"text":"x"}"#);
    assert!(
        stderr.contains("allocating instances per call"),
        "the fallback is logged with CUBBY_LOG: {stderr}"
    );
}

#[test]
fn errors_are_one_clear_line() {
    let env = Env::new();
    let not_wasm = env.dir.path().join("plugin.wasm");
    std::fs::write(&not_wasm, "#!/bin/sh\n").unwrap();
    let not_wasm = not_wasm.to_str().unwrap();

    let e = one_line_error(env.cubby(&["run", not_wasm, "-w", "a"]));
    assert!(e.contains("not a WebAssembly file"), "{e}");
    let e = one_line_error(env.cubby(&["run", "/no/such.wasm", "-w", "a"]));
    assert!(e.contains("cannot read /no/such.wasm"), "{e}");
    let e = one_line_error(env.cubby(&["call", guests::COUNTER, "-w", "a"]));
    assert!(e.contains("does not export `cubby:storage/handler"), "{e}");
    assert!(e.contains("`cubby:storage/handler@0.2.0`"), "{e}");
    let e = one_line_error(env.cubby(&["run", guests::NOTES, "-w", "a"]));
    assert!(e.contains("does not export `wasi:cli/run`"), "{e}");
    let e = one_line_error(env.cubby(&["run", guests::COUNTER, "-w", "../etc"]));
    assert!(e.contains("invalid workspace id"), "{e}");
    let e = one_line_error(env.cubby(&["kv", "set", "-w", "a", "", "v"]));
    assert!(e.contains("invalid key"), "{e}");
    let e = one_line_error(env.cubby(&[
        "--max-value-size",
        "4",
        "kv",
        "set",
        "-w",
        "a",
        "k",
        "12345",
    ]));
    assert!(e.contains("larger than the limit of 4 bytes"), "{e}");
    assert_eq!(
        ok(env.cubby(&["kv", "list", "-w", "a"])),
        "",
        "nothing was written"
    );

    let e = one_line_error(env.cubby(&[
        "call",
        guests::PROBE,
        "-w",
        "a",
        "--timeout",
        "200ms",
        "-i",
        r#"{"op":"spin"}"#,
    ]));
    assert!(e.contains("time limit of 200ms"), "{e}");
    let e = one_line_error(env.cubby(&[
        "call",
        guests::PROBE,
        "-w",
        "a",
        "--max-memory",
        "8MiB",
        "-i",
        r#"{"op":"grow"}"#,
    ]));
    assert!(e.contains("the limit is 8388608 bytes"), "{e}");
}

#[test]
fn a_corrupt_database_file_is_refused_and_left_alone() {
    let env = Env::new();
    std::fs::create_dir_all(env.db().parent().unwrap()).unwrap();
    let junk = b"definitely not a redb file ".repeat(100);
    std::fs::write(env.db(), &junk).unwrap();
    let e = one_line_error(env.cubby(&["run", guests::COUNTER, "-w", "a"]));
    assert!(e.contains("not a Cubby database or is corrupt"), "{e}");
    assert_eq!(std::fs::read(env.db()).unwrap(), junk);
}

#[test]
fn a_folder_given_as_database_is_an_error_naming_its_cause_once() {
    let env = Env::new();
    let folder = env.dir.path().to_str().unwrap();
    let e = one_line_error(env.cubby_bare(&["--db", folder, "kv", "list", "-w", "a"]));
    assert!(e.contains(&format!("cannot open database {folder}")), "{e}");
    assert_eq!(e.matches("Is a directory").count(), 1, "{e}");
}

#[test]
fn a_database_locked_by_another_process_is_a_clear_error() {
    let env = Env::new();
    ok(env.cubby(&["kv", "set", "-w", "a", "k", "v"]));
    // This test process holds the database open, as a running host would.
    let held = cubby_host::Storage::open(env.db(), cubby_host::StorageOptions::default()).unwrap();
    let e = one_line_error(env.cubby(&["kv", "get", "-w", "a", "k"]));
    assert!(e.contains("in use by another process"), "{e}");
    drop(held);
    assert_eq!(ok(env.cubby(&["kv", "get", "-w", "a", "k"])), "v");
}

#[test]
fn usage_mistakes_are_explained_by_clap() {
    let env = Env::new();
    let out = env.cubby(&["run", guests::COUNTER]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--workspace <ID>"), "{stderr}");
    let out = env.cubby_bare(&["--db", "x.redb", "--in-memory", "workspaces"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!Path::new("x.redb").exists());
}

fn namespaces_expiry_quotas_usage_and_prune_from_the_command_line(place: &Place) {
    let env = Env::on(place);
    ok(env.cubby(&["kv", "set", "-w", "a", "k", "v"]));
    ok(env.cubby(&["kv", "set", "-w", "a", "-n", "sessions", "k", "in sessions"]));
    ok(env.cubby(&[
        "kv", "set", "-w", "a", "-n", "sessions", "gone", "x", "--ttl", "1ms",
    ]));
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(ok(env.cubby(&["kv", "get", "-w", "a", "k"])), "v");
    assert_eq!(
        ok(env.cubby(&["kv", "get", "-w", "a", "-n", "sessions", "k"])),
        "in sessions"
    );
    let missing = env.cubby(&["kv", "get", "-w", "a", "-n", "sessions", "gone"]);
    assert_eq!(missing.status.code(), Some(1), "an expired key is missing");
    assert_eq!(
        ok(env.cubby(&["kv", "list", "-w", "a", "-n", "sessions"])),
        "k\n"
    );
    assert_eq!(
        ok(env.cubby(&["kv", "usage", "-w", "a"])),
        "namespace\tkeys\tbytes\n(default)\t1\t2\nsessions\t1\t12\n(total)\t2\t14\n\
         (quota)\t1000000\t1073741824\n"
    );
    assert_eq!(
        ok(env.cubby(&["kv", "prune"])),
        "removed 1 expired entries\n"
    );
    // A per-workspace quota refuses the write that would pass it.
    let over = env.cubby(&[
        "--quota",
        "a=20B,5",
        "kv",
        "set",
        "-w",
        "a",
        "big",
        "0123456789",
    ]);
    assert_eq!(over.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&over.stderr);
    assert!(stderr.starts_with("error: quota exceeded"), "{stderr}");
    assert!(
        ok(env.cubby(&["--quota", "a=20B,5", "kv", "usage", "-w", "a"]))
            .ends_with("(quota)\t5\t20\n")
    );
    assert_eq!(
        ok(env.cubby(&["kv", "clear", "-w", "a", "-n", "sessions"])),
        "removed 1 key from namespace \"sessions\" of workspace \"a\"\n"
    );
    assert_eq!(ok(env.cubby(&["kv", "list", "-w", "a"])), "k\n");
    // A mistyped duration is a usage error that shows what is expected.
    let bad = env.cubby(&["kv", "set", "-w", "a", "k", "v", "--ttl", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("try e.g. 500ms, 30s"));
}

/// `kv clear` empties exactly the space it names and says which;
/// `workspace delete` removes every namespace, after a confirmation that a
/// script gives with `--yes`.
fn clearing_a_space_and_deleting_a_workspace_say_what_they_removed(place: &Place) {
    let env = Env::on(place);
    for (ns, key) in [("", "a"), ("", "b"), ("x", "a"), ("y", "a"), ("y", "b")] {
        ok(env.cubby(&["kv", "set", "-w", "w", "-n", ns, key, "v"]));
    }
    ok(env.cubby(&["kv", "set", "-w", "other", "k", "v"]));
    assert_eq!(
        ok(env.cubby(&["kv", "clear", "-w", "w"])),
        "removed 2 keys from the default space of workspace \"w\"\n"
    );
    assert_eq!(
        ok(env.cubby(&["kv", "list", "-w", "w", "-n", "y"])),
        "a\nb\n"
    );
    // Not confirmed (stdin is not a terminal here): nothing is deleted.
    let refused = one_line_error(env.cubby(&["workspace", "delete", "-w", "w"]));
    assert!(refused.contains("Pass --yes to confirm"), "{refused}");
    assert_eq!(ok(env.cubby(&["kv", "list", "-w", "w", "-n", "x"])), "a\n");
    assert_eq!(
        ok(env.cubby(&["workspace", "delete", "-w", "w", "--yes"])),
        "removed workspace \"w\": 3 keys in all its namespaces\n"
    );
    assert_eq!(
        ok(env.cubby(&["kv", "usage", "-w", "w"])),
        "namespace\tkeys\tbytes\n(total)\t0\t0\n(quota)\t1000000\t1073741824\n"
    );
    assert_eq!(
        ok(env.cubby(&["workspace", "list"])),
        "workspace\tkeys\tbytes\tquota_keys\tquota_bytes\tused\n\
         other\t1\t2\t1000000\t1073741824\t0.0%\n"
    );
}

/// Four host processes at once, each running the counter plugin 250 times
/// against one PostgreSQL database: no increment is lost.
#[test]
fn four_hosts_running_the_counter_250_times_each_count_to_exactly_1000() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let env = Env::on(&place);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..250 {
                    ok(env.cubby(&["run", guests::COUNTER, "-w", "a"]));
                }
            });
        }
    });
    assert_eq!(ok(env.cubby(&["kv", "get", "-w", "a", "counter"])), "1000");
}

/// With PostgreSQL an operator inspects the data of a host process that is
/// running and writing (a redb file would be locked: see
/// `a_database_locked_by_another_process_is_a_clear_error`).
#[test]
fn kv_works_while_a_host_process_writes_to_the_same_database() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let env = Env::on(&place);
    let busy = r#"{"op":"incr-loop","key":"hits","n":100000000}"#;
    let mut host = env
        .command(&[
            "call",
            guests::PROBE,
            "-w",
            "a",
            "--timeout",
            "120s",
            "-i",
            busy,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let hits = || {
        let out = env.cubby(&["kv", "get", "-w", "a", "hits"]);
        out.status
            .success()
            .then(|| stdout(&out).parse::<u64>().unwrap())
    };
    // Bounded waits for the other process, not timing assertions.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let first = loop {
        if let Some(n) = hits() {
            break n;
        }
        assert!(std::time::Instant::now() < deadline, "the host never wrote");
    };
    assert_eq!(ok(env.cubby(&["kv", "list", "-w", "a"])), "hits\n");
    assert!(ok(env.cubby(&["workspaces"])).contains("\na\t1\t"));
    // Each read sees what the running host has acknowledged since.
    while hits().is_none_or(|n| n <= first) {
        assert!(std::time::Instant::now() < deadline, "no new write seen");
    }
    assert!(
        host.try_wait().unwrap().is_none(),
        "the host is still running"
    );
    host.kill().unwrap();
    host.wait().unwrap();
}

#[test]
fn database_urls_that_cannot_be_used_are_one_line_errors() {
    let env = Env::new();
    let kv = |db: &str| one_line_error(env.cubby_bare(&["--db", db, "kv", "list", "-w", "a"]));
    // Port 1: nothing listens there.
    let e = kv("postgres://ada:s3cret@127.0.0.1:1/cubby");
    assert!(
        e.contains("cannot connect to the database server at 127.0.0.1:1/cubby"),
        "{e}"
    );
    assert!(e.contains("Connection refused"), "{e}");
    let e = kv("postgresql://ada:s3cret@localhost:port/cubby");
    assert!(e.starts_with("error: invalid database URL"), "{e}");
    for e in [kv("postgres://ada:s3cret@127.0.0.1:1/cubby"), e] {
        assert!(!e.contains("s3cret"), "the password leaked: {e}");
    }
}

/// A write the database itself refuses (here a check constraint the test
/// adds) is one line on stderr, the database's message once, with no log
/// line and no terminal escape codes; with `CUBBY_LOG` the log comes too,
/// still without escape codes off a terminal.
#[test]
fn a_failed_database_write_is_one_line_on_stderr() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let env = Env::on(&place);
    ok(env.cubby(&["kv", "set", "-w", "a", "k", "v"]));
    cubby_host::testing::sql(
        &place.db_arg(),
        "ALTER TABLE cubby_entries ADD CONSTRAINT refused_by_a_test CHECK (value <> 'w'::bytea)",
    );
    let out = env.cubby(&["kv", "set", "-w", "a", "k", "w"]);
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    let e = one_line_error(out);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(e.matches("refused_by_a_test").count(), 1, "{e}");
    assert!(!stderr.contains('\x1b'), "escape codes: {stderr:?}");
    let out = env
        .command(&["kv", "set", "-w", "a", "k", "w"])
        .env("CUBBY_LOG", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("database error"), "{stderr}");
    assert!(
        stderr.lines().last().unwrap().starts_with("error: "),
        "{stderr}"
    );
    assert!(!stderr.contains('\x1b'), "escape codes: {stderr:?}");
    assert_eq!(ok(env.cubby(&["kv", "get", "-w", "a", "k"])), "v");
}

/// TLS from `--db`: a server the URL's authority vouches for is used; one
/// it does not, or a URL asking for no TLS from a server that demands it,
/// is one error line naming the server and the reason, never the password.
#[test]
fn tls_to_the_database_follows_the_urls_sslmode() {
    let certs = Certificates::generate();
    let Some(server) = Server::start_tls(&certs.path("server.crt"), &certs.path("server.key"))
    else {
        return;
    };
    let env = Env::new();
    let url = |query: String| {
        format!(
            "postgres://cubby:s3cret@localhost:{}/postgres?{query}",
            server.port()
        )
    };
    let verify = |ca: &str| {
        url(format!(
            "sslmode=verify-full&sslrootcert={}",
            certs.path(ca).display()
        ))
    };
    ok(env.cubby_bare(&["--db", &verify("ca.pem"), "kv", "set", "-w", "a", "k", "v"]));
    assert_eq!(
        ok(env.cubby_bare(&["--db", &verify("ca.pem"), "kv", "get", "-w", "a", "k"])),
        "v"
    );
    let unknown =
        one_line_error(env.cubby_bare(&["--db", &verify("other-ca.pem"), "kv", "list", "-w", "a"]));
    assert!(
        unknown.starts_with("error: cannot connect to the database server at localhost:"),
        "{unknown}"
    );
    assert!(
        unknown.contains("invalid peer certificate: UnknownIssuer"),
        "{unknown}"
    );
    let plain = one_line_error(env.cubby_bare(&[
        "--db",
        &url("sslmode=disable".into()),
        "kv",
        "list",
        "-w",
        "a",
    ]));
    assert!(plain.contains("no encryption"), "{plain}");
    for e in [unknown, plain] {
        assert!(!e.contains("s3cret"), "the password leaked: {e}");
    }
}

/// A standard `wasi:keyvalue` guest (no cubby-sdk) writes through `cubby
/// run`, and its bucket is the namespace `cubby kv` lists. It sees only the
/// environment variables given with `--env`.
fn a_standard_keyvalue_guest_runs_and_its_bucket_is_a_namespace(place: &Place) {
    let env = Env::on(place);
    let guestbook = |args: &[&str]| {
        let mut cmd = env.command(&[&["run", guests::GUESTBOOK, "-w", "a"], args].concat());
        // The host's own environment never reaches the plugin unasked.
        cmd.env("VISITOR", "eve");
        cmd.output().unwrap()
    };
    assert_eq!(
        ok(guestbook(&["--env", "VISITOR=ada"])),
        "hello, ada!\nada has visited 1 time(s)\nsigned by: ada\n"
    );
    assert_eq!(
        ok(guestbook(&[])),
        "hello, anonymous!\nanonymous has visited 1 time(s)\nsigned by: ada, anonymous\n"
    );
    // `--env KEY` passes the host's value of KEY.
    assert!(ok(guestbook(&["-e", "VISITOR"])).contains("eve has visited 1 time(s)"));
    assert_eq!(
        ok(env.cubby(&["kv", "list", "-w", "a", "-n", "guestbook"])),
        "greeting/ada\ngreeting/anonymous\ngreeting/eve\nlast-visitor\n\
         visits/ada\nvisits/anonymous\nvisits/eve\n"
    );
    assert_eq!(
        ok(env.cubby(&["kv", "get", "-w", "a", "-n", "guestbook", "visits/ada"])),
        "1"
    );
    // The bucket is workspace a's: b has none of it.
    assert_eq!(
        ok(env.cubby(&["kv", "list", "-w", "b", "-n", "guestbook"])),
        ""
    );
    // An operator may limit the buckets a plugin opens.
    // (The plugin reports the refusal itself and exits with 1, as cubby does.)
    let out = guestbook(&["--bucket", "cache", "-e", "VISITOR=bob"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "guestbook: the host does not let this plugin open \"guestbook\"\n"
    );
    assert!(ok(guestbook(&["--bucket", "guestbook", "-e", "VISITOR=bob"])).contains("bob"));
    // A malformed --env is a usage error (clap's exit code 2).
    let out = guestbook(&["--env", "=x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-empty KEY"));
}

/// Parses a command's `--json` output.
#[track_caller]
fn json(out: Output) -> serde_json::Value {
    serde_json::from_str(&ok(out)).expect("one JSON document")
}

/// What `--json` shows of a workspace: every namespace's keys with their
/// values (as `kv get --json` gives them, but for the version, which is the
/// database's, and the time left, returned apart by namespace/key), and
/// the usage.
fn snapshot(env: &Env, ws: &str) -> (serde_json::Value, Vec<(String, u64)>) {
    let mut ttls = Vec::new();
    let mut usage = json(env.cubby(&["--json", "kv", "usage", "-w", ws]));
    usage["quota"] = serde_json::Value::Null;
    let mut spaces = serde_json::Map::new();
    for space in usage["namespaces"].as_array().unwrap() {
        let ns = space["namespace"].as_str().unwrap();
        let listed = json(env.cubby(&["--json", "kv", "list", "-w", ws, "-n", ns]));
        let mut entries = serde_json::Map::new();
        for key in listed["keys"].as_array().unwrap() {
            let key = key.as_str().unwrap();
            let mut got = json(env.cubby(&["--json", "kv", "get", "-w", ws, "-n", ns, key]));
            let got = got.as_object_mut().unwrap();
            got.remove("version");
            got.remove("workspace");
            if let Some(ms) = got.remove("expires_in_ms").and_then(|v| v.as_u64()) {
                ttls.push((format!("{ns}/{key}"), ms));
            }
            entries.insert(key.into(), serde_json::Value::Object(got.clone()));
        }
        spaces.insert(ns.into(), entries.into());
    }
    usage["workspace"] = serde_json::Value::Null;
    (
        serde_json::json!({ "usage": usage, "entries": spaces }),
        ttls,
    )
}

/// Two workspaces show the same through `--json`, time left within the
/// few seconds the commands between the two reads take.
#[track_caller]
fn assert_same(env_a: &Env, a: &str, env_b: &Env, b: &str) {
    let (a_shown, a_ttls) = snapshot(env_a, a);
    let (b_shown, b_ttls) = snapshot(env_b, b);
    assert_eq!(a_shown, b_shown);
    assert_eq!(a_ttls.len(), b_ttls.len());
    for ((ka, ta), (kb, tb)) in a_ttls.iter().zip(&b_ttls) {
        assert_eq!(ka, kb);
        assert!(ta.abs_diff(*tb) < 10_000, "{ka}: {ta} ms left vs {tb} ms");
    }
}

fn export_and_import_move_a_workspace_between_databases(place: &Place) {
    let env = Env::on(place);
    let other = Env::new();
    for (ns, key, value) in [
        ("", "greeting", "hello"),
        ("notes", "1", "ünï ✓"),
        ("notes", "2", "b"),
    ] {
        ok(env.cubby(&["kv", "set", "-w", "a", "-n", ns, key, value]));
    }
    ok(env.cubby(&[
        "kv", "set", "-w", "a", "-n", "sessions", "s", "x", "--ttl", "1h",
    ]));
    let file = env.dir.path().join("a.cubby");
    let file = file.to_str().unwrap();
    let exported = json(env.cubby(&["--json", "workspace", "export", "-w", "a", "-o", file]));
    assert_eq!(exported["keys"], 4);
    // Into another database (a redb file), as another workspace.
    let imported = json(other.cubby(&["--json", "workspace", "import", "-w", "b", file]));
    assert_eq!(imported["imported"], 4);
    assert_eq!(imported["mode"], "merge");
    assert_same(&other, "b", &env, "a");
    assert_eq!(snapshot(&other, "b").1.len(), 1, "the TTL came along");
    // And back from the redb file into this database (PostgreSQL when the
    // place is), through a pipe.
    let mut export = other.command(&["workspace", "export", "-w", "b"]);
    let piped = export
        .stdout(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert!(piped.status.success());
    let mut import = env.command(&["workspace", "import", "-w", "c", "--replace", "-"]);
    let mut child = import
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&piped.stdout)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same(&env, "c", &env, "a");

    // A flipped byte: one line of error, nothing imported.
    let mut bad = std::fs::read(file).unwrap();
    let at = bad.len() / 2;
    bad[at] ^= 0x20;
    let bad_file = env.dir.path().join("bad.cubby");
    std::fs::write(&bad_file, &bad).unwrap();
    let err = one_line_error(other.cubby(&[
        "workspace",
        "import",
        "-w",
        "d",
        bad_file.to_str().unwrap(),
    ]));
    assert!(err.contains("nothing was imported"), "{err}");
    assert!(err.contains("corrupt export"), "{err}");
    assert_eq!(
        ok(other.cubby(&["kv", "list", "-w", "d", "-n", "notes"])),
        ""
    );
    // Not an export at all.
    let err = one_line_error(other.cubby(&["workspace", "import", "-w", "d", &other.db]));
    assert!(err.contains("not a Cubby export"), "{err}");
    // Without a terminal there is no progress bar: stderr is the summary.
    let out = other.cubby(&["workspace", "import", "-w", "e", file]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "imported 4 keys into workspace e (merge); 0 already expired, skipped\n"
    );
    // A failed export leaves the file it would have replaced as it was, and
    // no temporary file beside it.
    let dir = env.dir.path().join("exports");
    std::fs::create_dir(&dir).unwrap();
    let target = dir.join("a.cubby");
    std::fs::write(&target, "the old backup").unwrap();
    let long_namespace = "n".repeat(200);
    let target_arg = target.to_str().unwrap();
    let args = [
        "workspace",
        "export",
        "-w",
        "a",
        "-n",
        &long_namespace,
        "-o",
        target_arg,
    ];
    let err = one_line_error(env.cubby(&args));
    assert!(err.contains("namespace"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "the old backup");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // The --json summary goes to stdout, so the export itself needs a file.
    let err = one_line_error(env.cubby(&["--json", "workspace", "export", "-w", "a"]));
    assert!(err.contains("-o FILE"), "{err}");
}

fn a_stored_quota_binds_later_processes(place: &Place) {
    let env = Env::on(place);
    ok(env.cubby(&["quota", "set", "-w", "a", "1KiB"]));
    let got = json(env.cubby(&["--json", "quota", "get", "-w", "a"]));
    assert_eq!(got["quota"]["max_bytes"], 1024);
    assert_eq!(got["quota"]["source"], "stored");
    let big = "x".repeat(1100);
    let out = env.cubby(&["run", guests::KVSH, "-w", "a", "--", "put", "big", &big]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("quota"), "{stderr}");
    ok(env.cubby(&["run", guests::KVSH, "-w", "a", "--", "put", "small", "x"]));
    // --quota on one command line still overrides for that run.
    ok(env.cubby(&["--quota", "a=1MiB", "kv", "set", "-w", "a", "big", &big]));
    let listed = json(env.cubby(&["--json", "workspace", "list", "--sort", "size"]));
    let row = &listed["workspaces"][0];
    assert_eq!(row["workspace"], "a");
    assert_eq!(row["quota"]["source"], "stored");
    assert!(row["used_percent"].as_f64().unwrap() > 100.0);
    ok(env.cubby(&["quota", "unset", "-w", "a"]));
    let got = json(env.cubby(&["--json", "quota", "get", "-w", "a"]));
    assert_eq!(got["quota"]["source"], "default");
    // Deleting a workspace removes its stored quota too.
    ok(env.cubby(&["quota", "set", "-w", "gone", "10KiB,5"]));
    let deleted = json(env.cubby(&["--json", "workspace", "delete", "-w", "gone", "--yes"]));
    assert_eq!(deleted["removed"], 0);
    let got = json(env.cubby(&["--json", "quota", "get", "-w", "gone"]));
    assert_eq!(got["quota"]["source"], "default");
    let pruned = json(env.cubby(&["--json", "kv", "prune"]));
    assert!(pruned["removed"].is_u64());
}

#[test]
fn completions_are_printed_for_each_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(env.cubby_bare(&["completions", shell]));
        assert!(script.contains("workspace"), "{shell}");
        assert!(script.contains("export"), "{shell}");
    }
    assert_eq!(
        env.cubby_bare(&["completions", "tcsh"]).status.code(),
        Some(2)
    );
}

fn large_values_stream_in_and_out_of_the_command_line(place: &Place) {
    let env = Env::on(place);
    // 3 MiB, over the 1 MiB value limit, that does not compress.
    let mut x = 88172645463325252u64;
    let big: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let file = env.dir.path().join("big.bin");
    std::fs::write(&file, &big).unwrap();
    let arg = format!("@{}", file.display());
    ok(env.cubby(&["kv", "set", "-w", "a", "-n", "files", "big", &arg]));
    let out = env.cubby(&["kv", "get", "-w", "a", "-n", "files", "big"]);
    assert!(out.status.success());
    assert!(out.stdout == big, "the value read back differs");
    let info: serde_json::Value = serde_json::from_str(&ok(
        env.cubby(&["--json", "kv", "info", "-w", "a", "-n", "files", "big"])
    ))
    .unwrap();
    assert_eq!(info["size"], 3 << 20);
    assert_eq!(info["streamed"], true);
    assert_eq!(info["compressed"], false);
    // --json refuses a value that large, and says how to get it.
    let line = one_line_error(env.cubby(&["--json", "kv", "get", "-w", "a", "-n", "files", "big"]));
    assert!(
        line.contains("without --json the value streams to stdout"),
        "{line}"
    );
    // A file larger than the largest streamed value is refused up front (a
    // sparse file: its size, no data).
    let huge = env.dir.path().join("huge.bin");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len((256 << 20) + 1)
        .unwrap();
    let line = one_line_error(env.cubby(&[
        "kv",
        "set",
        "-w",
        "a",
        "huge",
        &format!("@{}", huge.display()),
    ]));
    assert!(
        line.contains("larger than the largest streamed value")
            && line.contains("nothing was written"),
        "{line}"
    );
    assert!(
        !env.cubby(&["kv", "info", "-w", "a", "huge"])
            .status
            .success()
    );
    // From stdin, compressed; a small value stays a plain one unless asked.
    let mut child = env
        .command(&["kv", "set", "-w", "a", "text", "@-", "--compress"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &[b'z'; 2 << 20]).unwrap();
    assert!(child.wait().unwrap().success());
    let info: serde_json::Value =
        serde_json::from_str(&ok(env.cubby(&["--json", "kv", "info", "-w", "a", "text"]))).unwrap();
    assert_eq!(
        (info["size"].as_u64(), info["compressed"].as_bool()),
        (Some(2 << 20), Some(true))
    );
    assert!(info["stored_size"].as_u64().unwrap() < 10_000, "{info}");
    ok(env.cubby(&["kv", "set", "-w", "a", "small", "hello"]));
    assert!(ok(env.cubby(&["kv", "info", "-w", "a", "small"])).contains("streamed\tfalse"));
    // A long listing: each value's size and what it takes stored.
    let stored = info["stored_size"].as_u64().unwrap();
    assert_eq!(
        ok(env.cubby(&["kv", "list", "-w", "a", "-l"])),
        format!(
            "size\tstored\tstreamed\tcompressed\tversion\tkey\n\
             5\t5\tfalse\tfalse\t{}\tsmall\n\
             {}\t{stored}\ttrue\ttrue\t{}\ttext\n",
            version_of(&env, "small"),
            2 << 20,
            version_of(&env, "text"),
        )
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(
        env.cubby(&["--json", "kv", "list", "-w", "a", "--long"])
    ))
    .unwrap();
    assert_eq!(listed["entries"][1]["key"], "text");
    assert_eq!(listed["entries"][1]["stored_size"], stored);
    assert_eq!(listed["entries"][1]["size"], 2 << 20);
    // Exported and imported with the rest.
    let export = env.dir.path().join("a.cubby");
    ok(env.cubby(&[
        "workspace",
        "export",
        "-w",
        "a",
        "-o",
        &export.display().to_string(),
    ]));
    ok(env.cubby(&[
        "workspace",
        "import",
        "-w",
        "b",
        &export.display().to_string(),
    ]));
    let out = env.cubby(&["kv", "get", "-w", "b", "-n", "files", "big"]);
    assert!(out.stdout == big, "the imported value differs");
}

/// The version `kv info` gives for `key` of workspace `a`.
fn version_of(env: &Env, key: &str) -> u64 {
    let info: serde_json::Value =
        serde_json::from_str(&ok(env.cubby(&["--json", "kv", "info", "-w", "a", key]))).unwrap();
    info["version"].as_u64().unwrap()
}

fn the_files_example_streams_files_through_a_small_plugin(place: &Place) {
    let env = Env::on(place);
    let file = env.dir.path().join("in.bin");
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&file, &data).unwrap();
    let run = |args: &[&str], stdin: Option<&std::path::Path>| {
        let mut cmd = env.command(
            &[
                &[
                    "run",
                    guests::FILES,
                    "-w",
                    "docs",
                    "--max-memory",
                    "4MiB",
                    "--",
                ][..],
                args,
            ]
            .concat(),
        );
        if let Some(path) = stdin {
            cmd.stdin(std::fs::File::open(path).unwrap());
        }
        cmd.output().unwrap()
    };
    ok(run(&["put", "in.bin", "--compress"], Some(&file)));
    let out = run(&["get", "in.bin"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "the file read back differs");
    let info = ok(run(&["info", "in.bin"], None));
    assert!(
        info.starts_with("in.bin: 5000000 bytes, ") && info.contains("(compressed)"),
        "{info}"
    );
    assert_eq!(ok(run(&["list"], None)), "in.bin\t5000000\n");
    let out = env.cubby(&["kv", "get", "-w", "docs", "-n", "files", "in.bin"]);
    assert!(out.stdout == data, "the CLI reads what the plugin wrote");
    ok(run(&["rm", "in.bin"], None));
    assert_eq!(ok(run(&["list"], None)), "");
}

cubby_host::conformance_tests!(
    reopen the_files_example_streams_files_through_a_small_plugin,
    reopen large_values_stream_in_and_out_of_the_command_line,
    reopen export_and_import_move_a_workspace_between_databases,
    reopen a_stored_quota_binds_later_processes,
    reopen a_standard_keyvalue_guest_runs_and_its_bucket_is_a_namespace,
    reopen clearing_a_space_and_deleting_a_workspace_say_what_they_removed,
    reopen counter_counts_per_workspace_and_in_memory_starts_afresh,
    reopen notes_and_kv_inspection,
    reopen python_and_javascript_plugins_from_the_command_line,
    reopen namespaces_expiry_quotas_usage_and_prune_from_the_command_line,
);
