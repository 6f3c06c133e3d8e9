//! The `serve_metrics` example host, started as its own process and scraped
//! over HTTP on 127.0.0.1: after calls that end in every way (a trap, a
//! timeout, the memory limit, a busy pool, a quota refusal, a conflict, a
//! sweep), every metric in the README's table is there and has moved as
//! those calls say; on PostgreSQL also a statement timeout, a retry after a
//! lost connection and the pool's waits.
//!
//! `cargo test` builds the example before it runs the tests; run alone, this
//! test needs `cargo build -p cubby-host --example serve_metrics` first.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cubby_host::telemetry::names;
use cubby_host::testing::{HeldWorkspace, Place, query_i64s};

/// The example host, running.
struct Example {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
}

impl Example {
    fn start(args: &[String]) -> Self {
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
        // target/<profile>/deps/this-test → target/<profile>/examples/…
        let path: PathBuf = exe
            .parent()
            .and_then(|deps| deps.parent())
            .map(|profile| profile.join("examples/serve_metrics"))
            .unwrap_or_else(|| panic!("no target folder above {}", exe.display()));
        assert!(
            path.exists(),
            "{} is not built: run `cargo build -p cubby-host --example serve_metrics` \
             (plain `cargo test` builds it)",
            path.display()
        );
        let mut child = Command::new(&path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut first = String::new();
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        BufReader::new(stdout)
            .read_line(&mut first)
            .unwrap_or_else(|e| panic!("reading the example's first line: {e}"));
        let addr = first
            .trim()
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("first line is not a URL: {first:?}"))
            .to_owned();
        Self { child, addr }
    }

