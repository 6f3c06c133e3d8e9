//! The epoch ticker behind every call's time limit: one thread per process
//! that advances the epoch of each engine a runtime runs on every
//! [`EPOCH_TICK`], once per engine however many runtimes share it (two
//! tickers on one engine would halve every timeout).

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use wasmtime::{Engine, EngineWeak};

/// How often the ticker advances each engine's epoch; the resolution of the
/// time limit.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The engines the ticker advances, and whether its thread is running.
struct Ticked {
    engines: Vec<EngineWeak>,
    running: bool,
}

static TICKED: Mutex<Ticked> = Mutex::new(Ticked {
    engines: Vec::new(),
    running: false,
});

fn ticked() -> std::sync::MutexGuard<'static, Ticked> {
    TICKED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Has the ticker advance `engine`'s epoch from now until the engine is
/// dropped; does nothing if it already does. Starts the ticker's thread if
/// it is not running.
pub(crate) fn keep_ticking(engine: &Engine) -> std::io::Result<()> {
    let mut t = ticked();
    let known = t
        .engines
        .iter()
        .filter_map(EngineWeak::upgrade)
        .any(|e| Engine::same(&e, engine));
    if known {
        return Ok(());
    }
    if !t.running {
        std::thread::Builder::new()
            .name("cubby-epoch".into())
            .spawn(tick)?;
        t.running = true;
    }
    t.engines.push(engine.weak());
    Ok(())
}

/// The ticker's thread: advances every live engine, forgets dropped ones,
/// and ends when none is left (the next runtime starts it again).
fn tick() {
    loop {
        {
            let mut t = ticked();
            t.engines.retain(|weak| match weak.upgrade() {
                Some(engine) => {
                    engine.increment_epoch();
                    true
                }
                None => false,
            });
            if t.engines.is_empty() {
                t.running = false;
                return;
            }
        }
        std::thread::sleep(EPOCH_TICK);
    }
}

/// How many engines the ticker advances that are `engine` (0 or 1).
#[cfg(test)]
pub(crate) fn registrations(engine: &Engine) -> usize {
    ticked()
        .engines
        .iter()
        .filter_map(EngineWeak::upgrade)
        .filter(|e| Engine::same(e, engine))
        .count()
}
