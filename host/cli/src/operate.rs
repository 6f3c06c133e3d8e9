//! The operator's commands: `workspace list|export|import` and `quota`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use cubby_host::{ExportOptions, ImportMode, Progress, Quota, Storage, Usage};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::args::{DbArgs, QuotaCommand, SortBy};
use crate::commands::{print_json, printable};

/// Where a workspace's quota comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// `--quota` on this command line.
    Override,
    /// Stored in the database (`cubby quota set`).
    Stored,
    /// The default (`--quota-bytes`, `--quota-keys`).
    Default,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Self::Override => "override",
            Self::Stored => "stored",
            Self::Default => "default",
        }
    }
}

/// The quota workspace `id`'s writes are checked against, and where it
/// comes from, given the quota stored for it (read once by the caller): the
/// library's order, `--quota` over stored over the default.
pub(crate) fn quota_of(
    storage: &Storage,
    db: &DbArgs,
    id: &str,
    stored: Option<Quota>,
) -> Result<(Quota, Source)> {
    Ok(if db.quotas.iter().any(|(ws, _)| ws == id) {
        // An override is this process's: no read.
        (storage.quota(id)?, Source::Override)
    } else if let Some(quota) = stored {
        (quota, Source::Stored)
    } else {
        (storage.limits().default_quota(), Source::Default)
    })
}

/// [`quota_of`] for one workspace, reading its stored quota.
pub(crate) fn quota_of_one(storage: &Storage, db: &DbArgs, id: &str) -> Result<(Quota, Source)> {
    quota_of(storage, db, id, storage.stored_quota(id)?)
}

pub(crate) fn quota_json(quota: Quota, source: Source) -> serde_json::Value {
    json!({
        "max_keys": quota.max_keys,
        "max_bytes": quota.max_bytes,
        "source": source.name(),
    })
}

