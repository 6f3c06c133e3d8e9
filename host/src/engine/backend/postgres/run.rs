//! Running the backend's async requests for blocking callers: a small
//! tokio runtime of the backend's own drives the connections, and a storage
//! call waits for its request on its own thread, within a deadline.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake};
use std::time::Duration;

/// The backend's runtime and the longest one request may take.
pub(super) struct Runner {
    runtime: Option<tokio::runtime::Runtime>,
    /// The longest one request may take, waiting for a connection included.
    pub deadline: Duration,
}

impl Runner {
    /// Two `cubby-postgres` threads for the connections' network I/O.
    pub fn new(deadline: Duration) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cubby-postgres")
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
            deadline,
        })
    }

    /// Runs `future` to completion on this thread, inside the backend's
    /// runtime (its timers, its connections); `None` if it took longer than
    /// the deadline.
    pub fn run<T>(&self, future: impl Future<Output = T>) -> Option<T> {
        let runtime = self.runtime.as_ref()?;
        let _context = runtime.enter();
        // Unconstrained: called from async code, tokio's cooperative budget
        // would otherwise run out and make its resources return `Pending`
        // for ever (they expect their task to yield, which this never does).
        let future = tokio::task::unconstrained(tokio::time::timeout(self.deadline, future));
        block_on(future).ok()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Never blocks, so a `Storage` may be dropped inside async code.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Polls `future` on this thread until it is ready, parking in between.
/// Written here rather than taken from tokio (whose `block_on` refuses to
/// run inside async code, where storage calls may be made) or from
/// `futures-executor` (which refuses to run inside another of its own).
fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}
