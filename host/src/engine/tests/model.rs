//! Random sequences of operations against the engine and a plain in-memory
//! model (a `BTreeMap` and a clock), compared after every step, on every
//! backend.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::*;
use crate::ops::{Condition, Op, Outcome, Usage, WriteOptions};
use crate::testing::Backend;
use crate::{StorageError, Workspace};

/// Two workspace ids, one a prefix of the other (made unique per case).
const WORKSPACES: [&str; 2] = ["a", "ab"];
/// The default space, a namespace, and one that extends its name.
const NAMESPACES: [&str; 3] = ["", "n", "n\0"];

/// (workspace, namespace, key), as indexes into the arrays above.
type Slot = (usize, usize, String);

#[derive(Debug, Clone)]
enum Step {
    Set(Slot, Vec<u8>, Option<u64>),
    Delete(Slot),
    Get(Slot),
    Exists(Slot),
    Increment(Slot, i64, Option<u64>),
    /// Compare-and-swap with the current version (`true`) or a stale one.
    Cas(Slot, Vec<u8>, bool),
    InsertIfAbsent(Slot, Vec<u8>),
    Renew(Slot, u64),
    Expire(Slot, Option<u64>),
    /// Sets both slots, the second only if absent: all or nothing.
    Transaction(Slot, Vec<u8>, Slot, Vec<u8>),
    DeleteMany(usize, usize, Vec<String>),
    Clear(usize, usize),
    /// Removes a whole workspace.
    RemoveWorkspace(usize),
    List(usize, usize, Option<String>, u32),
    Advance(u64),
    Prune,
}

impl Step {
    /// The one entry the step reads or writes, if any.
    fn touched(&self) -> Option<&Slot> {
        match self {
            Step::Set(s, ..)
            | Step::Delete(s)
            | Step::Get(s)
            | Step::Exists(s)
            | Step::Increment(s, ..)
            | Step::Cas(s, ..)
            | Step::InsertIfAbsent(s, _)
            | Step::Renew(s, _)
            | Step::Expire(s, _)
            | Step::Transaction(s, ..) => Some(s),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Stored {
    value: Vec<u8>,
    version: u64,
    expires_at: Option<u64>,
}

#[derive(Default)]
struct Model {
    now: u64,
    entries: BTreeMap<Slot, Stored>,
    /// The newest version seen, per workspace.
    last_version: [u64; 2],
}

impl Model {
    fn live(&self, slot: &Slot) -> Option<&Stored> {
        self.entries
            .get(slot)
            .filter(|e| e.expires_at.is_none_or(|at| at > self.now))
    }

    fn keys(&self, w: usize, n: usize, prefix: &str) -> Vec<String> {
        self.entries
            .iter()
            .filter(|((mw, mn, k), _)| *mw == w && *mn == n && k.starts_with(prefix))
            .filter(|(slot, _)| self.live(slot).is_some())
            .map(|((_, _, k), _)| k.clone())
            .collect()
    }

    fn usage(&self, w: usize, n: Option<usize>) -> Usage {
        let live: Vec<_> = self
            .entries
            .iter()
            .filter(|((mw, mn, _), _)| *mw == w && n.is_none_or(|n| n == *mn))
            .filter(|(slot, _)| self.live(slot).is_some())
            .collect();
        Usage {
            keys: live.len() as u64,
            bytes: live
                .iter()
                .map(|((_, _, k), e)| (k.len() + e.value.len()) as u64)
                .sum(),
        }
    }

    /// Records a write the engine made with `version`, which must be newer
    /// than every version the workspace handed out before.
    fn wrote(
        &mut self,
        slot: Slot,
        value: Vec<u8>,
        version: u64,
        expires_at: Option<u64>,
    ) -> Result<(), TestCaseError> {
        let last = &mut self.last_version[slot.0];
        prop_assert!(version > *last, "version {version} was not new");
        *last = version;
        self.entries.insert(
            slot,
            Stored {
                value,
                version,
                expires_at,
            },
        );
        Ok(())
    }

    fn remaining(&self, e: &Stored) -> Option<Duration> {
        e.expires_at.map(|at| Duration::from_millis(at - self.now))
    }
}

fn key() -> impl Strategy<Value = String> {
    proptest::collection::vec(prop::sample::select(vec!['a', 'b', '/', '\0', '🦀']), 1..3)
        .prop_map(|chars| chars.into_iter().collect())
}

/// Values that are sometimes counters ("12", "-1") and sometimes not.
fn value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop::sample::select(vec![b'1', b'2', b'-', b'x']), 0..3)
}

fn slot() -> impl Strategy<Value = Slot> {
    (0..WORKSPACES.len(), 0..NAMESPACES.len(), key())
}

fn ttl() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(1..40u64)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (slot(), value(), ttl()).prop_map(|(s, v, t)| Step::Set(s, v, t)),
        2 => slot().prop_map(Step::Delete),
        3 => slot().prop_map(Step::Get),
        1 => slot().prop_map(Step::Exists),
        3 => (slot(), prop_oneof![-3..4i64, Just(i64::MAX), Just(i64::MIN)], ttl())
            .prop_map(|(s, d, t)| Step::Increment(s, d, t)),
        2 => (slot(), value(), any::<bool>()).prop_map(|(s, v, f)| Step::Cas(s, v, f)),
        1 => (slot(), value()).prop_map(|(s, v)| Step::InsertIfAbsent(s, v)),
        1 => (slot(), 1..40u64).prop_map(|(s, t)| Step::Renew(s, t)),
        1 => (slot(), ttl()).prop_map(|(s, t)| Step::Expire(s, t)),
        1 => (slot(), value(), slot(), value()).prop_map(|(a, va, b, vb)| {
            let b = (a.0, b.1, b.2);
            Step::Transaction(a, va, b, vb)
        }),
        1 => (0..2usize, 0..3usize, proptest::collection::vec(key(), 0..3))
            .prop_map(|(w, n, k)| Step::DeleteMany(w, n, k)),
        1 => (0..2usize, 0..3usize).prop_map(|(w, n)| Step::Clear(w, n)),
        1 => (0..2usize).prop_map(Step::RemoveWorkspace),
        2 => (0..2usize, 0..3usize, proptest::option::of(key()), 1..4u32)
            .prop_map(|(w, n, p, l)| Step::List(w, n, p, l)),
        2 => (0..30u64).prop_map(Step::Advance),
        1 => Just(Step::Prune),
    ]
}

