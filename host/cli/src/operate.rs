//! The operator's commands: `workspace list|export|import` and `quota`.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cubby_host::Storage;
use cubby_host::ops::Usage;
use cubby_host::options::{Quota, QuotaSource};
use cubby_host::transfer::{ExportOptions, ImportMode, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::args::{DbArgs, QuotaCommand, SortBy};
use crate::output::{print_json, printable, quota_json, used_percent};

/// `cubby workspace list`.
pub(crate) fn list(storage: &Storage, sort: SortBy, json: bool) -> Result<ExitCode> {
    let stored: BTreeMap<String, Quota> = storage.stored_quotas()?.into_iter().collect();
    let mut rows: BTreeMap<String, Usage> = storage.workspaces()?.into_iter().collect();
    for id in stored.keys() {
        rows.entry(id.clone()).or_default();
    }
    let mut rows: Vec<(String, Usage, Quota, QuotaSource, f64)> = rows
        .into_iter()
        .map(|(id, usage)| {
            let (quota, source) = storage.resolve_quota(&id, stored.get(&id).copied());
            let used = used_percent(usage, quota);
            (id, usage, quota, source, used)
        })
        .collect();
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
                    "quota": quota_json(quota, QuotaSource::Stored),
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
            let (quota, source) = storage.quota_with_source(&workspace)?;
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
