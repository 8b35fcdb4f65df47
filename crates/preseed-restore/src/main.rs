//! `preseed-restore --plan FILE`: before a service starts, make sure its
//! dataset holds data: data present is never touched (`existing`); empty,
//! it is restored from the freshest good source through a verified sibling
//! swapped in under a journal (`restored`), or, when no source has ever
//! held data, left empty (`fresh`). Exit codes: 0 the dataset holds data
//! (or is rightly fresh), 1 data is missing and could not be restored (the
//! service must not start), 2 bad plan or arguments, nothing touched.

mod restore;
mod sources;

use std::process::ExitCode;
use std::time::Duration;

use camino::Utf8PathBuf;
use clap::Parser;
use zpersist_core::preseed::PreseedPlan;

/// Restore a service's empty dataset before it starts (docs/preseed.md).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The service's preseed plan (JSON, version 1), as the NixOS module writes it.
    #[arg(long)]
    plan: Utf8PathBuf,
    /// Say what would be done (and the same restore by hand), change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// How long to wait for another run of this service's preseed.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    lock_timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let text = match std::fs::read_to_string(&args.plan) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read the preseed plan {}: {e}", args.plan);
            eprintln!("  help: pass the plan the NixOS module writes (zpersist-<service>-preseed.service names it)");
            return ExitCode::from(2);
        }
    };
    let plan = match PreseedPlan::parse(&text) {
        Ok(plan) => plan,
        Err(problems) => {
            for problem in &problems {
                eprintln!("error: {}: {}", args.plan, zpersist_core::shown(problem));
            }
            eprintln!("  help: the plan is written by zpersist's NixOS module (docs/preseed.md); nothing was touched");
            return ExitCode::from(2);
        }
    };
    let options = restore::Options {
        dry_run: args.dry_run,
        lock_timeout: Duration::from_secs(args.lock_timeout),
        text: !args.json,
    };
    let report = restore::run(&plan, &options);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("a report serialises")
        );
    } else {
        for source in &report.sources {
            match (&source.error, &source.newest) {
                (Some(error), _) => {
                    println!("source  {}: could not be asked: {error}", source.source)
                }
                (None, Some(newest)) => println!(
                    "source  {}: {} point(s), newest {newest}",
                    source.source, source.points
                ),
                (None, None) => println!("source  {}: no point that may hold data", source.source),
            }
        }
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
    }
    if let (Some(error), Some(help)) = (&report.error, &report.help) {
        eprintln!("error: {error}");
        eprintln!("  help: {help}");
        return ExitCode::from(1);
    }
    if !args.json {
        println!(
            "preseed-restore: {}: {}{}",
            report.service,
            report.outcome,
            report
                .source
                .as_deref()
                .map(|s| format!(" from {s}"))
                .unwrap_or_default()
        );
    }
    ExitCode::SUCCESS
}
