//! What a run did, for people (text) and programs (`--json`).

use serde::Serialize;
use zpersist_core::{Action, Drift, Problem};

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Planned,
    Done,
    Failed,
    /// Not attempted because an action it depends on failed.
    Skipped,
}

#[derive(Debug, Serialize)]
pub struct ActionReport {
    #[serde(flatten)]
    pub action: Action,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ProblemReport {
    #[serde(flatten)]
    pub problem: Problem,
    pub message: String,
    pub help: String,
}

impl From<Problem> for ProblemReport {
    fn from(problem: Problem) -> ProblemReport {
        let (message, help) = problem.message_and_help();
        ProblemReport {
            problem,
            message,
            help,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub pool: String,
    pub dry_run: bool,
    pub datasets_declared: usize,
    pub actions: Vec<ActionReport>,
    pub drift: Vec<Drift>,
    pub problems: Vec<ProblemReport>,
    /// Failures of the run itself: zfs missing, pool not imported, lock...
    pub errors: Vec<String>,
}

impl Report {
    pub fn succeeded(&self) -> bool {
        self.problems.is_empty()
            && self.errors.is_empty()
            && self
                .actions
                .iter()
                .all(|a| matches!(a.status, Status::Done | Status::Planned))
    }

    /// The closing line of a text run.
    pub fn summary(&self) -> String {
        let count =
            |wanted: fn(&Status) -> bool| self.actions.iter().filter(|a| wanted(&a.status)).count();
        let (done, failed, skipped) = (
            count(|s| matches!(s, Status::Done)),
            count(|s| matches!(s, Status::Failed)),
            count(|s| matches!(s, Status::Skipped)),
        );
        let pool = &self.pool;
        let declared = self.datasets_declared;
        if !self.errors.is_empty() {
            return format!("ensure-datasets: pool {pool}: nothing was changed");
        }
        if self.actions.is_empty() && self.problems.is_empty() {
            return format!(
                "ensure-datasets: pool {pool}: {declared} datasets in shape, nothing to do"
            );
        }
        if self.dry_run {
            return format!(
                "ensure-datasets: pool {pool}: dry run, {} action(s) would run, {} problem(s); nothing was changed",
                self.actions.len(),
                self.problems.len()
            );
        }
        format!(
            "ensure-datasets: pool {pool}: {done} done, {failed} failed, {skipped} skipped, {} problem(s) left for a person",
            self.problems.len()
        )
    }
}
