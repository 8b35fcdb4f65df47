//! How every zpersist binary reports (docs/architecture.md, "Conventions
//! every binary follows"):
//!
//! - a problem is a [`Diagnostic`] printed as `error: WHERE: WHAT` and,
//!   when there is something to do, `  help: WHAT TO DO` ([`render`]);
//! - `--json` ([`JsonFlag`], flattened into each binary's arguments) puts
//!   one JSON document on stdout ([`Reporter::document`]); diagnostics
//!   still go to stderr as text, for the journal;
//! - exit 0: done or nothing to do; 1: something failed or needs a person;
//!   2: bad contract or arguments, and then nothing was touched
//!   ([`Reporter::bad_input`], which in `--json` mode also prints
//!   `{"errors": [DIAGNOSTIC...]}`).
//!
//! A binary's main is then: parse args, `zpersist_host::read_contract`,
//! call the core and the adapters, report:
//!
//! ```no_run
//! # use zpersist_core::contract::Diagnostic;
//! # use zpersist_report::Reporter;
//! let mut reporter = Reporter::new("preseed-restore", false);
//! # let problems: Vec<Diagnostic> = vec![];
//! if !problems.is_empty() {
//!     std::process::exit(
//!         reporter.bad_input_code(&problems, "the file comes from the zpersist NixOS module", "nothing was changed"),
//!     );
//! }
//! reporter.error(&Diagnostic::new("the replica holds no snapshot").on_dataset("tank/a"));
//! let code = reporter.exit_code();
//! ```

use std::io::Write;
use std::process::ExitCode;

use serde::Serialize;
pub use zpersist_core::contract::Diagnostic;
pub use zpersist_core::error::{Error, Kind};
use zpersist_core::shown;

/// Done, or nothing to do.
pub const EXIT_OK: u8 = 0;
/// Something failed or needs a person.
pub const EXIT_FAILED: u8 = 1;
/// Bad contract or arguments: nothing was touched.
pub const EXIT_BAD_INPUT: u8 = 2;

/// The `--json` flag, the same in every binary: flatten it into the
/// binary's clap arguments (`#[command(flatten)] output: JsonFlag`).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct JsonFlag {
    /// Print a machine-readable report (JSON) on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `error: WHERE: WHAT` and, when it has one, `  help: WHAT TO DO` on the
/// next line (no newline at the end). Control characters in the help are
/// escaped like those in the diagnostic: one line each.
pub fn render(diagnostic: &Diagnostic) -> String {
    match &diagnostic.help {
        Some(help) => format!("error: {diagnostic}\n  help: {}", shown(help)),
        None => format!("error: {diagnostic}"),
    }
}

/// `error: WHAT` / `  help: HELP` for a failure that has no place.
pub fn render_error(what: &str, help: &str) -> String {
    render(&Diagnostic::new(what).with_help(help))
}

/// `{"errors": [DIAGNOSTIC...]}`: the `--json` document of a run that
/// stopped on errors before it had a report.
pub fn errors_document(problems: &[Diagnostic]) -> serde_json::Value {
    serde_json::json!({ "errors": problems })
}

/// A binary's reporter: diagnostics as text on stderr, the `--json`
/// document on stdout, and the exit code they add up to.
pub struct Reporter {
    binary: &'static str,
    json: bool,
    failed: bool,
}

