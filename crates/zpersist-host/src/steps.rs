//! The journaled step runner: a binary's steps, each one's effect run and
//! then recorded in a journal file written atomically, so that a run killed
//! at any point (kill -9, a crash, a power cut) resumes after the last step
//! the journal records. The binary's core module decides where a run
//! starts (from the journal and the real state); the steps' order and how
//! the journal records them are its journal type's
//! ([`zpersist_core::steps::StepJournal`]); the binary writes only the
//! effects. Failpoints (`after:STEP`, right after the effect and before the
//! journal records it; `journaled:STEP`, right after; `journaled:started`,
//! right after the first journal write) let tests crash it at every
//! boundary.

use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;
use zpersist_core::steps::StepJournal;

use crate::failpoint::Failpoints;
use crate::fsync::is_out_of_space;
use crate::Failure;

/// Seconds since the epoch, as journals record them.
pub fn now() -> u64 {
    crate::clock::now().max(0) as u64
}

/// A journal file: JSON (pretty, one trailing newline), replaced
/// atomically on every write.
#[derive(Debug, Clone)]
pub struct JournalFile {
    path: PathBuf,
    /// What messages call it: `migration journal`.
    what: &'static str,
}

impl JournalFile {
    pub fn new(path: impl Into<PathBuf>, what: &'static str) -> JournalFile {
        JournalFile {
            path: path.into(),
            what,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The journal, `None` when there is none; an error names the file.
    pub fn read<J: DeserializeOwned>(&self) -> Result<Option<J>, String> {
        let (path, what) = (self.path.display(), self.what);
        match std::fs::read_to_string(&self.path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("the {what} {path} is unreadable: {e}")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read the {what} {path}: {e}")),
        }
    }

    /// Written atomically: a crash leaves the old journal or the new one,
    /// never half of one.
    pub fn write<J: Serialize>(&self, journal: &J) -> Result<(), Failure> {
        let mut text = serde_json::to_string_pretty(journal).expect("the journal serialises");
        text.push('\n');
        crate::write_atomically(&self.path, text.as_bytes()).map_err(|e| {
            let dir = self.path.parent().unwrap_or(Path::new("/")).display();
            Failure {
                error: format!(
                    "cannot write the {} {}: {e}",
                    self.what,
                    self.path.display()
                ),
                help: if is_out_of_space(&e) {
                    format!("the filesystem holding {dir} is full or over its quota: free space there, then run again")
                } else {
                    format!("check that {dir} is writable and its filesystem mounted read-write, then run again")
                },
            }
        })
    }
}

/// Why a journaled run stopped before its last step.
#[derive(Debug)]
pub enum Stopped<S, E> {
    /// The effect of `step` failed. The journal was written as the effect
    /// left it (best effort: an effect may send the next run back).
    Step { step: S, error: E },
    /// A step completed, but the journal could not record it.
    Journal(Failure),
}

/// Runs steps against one journal file, with the binary's failpoints.
pub struct Runner<'a> {
    pub file: &'a JournalFile,
    pub failpoints: Failpoints,
}

impl Runner<'_> {
    /// Writes a new run's first journal, then `journaled:started`.
    pub fn start<J: Serialize>(&self, journal: &J) -> Result<(), Failure> {
        self.file.write(journal)?;
        self.failpoints.check("journaled", "started");
        Ok(())
    }

