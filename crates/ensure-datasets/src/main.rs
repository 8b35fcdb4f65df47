//! `ensure-datasets --plan FILE`: make a pool's datasets match a declared
//! plan, idempotently and never destructively. Exit codes: 0 in shape,
//! 1 something failed or needs a person, 2 bad plan or arguments (and then
//! no zfs command runs).

mod apply;
mod report;

use std::io::Write;
use std::process::ExitCode;

use camino::Utf8PathBuf;
use clap::Parser;
use zpersist_core::Plan;

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
    /// Print a machine-readable report (actions, drift, problems) instead of text.
    #[arg(long)]
    json: bool,
    /// The lock that keeps two runs on one pool apart
    /// [default: /run/zpersist/ensure-datasets-POOL.lock].
    #[arg(long)]
    lock_file: Option<Utf8PathBuf>,
    /// How long to wait for another run holding the lock before giving up
    /// (exit 1, naming the holder).
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    lock_timeout: u64,
}

const EXIT_FAILED: u8 = 1;
const EXIT_BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.plan) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read the plan {}: {e}", args.plan);
            eprintln!("  help: pass the path of a plan file (docs/plan-format.md) with --plan");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let plan = match Plan::parse(&text) {
        Ok(plan) => plan,
        Err(invalid) => {
            for problem in &invalid.problems {
                eprintln!("error: {}: {problem}", args.plan);
            }
            eprintln!(
                "ensure-datasets: {} has {} problem(s); nothing was changed (docs/plan-format.md describes the format)",
                args.plan,
                invalid.problems.len()
            );
            return ExitCode::from(EXIT_BAD_INPUT);
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
        if args.json { None } else { Some(&mut out) },
    );
    if args.json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&report).expect("report serialises")
        );
    }
    ExitCode::from(if report.succeeded() { 0 } else { EXIT_FAILED })
}
