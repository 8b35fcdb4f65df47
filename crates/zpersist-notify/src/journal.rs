//! The failed unit's journal tail, read with `journalctl` (argv).

use std::time::Duration;

use zpersist_process::{Command, Failure};

use crate::event::JournalTail;

/// The argv that reads the last `lines` lines of `unit`'s journal.
pub fn argv(unit: &str, lines: usize) -> Vec<String> {
    vec![
        "-u".into(),
        unit.into(),
        "-n".into(),
        lines.to_string(),
        "-o".into(),
        "cat".into(),
        "--no-pager".into(),
    ]
}

/// The last `lines` lines of `unit`'s journal; journalctl is killed after
/// `timeout` (the event then says so and goes out without them).
pub fn tail(journalctl: &str, unit: &str, lines: usize, timeout: Duration) -> JournalTail {
    let read = Command::new(journalctl)
        .args(argv(unit, lines))
        .timeout(timeout)
        .read();
    match read {
        Ok(out) => JournalTail::Lines(
            out.lines()
                // journalctl's own notices, not lines of the unit.
                .filter(|l| *l != "-- No entries --")
                .map(str::to_owned)
                .collect(),
        ),
        Err(e) => JournalTail::Unavailable(match &e.failure {
            Failure::NotStarted(reason) => format!(
                "journalctl is not available ({reason}); see `journalctl -u {unit}` on the host"
            ),
            Failure::TimedOut { .. } | Failure::Exited { .. } => format!(
                "journalctl {}; see `journalctl -u {unit}` on the host",
                e.outcome()
            ),
        }),
    }
}
