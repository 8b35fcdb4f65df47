//! Journaled runs: named steps, each recorded in a journal when it
//! completes, so that a run killed at any point resumes. A binary's core
//! module decides where a run starts (from the journal and the real state,
//! e.g. `migration::decide`); this trait says how its steps follow one
//! another and how its journal records them. zpersist-host's `steps`
//! runs them: effect, record, write the journal, next.

use std::fmt::Debug;

/// A journal of completed steps.
pub trait StepJournal {
    type Step: Copy + PartialEq + Debug;

    /// The step's name, as reports and failpoints say it.
    fn step_name(step: Self::Step) -> &'static str;

    /// The step that follows `step` in a run, `None` after the last.
    fn step_after(step: Self::Step) -> Option<Self::Step>;

    /// Records that `step` completed at `now` (seconds since the epoch).
    fn record(&mut self, step: Self::Step, now: u64);

    /// The step a rerun starts at by this journal alone, `None` when it
    /// records the whole run.
    fn resumes_at(&self) -> Option<Self::Step>;
}
