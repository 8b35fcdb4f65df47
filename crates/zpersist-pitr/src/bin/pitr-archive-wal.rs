//! `pitr-archive-wal --contract FILE %p %f`: PostgreSQL's archive_command.
//! Exit 0 once the file is durably in the repository (or an identical copy
//! already was); non-zero otherwise, and PostgreSQL retries.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zpersist_postgres::local::Archived;
use zpersist_report::Reporter;

/// Archive one WAL file (PostgreSQL's archive_command).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[arg(long, default_value = zpersist_ops::pitr::DEFAULT_CONTRACT)]
    contract: PathBuf,
    /// %p: the file's path, relative to the data directory.
    path: PathBuf,
    /// %f: the file's name.
    name: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // No --json: PostgreSQL runs it and reads only its exit status.
    let mut reporter = Reporter::new("pitr-archive-wal", false);
    let contract = match zpersist_ops::pitr::load_contract(&args.contract, &mut reporter) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match zpersist_ops::pitr::wal::archive(&contract, &args.path, &args.name) {
        Ok(Archived::Stored) => ExitCode::SUCCESS,
        Ok(Archived::AlreadyArchived) => {
            reporter.note(format!(
                "{} is archived already, with the same contents",
                args.name
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            zpersist_ops::pitr::report(&mut reporter, &e);
            reporter.exit_code()
        }
    }
}