fn ms(t: Option<u64>) -> Option<Duration> {
    t.map(Duration::from_millis)
}

/// The engine under test, next to the model.
struct Harness {
    clock: ManualClock,
    storage: Storage,
    workspaces: Vec<Workspace>,
    /// Per workspace, a handle per namespace.
    handles: Vec<Vec<Namespace>>,
    model: Model,
}

impl Harness {
    fn new(place: &Place, case: u64) -> Self {
        let clock = ManualClock::new(1_000);
        let storage = manual(place, &clock, |o| o.limits.max_page_size = 2);
        // Ids unique to the case: the PostgreSQL place is one database for
        // every case of the run.
        let workspaces: Vec<Workspace> = WORKSPACES
            .iter()
            .map(|w| storage.workspace(&format!("c{case}-{w}")).unwrap())
            .collect();
        let handles = workspaces
            .iter()
            .map(|ws| {
                NAMESPACES
                    .iter()
                    .map(|n| ws.namespace(n).unwrap())
                    .collect()
            })
            .collect();
        Self {
            clock,
            storage,
            workspaces,
            handles,
            model: Model {
                now: 1_000,
                ..Model::default()
            },
        }
    }

    fn ns(&self, s: &Slot) -> &Namespace {
        &self.handles[s.0][s.1]
    }