/// The share of the quota used, in percent: keys or bytes, whichever is
/// higher.
fn used_percent(usage: Usage, quota: Quota) -> f64 {
    let share = |used: u64, max: u64| {
        if max == 0 {
            if used == 0 { 0.0 } else { 100.0 }
        } else {
            used as f64 * 100.0 / max as f64
        }
    };
    share(usage.keys, quota.max_keys).max(share(usage.bytes, quota.max_bytes))
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `cubby workspace list`.
pub(crate) fn list(storage: &Storage, db: &DbArgs, sort: SortBy, json: bool) -> Result<ExitCode> {
    let stored: BTreeMap<String, Quota> = storage.stored_quotas()?.into_iter().collect();
    let mut rows: BTreeMap<String, Usage> = storage.workspaces()?.into_iter().collect();
    for id in stored.keys() {
        rows.entry(id.clone()).or_default();
    }
    let mut rows: Vec<(String, Usage, Quota, Source, f64)> = rows
        .into_iter()
        .map(|(id, usage)| {
            let (quota, source) = quota_of(storage, db, &id, stored.get(&id).copied())?;
            let used = used_percent(usage, quota);
            Ok((id, usage, quota, source, used))
        })
        .collect::<Result<_>>()?;
    match sort {
        SortBy::Name => {}
        SortBy::Size => rows.sort_by_key(|r| std::cmp::Reverse(r.1.bytes)),
        SortBy::Keys => rows.sort_by_key(|r| std::cmp::Reverse(r.1.keys)),
        SortBy::Used => rows.sort_by(|a, b| b.4.total_cmp(&a.4)),
    }
    if json {
        let list: Vec<_> = rows
            .iter()
            .map(|(id, usage, quota, source, used)| {
                json!({
                    "workspace": id,
                    "keys": usage.keys,
                    "bytes": usage.bytes,
                    "quota": quota_json(*quota, *source),
                    "used_percent": used,
                })
            })
            .collect();
        print_json(&json!({ "workspaces": list }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "workspace\tkeys\tbytes\tquota_keys\tquota_bytes\tused")?;
    for (id, usage, quota, _, used) in rows {
        writeln!(
            out,
            "{id}\t{}\t{}\t{}\t{}\t{used:.1}%",
            usage.keys, usage.bytes, quota.max_keys, quota.max_bytes
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar on stderr when it is a terminal; nothing otherwise.
fn progress_bar(verb: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{verb} {{bar:40}} {{pos}}/{{len}} entries ({{per_sec}}, {{eta}} left)"
    )) {
        bar.set_style(style);
    }
    bar
}

fn show(bar: &ProgressBar) -> impl FnMut(Progress) + '_ {
    |p: Progress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
    }
}

/// `cubby workspace export`.
pub(crate) fn export(
    storage: &Storage,
    workspace: &str,
    namespaces: Vec<String>,
    output: &Path,
    json: bool,
) -> Result<ExitCode> {
    let ws = storage.workspace(workspace)?;
    let options = ExportOptions::default().namespaces(namespaces);
    let bar = progress_bar("exporting");
    let to_stdout = output == Path::new("-");
    let summary = if to_stdout {
        if json {
            bail!(
                "--json prints a summary on standard output: give the export a file with -o FILE"
            );
        }
        let stdout = std::io::stdout();
        if stdout.is_terminal() {
            bail!(
                "not writing an export to a terminal: give a file with -o FILE, or redirect \
                 standard output"
            );
        }
        ws.export_with(stdout.lock(), &options, show(&bar))?
    } else {
        // Written under a temporary name beside the target and renamed when
        // complete: a failed export leaves no partial file.
        let dir = match output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut file = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("cannot create a file in {}", dir.display()))?;
        let summary = ws
            .export_with(file.as_file_mut(), &options, show(&bar))
            .with_context(|| format!("exporting to {}", output.display()))?;
        file.as_file()
            .sync_all()
            .with_context(|| format!("cannot flush {}", output.display()))?;
        file.persist(output)
            .with_context(|| format!("cannot write {}", output.display()))?;
        summary
    };
    bar.finish_and_clear();
    if json {
        print_json(&json!({
            "workspace": workspace,
            "file": output,
            "keys": summary.usage.keys,
            "bytes": summary.usage.bytes,
            "file_bytes": summary.file_bytes,
        }))?;
    } else {
        eprintln!(
            "exported {} keys ({} bytes) of workspace {} to {} ({} bytes)",
            summary.usage.keys,
            summary.usage.bytes,
            printable(workspace),
            if to_stdout {
                "standard output".to_owned()
            } else {
                output.display().to_string()
            },
            summary.file_bytes
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `cubby workspace import`.
pub(crate) fn import(
    storage: &Storage,
    workspace: &str,
    file: &Path,
    replace: bool,
    json: bool,
) -> Result<ExitCode> {
    let ws = storage.workspace(workspace)?;
    let mode = if replace {
        ImportMode::Replace
    } else {
        ImportMode::Merge
    };
    let bar = progress_bar("importing");
    let summary = if file == Path::new("-") {
        ws.import_with(std::io::stdin().lock(), mode, show(&bar))
            .context("importing from standard input; nothing was imported")?
    } else {
        let input =
            std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
        ws.import_with(input, mode, show(&bar))
            .with_context(|| format!("importing {}; nothing was imported", file.display()))?
    };
    bar.finish_and_clear();
    let mode_name = if replace { "replace" } else { "merge" };
    if json {
        print_json(&json!({
            "workspace": workspace,
            "mode": mode_name,
            "imported": summary.imported,
            "expired": summary.expired,
        }))?;
    } else {
        eprintln!(
            "imported {} keys into workspace {} ({mode_name}); {} already expired, skipped",
            summary.imported,
            printable(workspace),
            summary.expired
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `cubby quota set|get|unset`.
pub(crate) fn quota(
    storage: &Storage,
    db: &DbArgs,
    command: QuotaCommand,
    json: bool,
) -> Result<ExitCode> {
    match command {
        QuotaCommand::Set { workspace, quota } => {
            let quota = Quota {
                max_bytes: quota.bytes,
                max_keys: quota.keys.unwrap_or(db.quota_keys),
            };
            storage.store_quota(&workspace, Some(quota))?;
            if json {
                print_json(&json!({
                    "workspace": workspace,
                    "quota": quota_json(quota, Source::Stored),
                }))?;
            } else {
                eprintln!(
                    "stored quota of workspace {}: {} bytes, {} keys",
                    printable(&workspace),
                    quota.max_bytes,
                    quota.max_keys
                );
            }
        }
        QuotaCommand::Get { workspace } => {
            let (quota, source) = quota_of_one(storage, db, &workspace)?;
            let usage = storage.workspace(&workspace)?.usage()?;
            if json {
                print_json(&json!({
                    "workspace": workspace,
                    "quota": quota_json(quota, source),
                    "keys": usage.keys,
                    "bytes": usage.bytes,
                    "used_percent": used_percent(usage, quota),
                }))?;
            } else {
                let mut out = std::io::stdout().lock();
                writeln!(out, "\tkeys\tbytes")?;
                writeln!(out, "quota\t{}\t{}", quota.max_keys, quota.max_bytes)?;
                writeln!(out, "used\t{}\t{}", usage.keys, usage.bytes)?;
                writeln!(
                    out,
                    "({}, {:.1}% used)",
                    source.name(),
                    used_percent(usage, quota)
                )?;
            }
        }
        QuotaCommand::Unset { workspace } => {
            let had = storage.stored_quota(&workspace)?.is_some();
            storage.store_quota(&workspace, None)?;
            if json {
                print_json(&json!({ "workspace": workspace, "removed": had }))?;
            } else if had {
                eprintln!(
                    "removed the stored quota of workspace {}",
                    printable(&workspace)
                );
            } else {
                eprintln!("workspace {} had no stored quota", printable(&workspace));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
