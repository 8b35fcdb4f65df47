//! `pitr-base-backup --contract FILE`: a verified base backup, then
//! retention (docs/postgresql-pitr.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zpersist_report::{JsonFlag, Reporter};

/// Take a verified base backup and prune what retention no longer needs.
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
    let mut reporter = Reporter::new("pitr-base-backup", args.output.json);
    let contract = match zpersist_ops::pitr::load_contract(&args.contract, &mut reporter) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match zpersist_ops::pitr::backup::run(&contract) {
        Ok(report) => {
            if reporter.json() {
                reporter.document(&report);
            } else {
                println!(
                    "base backup {} taken in {:.1} s and published",
                    report.id, report.seconds
                );
                println!("verified: {}", report.verified);
                println!("kept: {}", report.kept.join(", "));
                if !report.removed.is_empty() || report.wal_removed > 0 {
                    println!(
                        "pruned: {} base backup(s) ({}), {} WAL file(s) no kept backup needs",
                        report.removed.len(),
                        report.removed.join(", "),
                        report.wal_removed
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(failure) => failure.exit(&mut reporter),
    }
}
