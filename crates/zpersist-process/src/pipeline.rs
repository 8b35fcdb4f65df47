//! Two commands, the first's stdout piped into the second's stdin:
//! `zfs send SNAPSHOT | zfs receive DATASET`, either side over ssh.

use std::process::ExitStatus;
use std::time::Duration;

use crate::command::{Command, Output, Stream};
use crate::error::{stderr_tail, Failure, ProcessError};
use crate::run::{self, Ended, Sink};

/// `left | right`. The bytes go from one to the other through a kernel
/// pipe (never through this process's memory); both exit statuses are
/// checked and the error is the side that failed, with its stderr tail
/// and the whole pipeline named.
///
/// The sides' own limits (an ssh target's per-call `timeout`) do not
/// apply: a transfer takes as long as it takes, so the pipeline has a
/// limit of its own ([`Pipeline::timeout`]), which kills both sides.
#[derive(Debug, Clone)]
pub struct Pipeline {
    left: Command,
    right: Command,
    timeout: Option<Duration>,
}

impl Pipeline {
    pub(crate) fn new(left: Command, right: Command) -> Pipeline {
        Pipeline {
            left,
            right,
            timeout: None,
        }
    }

    /// Kills both sides when the whole pipeline runs longer than `limit`.
    pub fn timeout(mut self, limit: Duration) -> Pipeline {
        self.timeout = Some(limit);
        self
    }

    /// The pipeline as messages show it: each side's command line, with
    /// where it runs when that is not here.
    pub fn display(&self) -> String {
        let side = |command: &Command| match command.location().is_local() {
            true => command.display(),
            false => format!("{} (on {})", command.display(), command.location()),
        };
        format!("{} | {}", side(&self.left), side(&self.right))
    }

    /// Runs both to their end; returns the right side's stdout and the
    /// stderr of both (left first). `Err` unless both exit 0.
    pub fn run(&self) -> Result<Output, ProcessError> {
        let ended = self.execute(Sink::Capture)?;
        let status = self.check(&ended)?;
        let mut stderr = ended.stderrs[0].clone();
        stderr.extend_from_slice(&ended.stderrs[1]);
        Ok(Output {
            status,
            stdout: ended.stdout,
            stderr,
        })
    }

    /// Runs both, handing each line of the right side's stdout and of both
    /// sides' stderr to `on_line` as it arrives (`zfs send -v` reports
    /// progress on stderr). `Err` unless both exit 0.
    pub fn stream(&self, on_line: &mut dyn FnMut(Stream, &str)) -> Result<(), ProcessError> {
        let ended = self.execute(Sink::Lines(on_line))?;
        self.check(&ended).map(drop)
    }

    /// Runs both with the stream copied through this process in chunks
    /// (instead of a kernel pipe), calling `on_bytes` with the total so far
    /// after each: for progress in bytes, or a test's failpoint in the
    /// middle of a stream. Returns the total. `Err` unless both exit 0.
    pub fn pump(&self, on_bytes: &mut dyn FnMut(u64)) -> Result<u64, ProcessError> {
        let mut total = 0;
        let mut count = |bytes: u64| {
            total = bytes;
            on_bytes(bytes);
        };
        let ended = self.execute_with(Sink::Capture, Some(&mut count))?;
        self.check(&ended)?;
        Ok(total)
    }

    fn execute(&self, sink: Sink<'_>) -> Result<Ended, ProcessError> {
        self.execute_with(sink, None)
    }

    fn execute_with(
        &self,
        sink: Sink<'_>,
        pumped: Option<&mut dyn FnMut(u64)>,
    ) -> Result<Ended, ProcessError> {
        run::run(
            vec![self.left.std_command(), self.right.std_command()],
            None,
            self.timeout,
            sink,
            pumped,
        )
        .map_err(|(side, e)| self.in_pipeline(self.side(side).not_started(&e)))
    }

    fn side(&self, index: usize) -> &Command {
        if index == 0 {
            &self.left
        } else {
            &self.right
        }
    }

    fn in_pipeline(&self, mut error: ProcessError) -> ProcessError {
        error.pipeline = Some(self.display().into());
        error
    }

