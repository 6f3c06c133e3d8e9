//! The benchmark's output: a table with ratios, the goals checked against
//! it, and the same figures as JSON in a results file.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

/// One measured figure.
pub struct Row {
    /// The workload it belongs to (rows of one workload share a baseline).
    pub workload: &'static str,
    pub name: String,
    pub per_op: Duration,
    /// The row this one is compared with (`None` for a baseline).
    pub baseline: Option<String>,
    /// Anything else worth printing with it (bytes, fsyncs per write).
    pub note: String,
}

/// One goal of the performance issue: `candidate / baseline` compared with
/// a bound.
pub struct Goal {
    pub text: &'static str,
    pub candidate: String,
    pub baseline: String,
    pub bound: Bound,
}

/// How a goal's ratio (`candidate time / baseline time`) must compare.
#[derive(Clone, Copy)]
pub enum Bound {
    /// At most this ratio.
    AtMost(f64),
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub goals: Vec<Goal>,
}

impl Report {
    pub fn baseline(&mut self, workload: &'static str, name: &str, per_op: Duration) {
        self.rows.push(Row {
            workload,
            name: name.into(),
            per_op,
            baseline: None,
            note: String::new(),
        });
    }

    pub fn row(&mut self, workload: &'static str, name: &str, per_op: Duration, baseline: &str) {
        self.noted(workload, name, per_op, baseline, String::new());
    }

    pub fn noted(
        &mut self,
        workload: &'static str,
        name: &str,
        per_op: Duration,
        baseline: &str,
        note: String,
    ) {
        self.rows.push(Row {
            workload,
            name: name.into(),
            per_op,
            baseline: Some(baseline.into()),
            note,
        });
    }

    pub fn goal(&mut self, text: &'static str, candidate: &str, baseline: &str, bound: Bound) {
        self.goals.push(Goal {
            text,
            candidate: candidate.into(),
            baseline: baseline.into(),
            bound,
        });
    }

    fn time_of(&self, name: &str) -> Option<Duration> {
        self.rows.iter().find(|r| r.name == name).map(|r| r.per_op)
    }

    fn ratio(&self, candidate: &str, baseline: &str) -> Option<f64> {
        let (c, b) = (self.time_of(candidate)?, self.time_of(baseline)?);
        Some(c.as_secs_f64() / b.as_secs_f64())
    }

    /// Prints the table and the goals, and writes the JSON file; returns
    /// its path.
    pub fn finish(&self, mode: &str, dir: &Path) -> std::io::Result<PathBuf> {
        let machine = machine(dir);
        let date = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
        println!("\n{machine}; {mode}; {date}\n");
        println!("| workload | what | time per op | ops/s | ratio | against | note |");
        println!("| --- | --- | ---: | ---: | ---: | --- | --- |");
        let mut rows = Vec::new();
        for row in &self.rows {
            let ratio = match &row.baseline {
                Some(b) => self.ratio(&row.name, b).unwrap_or(f64::NAN),
                None => 1.0,
            };
            let against = row.baseline.as_deref().unwrap_or("(baseline)");
            println!(
                "| {} | {} | {} | {:.0} | {:.2}x | {} | {} |",
                row.workload,
                row.name,
                show(row.per_op),
                1.0 / row.per_op.as_secs_f64(),
                ratio,
                against,
                row.note
            );
            rows.push(json!({
                "name": row.name,
                "workload": row.workload,
                "ns_per_op": row.per_op.as_secs_f64() * 1e9,
                "ratio": ratio,
                "baseline": row.baseline,
                "note": row.note,
            }));
        }
        println!("\n| goal | measured | bound | met |");
        println!("| --- | ---: | ---: | --- |");
        let mut goals = Vec::new();
        for goal in &self.goals {
            let (measured, bound, met) = match goal.bound {
                Bound::AtMost(max) => {
                    let r = self.ratio(&goal.candidate, &goal.baseline);
                    let shown = r.map_or("n/a".into(), |r| format!("{r:.2}x"));
                    (shown, format!("≤ {max:.2}x"), r.map(|r| r <= max))
                }
            };
            let verdict = match met {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "n/a",
            };
            println!("| {} | {measured} | {bound} | {verdict} |", goal.text);
            goals.push(json!({
                "goal": goal.text,
                "candidate": goal.candidate,
                "baseline": goal.baseline,
                "measured": measured,
                "bound": bound,
                "met": met,
            }));
        }
        let doc: Value = json!({
            "machine": machine,
            "mode": mode,
            "date": date,
            "rows": rows,
            "goals": goals,
        });
        std::fs::create_dir_all(dir)?;
        let stamp = date.replace(':', "-");
        let path = dir.join(format!("results-{stamp}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
        println!("\nresults written to {}", path.display());
        Ok(path)
    }
}

fn show(d: Duration) -> String {
    let ns = d.as_secs_f64() * 1e9;
    if ns < 10_000.0 {
        format!("{ns:.0} ns")
    } else if ns < 10_000_000.0 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{:.1} ms", ns / 1e6)
    }
}

/// CPU model, cores, and the disk the benchmark's files are on.
fn machine(dir: &Path) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".into(), |m| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores, disk {}", disk(dir))
}

/// The device and file system `dir` is on (Linux), and whether it spins.
fn disk(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let Some((device, fs)) = mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 2 && dir.starts_with(f[1])).then(|| (f[1].len(), f[0], f[2]))
        })
        .max()
        .map(|(_, device, fs)| (device.to_string(), fs.to_string()))
    else {
        return "unknown".into();
    };
    let name = device.trim_start_matches("/dev/");
    let rotational = std::fs::read_to_string(format!("/sys/block/{name}/queue/rotational"))
        .map(|r| {
            if r.trim() == "1" {
                ", rotational"
            } else {
                ", non-rotational"
            }
        })
        .unwrap_or("");
    format!("{device} ({fs}{rotational})")
}
