//! One command: an argv, where it runs, its stdin and its limit.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

use crate::error::{stderr_tail, Failure, ProcessError};
use crate::location::Location;
use crate::pipeline::Pipeline;
use crate::run::{self, Ended, Sink};

/// Which output a streamed line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    /// Any side's stderr, for a pipeline.
    Stderr,
}

/// What a command that ran to its end printed, and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// A program to run: its argv (never a shell string), where, what it reads
/// on stdin (nothing, by default) and how long it may take.
#[derive(Debug, Clone)]
pub struct Command {
    argv: Vec<OsString>,
    /// The file to run here instead of looking `argv[0]` up on PATH.
    program: Option<PathBuf>,
    location: Location,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    env: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    inherit_stderr: bool,
}

impl Command {
    /// `program` with no arguments yet, here.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command::from_argv(&[program])
    }

    /// `argv[0]` with the rest as its arguments, here.
    ///
    /// # Panics
    /// When `argv` is empty.
    pub fn from_argv<S: AsRef<OsStr>>(argv: &[S]) -> Command {
        assert!(!argv.is_empty(), "a command needs a program");
        Command {
            argv: argv.iter().map(|a| a.as_ref().to_owned()).collect(),
            program: None,
            location: Location::Local,
            stdin: None,
            timeout: None,
            env: Vec::new(),
            dir: None,
            inherit_stderr: false,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Command {
        self.argv.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Command {
        self.argv
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Runs at `location` (here by default).
    pub fn at(mut self, location: Location) -> Command {
        self.location = location;
        self
    }

    /// Here, runs the file `path` as `argv[0]` (messages still show
    /// `argv[0]`); over ssh the remote side looks `argv[0]` up on its PATH.
    pub fn program_path(mut self, path: impl Into<PathBuf>) -> Command {
        self.program = Some(path.into());
        self
    }

    /// Writes `bytes` to its stdin, then closes it.
    pub fn stdin_bytes(mut self, bytes: impl Into<Vec<u8>>) -> Command {
        self.stdin = Some(bytes.into());
        self
    }

    /// Kills it (and its process group) when it runs longer than `limit`.
    /// Without one, a command here waits as long as it runs, and over ssh
    /// for the target's `timeout`.
    pub fn timeout(mut self, limit: Duration) -> Command {
        self.timeout = Some(limit);
        self
    }

    /// Sets an environment variable (here only; ssh does not pass it on).
    pub fn env(mut self, name: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Command {
        self.env
            .push((name.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Runs in `dir` (here only).
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Command {
        self.dir = Some(dir.into());
        self
    }

    /// Lets its stderr through to this process's stderr (a unit's journal:
    /// progress of a long call) instead of capturing it; an error then has
    /// no stderr tail to quote.
    pub fn stderr_to_parent(mut self) -> Command {
        self.inherit_stderr = true;
        self
    }

    /// Its argv as asked for.
    pub fn argv(&self) -> &[OsString] {
        &self.argv
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// Its wall-clock limit, if any.
    pub fn limit(&self) -> Option<Duration> {
        self.timeout.or_else(|| self.location.default_timeout())
    }

    /// The command as a shell line.
    pub fn display(&self) -> String {
        crate::display_argv(&self.argv)
    }

    /// Pipes its stdout into `right`'s stdin.
    pub fn pipe(self, right: Command) -> Pipeline {
        Pipeline::new(self, right)
    }

    /// Runs it to its end and returns what it printed, whatever its status:
    /// `Err` only when it cannot be started or is killed at its limit.
    pub fn output(&self) -> Result<Output, ProcessError> {
        let ended = self.execute(Sink::Capture)?;
        let status = self.finished(&ended)?;
        let Ended {
            stdout, stderrs, ..
        } = ended;
        Ok(Output {
            status,
            stdout,
            stderr: stderrs.into_iter().next().unwrap_or_default(),
        })
    }

    /// Runs it; `Err` unless it exits 0.
    pub fn run(&self) -> Result<Output, ProcessError> {
        let output = self.output()?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(self.failed(output.status, &output.stderr))
        }
    }

    /// Runs it and returns its stdout as text (lossily); `Err` unless it
    /// exits 0.
    pub fn read(&self) -> Result<String, ProcessError> {
        self.run().map(|output| output.stdout_text())
    }

    /// Runs it, handing each line of its stdout and stderr to `on_line` as
    /// it arrives (for progress); `Err` unless it exits 0, with the tail
    /// of its stderr.
    pub fn stream(&self, on_line: &mut dyn FnMut(Stream, &str)) -> Result<(), ProcessError> {
        let ended = self.execute(Sink::Lines(on_line))?;
        let status = self.finished(&ended)?;
        if status.success() {
            Ok(())
        } else {
            Err(self.failed(status, &ended.stderrs[0]))
        }
    }

    /// The error of this command having exited with `status`, printing
    /// `stderr` (of which the error keeps the tail).
    pub fn failed(&self, status: ExitStatus, stderr: &[u8]) -> ProcessError {
        self.error(Failure::Exited {
            status,
            stderr: stderr_tail(stderr),
        })
    }

    pub(crate) fn error(&self, failure: Failure) -> ProcessError {
        let command = self.display();
        let program = self.argv[0].to_string_lossy().into_owned();
        ProcessError {
            argv: self
                .argv
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect(),
            place: self.location.place().map(Into::into),
            help: self.location.help(&command, &program, &failure),
            failure,
            pipeline: None,
        }
    }

    /// The process to start: the program itself here, ssh there.
    pub(crate) fn std_command(&self) -> (std::process::Command, bool) {
        let full = self.location.argv_for(&self.argv);
        let mut command = match (&self.location, &self.program) {
            (Location::Local, Some(path)) => std::process::Command::new(path),
            _ => std::process::Command::new(&full[0]),
        };
        command.args(&full[1..]);
        if self.location.is_local() {
            command.envs(self.env.iter().map(|(k, v)| (k, v)));
            if let Some(dir) = &self.dir {
                command.current_dir(dir);
            }
        }
        (command, self.inherit_stderr)
    }

    /// Replaces this process with the command (here), its stdin, stdout
    /// and stderr the caller's: for a forced ssh command whose output is
    /// the stream itself (`zfs send` of days). No limit applies (the ssh
    /// connection's keepalives bound it). Returns only when it could not
    /// be started, with why.
    pub fn exec(&self) -> ProcessError {
        use std::os::unix::process::CommandExt;
        let (mut command, _) = self.std_command();
        let error = command.exec();
        self.not_started(&error)
    }

    /// Why it could not start, as an error of this command.
    pub(crate) fn not_started(&self, error: &std::io::Error) -> ProcessError {
        let program = self
            .program
            .as_deref()
            .map(|p| p.as_os_str())
            .unwrap_or(&self.argv[0]);
        self.error(Failure::NotStarted(
            self.location.not_started(program, error),
        ))
    }

    fn execute(&self, sink: Sink<'_>) -> Result<Ended, ProcessError> {
        run::run(
            vec![self.std_command()],
            self.stdin.clone(),
            self.limit(),
            sink,
            None,
        )
        .map_err(|(_, e)| self.not_started(&e))
    }

    /// Its status, or the error of its having been killed at the limit.
    fn finished(&self, ended: &Ended) -> Result<ExitStatus, ProcessError> {
        match (ended.timed_out, ended.statuses[0]) {
            (false, Some(status)) => Ok(status),
            _ => Err(self.error(Failure::TimedOut {
                after: self.limit().unwrap_or_default(),
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn a_command_that_ends_in_time_gives_its_output_and_status() {
        let output = Command::from_argv(&["sh", "-c", "echo out; echo err >&2; exit 3"])
            .timeout(Duration::from_secs(10))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(3));
        assert_eq!(output.stdout, b"out\n");
        assert_eq!(output.stderr, b"err\n");
        let e = Command::from_argv(&["sh", "-c", "echo 'no such dataset' >&2; exit 3"])
            .run()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "`sh -c 'echo '\\''no such dataset'\\'' >&2; exit 3'` failed (exit status: 3): no such dataset"
        );
        assert_eq!(e.stderr(), "no such dataset");
    }

    #[test]
    fn a_hanging_command_and_what_it_started_are_killed_at_the_limit() {
        // The shell's `sleep` inherits the pipes: killing the shell alone
        // would leave the wait hanging on them.
        let started = Instant::now();
        let e = Command::from_argv(&["sh", "-c", "sleep 60; echo never"])
            .timeout(Duration::from_millis(500))
            .output()
            .unwrap_err();
        let elapsed = started.elapsed();
        assert!(e.timed_out(), "{e:?}");
        assert!(
            elapsed >= Duration::from_millis(500) && elapsed < Duration::from_secs(2),
            "{elapsed:?}"
        );
        assert_eq!(
            e.to_string(),
            "`sh -c 'sleep 60; echo never'` did not finish within 0.5 s; it was killed"
        );
    }

    #[test]
    fn a_program_that_does_not_exist_is_an_error_with_help() {
        let e = Command::new("zpersist-no-such-program").run().unwrap_err();
        assert_eq!(
            e.failure,
            Failure::NotStarted("`zpersist-no-such-program` is not on PATH".into())
        );
        assert!(
            e.help.contains("install zpersist-no-such-program"),
            "{}",
            e.help
        );
        let e = Command::new("/nonexistent/x").run().unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot run `/nonexistent/x`: /nonexistent/x does not exist"
        );
    }

    #[test]
    fn stdin_is_fed_and_a_program_path_runs_in_place_of_the_name() {
        let out = Command::from_argv(&["cat-shown-as-cat"])
            .program_path("/bin/cat")
            .stdin_bytes(b"event".to_vec())
            .read()
            .unwrap();
        assert_eq!(out, "event");
        let e = Command::from_argv(&["cat-shown-as-cat", "/nonexistent"])
            .program_path("/bin/cat")
            .run()
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("`cat-shown-as-cat /nonexistent` failed"),
            "{e}"
        );
    }

    #[test]
    fn lines_are_streamed_as_they_come_and_a_failure_keeps_the_stderr_tail() {
        let mut lines = Vec::new();
        let e = Command::from_argv(&[
            "sh",
            "-c",
            "printf '10%%\\r20%%\\r'; echo done; echo oops >&2; exit 4",
        ])
        .stream(&mut |stream, line| lines.push((stream, line.to_string())))
        .unwrap_err();
        // Each stream in its order (the two arrive on threads of their own).
        let of = |wanted: Stream| -> Vec<String> {
            lines
                .iter()
                .filter(|(stream, _)| *stream == wanted)
                .map(|(_, line)| line.clone())
                .collect()
        };
        assert_eq!(of(Stream::Stdout), ["10%", "20%", "done"]);
        assert_eq!(of(Stream::Stderr), ["oops"]);
        assert_eq!(e.stderr(), "oops");
        assert_eq!(e.status().and_then(|s| s.code()), Some(4));
    }

    /// What a copy engine (rsync --info=progress2) relies on: every stderr
    /// line reaches the callback, however many, while the error keeps only
    /// their tail; and a stdout line is never mixed with stderr's.
    #[test]
    fn a_streamed_command_hands_over_every_stderr_line_and_its_error_keeps_the_tail() {
        let mut stderr_lines = 0;
        let mut first = None;
        let mut stdout = Vec::new();
        let e = Command::from_argv(&[
            "sh",
            "-c",
            "printf '  1,024  50%%'; echo 'disk full (28)' >&2; \
             i=0; while [ $i -lt 5000 ]; do echo \"write failed $i\" >&2; i=$((i+1)); done; \
             printf '\r  2,048 100%%\n'; exit 11",
        ])
        .timeout(Duration::from_secs(30))
        .stream(&mut |stream, line| match stream {
            Stream::Stdout => stdout.push(line.to_string()),
            Stream::Stderr => {
                stderr_lines += 1;
                first.get_or_insert_with(|| line.to_string());
            }
        })
        .unwrap_err();
        assert_eq!(stdout, ["  1,024  50%", "  2,048 100%"]);
        assert_eq!(stderr_lines, 5001);
        assert_eq!(first.as_deref(), Some("disk full (28)"));
        assert!(e.stderr().ends_with("write failed 4999"), "{}", e.stderr());
        assert!(!e.stderr().contains("disk full"), "the tail kept it all");
        assert_eq!(e.status().and_then(|s| s.code()), Some(11));
    }

    #[test]
    fn environment_variables_and_the_directory_reach_a_local_command() {
        let out = Command::from_argv(&["sh", "-c", "printf %s \"$ZP_X\"; pwd"])
            .env("ZP_X", "y z")
            .current_dir("/tmp")
            .read()
            .unwrap();
        assert_eq!(out, "y z/tmp\n");
        let e = Command::from_argv(&["sh", "-c", "echo to-the-journal >&2; exit 2"])
            .stderr_to_parent()
            .run()
            .unwrap_err();
        assert_eq!(e.stderr(), "");
    }
}