    /// Both statuses checked: the error of the side to blame.
    fn check(&self, ended: &Ended) -> Result<ExitStatus, ProcessError> {
        if ended.timed_out {
            let mut error = self.in_pipeline(self.left.error(Failure::TimedOut {
                after: self.timeout.unwrap_or_default(),
            }));
            error.place = None;
            error.help = format!(
                "{} did not end within its limit: see what either side waits on (a remote host that stopped answering, a pool in trouble), or give it longer",
                self.display()
            );
            return Err(error);
        }
        let status = |i: usize| ended.statuses[i].expect("a side that was not killed was reaped");
        let (left, right) = (status(0), status(1));
        let failed = |i: usize, status: ExitStatus| {
            self.in_pipeline(self.side(i).failed(status, &ended.stderrs[i]))
        };
        let left_error = (!left.success()).then(|| failed(0, left));
        let right_error = (!right.success()).then(|| failed(1, right));
        match (left_error, right_error) {
            (None, None) => Ok(right),
            (Some(e), None) | (None, Some(e)) => Err(e),
            (Some(left_error), Some(right_error)) => {
                // The receiving side stopped reading first (the sender then
                // dies of SIGPIPE or reports a broken pipe), or the sending
                // side failed first (the receiver then reports a short
                // stream): blame the side that stopped first.
                let (blamed, other) = if broke_its_pipe(left, &ended.stderrs[0]) {
                    (right_error, left_error)
                } else {
                    (left_error, right_error)
                };
                Err(ProcessError {
                    help: format!(
                        "{}; `{}` failed too: {}",
                        blamed.help,
                        other.command(),
                        other.message()
                    ),
                    ..blamed
                })
            }
        }
    }
}

/// Whether a writer ended because its reader went away.
fn broke_its_pipe(status: ExitStatus, stderr: &[u8]) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGPIPE) || stderr_tail(stderr).contains("Broken pipe")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(script: &str) -> Command {
        Command::from_argv(&["sh", "-c", script])
    }

    #[test]
    fn bytes_flow_from_left_to_right() {
        let out = sh("head -c 3000000 /dev/zero")
            .pipe(Command::from_argv(&["wc", "-c"]))
            .run()
            .unwrap();
        assert_eq!(out.stdout_text().trim(), "3000000");
    }

    #[test]
    fn a_pumped_stream_counts_its_bytes_and_arrives_whole() {
        let mut seen = Vec::new();
        let pipeline = sh("head -c 3000000 /dev/zero").pipe(Command::from_argv(&["wc", "-c"]));
        let total = pipeline.pump(&mut |bytes| seen.push(bytes)).unwrap();
        assert_eq!(total, 3_000_000);
        assert_eq!(seen.last(), Some(&3_000_000));
        assert!(seen.windows(2).all(|w| w[0] < w[1]), "{seen:?}");
        let e = Command::from_argv(&["yes"])
            .pipe(sh(
                "head -c 10 >/dev/null; echo 'cannot receive' >&2; exit 1",
            ))
            .pump(&mut |_| {})
            .unwrap_err();
        assert_eq!(e.stderr(), "cannot receive", "{e}");
    }

    #[test]
    fn a_failing_left_side_is_named_even_when_the_right_side_succeeds() {
        let e = sh("echo partial; echo 'cannot open tank/x' >&2; exit 2")
            .pipe(Command::from_argv(&["cat"]))
            .run()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`sh -c 'echo partial; echo '\\''cannot open tank/x'\\'' >&2; exit 2'` failed (exit status: 2): cannot open tank/x (in `sh -c 'echo partial; echo '\\''cannot open tank/x'\\'' >&2; exit 2' | cat`)"
        );
    }

    #[test]
    fn a_right_side_that_stops_reading_is_blamed_not_the_writer_it_broke() {
        let e = Command::from_argv(&["yes"])
            .pipe(sh(
                "read line; echo 'cannot receive: destination exists' >&2; exit 1",
            ))
            .run()
            .unwrap_err();
        assert_eq!(e.stderr(), "cannot receive: destination exists", "{e}");
        assert!(e.help.contains("`yes` failed too"), "{}", e.help);
    }

    #[test]
    fn a_hung_pipeline_is_killed_whole_at_its_limit() {
        let started = Instant::now();
        let e = sh("sleep 60")
            .pipe(Command::from_argv(&["cat"]))
            .timeout(Duration::from_millis(400))
            .run()
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(
            e.to_string(),
            "`sh -c 'sleep 60' | cat` did not finish within 0.4 s; it was killed"
        );
    }

    #[test]
    fn a_side_that_cannot_start_is_named() {
        let e = Command::from_argv(&["true"])
            .pipe(Command::new("zpersist-no-such-receiver"))
            .run()
            .unwrap_err();
        assert!(
            e.to_string().starts_with("cannot run `zpersist-no-such-receiver`: `zpersist-no-such-receiver` is not on PATH (in `true | zpersist-no-such-receiver`)"),
            "{e}"
        );
    }
}
