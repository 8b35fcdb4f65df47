//! Running a child with a wall-clock limit: the one place zpersist bounds
//! a process it waits for (ssh to a target, a notification channel, zfs in
//! replication-lag), so that a peer or program that hangs ends the wait
//! instead of the caller's run.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Output;
use std::time::Duration;

/// How long to wait, after killing, for the killed processes to be reaped
/// and their pipes to close. A process that left the group and still holds
/// a pipe is abandoned after this, not waited for.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// How a child run by [`run_with_timeout`] ended.
#[derive(Debug)]
pub enum Bounded {
    /// It exited within the limit, with any status (the expression is run
    /// unchecked: the caller reads the status).
    Finished(Output),
    /// It was still running when the limit passed: it and every process
    /// in its process group were killed (SIGKILL).
    TimedOut,
}

/// Runs `expression` (one command, with stdin, stdout and stderr as the
/// caller set them) in a process group of its own and waits at most
/// `limit`. When the limit passes, the whole group is killed, so that
/// what the child started (a shell's `sleep`, curl's resolver) dies with
/// it and cannot hold its output pipes open. `Err` only when it cannot be
/// started.
pub fn run_with_timeout(expression: &duct::Expression, limit: Duration) -> io::Result<Bounded> {
    let handle = expression
        .unchecked()
        .before_spawn(|command| {
            command.process_group(0);
            Ok(())
        })
        .start()?;
    if let Some(output) = handle.wait_timeout(limit)? {
        return Ok(Bounded::Finished(output.clone()));
    }
    for pid in handle.pids() {
        // The child leads its group (process_group(0)): -pid is the group.
        // SAFETY: kill(2) with a negative pid signals that process group;
        // it touches no memory of ours.
        unsafe {
            libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        }
    }
    let _ = handle.kill();
    let _ = handle.wait_timeout(REAP_GRACE);
    Ok(Bounded::TimedOut)
}

/// `limit` as messages say it: `3 s`, `2.5 s`.
pub fn seconds(limit: Duration) -> String {
    format!("{} s", limit.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_child_that_ends_in_time_gives_its_output_and_status() {
        let expression = duct::cmd("sh", ["-c", "echo out; echo err >&2; exit 3"])
            .stdout_capture()
            .stderr_capture();
        let Bounded::Finished(output) =
            run_with_timeout(&expression, Duration::from_secs(10)).unwrap()
        else {
            panic!("timed out")
        };
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
    }

    #[test]
    fn a_hanging_child_and_what_it_started_are_killed_at_the_limit() {
        // The shell's `sleep` inherits the captured pipes: killing the
        // shell alone would leave the wait hanging on them.
        let expression = duct::cmd("sh", ["-c", "sleep 60; echo never"])
            .stdout_capture()
            .stderr_capture();
        let started = Instant::now();
        let ended = run_with_timeout(&expression, Duration::from_millis(500)).unwrap();
        let elapsed = started.elapsed();
        assert!(matches!(ended, Bounded::TimedOut), "{ended:?}");
        assert!(
            elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
    }

    #[test]
    fn a_program_that_does_not_exist_is_an_error() {
        let expression = duct::cmd("/nonexistent/zpersist-test", ["x"]);
        let e = run_with_timeout(&expression, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn limits_read_as_seconds() {
        assert_eq!(seconds(Duration::from_secs(3)), "3 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
    }
}
