//! From a database URL and the storage options to a connection
//! configuration and its TLS connector, and how the database is named in
//! messages (never with its password).

use deadpool_postgres::tokio_postgres;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::tls;
use crate::engine::error::cause_chain;
use crate::engine::{Durability, OpenError, StorageOptions};

/// A parsed URL, ready to connect.
pub(super) struct Target {
    pub config: tokio_postgres::Config,
    /// TLS as the URL's `sslmode` and `sslrootcert` ask (see `tls.rs`).
    pub tls: MakeRustlsConnect,
    /// `postgres://user@host:port/db`, for messages.
    pub location: String,
    /// `host:port/db`, for connection errors.
    pub server: String,
}

/// Parses `url` and adds Cubby's session settings: the application name
/// and connect timeout unless the URL sets them, the statement timeout, and
/// `synchronous_commit = off` in relaxed mode.
pub(super) fn parse(url: &str, options: &StorageOptions) -> Result<Target, OpenError> {
    let pg = &options.postgres;
    let (url, tls_settings) = tls::take_settings(url)?;
    let mut config: tokio_postgres::Config =
        url.parse()
            .map_err(|e: tokio_postgres::Error| OpenError::InvalidUrl {
                reason: cause_chain(&e),
            })?;
    config.ssl_mode(tls_settings.mode.for_client());
    let server = server_of(&config);
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let location = format!("postgres://{user}{server}");
    if config.get_application_name().is_none() {
        config.application_name("cubby");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(pg.connect_timeout);
    }
    let mut session = config.get_options().unwrap_or_default().to_owned();
    session.push_str(&format!(
        " -c statement_timeout={}",
        pg.statement_timeout.as_millis()
    ));
    if options.durability == Durability::Relaxed {
        session.push_str(" -c synchronous_commit=off");
    }
    config.options(session.trim());
    Ok(Target {
        config,
        tls: tls::connector(&tls_settings)?,
        location,
        server,
    })
}

/// Host(s), port and database of a connection config, for messages: never
/// the user's password.
fn server_of(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                tokio_postgres::config::Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    let db = config.get_dbname().or(config.get_user()).unwrap_or("");
    format!("{hosts}/{db}")
}
