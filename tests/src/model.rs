//! The concurrent model campaign's worker: random operations with hostile
//! keys on one workspace, each answer checked against a plain model of
//! that workspace (a `BTreeMap`). Several workers run at once, each on its
//! own workspace, the ids of which are prefixes of one another; since no
//! other worker touches its workspace, every answer is exactly predictable,
//! and any leak between workspaces, lost write, half-applied batch or
//! wrong count shows as a mismatch.
//!
//! Used by threads of one process (redb) and by `storage-worker model`
//! processes (PostgreSQL), from `tests/tests/concurrent_model.rs`.

use std::collections::BTreeMap;

use cubby_host::ops::{Condition, Op, Outcome, Usage, WriteOptions};
use cubby_host::{StorageError, Workspace};

/// A workspace's content: (namespace, key) → value.
pub type Model = BTreeMap<(String, String), Vec<u8>>;

/// Workspace ids that are prefixes of one another (each worker gets one).
pub const WORKSPACES: &[&str] = &[
    "m", "m-", "m-1", "m-1.", "m-1.x", "m_", "m:", "m:m", "mm", "m-10", "m-1.xy", "m__",
];

/// Namespaces, one the prefix of another, one with a NUL.
const NAMESPACES: &[&str] = &["", "n", "n\0", "n/x", "N"];

/// Keys that have broken key-value stores: SQL and LIKE metacharacters,
/// NUL and control bytes, separators, right-to-left marks, multi-byte
/// characters, the longest key allowed, and two that are refused (empty,
/// and one byte too long).
fn hostile_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "a",
        "a\0",
        "a\0b",
        "ab",
        "a/b",
        "a%2F",
        "%",
        "_",
        "a%",
        "a_",
        "*",
        "a*",
        "'; DROP TABLE cubby_entries; --",
        "\\x00",
        " ",
        "a b",
        "\n",
        "\u{202e}rtl",
        "ключ",
        "🔑",
        "a\u{0}\u{0}",
        "\u{ffff}",
        "~",
        "\u{7f}",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    keys.push("k".repeat(1024));
    keys.push(String::new());
    keys.push("k".repeat(1025));
    keys
}

/// The key limit of the default options (the hostile keys test both
/// sides of it).
const MAX_KEY: usize = 1024;

fn key_ok(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY
}

/// What a worker found.
#[derive(Debug, Default)]
pub struct Found {
    /// Operations done.
    pub ops: u64,
    /// Answers that differed from the model (the first few described).
    pub mismatches: u64,
    /// Descriptions of the first mismatches.
    pub first: Vec<String>,
    /// The model at the end: what the workspace must hold.
    pub model: Model,
}

/// Runs `ops` random operations on `ws` from `seed`, checking each.
/// A storage error the model does not predict is a mismatch too.
pub fn run(ws: &Workspace, seed: u64, ops: u64) -> Found {
    let mut w = Worker {
        ws,
        rng: fastrand::Rng::with_seed(seed),
        keys: hostile_keys(),
        found: Found::default(),
        last_version: 0,
    };
    for _ in 0..ops {
        w.step();
        w.found.ops += 1;
    }
    w.found
}

/// A model as text lines (hex), to pass from a worker process.
pub fn encode(model: &Model) -> Vec<String> {
    model
        .iter()
        .map(|((ns, key), v)| format!("{} {} {}", hex(ns.as_bytes()), hex(key.as_bytes()), hex(v)))
        .collect()
}

