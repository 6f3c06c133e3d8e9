//! In-process queues of writes, one per workspace with writes in flight,
//! so that writers waiting for a busy workspace (the database serialises
//! them on its row lock anyway) never hold pooled connections that reads
//! and other workspaces need.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

/// Queues idle workspaces' entries are forgotten beyond.
const REMEMBERED: usize = 1024;

/// One queue per workspace with writes in flight.
#[derive(Default)]
pub(super) struct Gates {
    open: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

impl Gates {
    /// The queue for workspace `ws` (shared by every write to it now).
    pub fn of(&self, ws: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(gate) = open.get(ws).and_then(Weak::upgrade) {
            return gate;
        }
        if open.len() >= REMEMBERED {
            open.retain(|_, gate| gate.strong_count() > 0);
        }
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        open.insert(ws.to_owned(), Arc::downgrade(&gate));
        gate
    }
}
