//! `pitr-heartbeat --contract FILE`: updates the heartbeat row and checks
//! the archive's health (pg_stat_archiver). Exit 1 when archiving fails or
//! is stale.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zpersist_core::pitr::health::ArchiveHealth;

/// Write the heartbeat row and report archive health.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[arg(long, default_value = zpersist_pitr::DEFAULT_CONTRACT)]
    contract: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let contract = match zpersist_pitr::load_contract(&args.contract) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match zpersist_pitr::heartbeat::run(&contract) {
        Ok(report) => match report.health {
            ArchiveHealth::Ok => {
                println!(
                    "heartbeat written; archive ok ({} archived, {} failed)",
                    report.stats.archived_count, report.stats.failed_count
                );
                ExitCode::SUCCESS
            }
            ArchiveHealth::Failing { wal, since } => {
                eprintln!(
                    "error: archiving {wal} fails (since {}; {} failures counted) (on {})",
                    zpersist_core::time::rfc3339(since),
                    report.stats.failed_count,
                    contract.repository_label()
                );
                eprintln!("  help: PostgreSQL keeps the WAL in pg_wal and retries; the server log says why archive_command fails (a full or unmounted repository, credentials)");
                ExitCode::FAILURE
            }
            ArchiveHealth::Stale { age } => {
                eprintln!(
                    "error: nothing archived for {} (on {})",
                    age.map_or("ever".into(), |a| format!("{a} s")),
                    contract.repository_label()
                );
                eprintln!("  help: check archive_mode and archive_command (SHOW archive_command) and archive_timeout; pg_stat_archiver shows the last attempt");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            zpersist_pitr::report(&e);
            ExitCode::FAILURE
        }
    }
}
