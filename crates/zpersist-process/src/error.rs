//! The one error of running a program.

use std::fmt;
use std::process::ExitStatus;
use std::time::Duration;

use zpersist_core::shown;

use crate::seconds;

/// At most this much of a failed program's stderr is kept in its error:
/// the end, where the reason usually is.
pub const STDERR_TAIL_LINES: usize = 40;
pub const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// How a program that did not succeed ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// It could not be started (not installed, not executable...): why.
    NotStarted(String),
    /// It exited non-zero or was killed by a signal. Over ssh, status 255
    /// is ssh's own failure (connection, authentication, host key), any
    /// other the remote command's. A success status here means it exited 0
    /// but printed what its caller cannot read (`stderr` then says what).
    Exited {
        status: ExitStatus,
        /// The tail of its stderr, trimmed ([`STDERR_TAIL_LINES`],
        /// [`STDERR_TAIL_BYTES`]).
        stderr: String,
    },
    /// It was still running at its wall-clock limit; it and its process
    /// group were killed.
    TimedOut { after: Duration },
}

/// A program that did not succeed: what ran, where, how it ended and what
/// to do. Displayed as one line, cargo-style:
///
/// - ``` `zfs set compression=lz4 tank/a` failed: cannot set property ... ```
/// - ``` `zfs list 'tank/my data'` on root@nas:22 failed (exit status: 255): ssh: connect ... ```
/// - ``` `sleep 30` on root@nas:22 did not finish within 2 s; ssh was killed ```
/// - ``` cannot run `curl ...`: `curl` is not on PATH ```
///
/// The exit status is shown unless it is the plain 1 ("failed") with a
/// message; `help` is printed by the reporter on a line of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessError {
    /// The command as asked for (over ssh: the remote command, not ssh's
    /// own argv), lossily as text.
    pub argv: Vec<String>,
    /// Where it ran when not here: `user@host:port`.
    pub place: Option<Box<str>>,
    pub failure: Failure,
    /// What to do about it.
    pub help: String,
    /// The whole pipeline, when `argv` is one side of one.
    pub pipeline: Option<Box<str>>,
}

impl ProcessError {
    /// The command as a shell line (see [`crate::display_argv`]).
    pub fn command(&self) -> String {
        crate::display_argv(&self.argv)
    }

    /// What the program printed on stderr (its tail); empty when it did
    /// not start or was killed.
    pub fn stderr(&self) -> &str {
        match &self.failure {
            Failure::Exited { stderr, .. } => stderr,
            Failure::NotStarted(_) | Failure::TimedOut { .. } => "",
        }
    }

