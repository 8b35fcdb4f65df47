//! `ensure-datasets --plan FILE`: make a pool's datasets match a declared
//! plan, idempotently and never destructively. Exit codes: 0 in shape,
//! 1 something failed or needs a person, 2 bad plan or arguments (and then
//! no zfs command runs).

use std::process::ExitCode;

use camino::Utf8PathBuf;
use clap::Parser;
use zpersist_core::Plan;
use zpersist_ops::datasets as apply;
use zpersist_report::{JsonFlag, Reporter};

/// Make a pool's datasets match a declared plan (docs/plan-format.md).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The plan file (JSON, version 1).
    #[arg(long)]
    plan: Utf8PathBuf,
    /// Print the actions a run would take, and change nothing.
    #[arg(long)]
    dry_run: bool,
    // --json: the report (actions, drift, problems) as JSON instead of text.
    #[command(flatten)]
    output: JsonFlag,
    /// The lock that keeps two runs on one pool apart
    /// [default: /run/zpersist/ensure-datasets-POOL.lock].
    #[arg(long)]
    lock_file: Option<Utf8PathBuf>,
    /// How long to wait for another run holding the lock before giving up
    /// (exit 1, naming the holder).
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    lock_timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.output.json;
    let mut reporter = Reporter::new("ensure-datasets", json);
    let plan = match zpersist_host::read_contract::<Plan>(args.plan.as_std_path()) {
        Ok(plan) => plan,
        Err(problems) => {
            return reporter.bad_input(
                &problems,
                "docs/plan-format.md describes the plan; the NixOS module writes it (zpersist.datasets), or pass another with --plan",
                &format!(
                    "{} has {} problem(s); nothing was changed",
                    args.plan,
                    problems.len()
                ),
            )
        }
    };
    let lock_file = args.lock_file.clone().unwrap_or_else(|| {
        Utf8PathBuf::from(format!("/run/zpersist/ensure-datasets-{}.lock", plan.pool))
    });
    let mut out = std::io::stdout().lock();
    let report = apply::run(
        &plan,
        args.dry_run,
        &lock_file,
        std::time::Duration::from_secs(args.lock_timeout),
        if json { None } else { Some(&mut out) },
    );
    drop(out);
    if json {
        reporter.document(&report);
    }
    if !report.succeeded() {
        reporter.mark_failed();
    }
    reporter.exit_code()
}
