//! A host that runs plugins for many workspaces and serves its metrics to
//! Prometheus.
//!
//! ```sh
//! cargo run -p cubby-host --example serve_metrics
//! # first line: http://127.0.0.1:PORT
//! curl -d '{"op":"add","text":"hi"}' http://127.0.0.1:PORT/call/notes/team-a
//! curl http://127.0.0.1:PORT/metrics
//! ```
//!
//! `POST /call/PLUGIN/WORKSPACE` calls a plugin with the request body, in the
//! workspace the path names, and answers with the plugin's answer (or the
//! error, with a status that says what kind). `GET /metrics` is the
//! Prometheus text format. The plugins are the `notes` example and the
//! `probe` test plugin unless `--plugin NAME=FILE` names others.
//!
//! The recorder is `metrics-exporter-prometheus`'s, built without its
//! features (it only renders the text format); `tiny_http` serves it. An
//! application with its own HTTP server serves `PrometheusHandle::render`
//! the same way; one that exports OpenTelemetry installs that recorder
//! instead. Either way, the recorder is installed before the storage is
//! opened and the runtime built.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use cubby_host::options::PostgresOptions;
use cubby_host::telemetry::{self, names};
use cubby_host::{CallError, Plugin, Runtime, Storage, StorageOptions};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// What the command line sets.
struct Options {
    db: Option<PathBuf>,
    postgres: Option<String>,
    max_instances: u32,
    timeout: Duration,
    max_memory_mib: usize,
    max_keys: Option<u64>,
    pool_size: Option<usize>,
    statement_timeout: Option<Duration>,
    workspace_label: bool,
    plugins: Vec<(String, PathBuf)>,
}

const USAGE: &str = "usage: serve_metrics [--db FILE | --postgres URL] [--max-instances N] \
[--timeout-ms MS] [--max-memory-mib MIB] [--max-keys N] [--pool-size N] \
[--statement-timeout-ms MS] [--workspace-label] [--plugin NAME=FILE]...";

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options> {
    let mut o = Options {
        db: None,
        postgres: None,
        max_instances: 16,
        timeout: Duration::from_secs(5),
        max_memory_mib: 64,
        max_keys: None,
        pool_size: None,
        statement_timeout: None,
        workspace_label: false,
        plugins: Vec::new(),
    };
    while let Some(flag) = args.next() {
        if flag == "--workspace-label" {
            o.workspace_label = true;
            continue;
        }
        let value = args
            .next()
            .ok_or_else(|| anyhow!("{flag} needs a value\n{USAGE}"))?;
        let number = || -> Result<u64> {
            value
                .parse()
                .with_context(|| format!("{flag} {value}: not a number"))
        };
        match flag.as_str() {
            "--db" => o.db = Some(value.into()),
            "--postgres" => o.postgres = Some(value),
            "--max-instances" => o.max_instances = u32::try_from(number()?)?,
            "--timeout-ms" => o.timeout = Duration::from_millis(number()?),
            "--max-memory-mib" => o.max_memory_mib = usize::try_from(number()?)?,
            "--max-keys" => o.max_keys = Some(number()?),
            "--pool-size" => o.pool_size = Some(usize::try_from(number()?)?),
            "--statement-timeout-ms" => {
                o.statement_timeout = Some(Duration::from_millis(number()?));
            }
            "--plugin" => {
                let (name, path) = value
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--plugin {value}: expected NAME=FILE"))?;
                o.plugins.push((name.to_owned(), path.into()));
            }
            _ => return Err(anyhow!("unknown option {flag}\n{USAGE}")),
        }
    }
    if o.plugins.is_empty() {
        o.plugins = vec![
            ("notes".into(), cubby_artifacts::NOTES.into()),
            ("probe".into(), cubby_artifacts::PROBE.into()),
        ];
    }
    Ok(o)
}

/// The Prometheus recorder, installed as the process's: durations as
/// histograms with buckets (the exporter's default is a summary).
fn install_recorder() -> Result<PrometheusHandle> {
    const SECONDS: &[f64] = &[
        0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01,
        0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    const WRITES: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)?
        .set_buckets_for_metric(Matcher::Full(names::COMMIT_GROUP_SIZE.into()), WRITES)?
        .install_recorder()?;
    telemetry::describe();
    Ok(handle)
}

