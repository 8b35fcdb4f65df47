//! `pitr-heartbeat --contract FILE`: updates the heartbeat row and checks
//! the archive's health (pg_stat_archiver). Exit 1 when archiving fails or
//! is stale (`error:` / `help:` through zpersist-report; with `--json` the
//! report is printed as well).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zpersist_core::pitr::health::ArchiveHealth;
use zpersist_report::{Diagnostic, JsonFlag, Reporter};

/// Write the heartbeat row and report archive health.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[arg(long, default_value = zpersist_ops::pitr::DEFAULT_CONTRACT)]
    contract: PathBuf,
    // --json: the heartbeat's report (archive health, pg_stat_archiver) as
    // JSON on stdout instead of text.
    #[command(flatten)]
    output: JsonFlag,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("pitr-heartbeat", args.output.json);
    let contract = match zpersist_ops::pitr::load_contract(&args.contract, &mut reporter) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let report = match zpersist_ops::pitr::heartbeat::run(&contract) {
        Ok(report) => report,
        Err(e) => {
            zpersist_ops::pitr::report(&mut reporter, &e);
            return reporter.exit_code();
        }
    };
    if reporter.json() {
        reporter.document(&report);
    }
    let on = contract.repository_label();
    match &report.health {
        ArchiveHealth::Ok => {
            if !reporter.json() {
                println!(
                    "heartbeat written; archive ok ({} archived, {} failed)",
                    report.stats.archived_count, report.stats.failed_count
                );
            }
        }
        ArchiveHealth::Failing { wal, since } => reporter.error(
            &Diagnostic::new(format!(
                "archiving {wal} fails (since {}; {} failures counted) (on {on})",
                zpersist_core::time::rfc3339(*since),
                report.stats.failed_count,
            ))
            .with_help("PostgreSQL keeps the WAL in pg_wal and retries; the server log says why archive_command fails (a full or unmounted repository, credentials)"),
        ),
        ArchiveHealth::Stale { age } => reporter.error(
            &Diagnostic::new(format!(
                "nothing archived for {} (on {on})",
                age.map_or("ever".into(), |a| format!("{a} s")),
            ))
            .with_help("check archive_mode and archive_command (SHOW archive_command) and archive_timeout; pg_stat_archiver shows the last attempt"),
        ),
    }
    reporter.exit_code()
}
