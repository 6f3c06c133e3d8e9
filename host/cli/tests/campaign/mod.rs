//! The kill -9 campaign: runs of the `writer` test plugin under `cubby run`,
//! each killed with SIGKILL at a random moment, each followed by a check of
//! everything the host acknowledged.
//!
//! Run `r` writes in workspace `crash-{r}`: keys `k0`, `k1`, … (each value
//! starts with its key's name), and after each key the counter `n`. The
//! plugin prints `set k{i}` and `n {value}` only after the host returned,
//! so every line read from it is an acknowledged write. After the kill, the
//! database is opened (a redb file by this process, which the killed one no
//! longer holds; PostgreSQL over a connection kept for the whole campaign)
//! and checked:
//! - every acknowledged key is there, with its own value;
//! - the counter is never behind its last acknowledged value, and never
//!   ahead of the keys written (each increment follows its key);
//! - the workspace's usage equals a recount of its entries.
//!
//! Every `streams_every`-th run writes streamed values instead (`writer
//! stream`: rounds of one key, each a value of one repeated byte, 600 KB in
//! three chunks): the key then holds the last acknowledged round whole (or
//! the one after it, published before its acknowledgement was printed),
//! never a mix, and usage equals a recount. (The write the kill cut off is
//! left for the sweeper, which `engine/tests/streams.rs` shows taking it.)
//!
//! Shared by the CI test (`tests/faults.rs`, a few runs per backend) and
//! the `crash-campaign` example, which `tests/crash/campaign` runs for
//! a thousand.

// Test support: a broken promise or a failing tool panics with the reason.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cubby_host::testing::audit;
use cubby_host::{Storage, StorageOptions};

/// What a campaign runs, and where.
pub struct Campaign {
    /// The `cubby` binary.
    pub cubby: PathBuf,
    /// The `writer` plugin.
    pub plugin: PathBuf,
    /// The compiled-plugin cache (`CUBBY_CACHE_DIR`).
    pub cache_dir: PathBuf,
    /// What `--db` takes: a redb file, or a PostgreSQL URL.
    pub db: String,
    /// How many runs.
    pub runs: u32,
    /// The longest a run lives before its kill (each picks a time at
    /// random up to this).
    pub max_life: Duration,
    /// The seed of the kill times.
    pub seed: u64,
    /// Every this many runs, one writes streamed values (0: none).
    pub streams_every: u32,
}

/// The size of the streamed values of a streaming run.
const STREAM_SIZE: u64 = 600_000;

/// What a campaign found.
#[derive(Debug, Default)]
pub struct Report {
    /// Runs done.
    pub runs: u32,
    /// Runs killed before the plugin acknowledged anything.
    pub silent_runs: u32,
    /// Writes acknowledged (keys and increments).
    pub acknowledged: u64,
    /// Acknowledged writes not found afterwards (must be 0).
    pub lost: u64,
    /// Broken promises found (must be 0).
    pub broken: u64,
    /// The first few of them, described.
    pub problems: Vec<String>,
}

impl Report {
    /// Counts a broken promise of workspace `ws`, and describes the first
    /// few.
    fn problem(&mut self, ws: &str, what: &str) {
        self.broken += 1;
        if self.problems.len() < 20 {
            self.problems.push(format!("{ws}: {what}"));
        }
    }
}

impl Campaign {
    /// Runs the campaign; `progress` is called after each run.
    pub fn run(&self, mut progress: impl FnMut(&Report)) -> Report {
        let mut rng = fastrand::Rng::with_seed(self.seed);
        let mut report = Report::default();
        let postgres = self.db.starts_with("postgres");
        // PostgreSQL is opened once; a redb file only between runs (one
        // process at a time).
        let shared = postgres.then(|| open(&self.db));
        for run in 0..self.runs {
            let ws = format!("crash-{run}");
            let life = self.max_life.mul_f64(rng.f64());
            let streaming = self.streams_every > 0 && run % self.streams_every == 0;
            // On redb, a streaming run has a file of its own: its replaced
            // values stay 10 minutes for their readers, and would make
            // every later run's open (which verifies the whole file) slower.
            let db = if streaming && !postgres {
                format!("{}.stream-{run}", self.db)
            } else {
                self.db.clone()
            };
            let acked = self.killed_run(&db, &ws, life, streaming);
            report.runs += 1;
            let acks = acked.keys.len() as u64 + acked.n.unwrap_or(0) as u64;
            let acks = acks + acked.stream.map_or(0, |r| r + 1);
            report.silent_runs += u32::from(acks == 0);
            report.acknowledged += acks;
            let check = if streaming { check_stream } else { check };
            match &shared {
                Some(storage) => check(storage, &ws, &acked, &mut report),
                None => check(&open(&db), &ws, &acked, &mut report),
            }
            if db != self.db {
                let _ = std::fs::remove_file(&db);
            }
            progress(&report);
        }
        report
    }

    /// Starts the plugin on database `db` in workspace `ws`, kills it after
    /// `life`, and returns what it acknowledged.
    fn killed_run(&self, db: &str, ws: &str, life: Duration, streaming: bool) -> Acked {
        let stream_args = ["--", "stream", &STREAM_SIZE.to_string()].map(String::from);
        let args: &[String] = if streaming { &stream_args } else { &[] };
        let mut child = Command::new(&self.cubby)
            .args(["--db", db, "run", "-w", ws])
            .arg(&self.plugin)
            .args(args)
            .env("CUBBY_CACHE_DIR", &self.cache_dir)
            .env_remove("CUBBY_DB")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.cubby.display()));
        let stdout = child.stdout.take().expect("piped");
        let reader = std::thread::spawn(move || read_acks(BufReader::new(stdout)));
        let started = Instant::now();
        while started.elapsed() < life {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut err) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
                }
                panic!("the writer stopped by itself ({status}): {stderr}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // SIGKILL: no destructor, no flush, no clean shutdown.
        child.kill().expect("kill");
        child.wait().expect("wait");
        reader.join().expect("the reader thread")
    }
}

