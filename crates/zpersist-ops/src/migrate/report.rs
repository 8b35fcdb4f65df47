//! What a run reports: its outcome, the steps it completed, notes and
//! problems, as text or JSON (printed through zpersist-report).

use std::io::{self, Write};

use serde::Serialize;
use zpersist_core::migration::{MigrationTarget, Refusal, Stage};
use zpersist_host::Failure;
use zpersist_report::{Diagnostic, Reporter};

use crate::migrate::Options;

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Migrated,
    AlreadyMigrated,
    DryRun,
    CleanedUp,
    NothingToCleanUp,
    Refused,
    Failed,
}

#[derive(Debug, Serialize)]
pub struct StepReport {
    pub step: String,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct ProblemReport {
    pub error: String,
    pub help: String,
}

/// A failure, and what to do about it when the general help ("fix the
/// cause and run again") would not say.
#[derive(Debug)]
pub struct StepError {
    pub error: String,
    pub help: Option<String>,
}

impl From<String> for StepError {
    fn from(error: String) -> StepError {
        StepError { error, help: None }
    }
}

impl From<Failure> for StepError {
    fn from(f: Failure) -> StepError {
        StepError {
            error: f.error,
            help: Some(f.help),
        }
    }
}

/// Why a run stops before it changes anything.
#[derive(Debug)]
pub enum Stop {
    /// Everything that stands in the way.
    Refused(Vec<Refusal>),
    Failed(StepError),
}

impl Stop {
    pub fn failed(error: impl Into<String>, help: impl Into<String>) -> Stop {
        Stop::Failed(StepError {
            error: error.into(),
            help: Some(help.into()),
        })
    }

    pub fn refused(error: impl Into<String>, help: impl Into<String>) -> Stop {
        Stop::Refused(vec![(error.into(), help.into())])
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub outcome: Outcome,
    pub dataset: String,
    pub path: String,
    pub aside: String,
    pub dry_run: bool,
    /// The last stage that was already complete when this run started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_after: Option<Stage>,
    pub steps: Vec<StepReport>,
    pub notes: Vec<String>,
    pub problems: Vec<ProblemReport>,
}

impl Report {
    pub fn new(target: &MigrationTarget, dry_run: bool) -> Report {
        Report {
            outcome: Outcome::Failed,
            dataset: target.dataset.clone(),
            path: target.path.clone(),
            aside: target.aside(),
            dry_run,
            resumed_after: None,
            steps: Vec::new(),
            notes: Vec::new(),
            problems: Vec::new(),
        }
    }

    pub fn succeeded(&self) -> bool {
        !matches!(self.outcome, Outcome::Refused | Outcome::Failed)
    }

    pub fn refuse(mut self, error: impl Into<String>, help: impl Into<String>) -> Report {
        self.outcome = Outcome::Refused;
        self.problems.push(ProblemReport {
            error: error.into(),
            help: help.into(),
        });
        self
    }

    pub fn fail(mut self, error: impl Into<String>, help: impl Into<String>) -> Report {
        self.outcome = Outcome::Failed;
        self.problems.push(ProblemReport {
            error: error.into(),
            help: help.into(),
        });
        self
    }

    pub fn fail_with(self, e: impl Into<StepError>) -> Report {
        let e = e.into();
        let help = e
            .help
            .unwrap_or_else(|| "fix the cause and run again".into());
        self.fail(e.error, help)
    }

    pub fn stop(self, stop: Stop) -> Report {
        match stop {
            Stop::Refused(problems) => problems
                .into_iter()
                .fold(self, |report, (error, help)| report.refuse(error, help)),
            Stop::Failed(e) => self.fail_with(e),
        }
    }

    /// Prints the run's outcome through `reporter`: with `--json` the
    /// report as the one document on stdout, else its notes and the closing
    /// line; every problem as `error:` / `  help:` on stderr either way.
    /// A refused or failed run makes the exit code 1.
    pub fn print(&self, reporter: &mut Reporter) {
        if reporter.json() {
            reporter.document(self);
        } else {
            for note in &self.notes {
                println!("note: {note}");
            }
        }
        for problem in &self.problems {
            reporter.error(&Diagnostic::new(&problem.error).with_help(&problem.help));
        }
        if !self.succeeded() {
            reporter.mark_failed();
        }
        if reporter.json() {
            return;
        }
        let (path, dataset, aside) = (&self.path, &self.dataset, &self.aside);
        match self.outcome {
            Outcome::Migrated => println!(
                "done: {path} is now dataset {dataset}. The original directory is kept at {aside}; \
                 remove it with --cleanup once the service runs well."
            ),
            Outcome::AlreadyMigrated => {
                println!("already migrated: {path} is dataset {dataset}; nothing to do")
            }
            Outcome::DryRun => println!("dry run: nothing was changed"),
            Outcome::CleanedUp => println!("cleaned up: {aside} removed"),
            Outcome::NothingToCleanUp => println!("nothing to clean up for {path}"),
            Outcome::Refused => {
                reporter.note("migrate-to-dataset: refused; nothing was changed by this run")
            }
            Outcome::Failed => reporter.note(format!(
                "migrate-to-dataset: failed; the original data is untouched (at {path} or {aside}). \
                 Fix the problem and run again: it resumes where it stopped."
            )),
        }
    }
}

/// Prints a step's line as it completes (text mode) and records it.
pub fn record(report: &mut Report, options: &Options, step: &str, detail: String) {
    if !options.json {
        println!("  {step}: {detail}");
        let _ = io::stdout().flush();
    }
    report.steps.push(StepReport {
        step: step.into(),
        detail,
    });
}
