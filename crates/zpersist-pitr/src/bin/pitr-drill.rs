//! `pitr-drill --contract FILE`: a real restore of the newest state into a
//! scratch directory; reports the recovery point objective.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zpersist_report::{JsonFlag, Reporter};

/// Prove the archive restores: restore latest, read the heartbeat, report the RPO.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[arg(long, default_value = zpersist_ops::pitr::DEFAULT_CONTRACT)]
    contract: PathBuf,
    // --json: the report as JSON on stdout instead of text.
    #[command(flatten)]
    output: JsonFlag,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("pitr-drill", args.output.json);
    zpersist_ops::pitr::drill_from(&mut reporter, &args.contract)
}