impl Reporter {
    /// The reporter of `binary` (its name, for closing lines); `json` as
    /// given by `--json`.
    pub fn new(binary: &'static str, json: bool) -> Reporter {
        Reporter {
            binary,
            json,
            failed: false,
        }
    }

    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.json
    }

    /// Reports a problem (stderr) and marks the run failed.
    pub fn error(&mut self, diagnostic: &Diagnostic) {
        self.failed = true;
        eprintln!("{}", render(diagnostic));
    }

    /// Reports a failure that has no place: `error: WHAT` / `  help: HELP`.
    pub fn fail(&mut self, what: impl Into<String>, help: impl Into<String>) {
        self.error(&Diagnostic::new(what).with_help(help));
    }

    /// A failure that ends the run before it has a report of its own: the
    /// diagnostic on stderr and, with `--json`, `{"errors": [DIAGNOSTIC]}`
    /// as the one document on stdout (the shape [`Reporter::bad_input`]
    /// prints), so that a `--json` run always leaves a document to read.
    pub fn abort(&mut self, diagnostic: &Diagnostic) {
        self.error(diagnostic);
        if self.json {
            self.document(&errors_document(std::slice::from_ref(diagnostic)));
        }
    }

    /// A line of progress or outcome for people, on stderr (never in the
    /// way of the `--json` document).
    pub fn note(&self, line: impl AsRef<str>) {
        eprintln!("{}", line.as_ref());
    }

    /// Prints `document` as pretty JSON on stdout: the one document of a
    /// `--json` run.
    pub fn document<T: Serialize>(&self, document: &T) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(document).expect("a report serialises")
        );
    }

    /// Bad input: every problem (each with its own help, if any), then
    /// `help` once and the closing line `BINARY: CLOSING`; in `--json` mode
    /// also `{"errors": [...]}` on stdout. Exit code 2.
    pub fn bad_input(&mut self, problems: &[Diagnostic], help: &str, closing: &str) -> ExitCode {
        ExitCode::from(self.bad_input_code(problems, help, closing) as u8)
    }

    /// [`Reporter::bad_input`] as a number, for `std::process::exit`.
    pub fn bad_input_code(&mut self, problems: &[Diagnostic], help: &str, closing: &str) -> i32 {
        self.failed = true;
        let mut err = std::io::stderr().lock();
        for problem in problems {
            let _ = writeln!(err, "{}", render(problem));
        }
        let _ = writeln!(err, "  help: {}", shown(help));
        let _ = writeln!(err, "{}: {}", self.binary, shown(closing));
        drop(err);
        if self.json {
            self.document(&errors_document(problems));
        }
        i32::from(EXIT_BAD_INPUT)
    }

    /// Reports the error an operation ended with and returns the exit code
    /// its kind maps to: bad input as [`Reporter::bad_input`] (every
    /// problem, `BINARY: nothing was touched`, exit 2), a failure or what
    /// needs a person as [`Reporter::abort`] (exit 1).
    pub fn report(&mut self, error: &Error) -> ExitCode {
        match error.kind {
            Kind::BadInput => {
                let mut problems = error.diagnostics();
                let help = problems[0].help.take().unwrap_or_else(|| {
                    "see the binary's --help and docs/ for what it accepts".to_string()
                });
                self.bad_input(&problems, &help, "nothing was touched")
            }
            Kind::Failed | Kind::NeedsPerson => {
                for d in &error.diagnostics()[1..] {
                    self.error(d);
                }
                self.abort(&error.diagnostics()[0]);
                ExitCode::from(error.exit_code())
            }
        }
    }

    /// Marks the run failed without printing (the problem was reported
    /// another way, e.g. in the `--json` document).
    pub fn mark_failed(&mut self) {
        self.failed = true;
    }

    pub fn failed(&self) -> bool {
        self.failed
    }

    /// 1 when anything failed, else 0.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(if self.failed { EXIT_FAILED } else { EXIT_OK })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_is_one_line_and_its_help_the_next_indented() {
        assert_eq!(
            render(
                &Diagnostic::new("cannot read the plan: No such file")
                    .in_file("/etc/zpersist/plan.json")
                    .with_help("pass --plan FILE")
            ),
            "error: /etc/zpersist/plan.json: cannot read the plan: No such file\n  help: pass --plan FILE"
        );
        assert_eq!(
            render(&Diagnostic::new("a\nerror: forged").on_dataset("tank/x")),
            "error: tank/x: a\\nerror: forged"
        );
        assert_eq!(
            render_error("zfs is missing", "install it"),
            "error: zfs is missing\n  help: install it"
        );
    }

    #[test]
    fn the_json_flag_is_one_clap_flag() {
        use clap::Parser;
        #[derive(Parser)]
        struct Args {
            #[command(flatten)]
            output: JsonFlag,
        }
        assert!(Args::parse_from(["x", "--json"]).output.json);
        assert!(!Args::parse_from(["x"]).output.json);
    }

    #[test]
    fn the_errors_document_holds_each_diagnostic_with_its_place_and_help() {
        let document = errors_document(&[Diagnostic::new("archiving fails")
            .in_file("/etc/zpersist/pitr.json")
            .with_help("see the server log")]);
        assert_eq!(
            document,
            serde_json::json!({"errors": [{
                "what": "archiving fails",
                "where": {"file": "/etc/zpersist/pitr.json"},
                "help": "see the server log",
            }]})
        );
    }

    #[test]
    fn an_abort_fails_the_run() {
        let mut reporter = Reporter::new("test", false);
        reporter.abort(&Diagnostic::new("the repository is gone"));
        assert!(reporter.failed());
        assert_eq!(reporter.exit_code(), ExitCode::from(EXIT_FAILED));
    }

    #[test]
    fn an_error_s_kind_is_its_exit_code() {
        let mut reporter = Reporter::new("test", false);
        assert_eq!(
            reporter.report(&Error::bad_input("no such service").with_help("name one")),
            ExitCode::from(EXIT_BAD_INPUT)
        );
        let mut reporter = Reporter::new("test", false);
        assert_eq!(
            reporter.report(&Error::failed("zfs failed").on_dataset("tank/a")),
            ExitCode::from(EXIT_FAILED)
        );
        assert!(reporter.failed());
        let mut reporter = Reporter::new("test", false);
        assert_eq!(
            reporter.report(&Error::needs_person("the original is kept aside")),
            ExitCode::from(EXIT_FAILED)
        );
    }

    #[test]
    fn failures_add_up_to_the_exit_code() {
        let mut reporter = Reporter::new("test", false);
        assert!(!reporter.failed());
        reporter.mark_failed();
        assert!(reporter.failed());
    }
}