    fn apply(&mut self, step: Step) -> Result<(), TestCaseError> {
        let now = self.model.now;
        match step {
            Step::Set(s, v, t) => {
                let options = WriteOptions {
                    ttl: ms(t),
                    ..WriteOptions::default()
                };
                let version = self.ns(&s).set_with(&s.2, v.clone(), options).unwrap();
                self.model.wrote(s, v, version, t.map(|t| now + t))?;
            }
            Step::Delete(s) => {
                let existed = self.model.live(&s).is_some();
                prop_assert_eq!(self.ns(&s).delete(&s.2).unwrap(), existed);
                self.model.entries.remove(&s);
            }
            Step::Get(s) => {
                let want = self.model.live(&s).map(|e| e.value.clone());
                prop_assert_eq!(self.ns(&s).get(&s.2).unwrap(), want);
            }
            Step::Exists(s) => {
                let want = self.model.live(&s).is_some();
                prop_assert_eq!(self.ns(&s).exists(&s.2).unwrap(), want);
            }
            Step::Increment(s, delta, t) => self.increment(s, delta, t)?,
            Step::Cas(s, v, fresh) => self.compare_and_swap(s, v, fresh)?,
            Step::InsertIfAbsent(s, v) => {
                let got =
                    self.ns(&s)
                        .set_with(&s.2, v.clone(), WriteOptions::default().if_absent());
                if self.model.live(&s).is_none() {
                    self.model.wrote(s, v, got.unwrap(), None)?;
                } else {
                    prop_assert!(matches!(got, Err(StorageError::Conflict { .. })), "{got:?}");
                }
            }
            Step::Renew(s, t) => {
                let got = self
                    .ns(&s)
                    .get_and_renew(&s.2, Duration::from_millis(t))
                    .unwrap();
                let want = self.model.live(&s).map(|e| e.value.clone());
                prop_assert_eq!(got.as_ref().map(|e| e.value.clone()), want);
                if got.is_some()
                    && let Some(e) = self.model.entries.get_mut(&s)
                {
                    e.expires_at = Some(now + t);
                }
            }
            Step::Expire(s, t) => {
                let found = self.ns(&s).expire(&s.2, ms(t)).unwrap();
                prop_assert_eq!(found, self.model.live(&s).is_some());
                if found && let Some(e) = self.model.entries.get_mut(&s) {
                    e.expires_at = t.map(|t| now + t);
                }
            }
            Step::Transaction(a, va, b, vb) => self.transaction(a, va, b, vb)?,
            Step::DeleteMany(w, n, keys) => {
                let mut unique = keys.clone();
                unique.sort();
                unique.dedup();
                let existed = unique
                    .iter()
                    .filter(|k| self.model.live(&(w, n, (*k).clone())).is_some())
                    .count();
                let deleted = self.handles[w][n].delete_many(&keys).unwrap();
                prop_assert_eq!(deleted, existed as u64);
                for k in keys {
                    self.model.entries.remove(&(w, n, k));
                }
            }
            Step::Clear(w, n) => {
                let deleted = self.handles[w][n].clear_all().unwrap();
                prop_assert_eq!(deleted, self.model.keys(w, n, "").len() as u64);
                self.model
                    .entries
                    .retain(|(mw, mn, _), _| (*mw, *mn) != (w, n));
            }
            Step::RemoveWorkspace(w) => {
                let live = (0..NAMESPACES.len())
                    .map(|n| self.model.keys(w, n, "").len() as u64)
                    .sum::<u64>();
                prop_assert_eq!(self.workspaces[w].clear_all().unwrap(), live);
                self.model.entries.retain(|(mw, _, _), _| *mw != w);
            }
            Step::List(w, n, prefix, page) => {
                let prefix = prefix.unwrap_or_default();
                let mut listed = Vec::new();
                let mut cursor = None;
                loop {
                    let p = self.handles[w][n]
                        .list_keys(Some(&prefix), cursor.as_deref(), Some(page))
                        .unwrap();
                    prop_assert!(p.keys.len() <= page as usize);
                    listed.extend(p.keys);
                    match p.cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                prop_assert_eq!(listed, self.model.keys(w, n, &prefix));
            }
            Step::Advance(by) => {
                self.clock.advance(Duration::from_millis(by));
                self.model.now += by;
            }
            Step::Prune => {
                self.storage.prune().unwrap();
                self.model
                    .entries
                    .retain(|_, e| e.expires_at.is_none_or(|at| at > now));
            }
        }
        Ok(())
    }

    fn increment(&mut self, s: Slot, delta: i64, t: Option<u64>) -> Result<(), TestCaseError> {
        let got = self.ns(&s).increment(&s.2, delta, ms(t));
        let current = self.model.live(&s).cloned();
        let old = match &current {
            None => Some(0),
            Some(e) => std::str::from_utf8(&e.value)
                .ok()
                .and_then(|v| v.parse::<i64>().ok()),
        };
        match (old, old.and_then(|o| o.checked_add(delta))) {
            (None, _) => prop_assert!(matches!(got, Err(StorageError::NotACounter)), "{got:?}"),
            (Some(_), None) => {
                prop_assert!(matches!(got, Err(StorageError::Overflow)), "{got:?}")
            }
            (Some(_), Some(n)) => {
                prop_assert_eq!(got.unwrap(), n);
                let version = self.ns(&s).entry(&s.2).unwrap().unwrap().version;
                let at = match &current {
                    Some(e) => e.expires_at,
                    None => t.map(|t| self.model.now + t),
                };
                self.model
                    .wrote(s, n.to_string().into_bytes(), version, at)?;
            }
        }
        Ok(())
    }

    fn compare_and_swap(&mut self, s: Slot, v: Vec<u8>, fresh: bool) -> Result<(), TestCaseError> {
        let current = self.model.live(&s).map(|e| e.version);
        let asked = match (fresh, current) {
            (true, Some(version)) => version,
            _ => self.model.last_version[s.0] + 1_000,
        };
        let got = self
            .ns(&s)
            .set_with(&s.2, v.clone(), WriteOptions::default().if_version(asked));
        if current == Some(asked) {
            self.model.wrote(s, v, got.unwrap(), None)?;
        } else {
            match got {
                Err(StorageError::Conflict {
                    index: 0,
                    current: now,
                }) => prop_assert_eq!(now.map(|e| e.version), current),
                other => prop_assert!(false, "expected a conflict, got {other:?}"),
            }
        }
        Ok(())
    }

    fn transaction(
        &mut self,
        a: Slot,
        va: Vec<u8>,
        b: Slot,
        vb: Vec<u8>,
    ) -> Result<(), TestCaseError> {
        let got = self.workspaces[a.0].transact(vec![
            Op::set(a.2.clone(), va.clone()).in_namespace(NAMESPACES[a.1]),
            Op::set(b.2.clone(), vb.clone())
                .in_namespace(NAMESPACES[b.1])
                .when(Condition::Absent),
        ]);
        // The second op sees the first: the same slot is then never absent.
        if a != b && self.model.live(&b).is_none() {
            let outcomes = got.unwrap();
            let version = |o: &Outcome| match o {
                Outcome::Set { version } => *version,
                _ => 0,
            };
            self.model.wrote(a, va, version(&outcomes[0]), None)?;
            self.model.wrote(b, vb, version(&outcomes[1]), None)?;
        } else {
            prop_assert!(
                matches!(got, Err(StorageError::Conflict { index: 1, .. })),
                "{got:?}"
            );
        }
        Ok(())
    }

    /// Compares the touched entry (value, version, remaining TTL), and every
    /// workspace's and namespace's usage and namespace listing.
    fn check(&self, touched: Option<&Slot>) -> Result<(), TestCaseError> {
        if let Some(s) = touched {
            let got = self
                .ns(s)
                .entry(&s.2)
                .unwrap()
                .map(|e| (e.value, e.version, e.expires_in));
            let want = self
                .model
                .live(s)
                .map(|e| (e.value.clone(), e.version, self.model.remaining(e)));
            prop_assert_eq!(got, want);
        }
        for (w, ws) in self.workspaces.iter().enumerate() {
            prop_assert_eq!(ws.usage().unwrap(), self.model.usage(w, None));
            for (n, handle) in self.handles[w].iter().enumerate() {
                prop_assert_eq!(handle.usage().unwrap(), self.model.usage(w, Some(n)));
            }
            let names: Vec<String> = (1..NAMESPACES.len())
                .filter(|n| self.model.usage(w, Some(*n)).keys > 0)
                .map(|n| NAMESPACES[n].to_owned())
                .collect();
            prop_assert_eq!(ws.namespaces(None, Some(1000)).unwrap().keys, names);
        }
        Ok(())
    }
}

fn engine_matches_a_model(place: &Place) {
    // Each PostgreSQL step is a few network round trips: fewer cases there.
    let cases = match place.backend() {
        Backend::Redb => 192,
        Backend::Postgres => 48,
    };
    let next_case = AtomicU64::new(0);
    let mut runner = TestRunner::new(Config::with_cases(cases));
    let steps = proptest::collection::vec(step(), 1..60);
    let result = runner.run(&steps, |steps| {
        let mut h = Harness::new(place, next_case.fetch_add(1, Ordering::Relaxed));
        for step in steps {
            let touched = step.touched().cloned();
            h.apply(step)?;
            h.check(touched.as_ref())?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

crate::conformance_tests!(engine_matches_a_model);