#[tokio::main]
async fn main() -> Result<()> {
    let options = parse(std::env::args().skip(1))?;
    // First, so that every series Cubby registers goes to it.
    let handle = install_recorder()?;
    telemetry::set_workspace_label(options.workspace_label);

    let mut storage_options = StorageOptions::default();
    if let Some(max_keys) = options.max_keys {
        storage_options.limits.max_keys_per_workspace = max_keys;
    }
    let mut postgres = PostgresOptions::default();
    if let Some(size) = options.pool_size {
        postgres.pool_size = size;
    }
    if let Some(timeout) = options.statement_timeout {
        postgres.statement_timeout = timeout;
    }
    storage_options.postgres = postgres;
    let storage = match (&options.postgres, &options.db) {
        (Some(url), _) => Storage::connect(url, storage_options)?,
        (None, Some(path)) => Storage::open(path, storage_options)?,
        (None, None) => Storage::in_memory(storage_options)?,
    };
    let runtime = Runtime::builder()
        .max_instances(options.max_instances)
        .timeout(options.timeout)
        .max_memory_bytes(options.max_memory_mib << 20)
        .build()?;
    let mut plugins = Vec::new();
    for (name, path) in &options.plugins {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        // Loaded under its short name: the `plugin` label of its metrics.
        let plugin = runtime.load_bytes(name.clone(), bytes).await?;
        plugins.push((name.clone(), plugin));
    }
    let host = Arc::new(Host {
        storage,
        plugins,
        metrics: handle.clone(),
    });

    let server = tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow!("listen: {e}"))?;
    let port = server
        .server_addr()
        .to_ip()
        .map(|a| a.port())
        .ok_or_else(|| anyhow!("not listening on an IP address"))?;
    // The first line is the URL, for whoever started this.
    println!("http://127.0.0.1:{port}");
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(5));
            handle.run_upkeep();
        }
    });
    tokio::task::spawn_blocking(move || {
        for request in server.incoming_requests() {
            let host = host.clone();
            // One thread per request: plugin calls block.
            std::thread::spawn(move || host.answer(request));
        }
    })
    .await?;
    Ok(())
}

struct Host {
    storage: Storage,
    plugins: Vec<(String, Plugin)>,
    metrics: PrometheusHandle,
}

impl Host {
    fn answer(&self, mut request: tiny_http::Request) {
        let mut body = Vec::new();
        let (status, text) = match std::io::Read::read_to_end(request.as_reader(), &mut body) {
            Ok(_) => self.route(request.method(), request.url(), &body),
            Err(e) => (400, format!("could not read the request: {e}").into_bytes()),
        };
        let response = tiny_http::Response::from_data(text).with_status_code(status);
        if let Err(e) = request.respond(response) {
            eprintln!("could not answer: {e}");
        }
    }

    fn route(&self, method: &tiny_http::Method, url: &str, body: &[u8]) -> (u16, Vec<u8>) {
        use tiny_http::Method::{Get, Post};
        let parts: Vec<&str> = url.trim_start_matches('/').split('/').collect();
        match (method, parts.as_slice()) {
            (Get, ["metrics"]) => (200, self.metrics.render().into_bytes()),
            (Post, ["call", plugin, workspace]) => self.call(plugin, workspace, body),
            (Get, [""]) => {
                let names: Vec<&str> = self.plugins.iter().map(|(n, _)| n.as_str()).collect();
                let text = format!(
                    "GET /metrics, POST /call/PLUGIN/WORKSPACE (plugins: {})\n",
                    names.join(", ")
                );
                (200, text.into_bytes())
            }
            _ => (404, format!("no route for {method} {url}\n").into_bytes()),
        }
    }

    fn call(&self, plugin: &str, workspace: &str, request: &[u8]) -> (u16, Vec<u8>) {
        let Some((_, plugin)) = self.plugins.iter().find(|(n, _)| n == plugin) else {
            return (404, format!("no plugin named {plugin}\n").into_bytes());
        };
        let workspace = match self.storage.workspace(workspace) {
            Ok(ws) => ws,
            Err(e) => return (400, format!("{e}\n").into_bytes()),
        };
        match plugin.call_blocking(&workspace, request) {
            Ok(answer) => (200, answer),
            Err(e) => {
                let status = match e {
                    CallError::Plugin(_) => 422,
                    CallError::Busy(_) => 503,
                    CallError::Timeout { .. } => 504,
                    _ => 500,
                };
                (status, format!("{e}\n").into_bytes())
            }
        }
    }
}