    /// One HTTP request; its status and body.
    fn http(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.addr));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .unwrap_or_else(|e| panic!("sending {method} {path}: {e}"));
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .unwrap_or_else(|e| panic!("reading the answer to {method} {path}: {e}"));
        let (head, body) = response
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP answer: {response:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        (status, body.to_owned())
    }

    fn call(&self, plugin: &str, workspace: &str, request: &str) -> (u16, String) {
        self.http("POST", &format!("/call/{plugin}/{workspace}"), request)
    }

    /// A call that must answer 200 with `expected` in its answer.
    fn ok(&self, workspace: &str, request: &str, expected: &str) {
        let (status, body) = self.call("probe", workspace, request);
        assert_eq!(status, 200, "{request}: {body}");
        assert!(body.contains(expected), "{request}: {body}");
    }

    fn scrape(&self) -> Scrape {
        let (status, body) = self.http("GET", "/metrics", "");
        assert_eq!(status, 200, "{body}");
        Scrape::parse(&body)
    }

    /// Scrapes until `done` holds (at most 20 s).
    fn scrape_until(&self, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
        let start = Instant::now();
        loop {
            let scrape = self.scrape();
            if done(&scrape) {
                return scrape;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{what} never showed: {scrape:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One sample: its metric's name, its labels and its value.
type Sample = (String, Vec<(String, String)>, f64);

/// One scrape: every sample, and the metrics that have a `# HELP` line.
#[derive(Debug)]
struct Scrape(Vec<Sample>, BTreeSet<String>);

impl Scrape {
    fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (series, value) = line
                    .rsplit_once(' ')
                    .unwrap_or_else(|| panic!("not a sample: {line}"));
                let value = value.parse().unwrap_or_else(|e| panic!("{line}: {e}"));
                let (name, labels) = match series.split_once('{') {
                    None => (series, Vec::new()),
                    Some((name, rest)) => {
                        let labels = rest
                            .trim_end_matches('}')
                            .split("\",")
                            .filter(|l| !l.is_empty())
                            .map(|l| {
                                let (k, v) = l
                                    .split_once('=')
                                    .unwrap_or_else(|| panic!("label {l} in {line}"));
                                (k.to_owned(), v.trim_matches('"').to_owned())
                            })
                            .collect();
                        (name, labels)
                    }
                };
                (name.to_owned(), labels, value)
            })
            .collect();
        let described = text
            .lines()
            .filter_map(|l| l.strip_prefix("# HELP "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_owned)
            .collect();
        Self(samples, described)
    }

    /// The sum of the samples of `name` that carry every label of `labels`.
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Whether any sample of `metric` (a histogram's samples included)
    /// was scraped.
    fn has(&self, metric: &str) -> bool {
        self.0.iter().any(|(n, _, _)| {
            n == metric
                || n.strip_prefix(metric)
                    .is_some_and(|s| ["_bucket", "_sum", "_count"].contains(&s))
        })
    }
}

/// The metric names of the README's metrics table.
fn readme_metrics() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .unwrap_or_else(|e| panic!("README.md: {e}"));
    readme
        .lines()
        .filter(|l| l.starts_with("| `cubby_"))
        .map(|l| l[3..].split('`').next().unwrap_or_default().to_owned())
        .collect()
}

/// Every metric of the README's table that `on_this_backend` keeps is in
/// `scrape`, and they are the metrics this test `checked`.
fn scraped_as_the_readme_lists(
    scrape: &Scrape,
    checked: &BTreeSet<&str>,
    on_this_backend: impl Fn(&str) -> bool,
) {
    let listed: BTreeSet<String> = readme_metrics()
        .into_iter()
        .filter(|m| on_this_backend(m))
        .collect();
    for metric in &listed {
        assert!(scrape.has(metric), "{metric} is not in the scrape");
        // `telemetry::describe()` gave the recorder its help text.
        assert!(scrape.1.contains(metric), "{metric} has no # HELP line");
    }
    assert_eq!(
        listed,
        checked.iter().map(|m| m.to_string()).collect(),
        "the README's table and this test name different metrics"
    );
}

/// The example's options for a place.
fn args(place: &Place, statement_timeout_ms: u64) -> Vec<String> {
    let mut args: Vec<String> = [
        "--max-instances",
        "2",
        "--timeout-ms",
        "3000",
        "--max-memory-mib",
        "16",
        "--max-keys",
        "5",
    ]
    .map(String::from)
    .to_vec();
    match place.backend() {
        cubby_host::testing::Backend::Redb => {
            args.extend(["--db".into(), place.db_arg()]);
        }
        cubby_host::testing::Backend::Postgres => {
            let url = place
                .db_arg()
                .replacen('?', "?application_name=cubby_metrics&", 1);
            args.extend([
                "--postgres".into(),
                url,
                "--pool-size".into(),
                "2".into(),
                "--statement-timeout-ms".into(),
                statement_timeout_ms.to_string(),
            ]);
        }
    }
    args
}

/// The calls every backend gets, and what they must have moved.
fn calls_on_every_backend(example: &Example) -> BTreeSet<&'static str> {
    // Work that succeeds, in two workspaces.
    example.ok("a", r#"{"op":"set","key":"k","value":"hello"}"#, "ok");
    example.ok("a", r#"{"op":"get","key":"k"}"#, "hello");
    example.ok("b", r#"{"op":"incr","key":"n","delta":2}"#, "2");
    // A refused condition, and a quota refusal (at most 5 keys).
    example.ok(
        "a",
        r#"{"op":"put","key":"k","value":"x","if_absent":true}"#,
        "",
    );
    let six: Vec<(String, String)> = (0..6).map(|i| (format!("q{i}"), "v".into())).collect();
    let request = serde_json::json!({"op":"set-many","entries":six}).to_string();
    example.ok("c", &request, "");
    // An entry that expires at once, for the sweeper.
    example.ok(
        "d",
        r#"{"op":"put","key":"gone","value":"v","ttl_ms":1}"#,
        "",
    );
    // The plugin's own error, a trap, the memory limit.
    assert_eq!(example.call("probe", "a", r#"{"op":"no-such-op"}"#).0, 422);
    assert_eq!(example.call("probe", "a", r#"{"op":"panic"}"#).0, 500);
    assert_eq!(example.call("probe", "a", r#"{"op":"grow"}"#).0, 500);
    // Two calls that run until the time limit hold both slots; a third
    // finds none free.
    std::thread::scope(|s| {
        let spinning: Vec<_> = (0..2)
            .map(|_| s.spawn(|| example.call("probe", "e", r#"{"op":"spin"}"#).0))
            .collect();
        let scrape = example.scrape_until("two slots in use", |s| {
            s.sum(names::INSTANCE_SLOTS_IN_USE, &[]) == 2.0
        });
        assert_eq!(scrape.sum(names::INSTANCE_SLOTS, &[]), 2.0);
        assert_eq!(
            example.call("probe", "e", r#"{"op":"get","key":"k"}"#).0,
            503
        );
        for spin in spinning {
            assert_eq!(
                spin.join().unwrap_or_else(|_| panic!("a caller panicked")),
                504
            );
        }
    });

    let scrape = example.scrape_until("the sweep", |s| s.sum(names::SWEEPER_REMOVED, &[]) >= 1.0);
    let calls = |outcome| {
        scrape.sum(
            names::PLUGIN_CALLS,
            &[("plugin", "probe"), ("outcome", outcome)],
        )
    };
    assert!(calls("ok") >= 6.0, "{scrape:?}");
    for outcome in ["plugin-error", "trap", "memory-limit", "busy"] {
        assert_eq!(calls(outcome), 1.0, "{outcome}: {scrape:?}");
    }
    assert_eq!(calls("timeout"), 2.0, "{scrape:?}");
    let durations = format!("{}_count", names::PLUGIN_CALL_DURATION);
    assert_eq!(
        scrape.sum(&durations, &[("plugin", "probe")]),
        scrape.sum(names::PLUGIN_CALLS, &[("plugin", "probe")]),
        "every call is timed"
    );
    assert_eq!(scrape.sum(names::INSTANCE_SLOTS_IN_USE, &[]), 0.0);
    assert!(
        scrape
            .0
            .iter()
            .all(|(_, l, _)| l.iter().all(|(k, _)| k != "workspace")),
        "a workspace label without --workspace-label: {scrape:?}"
    );
    let ops = |op, outcome| {
        scrape.sum(
            names::STORAGE_OPERATIONS,
            &[("operation", op), ("outcome", outcome)],
        )
    };
    assert!(ops("set", "ok") >= 1.0, "{scrape:?}");
    assert!(ops("get", "ok") >= 1.0, "{scrape:?}");
    assert!(ops("increment", "ok") >= 1.0, "{scrape:?}");
    assert_eq!(ops("set", "conflict"), 1.0, "{scrape:?}");
    assert_eq!(ops("set-many", "quota-exceeded"), 1.0, "{scrape:?}");
    // "hello" read once; "hello", "v" (the expiring entry) and the
    // counter's value written at least.
    assert!(
        scrape.sum(names::STORAGE_READ_BYTES, &[]) >= 5.0,
        "{scrape:?}"
    );
    assert!(
        scrape.sum(names::STORAGE_WRITTEN_BYTES, &[]) >= 6.0,
        "{scrape:?}"
    );
    let groups = format!("{}_count", names::COMMIT_GROUP_SIZE);
    assert!(scrape.sum(&groups, &[]) >= 3.0, "{scrape:?}");
    assert!(scrape.sum(names::DURABLE_COMMITS, &[]) >= 3.0, "{scrape:?}");
    [
        names::PLUGIN_CALLS,
        names::PLUGIN_CALL_DURATION,
        names::INSTANCE_SLOTS_IN_USE,
        names::INSTANCE_SLOTS,
        names::STORAGE_OPERATIONS,
        names::STORAGE_READ_BYTES,
        names::STORAGE_WRITTEN_BYTES,
        names::COMMIT_GROUP_SIZE,
        names::DURABLE_COMMITS,
        names::SWEEPER_REMOVED,
    ]
    .into()
}

#[test]
fn every_metric_moves_as_the_calls_say_on_redb() {
    let place = Place::redb_file();
    let example = Example::start(&args(&place, 0));
    let checked = calls_on_every_backend(&example);
    let scrape = example.scrape();
    scraped_as_the_readme_lists(&scrape, &checked, |m| !m.starts_with("cubby_postgres_"));
    assert!(
        scrape
            .0
            .iter()
            .filter(|(n, _, _)| n.starts_with("cubby_storage"))
            .all(|(_, l, _)| l.iter().all(|(k, v)| k != "backend" || v == "redb"))
    );
}

#[test]
fn every_metric_moves_as_the_calls_say_on_postgres() {
    let Some(place) = Place::postgres() else {
        return;
    };
    let example = Example::start(&args(&place, 1500));
    let mut checked = calls_on_every_backend(&example);

    // A write that waits for a workspace another session holds past the
    // statement timeout fails as unavailable (the plugin sees the error).
    example.ok("held", r#"{"op":"set","key":"k","value":"v"}"#, "ok");
    let held = HeldWorkspace::hold(&place.db_arg(), "held");
    example.ok("held", r#"{"op":"set","key":"k","value":"w"}"#, "");
    held.release();
    // A write whose connection is lost while it waits is tried again on a
    // fresh one, and succeeds.
    let held = HeldWorkspace::hold(&place.db_arg(), "held");
    std::thread::scope(|s| {
        let write =
            s.spawn(|| example.call("probe", "held", r#"{"op":"set","key":"k","value":"x"}"#));
        let start = Instant::now();
        while query_i64s(
            &place.db_arg(),
            "SELECT count(pg_terminate_backend(pid))::int8 FROM pg_stat_activity \
             WHERE application_name = 'cubby_metrics' AND wait_event_type = 'Lock'",
        ) != [1]
        {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the write never waited"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        held.release();
        let (status, body) = write
            .join()
            .unwrap_or_else(|_| panic!("the caller panicked"));
        assert_eq!((status, body.contains("\"ok\"")), (200, true), "{body}");
    });
    example.ok("held", r#"{"op":"get","key":"k"}"#, "x");

    let scrape = example.scrape();
    let unavailable = scrape.sum(
        names::STORAGE_OPERATIONS,
        &[
            ("operation", "set"),
            ("backend", "postgres"),
            ("outcome", "unavailable"),
        ],
    );
    assert_eq!(unavailable, 1.0, "{scrape:?}");
    assert_eq!(
        scrape.sum(
            names::POSTGRES_UNAVAILABLE,
            &[("reason", "statement-timeout")]
        ),
        1.0,
        "{scrape:?}"
    );
    assert_eq!(
        scrape.sum(names::POSTGRES_RETRIES, &[("reason", "connection-lost")]),
        1.0,
        "{scrape:?}"
    );
    let waits = format!("{}_count", names::POSTGRES_POOL_WAIT);
    assert!(scrape.sum(&waits, &[]) >= 10.0, "{scrape:?}");
    checked.extend([
        names::POSTGRES_UNAVAILABLE,
        names::POSTGRES_RETRIES,
        names::POSTGRES_POOL_WAIT,
    ]);
    scraped_as_the_readme_lists(&scrape, &checked, |_| true);
}
