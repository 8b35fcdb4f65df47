//! The flows of PostgreSQL point-in-time recovery, shared by the `pitr-*`
//! binaries and by `preseed-restore` (which calls [`restore::restore`] to
//! bring an empty dataset back to the newest archived transaction). Each
//! flow gathers facts through `zpersist-postgres`, asks
//! `zpersist_core::pitr`, and acts through `zpersist-postgres` again.

pub mod backup;
pub mod drill;
pub mod heartbeat;
pub mod restore;
pub mod wal;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use zpersist_core::pitr::{PitrContract, Repository};
use zpersist_postgres::barman::Barman;
use zpersist_postgres::cluster::Pg;
use zpersist_postgres::local::LocalRepository;
use zpersist_postgres::PgError;
use zpersist_report::{Diagnostic, Reporter};

/// Where the NixOS module installs the contract.
pub const DEFAULT_CONTRACT: &str = "/etc/zpersist/pitr.json";

/// Reads the contract (zpersist_host::read_contract, the one loader); a
/// problem is printed by the binary's `reporter` and is exit 2 (nothing
/// touched).
pub fn load_contract(
    path: &std::path::Path,
    reporter: &mut Reporter,
) -> Result<PitrContract, ExitCode> {
    zpersist_host::read_contract::<PitrContract>(path).map_err(|problems| {
        reporter.bad_input(
            &problems,
            &format!("the contract is written by zpersist's NixOS module (docs/postgresql-pitr.md; {DEFAULT_CONTRACT}), or pass --contract FILE"),
            "nothing was touched",
        )
    })
}

/// An adapter error as zpersist-report prints it: `error: WHAT (on ON):
/// MESSAGE` / `  help: HELP`.
pub fn diagnostic(e: &PgError) -> Diagnostic {
    Diagnostic::new(e.to_string()).with_help(&e.help)
}

/// Reports an adapter error that ends the run (exit 1): on stderr, and
/// with `--json` as the `{"errors": [...]}` document.
pub fn report(reporter: &mut Reporter, e: &PgError) {
    reporter.abort(&diagnostic(e));
}

pub use zpersist_host::clock::{now, now_micros};

/// The running cluster of the contract.
pub fn cluster(contract: &PitrContract) -> Pg {
    Pg {
        bin: PathBuf::from(&contract.cluster.pg_bin),
        socket_dir: contract.cluster.socket_dir.clone(),
        port: contract.cluster.port,
        user: contract.cluster.user.clone(),
        database: contract.cluster.database.clone(),
        timeout: Duration::from_secs(contract.timeouts.command_seconds),
    }
}

/// The repository of the contract.
pub enum Backend<'a> {
    Local(LocalRepository),
    S3(Barman<'a>),
}

pub fn backend(contract: &PitrContract) -> Backend<'_> {
    match &contract.repository {
        Repository::Local { dir, dataset } => {
            Backend::Local(LocalRepository::on_dataset(dir, dataset.clone()))
        }
        Repository::S3(s3) => Backend::S3(Barman {
            s3,
            run_as: contract.cluster.user.clone(),
            timeout: Duration::from_secs(contract.timeouts.command_seconds),
        }),
    }
}

/// A restore or backup that failed: its exit code (1 failed, 2 bad input
/// and nothing touched) and the error.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: PgError,
}

impl Failure {
    pub fn failed(error: PgError) -> Failure {
        Failure { code: 1, error }
    }
    pub fn bad_input(error: PgError) -> Failure {
        Failure { code: 2, error }
    }
    /// Reports it through the binary's `reporter`: bad input as
    /// [`Reporter::bad_input`] does (the error with its help, where the
    /// input is described, `BINARY: nothing was touched`; with `--json` the
    /// errors document), a failure as [`report`]; its exit code.
    pub fn exit(&self, reporter: &mut Reporter) -> ExitCode {
        if self.code == 2 {
            return reporter.bad_input(
                &[diagnostic(&self.error)],
                "docs/postgresql-pitr.md describes what each pitr-* binary accepts",
                "nothing was touched",
            );
        }
        report(reporter, &self.error);
        ExitCode::from(self.code)
    }
}

/// How a PITR flow's outcome is shown (pitr-restore, pitr-drill and
/// `zpersist pitr`): its report as the JSON document or as `lines`, exit 0;
/// a failure through [`Failure::exit`].
pub fn finish<R: serde::Serialize>(
    reporter: &mut Reporter,
    outcome: Result<R, Failure>,
    lines: impl Fn(&R) -> Vec<String>,
) -> ExitCode {
    match outcome {
        Ok(report) => {
            if reporter.json() {
                reporter.document(&report);
            } else {
                for line in lines(&report) {
                    println!("{line}");
                }
            }
            ExitCode::SUCCESS
        }
        Err(failure) => failure.exit(reporter),
    }
}

/// A restore as `pitr-restore` and `zpersist pitr restore` run it: the
/// contract at `contract_path` loaded, the asked options, the restore
/// reported.
pub fn restore_from(
    reporter: &mut Reporter,
    contract_path: &std::path::Path,
    to: &zpersist_core::pitr::Target,
    into: &std::path::Path,
    start: bool,
    archive: bool,
    port: Option<u16>,
) -> ExitCode {
    let contract = match load_contract(contract_path, reporter) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let options = restore::Options::asked(&contract, contract_path, start, archive, port);
    finish(
        reporter,
        restore::restore(&contract, to, into, &options),
        restore::RestoreReport::lines,
    )
}

/// A drill as `pitr-drill` and `zpersist pitr drill` run it: the contract
/// at `contract_path` loaded, the drill reported.
pub fn drill_from(reporter: &mut Reporter, contract_path: &std::path::Path) -> ExitCode {
    let contract = match load_contract(contract_path, reporter) {
        Ok(c) => c,
        Err(code) => return code,
    };
    finish(
        reporter,
        drill::run(&contract, contract_path),
        drill::DrillReport::lines,
    )
}

impl From<PgError> for Failure {
    fn from(error: PgError) -> Failure {
        Failure::failed(error)
    }
}

/// A PITR flow's failure as the operations' one error: bad input when its
/// code is 2 (nothing touched), else a failure.
impl From<Failure> for zpersist_core::error::Error {
    fn from(f: Failure) -> zpersist_core::error::Error {
        let kind = if f.code == 2 {
            zpersist_core::error::Kind::BadInput
        } else {
            zpersist_core::error::Kind::Failed
        };
        zpersist_core::error::Error::from(f.error).kind(kind)
    }
}
