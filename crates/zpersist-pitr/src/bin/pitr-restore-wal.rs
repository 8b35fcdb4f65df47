//! `pitr-restore-wal --contract FILE %f %p`: PostgreSQL's restore_command.
//! Exit 0 restored; 1 only when the file is truly absent from a reachable
//! archive (PostgreSQL's normal end of recovery); 126 for every other
//! failure (an unmounted or unreadable repository, a bad contract or
//! argument, a failed copy, even a panic), which makes PostgreSQL stop
//! recovery instead of taking the failure as the archive's end.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zpersist_postgres::local::Fetched;
use zpersist_report::Reporter;

/// Fetch one WAL file for recovery (PostgreSQL's restore_command).
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[arg(long, default_value = zpersist_ops::pitr::DEFAULT_CONTRACT)]
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
    // A panic would exit 101, which PostgreSQL reads as "not archived".
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: pitr-restore-wal: {info}");
        eprintln!("  help: report this as a bug; recovery stops here (exit {ABORT_RECOVERY})");
        std::process::exit(i32::from(ABORT_RECOVERY));
    }));
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            // --help and --version are no failure.
            return if e.use_stderr() {
                ExitCode::from(ABORT_RECOVERY)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // No --json: PostgreSQL runs it and reads only its exit status.
    let mut reporter = Reporter::new("pitr-restore-wal", false);
    let contract = match zpersist_ops::pitr::load_contract(&args.contract, &mut reporter) {
        Ok(c) => c,
        Err(_) => return ExitCode::from(ABORT_RECOVERY),
    };
    match zpersist_ops::pitr::wal::fetch(&contract, &args.name, &args.path) {
        Ok(Fetched::Restored) => ExitCode::SUCCESS,
        Ok(Fetched::Missing) => ExitCode::FAILURE,
        Err(e) => {
            zpersist_ops::pitr::report(&mut reporter, &e);
            ExitCode::from(ABORT_RECOVERY)
        }
    }
}
