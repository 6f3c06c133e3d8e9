//! `token-cache`: a request/response plugin that caches a login token per
//! service with an expiry that slides on every use, the way chat and
//! notification plugins keep a session alive (Apprise, Pyrogram).
//!
//! Requests and responses are JSON:
//! - `{"op":"token","service":"mail","idle_secs":1800}` → `{"token":"…","cached":true,"expires_in_ms":1800000}`:
//!   the cached token, its expiry renewed to `idle_secs` from now in the same
//!   atomic step; or, when there is none (or it expired), a fresh login whose
//!   token is cached for `idle_secs` (default 1800).
//! - `{"op":"logout","service":"mail"}` → `{"removed":true}`
//! - `{"op":"status"}` → every cached service with the time it has left, and
//!   how many logins each took.
//!
//! Tokens live in the namespace `tokens`, login counts in `logins`.
//! Concurrent instances that miss the cache at the same moment do not both
//! keep their login: the token is stored with insert-if-absent, and the loser
//! uses the winner's token.

use std::time::Duration;

use cubby_sdk::{Error, Namespace};
use serde::Deserialize;
use serde_json::{Value, json};

const DEFAULT_IDLE_SECS: u64 = 1800;

#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Request {
    Token {
        service: String,
        idle_secs: Option<u64>,
    },
    Logout {
        service: String,
    },
    Status,
}

fn tokens() -> Namespace {
    Namespace::new("tokens")
}

fn logins() -> Namespace {
    Namespace::new("logins")
}

struct TokenCache;

impl cubby_sdk::JsonPlugin for TokenCache {
    const NAME: &str = "token-cache";
    const EXPECTED: &str =
        r#"{"op":"token","service":…}, {"op":"logout","service":…} or {"op":"status"}"#;
    type Request = Request;
    type Response = Value;

    fn handle(request: Request) -> Result<Value, String> {
        Ok(match request {
            Request::Token { service, idle_secs } => {
                let idle = Duration::from_secs(idle_secs.unwrap_or(DEFAULT_IDLE_SECS).max(1));
                token(&service, idle)?
            }
            Request::Logout { service } => json!({ "removed": tokens().delete(&service)? }),
            Request::Status => status()?,
        })
    }
}

fn token(service: &str, idle: Duration) -> cubby_sdk::Result<Value> {
    // Renew-on-read: a token in use never expires; an idle one does.
    if let Some(entry) = tokens().get_and_renew(service, idle)? {
        return Ok(answer(entry.value, true, entry.expires_in));
    }
    let fresh = login(service)?;
    match tokens()
        .put(service, fresh.clone())
        .if_absent()
        .ttl(idle)
        .apply()
    {
        Ok(_) => Ok(answer(fresh, false, Some(idle))),
        // Another instance logged in first: use its token, drop ours.
        Err(Error::Conflict {
            current: Some(winner),
            ..
        }) => Ok(answer(winner.value, true, winner.expires_in)),
        Err(e) => Err(e),
    }
}

/// Stands in for the real login (an HTTP call the host would grant): hands
/// out a new token and counts the logins per service.
fn login(service: &str) -> cubby_sdk::Result<Vec<u8>> {
    let n = logins().counter(service).increment()?;
    Ok(format!("{service}-token-{n}").into_bytes())
}

fn answer(token: Vec<u8>, cached: bool, expires_in: Option<Duration>) -> Value {
    json!({
        "token": String::from_utf8_lossy(&token),
        "cached": cached,
        "expires_in_ms": expires_in.map(|d| d.as_millis() as u64),
    })
}

fn status() -> cubby_sdk::Result<Value> {
    let mut services = Vec::new();
    for service in tokens().keys() {
        let service = service?;
        // A token that expires between listing and reading is skipped.
        if let Some(entry) = tokens().entry(&service)? {
            let logins = logins().counter(service.as_str()).get()?;
            services.push(json!({
                "service": service,
                "expires_in_ms": entry.expires_in.map(|d| d.as_millis() as u64),
                "logins": logins,
            }));
        }
    }
    Ok(json!({ "services": services }))
}

cubby_sdk::export!(TokenCache);
