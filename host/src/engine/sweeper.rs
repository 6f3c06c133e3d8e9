//! The background sweeper: one thread per [`Storage`](crate::Storage) that
//! asks the backend to remove expired entries, and the chunks of streamed
//! values whose time is up, a bounded pass at a time.

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use super::Clock;
use super::backend::Backend;

/// Most expired entries one sweep pass removes, so that no pass holds a
/// transaction for long.
pub(crate) const SWEEP_BUDGET: usize = 1000;

/// The sweeper thread; dropping this stops it and waits for it.
pub(crate) struct Sweeper {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Sweeper {
    /// Sweeps every `interval`, and at once again after a pass that stopped
    /// for lack of budget.
    pub fn spawn(
        backend: Arc<dyn Backend>,
        clock: Arc<dyn Clock>,
        interval: Duration,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("cubby-sweeper".into())
            .spawn(move || {
                let mut resume = None;
                let mut wait = interval;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
                    wait = interval;
                    match backend.sweep(resume.take(), SWEEP_BUDGET, clock.now_ms()) {
                        Ok(pass) => {
                            crate::telemetry::swept(backend.name(), pass.removed);
                            if pass.removed > 0 {
                                tracing::debug!(removed = pass.removed, "swept expired entries");
                                if pass.resume.is_some() {
                                    wait = Duration::ZERO;
                                }
                            }
                            resume = pass.resume;
                        }
                        Err(e) => tracing::warn!(error = %e, "sweeping expired entries failed"),
                    }
                    match backend.collect_blobs(clock.now_ms(), SWEEP_BUDGET) {
                        Ok(0) => {}
                        Ok(removed) => {
                            tracing::debug!(removed, "removed chunks of streamed values");
                            wait = Duration::ZERO;
                        }
                        Err(e) => tracing::warn!(error = %e, "collecting chunks failed"),
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            // A panic on the sweeper thread has been reported already.
            let _ = thread.join();
        }
    }
}
