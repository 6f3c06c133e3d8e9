//! The kill -9 campaign, long form: `tests/crash/campaign` builds this and
//! the `cubby` binary in release mode and runs it. Each run starts the
//! `writer` test plugin under `cubby run`, kills it with SIGKILL at a random
//! moment, and checks everything it acknowledged (see
//! `tests/campaign/mod.rs`).
//!
//! ```sh
//! crash-campaign --cubby PATH [--runs N] [--seed S] [--max-life-ms MS] [--postgres]
//! ```
//!
//! On redb the campaign's database is a fresh file in a temporary folder;
//! with `--postgres`, a fresh schema on the server `CUBBY_TEST_POSTGRES_URL`
//! names. It prints a line every 50 runs and a summary at the end, and
//! exits with status 1 if anything acknowledged was lost.

#[path = "../tests/campaign/mod.rs"]
mod campaign;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use cubby_host::testing::Place;

fn main() -> Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let (mut cubby, mut runs, mut seed, mut life, mut postgres) = (None, 1000, 1, 800, false);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--cubby" => cubby = Some(PathBuf::from(value()?)),
            "--runs" => runs = value()?.parse()?,
            "--seed" => seed = value()?.parse()?,
            "--max-life-ms" => life = value()?.parse()?,
            "--postgres" => postgres = true,
            other => bail!("unknown argument {other}; see the source for the usage"),
        }
    }
    let cubby = cubby.context("--cubby PATH (the cubby binary) is required")?;
    let place = if postgres {
        Place::postgres().context("set CUBBY_TEST_POSTGRES_URL to a PostgreSQL server")?
    } else {
        Place::redb_file()
    };
    let backend = if postgres { "PostgreSQL" } else { "redb" };
    let campaign = campaign::Campaign {
        cubby,
        plugin: PathBuf::from(cubby_artifacts::WRITER),
        cache_dir: PathBuf::from(cubby_artifacts::CACHE_DIR),
        db: place.db_arg(),
        runs,
        max_life: Duration::from_millis(life),
        seed,
        streams_every: 4,
    };
    let started = Instant::now();
    let report = campaign.run(|r| {
        if r.runs % 50 == 0 {
            println!(
                "{backend}: {} runs, {} writes acknowledged, {} lost ({:.0?})",
                r.runs,
                r.acknowledged,
                r.lost,
                started.elapsed()
            );
        }
    });
    println!(
        "kill -9 campaign on {backend} (seed {seed}): {} runs ({} killed before their first \
         acknowledgement), {} writes acknowledged, {} lost, {} broken promises, in {:.0?}",
        report.runs,
        report.silent_runs,
        report.acknowledged,
        report.lost,
        report.broken,
        started.elapsed()
    );
    for problem in &report.problems {
        println!("  {problem}");
    }
    Ok(if report.broken == 0 && report.lost == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
