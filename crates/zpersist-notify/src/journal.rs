//! The failed unit's journal tail, read with `journalctl` (argv).

use std::io::ErrorKind;
use std::time::Duration;

use zpersist_host::{run_with_timeout, seconds, Bounded};

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
    let expression = duct::cmd(journalctl, argv(unit, lines))
        .stdin_null()
        .stdout_capture()
        .stderr_capture();
    let output = match run_with_timeout(&expression, timeout) {
        Ok(Bounded::Finished(output)) => Ok(output),
        Ok(Bounded::TimedOut) => {
            return JournalTail::Unavailable(format!(
                "journalctl did not finish within {}; see `journalctl -u {unit}` on the host",
                seconds(timeout)
            ))
        }
        Err(e) => Err(e),
    };
    match output {
        Err(e) if e.kind() == ErrorKind::NotFound => JournalTail::Unavailable(format!(
            "journalctl is not available ({journalctl}: {e}); see `journalctl -u {unit}` on the host"
        )),
        Err(e) => JournalTail::Unavailable(format!("cannot run {journalctl}: {e}")),
        Ok(out) if !out.status.success() => JournalTail::Unavailable(format!(
            "journalctl failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Ok(out) => JournalTail::Lines(
            String::from_utf8_lossy(&out.stdout)
                .lines()
                // journalctl's own notices, not lines of the unit.
                .filter(|l| *l != "-- No entries --")
                .map(str::to_owned)
                .collect(),
        ),
    }
}
