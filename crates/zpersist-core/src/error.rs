//! The one error type of zpersist's operations: what failed, where (file,
//! dataset, field), what to do, whether it is bad input, a failure or
//! something a person must decide, and the adapter error it came from.
//!
//! Every adapter error converts into it once (`From`, beside the adapter's
//! own type: `zpersist_process::ProcessError`, `zpersist_zfs::ZfsError`,
//! `zpersist_postgres::PgError`, `zpersist_restic::ResticError`;
//! `std::io::Error` and contract [`Diagnostic`]s here), and the reporter
//! (`zpersist_report::Reporter::report`) maps its [`Kind`] to the exit
//! code: bad input 2 (and nothing was touched), failed or needs a person 1.

use std::fmt;

use serde::Serialize;

use crate::contract::{Diagnostic, Where};

/// How an [`Error`] ends the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// The arguments or a contract are wrong; nothing was touched (exit 2).
    BadInput,
    /// Something failed; running again may succeed once it is fixed (exit 1).
    Failed,
    /// zpersist stopped on purpose: a person must look and decide (exit 1).
    NeedsPerson,
}

impl Kind {
    /// The exit code of a run that ends with an error of this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::BadInput => 2,
            Kind::Failed | Kind::NeedsPerson => 1,
        }
    }
}

/// What failed, where, what to do, its [`Kind`] and its cause.
#[derive(Debug)]
pub struct Error {
    pub kind: Kind,
    /// What failed, in a sentence that reads after its place.
    pub what: String,
    /// Where: the file, dataset and field, as far as known.
    pub at: Box<Where>,
    /// What to do about it.
    pub help: Option<String>,
    /// Further problems found in the same input (a contract with several
    /// problems is one bad-input error that lists them all).
    pub more: Vec<Diagnostic>,
    /// The adapter error it came from, when there was one.
    pub cause: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    pub fn new(kind: Kind, what: impl Into<String>) -> Error {
        Error {
            kind,
            what: what.into(),
            at: Box::default(),
            help: None,
            more: Vec::new(),
            cause: None,
        }
    }
    pub fn failed(what: impl Into<String>) -> Error {
        Error::new(Kind::Failed, what)
    }
    pub fn bad_input(what: impl Into<String>) -> Error {
        Error::new(Kind::BadInput, what)
    }
    pub fn needs_person(what: impl Into<String>) -> Error {
        Error::new(Kind::NeedsPerson, what)
    }

    /// Every problem of one bad input (a contract's diagnostics) as one
    /// error: the first is its what/where/help, the rest [`Error::more`].
    /// An empty list is a bad input that says so.
    pub fn bad_inputs(problems: Vec<Diagnostic>) -> Error {
        let mut problems = problems.into_iter();
        let mut error = match problems.next() {
            Some(first) => Error::from(first),
            None => Error::bad_input("bad input"),
        };
        error.kind = Kind::BadInput;
        error.more = problems.collect();
        error
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Error {
        self.at.file = Some(file.into());
        self
    }
    pub fn on_dataset(mut self, dataset: impl Into<String>) -> Error {
        self.at.dataset = Some(dataset.into());
        self
    }
    pub fn at_field(mut self, field: impl Into<String>) -> Error {
        self.at.field = Some(field.into());
        self
    }
    pub fn with_help(mut self, help: impl Into<String>) -> Error {
        self.help = Some(help.into());
        self
    }
    /// The same error, another kind (an adapter's failure that, here, is
    /// for a person to decide).
    pub fn kind(mut self, kind: Kind) -> Error {
        self.kind = kind;
        self
    }
    pub fn caused_by(mut self, cause: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.cause = Some(Box::new(cause));
        self
    }
    /// `WHAT` becomes `CONTEXT: WHAT` (the step that failed, say).
    pub fn context(mut self, context: impl fmt::Display) -> Error {
        self.what = format!("{context}: {}", self.what);
        self
    }

    /// The error as the reporter prints it, then each of [`Error::more`].
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        let mut all = vec![Diagnostic {
            what: self.what.clone(),
            at: (*self.at).clone(),
            help: self.help.clone(),
        }];
        all.extend(self.more.iter().cloned());
        all
    }

    pub fn exit_code(&self) -> u8 {
        self.kind.exit_code()
    }
}

impl fmt::Display for Error {
    /// `FILE: DATASET: FIELD: WHAT`, as a [`Diagnostic`] shows.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.diagnostics()[0], f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// A contract's diagnostic is bad input.
impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Error {
        Error {
            kind: Kind::BadInput,
            what: d.what,
            at: Box::new(d.at),
            help: d.help,
            more: Vec::new(),
            cause: None,
        }
    }
}

/// A file or system call that failed: a failure, with the io error as its
/// cause (the caller adds where with [`Error::in_file`] and what to do).
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::failed(e.to_string()).caused_by(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_exit_code() {
        assert_eq!(Error::bad_input("x").exit_code(), 2);
        assert_eq!(Error::failed("x").exit_code(), 1);
        assert_eq!(Error::needs_person("x").exit_code(), 1);
    }

    #[test]
    fn a_contract_s_problems_are_one_bad_input_listing_them_all() {
        let e = Error::bad_inputs(vec![
            Diagnostic::new("version 2 is not read here").in_file("/etc/p.json"),
            Diagnostic::new("unknown field `x`").in_file("/etc/p.json"),
        ]);
        assert_eq!(e.kind, Kind::BadInput);
        assert_eq!(e.to_string(), "/etc/p.json: version 2 is not read here");
        assert_eq!(e.diagnostics().len(), 2);
    }

    #[test]
    fn an_io_error_is_a_failure_that_keeps_its_cause() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = Error::from(io)
            .in_file("/run/zpersist/x")
            .with_help("run as root");
        assert_eq!(e.kind, Kind::Failed);
        assert!(std::error::Error::source(&e).is_some());
        assert!(e.to_string().starts_with("/run/zpersist/x: "), "{e}");
    }
}