    /// Its exit status, when it exited.
    pub fn status(&self) -> Option<ExitStatus> {
        match &self.failure {
            Failure::Exited { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether it was killed at its wall-clock limit.
    pub fn timed_out(&self) -> bool {
        matches!(self.failure, Failure::TimedOut { .. })
    }

    /// The program's own message: its stderr, or (when it printed none, did
    /// not start, or was killed) how it ended, in words.
    pub fn message(&self) -> String {
        match &self.failure {
            Failure::Exited { stderr, .. } if !stderr.is_empty() => stderr.clone(),
            Failure::Exited { status, .. } => status.to_string(),
            Failure::NotStarted(reason) => reason.clone(),
            Failure::TimedOut { after } => format!(
                "did not finish within {}; {} was killed",
                seconds(*after),
                self.killed()
            ),
        }
    }

    /// The same error with `help` replaced.
    pub fn with_help(mut self, help: impl Into<String>) -> ProcessError {
        self.help = help.into();
        self
    }

    /// The same error with its stderr passed through `edit` (e.g. to cut a
    /// usage text that buries the line that matters).
    pub fn map_stderr(mut self, edit: impl FnOnce(&str) -> String) -> ProcessError {
        if let Failure::Exited { stderr, .. } = &mut self.failure {
            *stderr = edit(stderr);
        }
        self
    }

    fn killed(&self) -> &'static str {
        if self.place.is_some() {
            "ssh"
        } else {
            "it"
        }
    }
}

impl ProcessError {
    /// How it ended, as the end of a sentence naming it: `failed: MESSAGE`,
    /// `failed (exit status: 255): MESSAGE`, `did not finish within 3 s;
    /// ssh was killed`, `could not be started: REASON`. The status is
    /// shown unless it is the plain 1 with a message.
    pub fn outcome(&self) -> String {
        match &self.failure {
            Failure::NotStarted(reason) => format!("could not be started: {reason}"),
            Failure::Exited { status, stderr } if status.success() => {
                format!("printed what cannot be read: {stderr}")
            }
            Failure::Exited { status, stderr } if stderr.is_empty() => {
                format!("failed ({status})")
            }
            Failure::Exited { status, stderr } if status.code() == Some(1) => {
                format!("failed: {stderr}")
            }
            Failure::Exited { status, stderr } => format!("failed ({status}): {stderr}"),
            Failure::TimedOut { after } => format!(
                "did not finish within {}; {} was killed",
                seconds(*after),
                self.killed()
            ),
        }
    }
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on = match &self.place {
            Some(place) => format!(" on {place}"),
            None => String::new(),
        };
        let command = match (&self.failure, &self.pipeline) {
            (Failure::TimedOut { .. }, Some(pipeline)) => pipeline.to_string(),
            _ => self.command(),
        };
        let command = shown(&command);
        match &self.failure {
            Failure::NotStarted(reason) => write!(f, "cannot run `{command}`{on}: {reason}")?,
            Failure::TimedOut { .. } => return write!(f, "`{command}`{on} {}", self.outcome()),
            Failure::Exited { .. } => write!(f, "`{command}`{on} {}", self.outcome())?,
        }
        if let Some(pipeline) = &self.pipeline {
            write!(f, " (in `{}`)", shown(pipeline))?;
        }
        Ok(())
    }
}

impl std::error::Error for ProcessError {}

/// The end of `stderr`, trimmed: at most [`STDERR_TAIL_LINES`] lines and
/// [`STDERR_TAIL_BYTES`] bytes, saying how many lines were left out.
pub fn stderr_tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let text = text.trim();
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = lines.len().min(STDERR_TAIL_LINES);
    while kept > 1
        && lines[lines.len() - kept..]
            .iter()
            .map(|l| l.len() + 1)
            .sum::<usize>()
            > STDERR_TAIL_BYTES
    {
        kept -= 1;
    }
    let mut tail = lines[lines.len() - kept..].join("\n");
    if tail.len() > STDERR_TAIL_BYTES {
        let mut cut = tail.len() - STDERR_TAIL_BYTES;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = format!("...{}", &tail[cut..]);
    }
    if kept < lines.len() {
        format!("[{} earlier lines left out]\n{tail}", lines.len() - kept)
    } else {
        tail
    }
}

/// A program that did not succeed is a failure of the operation that ran
/// it: its one line, its help, and itself as the cause.
impl From<ProcessError> for zpersist_core::error::Error {
    fn from(e: ProcessError) -> zpersist_core::error::Error {
        let help = e.help.clone();
        let error = zpersist_core::error::Error::failed(e.to_string()).caused_by(e);
        if help.is_empty() {
            error
        } else {
            error.with_help(help)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn exited(code: i32, stderr: &str) -> ProcessError {
        ProcessError {
            argv: vec!["zfs".into(), "set".into(), "a b=c".into(), "tank/x".into()],
            place: None,
            failure: Failure::Exited {
                status: ExitStatus::from_raw(code << 8),
                stderr: stderr.into(),
            },
            help: String::new(),
            pipeline: None,
        }
    }

    #[test]
    fn errors_name_the_command_and_its_status_unless_it_is_the_plain_1() {
        assert_eq!(
            exited(1, "boom").to_string(),
            "`zfs set 'a b=c' tank/x` failed: boom"
        );
        assert_eq!(
            exited(2, "boom").to_string(),
            "`zfs set 'a b=c' tank/x` failed (exit status: 2): boom"
        );
        assert_eq!(
            exited(1, "").to_string(),
            "`zfs set 'a b=c' tank/x` failed (exit status: 1)"
        );
        let remote = ProcessError {
            place: Some("root@nas:22".into()),
            failure: Failure::TimedOut {
                after: Duration::from_secs(2),
            },
            ..exited(1, "")
        };
        assert_eq!(
            remote.to_string(),
            "`zfs set 'a b=c' tank/x` on root@nas:22 did not finish within 2 s; ssh was killed"
        );
    }

    #[test]
    fn a_name_holding_a_newline_is_shown_on_one_line() {
        let mut e = exited(1, "boom");
        e.argv[3] = "tank/a\nerror: forged".into();
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
    }

    #[test]
    fn the_tail_keeps_the_end_and_says_what_was_left_out() {
        let long: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let tail = stderr_tail(long.as_bytes());
        assert!(
            tail.starts_with("[60 earlier lines left out]\nline 61\n"),
            "{tail}"
        );
        assert!(tail.ends_with("line 100"), "{tail}");
        assert_eq!(stderr_tail(b"  one line \n"), "one line");
        let wide = "x".repeat(20_000);
        let tail = stderr_tail(wide.as_bytes());
        assert!(tail.len() <= STDERR_TAIL_BYTES + 3, "{}", tail.len());
    }
}
