//! `pitr-base-backup --contract FILE`: a verified base backup, then
//! retention (docs/postgresql-pitr.md).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Take a verified base backup and prune what retention no longer needs.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[arg(long, default_value = zpersist_pitr::DEFAULT_CONTRACT)]
    contract: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let contract = match zpersist_pitr::load_contract(&args.contract) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match zpersist_pitr::backup::run(&contract) {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("a report serialises")
                );
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
        Err(failure) => failure.exit(),
    }
}