    /// Runs `from` and every step after it: `effect` (which may update the
    /// journal, e.g. with what a verification saw), `after:STEP`, the
    /// journal records the step and is written, `journaled:STEP`, then
    /// `completed` hears of it with what the effect returned.
    pub fn run<J, D, E>(
        &self,
        journal: &mut J,
        from: J::Step,
        mut effect: impl FnMut(J::Step, &mut J) -> Result<D, E>,
        mut completed: impl FnMut(J::Step, D),
    ) -> Result<(), Stopped<J::Step, E>>
    where
        J: StepJournal + Serialize,
    {
        let mut next = Some(from);
        while let Some(step) = next {
            let name = J::step_name(step);
            let detail = match effect(step, journal) {
                Ok(detail) => detail,
                Err(error) => {
                    let _ = self.file.write(journal);
                    return Err(Stopped::Step { step, error });
                }
            };
            self.failpoints.check("after", name);
            journal.record(step, now());
            self.file.write(journal).map_err(Stopped::Journal)?;
            self.failpoints.check("journaled", name);
            completed(step, detail);
            next = J::step_after(step);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// A journal of three steps, 0 to 2, recording the last one done.
    #[derive(Debug, Default, Serialize, Deserialize)]
    struct Counted {
        done: Option<u8>,
        history: Vec<u8>,
    }

    impl StepJournal for Counted {
        type Step = u8;
        fn step_name(step: u8) -> &'static str {
            ["zero", "one", "two"][usize::from(step)]
        }
        fn step_after(step: u8) -> Option<u8> {
            (step < 2).then_some(step + 1)
        }
        fn record(&mut self, step: u8, _now: u64) {
            self.done = Some(step);
            self.history.push(step);
        }
        fn resumes_at(&self) -> Option<u8> {
            match self.done {
                None => Some(0),
                Some(step) => Counted::step_after(step),
            }
        }
    }

    const FAILPOINTS: Failpoints = Failpoints::new("ZPERSIST_STEPS_TEST_FAILPOINT", "steps-test");
    const DIR: &str = "ZPERSIST_STEPS_TEST_DIR";

    /// One run in `dir`: starts a journal or resumes from it; each effect
    /// appends its step's name to `dir/effects`.
    fn run_in(dir: &Path) -> Result<(), Stopped<u8, String>> {
        let file = JournalFile::new(dir.join("journal.json"), "test journal");
        let runner = Runner {
            file: &file,
            failpoints: FAILPOINTS,
        };
        let mut journal = match file.read::<Counted>().unwrap() {
            Some(journal) => journal,
            None => {
                let journal = Counted::default();
                runner.start(&journal).map_err(Stopped::Journal)?;
                journal
            }
        };
        let Some(from) = journal.resumes_at() else {
            return Ok(());
        };
        let effects = dir.join("effects");
        runner.run(
            &mut journal,
            from,
            |step, _| {
                let mut done = std::fs::read_to_string(&effects).unwrap_or_default();
                done.push_str(Counted::step_name(step));
                done.push('\n');
                std::fs::write(&effects, done).map_err(|e| e.to_string())
            },
            |_, ()| {},
        )
    }

    /// The crashing side of the test below: a run in `$DIR`, aborted at
    /// the failpoint the environment names. Does nothing on its own.
    #[test]
    fn child_run_for_the_crash_test() {
        if let Ok(dir) = std::env::var(DIR) {
            let _ = run_in(Path::new(&dir));
        }
    }

    /// Crashed (a real abort, in a child process) at every boundary, then
    /// run again: every effect has run, each at most twice (the one the
    /// crash cut off between its effect and the journal write), and the
    /// journal records each step once, in order.
    #[test]
    fn a_run_aborted_at_any_boundary_resumes_from_its_journal() {
        let base = std::env::temp_dir().join(format!("zpersist-steps-{}", std::process::id()));
        let mut points = vec!["journaled:started".to_string()];
        for name in ["zero", "one", "two"] {
            points.push(format!("after:{name}"));
            points.push(format!("journaled:{name}"));
        }
        for point in &points {
            let dir = base.join(point.replace(':', "-"));
            std::fs::create_dir_all(&dir).unwrap();
            let child = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "steps::tests::child_run_for_the_crash_test",
                    "--exact",
                    "--nocapture",
                ])
                .env(DIR, &dir)
                .env(FAILPOINTS.var, point)
                .output()
                .unwrap();
            assert!(!child.status.success(), "{point}: did not abort");
            let said = String::from_utf8_lossy(&child.stderr);
            assert!(
                said.contains(&format!("steps-test: failpoint {point}: aborting")),
                "{point}: {said}"
            );

            run_in(&dir).unwrap();
            let journal: Counted = JournalFile::new(dir.join("journal.json"), "test journal")
                .read()
                .unwrap()
                .unwrap();
            assert_eq!(journal.history, [0, 1, 2], "{point}");
            let effects = std::fs::read_to_string(dir.join("effects")).unwrap();
            let repeated = point.strip_prefix("after:");
            for name in ["zero", "one", "two"] {
                let times = effects.lines().filter(|l| *l == name).count();
                let expected = if repeated == Some(name) { 2 } else { 1 };
                assert_eq!(times, expected, "{point}: {name} in\n{effects}");
            }
            // Done: a further run has nothing to do.
            run_in(&dir).unwrap();
            assert_eq!(
                std::fs::read_to_string(dir.join("effects")).unwrap(),
                effects
            );
        }
        std::fs::remove_dir_all(base).unwrap();
    }

    #[test]
    fn a_failed_effect_stops_the_run_and_keeps_what_the_journal_records() {
        let dir = std::env::temp_dir().join(format!("zpersist-steps-fail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = JournalFile::new(dir.join("journal.json"), "test journal");
        let runner = Runner {
            file: &file,
            failpoints: FAILPOINTS,
        };
        let mut journal = Counted::default();
        let mut completed = Vec::new();
        let stopped = runner.run(
            &mut journal,
            0,
            |step, _| if step == 1 { Err("boom") } else { Ok(step) },
            |step, detail| completed.push((step, detail)),
        );
        assert!(
            matches!(
                stopped,
                Err(Stopped::Step {
                    step: 1,
                    error: "boom"
                })
            ),
            "{stopped:?}"
        );
        assert_eq!(completed, [(0, 0)]);
        let read: Counted = file.read().unwrap().unwrap();
        assert_eq!((read.done, read.resumes_at()), (Some(0), Some(1)));

        let unwritable = JournalFile::new(dir.join("no-such-dir/journal.json"), "test journal");
        let e = unwritable.write(&journal).unwrap_err();
        assert!(
            e.error.starts_with("cannot write the test journal "),
            "{e:?}"
        );
        assert!(e.help.contains("writable"), "{e:?}");
        std::fs::write(dir.join("bad.json"), "{").unwrap();
        let bad = JournalFile::new(dir.join("bad.json"), "test journal");
        assert!(bad.read::<Counted>().unwrap_err().contains("is unreadable"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
