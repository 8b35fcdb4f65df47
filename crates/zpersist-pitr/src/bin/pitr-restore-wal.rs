//! `pitr-restore-wal --contract FILE %f %p`: PostgreSQL's restore_command.
//! Exit 0 restored; 1 not in the archive (PostgreSQL's normal end of
//! recovery); 126 when the archive cannot be read at all, which makes
//! PostgreSQL stop recovery instead of taking the gap as the archive's end.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zpersist_postgres::local::Fetched;
use zpersist_report::Reporter;

/// Fetch one WAL file for recovery (PostgreSQL's restore_command).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[arg(long, default_value = zpersist_pitr::DEFAULT_CONTRACT)]
    contract: PathBuf,
    /// %f: the file's name.
    name: String,
    /// %p: where to put it.
    path: PathBuf,
}

/// Exit statuses above 125 abort recovery (PostgreSQL takes them as a
/// shell error), where 1 would end it early as if the archive ended there.
const ABORT_RECOVERY: u8 = 126;

fn main() -> ExitCode {
    let args = Args::parse();
    // No --json: PostgreSQL runs it and reads only its exit status.
    let mut reporter = Reporter::new("pitr-restore-wal", false);
    let contract = match zpersist_pitr::load_contract(&args.contract, &mut reporter) {
        Ok(c) => c,
        Err(_) => return ExitCode::from(ABORT_RECOVERY),
    };
    match zpersist_pitr::wal::fetch(&contract, &args.name, &args.path) {
        Ok(Fetched::Restored) => ExitCode::SUCCESS,
        Ok(Fetched::Missing) => ExitCode::FAILURE,
        Err(e) => {
            zpersist_pitr::report(&mut reporter, &e);
            ExitCode::from(ABORT_RECOVERY)
        }
    }
}
