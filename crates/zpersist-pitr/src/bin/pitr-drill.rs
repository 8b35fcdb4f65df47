//! `pitr-drill --contract FILE`: a real restore of the newest state into a
//! scratch directory; reports the recovery point objective.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Prove the archive restores: restore latest, read the heartbeat, report the RPO.
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
    match zpersist_pitr::drill::run(&contract, &args.contract) {
        Ok(report) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("a report serialises")
                );
            } else {
                println!(
                    "drill: {} in {:.1} s",
                    report.restore.provenance, report.facts.restore_seconds
                );
                if let Some(rpo) = report.rpo_seconds {
                    println!("recovery point objective: {rpo:.1} s (now minus the newest heartbeat restored)");
                }
            }
            ExitCode::SUCCESS
        }
        Err(failure) => failure.exit(),
    }
}