/// The model [`encode`] wrote.
pub fn decode<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<Model> {
    lines
        .into_iter()
        .map(|line| {
            let mut parts = line.split(' ');
            let ns = String::from_utf8(unhex(parts.next()?)?).ok()?;
            let key = String::from_utf8(unhex(parts.next()?)?).ok()?;
            Some(((ns, key), unhex(parts.next()?)?))
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "-".into();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text == "-" {
        return Some(Vec::new());
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

struct Worker<'a> {
    ws: &'a Workspace,
    rng: fastrand::Rng,
    keys: Vec<String>,
    found: Found,
    /// The highest version a write answered: each must be higher.
    last_version: u64,
}

impl Worker<'_> {
    fn ns(&mut self) -> &'static str {
        NAMESPACES[self.rng.usize(..NAMESPACES.len())]
    }

    fn key(&mut self) -> String {
        self.keys[self.rng.usize(..self.keys.len())].clone()
    }

    fn value(&mut self) -> Vec<u8> {
        let len = self.rng.usize(0..40);
        (0..len).map(|_| self.rng.u8(..)).collect()
    }

    fn mismatch(&mut self, what: String) {
        self.found.mismatches += 1;
        if self.found.first.len() < 20 {
            self.found
                .first
                .push(format!("{}: op {}: {what}", self.ws.id(), self.found.ops));
        }
    }

    fn check<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.mismatch(format!("{what}: got {got:?}, the model says {want:?}"));
        }
    }

    /// A version a write answered: higher than every earlier one.
    fn version(&mut self, what: &str, version: u64) {
        if version <= self.last_version {
            let last = self.last_version;
            self.mismatch(format!("{what}: version {version} after {last}"));
        }
        self.last_version = self.last_version.max(version);
    }

    fn get_model(&self, ns: &str, key: &str) -> Option<&Vec<u8>> {
        self.found.model.get(&(ns.to_owned(), key.to_owned()))
    }

    fn step(&mut self) {
        let ns = self.ns();
        let key = self.key();
        let space = match self.ws.namespace(ns) {
            Ok(space) => space,
            Err(e) => return self.mismatch(format!("namespace {ns:?}: {e:?}")),
        };
        let what = format!("{:?} in {ns:?}", short(&key));
        match self.rng.u8(0..100) {
            0..=19 => {
                let value = self.value();
                match space.set(&key, value.clone()) {
                    Ok(v) if key_ok(&key) => {
                        self.version(&what, v);
                        self.found.model.insert((ns.into(), key), value);
                    }
                    other => self.expect_invalid(&format!("set {what}"), &key, other.map(drop)),
                }
            }
            20..=39 => {
                let want = key_ok(&key).then(|| self.get_model(ns, &key).cloned());
                let got = space.get(&key);
                self.answer(&format!("get {what}"), got, want);
            }
            40..=47 => {
                let want = key_ok(&key).then(|| self.get_model(ns, &key).is_some());
                let got = space.delete(&key);
                if key_ok(&key) {
                    self.found.model.remove(&(ns.into(), key.clone()));
                }
                self.answer(&format!("delete {what}"), got, want);
            }
            48..=53 => {
                let want = key_ok(&key).then(|| self.get_model(ns, &key).is_some());
                let got = space.exists(&key);
                self.answer(&format!("exists {what}"), got, want);
            }
            54..=61 => self.increment(&space, ns, key, &what),
            62..=67 => self.conditional(&space, ns, key, &what),
            68..=75 => self.batch(&space, ns),
            76..=83 => self.transaction(),
            84..=91 => self.list(&space, ns),
            92..=95 => {
                let (keys, bytes) = self
                    .found
                    .model
                    .iter()
                    .fold((0, 0), |(k, b), ((_, key), v)| {
                        (k + 1, b + (key.len() + v.len()) as u64)
                    });
                let got = self.ws.usage();
                self.answer("usage", got, Some(Usage { keys, bytes }));
            }
            96..=98 => self.namespaces(),
            _ => {
                let got = space.clear_all();
                let before = self.found.model.len();
                self.found.model.retain(|(n, _), _| n != ns);
                let removed = (before - self.found.model.len()) as u64;
                self.answer(&format!("clear {ns:?}"), got, Some(removed));
            }
        }
    }

    /// `got` against `want`, where `None` means the key is refused.
    fn answer<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: &str,
        got: Result<T, StorageError>,
        want: Option<T>,
    ) {
        match (got, want) {
            (Ok(got), Some(want)) => self.check(what, got, want),
            (Err(StorageError::InvalidKey(_)), None) => {}
            (got, want) => self.mismatch(format!("{what}: got {got:?}, the model says {want:?}")),
        }
    }

    /// A refusal of an invalid key, and nothing else.
    fn expect_invalid(&mut self, what: &str, key: &str, got: Result<(), StorageError>) {
        match (got, key_ok(key)) {
            (Err(StorageError::InvalidKey(_)), false) => {}
            (got, ok) => self.mismatch(format!("{what}: got {got:?}; key valid: {ok}")),
        }
    }

    fn increment(&mut self, space: &cubby_host::Namespace, ns: &str, key: String, what: &str) {
        let delta = self.rng.i64(-5..=5);
        let got = space.increment(&key, delta, None);
        if !key_ok(&key) {
            return self.expect_invalid(what, &key, got.map(drop));
        }
        let current = self.get_model(ns, &key).cloned();
        let parsed = match &current {
            None => Some(0),
            Some(v) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok()),
        };
        match (got, parsed) {
            (Ok(n), Some(before)) => {
                self.check(&format!("increment {what}"), n, before + delta);
                self.found
                    .model
                    .insert((ns.into(), key), (before + delta).to_string().into_bytes());
            }
            (Err(StorageError::NotACounter), None) => {}
            (got, want) => self.mismatch(format!(
                "increment {what}: got {got:?}, the model has {current:?} ({want:?})"
            )),
        }
    }

    /// Insert-if-absent, and compare-and-swap with the current or a stale
    /// version.
    fn conditional(&mut self, space: &cubby_host::Namespace, ns: &str, key: String, what: &str) {
        let value = self.value();
        let present = self.get_model(ns, &key).is_some();
        if self.rng.bool() {
            let got = space.set_with(&key, value.clone(), WriteOptions::default().if_absent());
            match got {
                Ok(v) if key_ok(&key) && !present => {
                    self.version(what, v);
                    self.found.model.insert((ns.into(), key), value);
                }
                Err(StorageError::Conflict { .. }) if key_ok(&key) && present => {}
                other => {
                    self.expect_invalid(&format!("insert-if-absent {what}"), &key, other.map(drop))
                }
            }
            return;
        }
        let entry = match space.entry(&key) {
            Ok(entry) => entry,
            Err(e) => return self.expect_invalid(&format!("entry {what}"), &key, Err(e)),
        };
        let Some(entry) = entry else {
            return self.check(&format!("entry {what}"), false, present);
        };
        self.check(
            &format!("entry {what}"),
            Some(&entry.value),
            self.get_model(ns, &key).cloned().as_ref(),
        );
        let stale = self.rng.bool();
        let version = if stale {
            entry.version - 1
        } else {
            entry.version
        };
        let got = space.set_with(
            &key,
            value.clone(),
            WriteOptions::default().if_version(version),
        );
        match got {
            Ok(v) if !stale => {
                self.version(what, v);
                self.found.model.insert((ns.into(), key), value);
            }
            Err(StorageError::Conflict { current, .. }) if stale => {
                let now = current.map(|e| e.value);
                self.check(
                    &format!("conflict {what}"),
                    now.as_ref(),
                    Some(&entry.value),
                );
            }
            got => self.mismatch(format!("cas {what} (stale {stale}): {got:?}")),
        }
    }

    /// `set_many` or `delete_many` of a few keys: all or nothing.
    fn batch(&mut self, space: &cubby_host::Namespace, ns: &str) {
        let keys: Vec<String> = (0..self.rng.usize(1..6)).map(|_| self.key()).collect();
        let all_ok = keys.iter().all(|k| key_ok(k));
        if self.rng.bool() {
            let entries: Vec<(String, Vec<u8>)> =
                keys.iter().map(|k| (k.clone(), self.value())).collect();
            let got = space.set_many(entries.clone());
            match got {
                Ok(()) if all_ok => {
                    for (k, v) in entries {
                        self.found.model.insert((ns.into(), k), v);
                    }
                }
                Err(StorageError::InvalidKey(_)) if !all_ok => {}
                got => self.mismatch(format!(
                    "set_many in {ns:?}: {got:?} (keys valid: {all_ok})"
                )),
            }
        } else {
            let got = space.delete_many(&keys);
            let mut unique = keys.clone();
            unique.sort();
            unique.dedup();
            let want = all_ok.then(|| {
                unique
                    .iter()
                    .filter(|k| {
                        self.found
                            .model
                            .contains_key(&(ns.to_owned(), (*k).clone()))
                    })
                    .count() as u64
            });
            if all_ok {
                for k in &unique {
                    self.found.model.remove(&(ns.to_owned(), k.clone()));
                }
            }
            self.answer(&format!("delete_many in {ns:?}"), got, want);
        }
    }

    /// A transaction over two namespaces, guarded by a condition that
    /// holds or not: all of it, or none.
    fn transaction(&mut self) {
        let (ns1, ns2) = (self.ns(), self.ns());
        let (k1, k2) = (self.key(), self.key());
        if !key_ok(&k1) || !key_ok(&k2) {
            return;
        }
        let value = self.value();
        let guard_holds = self.rng.bool();
        let condition = match (guard_holds, self.get_model(ns2, &k2).cloned()) {
            (true, Some(current)) => Condition::ValueEquals(current),
            (true, None) | (false, Some(_)) => Condition::Absent,
            (false, None) => Condition::ValueEquals(b"never stored".to_vec()),
        };
        let ops = vec![
            Op::check(k2.clone(), condition).in_namespace(ns2),
            Op::set(k1.clone(), value.clone()).in_namespace(ns1),
            Op::delete(k2.clone()).in_namespace(ns2),
        ];
        let got = self.ws.transact(ops);
        let what = format!(
            "transaction {:?}/{:?}, {:?}/{:?}",
            ns1,
            short(&k1),
            ns2,
            short(&k2)
        );
        match got {
            Ok(outcomes) if guard_holds => {
                if let [
                    Outcome::Checked,
                    Outcome::Set { version },
                    Outcome::Deleted(_),
                ] = outcomes[..]
                {
                    self.version(&what, version);
                } else {
                    self.mismatch(format!("{what}: {outcomes:?}"));
                }
                self.found.model.insert((ns1.into(), k1), value);
                self.found.model.remove(&(ns2.into(), k2));
            }
            Err(StorageError::Conflict { index: 0, .. }) if !guard_holds => {}
            got => self.mismatch(format!("{what} (guard holds: {guard_holds}): {got:?}")),
        }
    }

    /// Every key under a prefix (paged), in byte order.
    fn list(&mut self, space: &cubby_host::Namespace, ns: &str) {
        let prefix = ["", "a", "a\0", "%", "_", "k", "\u{202e}"][self.rng.usize(..7)];
        let want: Vec<String> = self
            .found
            .model
            .keys()
            .filter(|(n, k)| n == ns && k.starts_with(prefix))
            .map(|(_, k)| k.clone())
            .collect();
        let got: Result<Vec<String>, _> =
            space.keys((!prefix.is_empty()).then_some(prefix)).collect();
        self.answer(&format!("list {ns:?} {prefix:?}"), got, Some(want));
    }

    fn namespaces(&mut self) {
        let mut want: Vec<String> = self
            .found
            .model
            .keys()
            .filter(|(n, _)| !n.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        want.dedup();
        let got = self.ws.namespaces(None, None).map(|page| page.keys);
        self.answer("namespaces", got, Some(want));
    }
}

/// A key, shortened for messages.
fn short(key: &str) -> String {
    key.chars().take(12).collect()
}
