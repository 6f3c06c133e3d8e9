//! `rate-limiter`: a request/response plugin that decides whether a client
//! may make one more request, with atomic counters that expire on their own.
//!
//! Request: `{"client":"alice","limit":5,"window_secs":60}`, optionally with
//! `"algorithm":"fixed"` (default `"sliding"`) and `"now_ms"` (the time to
//! decide at, for replays and tests; default the wall clock).
//!
//! Response: `{"allowed":true,"count":3,"remaining":2,"reset_ms":41250}`.
//!
//! - **fixed**: one counter per client and window (`fixed/<client>/<n>`),
//!   created with an expiry at the end of its window, so old windows delete
//!   themselves.
//! - **sliding** (the sliding-window counter of Cloudflare and others): the
//!   count is this window's counter plus the previous window's, weighted by
//!   how much of the previous window still overlaps the last `window_secs`.
//!   Counters live for two windows.
//!
//! A denied request is not counted (its increment is undone), so a client
//! that keeps knocking is let in again as soon as its window allows.
//! Increments are atomic, so concurrent instances never let more requests
//! through than the limit.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cubby_sdk::{Counter, Namespace};
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    client: String,
    limit: u32,
    window_secs: u32,
    #[serde(default)]
    algorithm: Algorithm,
    now_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Algorithm {
    Fixed,
    #[default]
    Sliding,
}

#[derive(Debug, Serialize)]
struct Decision {
    allowed: bool,
    /// Requests counted in the current window (weighted, for sliding).
    count: u64,
    remaining: u64,
    /// Milliseconds until the current window ends.
    reset_ms: u64,
}

struct RateLimiter;

impl cubby_sdk::JsonPlugin for RateLimiter {
    const NAME: &str = "rate-limiter";
    const EXPECTED: &str = r#"{"client":…,"limit":…,"window_secs":…}"#;
    type Request = Request;
    type Response = Decision;

    fn handle(request: Request) -> Result<Decision, String> {
        if request.window_secs == 0 {
            return Err("window_secs must be at least 1".into());
        }
        Ok(decide(&request)?)
    }
}

fn decide(r: &Request) -> cubby_sdk::Result<Decision> {
    let now = r.now_ms.unwrap_or_else(wall_clock_ms);
    let window_ms = u64::from(r.window_secs) * 1000;
    let window = now / window_ms;
    let elapsed = now % window_ms;
    let reset_ms = window_ms - elapsed;
    let limit = u64::from(r.limit);
    let windows = Namespace::new("rate-limiter");
    let key = |w: u64| format!("{}/{}/{w}", name(r.algorithm), r.client);

    let (counter, previous_weight, previous) = match r.algorithm {
        Algorithm::Fixed => {
            let ttl = Duration::from_millis(reset_ms);
            (windows.counter(key(window)).expire_new_after(ttl), 0.0, 0)
        }
        Algorithm::Sliding => {
            let ttl = Duration::from_millis(reset_ms + window_ms);
            let previous = match window.checked_sub(1) {
                Some(w) => count(&windows.counter(key(w)))?,
                None => 0,
            };
            let weight = (window_ms - elapsed) as f64 / window_ms as f64;
            (
                windows.counter(key(window)).expire_new_after(ttl),
                weight,
                previous,
            )
        }
    };
    let current = u64::try_from(counter.increment()?).unwrap_or(0);
    let estimate = (previous as f64 * previous_weight).floor() as u64 + current;
    let allowed = estimate <= limit;
    if !allowed {
        // Do not count a request that was turned away.
        counter.decrement()?;
    }
    let count = if allowed { estimate } else { estimate - 1 };
    Ok(Decision {
        allowed,
        count,
        remaining: limit.saturating_sub(count),
        reset_ms,
    })
}

fn count(counter: &Counter) -> cubby_sdk::Result<u64> {
    Ok(u64::try_from(counter.get()?).unwrap_or(0))
}

fn name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Fixed => "fixed",
        Algorithm::Sliding => "sliding",
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

cubby_sdk::export!(RateLimiter);