/// Opens the database `db` after a kill.
fn open(db: &str) -> Storage {
    let opened = if db.starts_with("postgres") {
        Storage::connect(db, StorageOptions::default())
    } else {
        Storage::open(db, StorageOptions::default())
    };
    opened.unwrap_or_else(|e| panic!("the database does not open after a kill: {e:?}"))
}

/// What one run acknowledged.
#[derive(Debug, Default)]
struct Acked {
    keys: Vec<String>,
    /// The last counter value printed.
    n: Option<i64>,
    /// The last streamed round printed.
    stream: Option<u64>,
}

/// The acknowledgements, up to the kill: whole lines only (a line cut by
/// the kill acknowledges nothing).
fn read_acks(mut out: impl BufRead) -> Acked {
    let mut acked = Acked::default();
    let mut line = String::new();
    loop {
        line.clear();
        match out.read_line(&mut line) {
            Ok(0) | Err(_) => return acked,
            Ok(_) if !line.ends_with('\n') => return acked,
            Ok(_) => {}
        }
        let line = line.trim_end();
        if let Some(key) = line.strip_prefix("set ") {
            acked.keys.push(key.to_owned());
        } else if let Some(n) = line.strip_prefix("n ").and_then(|n| n.parse().ok()) {
            acked.n = Some(n);
        } else if let Some(r) = line.strip_prefix("stream ").and_then(|r| r.parse().ok()) {
            acked.stream = Some(r);
        }
    }
}

/// Checks one run's workspace against what it acknowledged.
fn check(storage: &Storage, ws: &str, acked: &Acked, report: &mut Report) {
    let mut problem = |what: String| report.problem(ws, &what);
    let workspace = storage
        .workspace(ws)
        .unwrap_or_else(|e| panic!("workspace {ws}: {e:?}"));
    let mut values = Vec::with_capacity(acked.keys.len());
    // In pieces within the batch limit.
    for keys in acked.keys.chunks(500) {
        let got = workspace.get_many(keys);
        values.extend(got.unwrap_or_else(|e| panic!("reading {ws}: {e:?}")));
    }
    let mut lost = 0;
    for (key, value) in acked.keys.iter().zip(values) {
        match value {
            Some(v) if v.starts_with(key.as_bytes()) && v.get(key.len()) == Some(&b'.') => {}
            Some(_) => problem(format!("{key} holds another value")),
            None => {
                lost += 1;
                problem(format!("acknowledged {key} is missing"));
            }
        }
    }
    let stored_n = match workspace.get("n") {
        Ok(Some(v)) => String::from_utf8_lossy(&v).parse::<i64>().unwrap_or(-1),
        Ok(None) => 0,
        Err(e) => panic!("reading {ws}/n: {e:?}"),
    };
    if let Some(n) = acked.n.filter(|&n| stored_n < n) {
        lost += (n - stored_n) as u64;
        problem(format!(
            "the counter is {stored_n}, behind its acknowledged {n}"
        ));
    }
    let a = audit(storage, ws);
    // Every key but the counter is one of the writer's keys.
    let keys = a.recounted.keys.saturating_sub(u64::from(stored_n > 0));
    if stored_n as u64 > keys {
        problem(format!(
            "the counter {stored_n} is ahead of the {keys} keys"
        ));
    }
    if a.stored_usage != a.recounted || a.stored_usage != a.stored_namespace_usage {
        problem(format!("usage is not a recount: {a:?}"));
    }
    report.lost += lost;
}

/// Checks a streaming run's workspace: the key holds a whole round at
/// least as recent as the last acknowledged one, and usage is a recount.
fn check_stream(storage: &Storage, ws: &str, acked: &Acked, report: &mut Report) {
    let mut lost = 0;
    let mut problem = |what: String| report.problem(ws, &what);
    let workspace = storage
        .workspace(ws)
        .unwrap_or_else(|e| panic!("workspace {ws}: {e:?}"));
    let value = match workspace.read_stream("s") {
        Ok(Some(mut reader)) => {
            let mut value = Vec::new();
            match std::io::Read::read_to_end(&mut reader, &mut value) {
                Ok(_) => Some(value),
                Err(e) => {
                    problem(format!("the value does not read back: {e}"));
                    return;
                }
            }
        }
        Ok(None) => None,
        Err(e) => panic!("reading {ws}/s: {e:?}"),
    };
    match (&value, acked.stream) {
        (None, None) => {}
        (None, Some(r)) => {
            lost += 1;
            problem(format!("acknowledged round {r} is missing"));
        }
        (Some(v), last) => {
            let round = v.first().copied().unwrap_or(0);
            let whole = v.len() as u64 == STREAM_SIZE && v.iter().all(|b| *b == round);
            let recent = last.is_none_or(|r| {
                let r = (r % 251) as u8;
                round == r || round == ((r as u16 + 1) % 251) as u8
            });
            if !whole {
                problem(format!(
                    "the value is not one round whole ({} bytes)",
                    v.len()
                ));
            } else if !recent {
                lost += 1;
                problem(format!(
                    "holds round byte {round}, behind acknowledged {last:?}"
                ));
            }
        }
    }
    let a = audit(storage, ws);
    if a.stored_usage != a.recounted || a.stored_usage != a.stored_namespace_usage {
        problem(format!("usage is not a recount: {a:?}"));
    }
    report.lost += lost;
}
