//! Running one program (through zpersist-process): argv, environment, a
//! wall-clock limit, optionally as another user (`runuser -u USER --` when
//! running as root), and an error that says what failed, on what, and what
//! to do.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use zpersist_process::{seconds, Command, Failure};

/// A call that failed: `error: WHAT (on ON): MESSAGE` / `help: HELP`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what} (on {on}): {message}")]
pub struct PgError {
    pub what: String,
    pub on: String,
    pub message: String,
    pub help: String,
}

impl PgError {
    pub fn new(
        what: impl Into<String>,
        on: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> PgError {
        PgError {
            what: what.into(),
            on: on.into(),
            message: message.into(),
            help: help.into(),
        }
    }

    /// An I/O error on a file or directory.
    pub fn io(what: &str, path: &std::path::Path, e: &io::Error, help: &str) -> PgError {
        PgError::new(what, path.display().to_string(), e.to_string(), help)
    }
}

/// One program to run.
#[derive(Debug, Clone)]
pub struct Call {
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// Run as this user when zpersist runs as root (PostgreSQL's programs
    /// refuse root, and files they write must belong to the cluster).
    pub run_as: Option<String>,
    pub limit: Duration,
    pub dir: Option<PathBuf>,
    /// Let stderr through to ours (the unit's journal): progress of long
    /// calls. The error then points at those lines instead of quoting them.
    pub stream_stderr: bool,
}

impl Call {
    pub fn new(argv: Vec<String>, limit: Duration) -> Call {
        Call {
            argv,
            env: BTreeMap::new(),
            run_as: None,
            limit,
            dir: None,
            stream_stderr: false,
        }
    }

    /// The argv as run (with `runuser` in front when switching users).
    pub fn full_argv(&self) -> Vec<String> {
        match &self.run_as {
            Some(user) if is_root() && user != "root" => {
                let mut argv = vec![
                    "runuser".to_string(),
                    "-u".into(),
                    user.clone(),
                    "--".into(),
                ];
                argv.extend(self.argv.iter().cloned());
                argv
            }
            _ => self.argv.clone(),
        }
    }

    /// Runs it; `Ok(stdout)` on exit 0. `what`/`on`/`help` go into the error.
    pub fn run(&self, what: &str, on: &str, help: &str) -> Result<String, PgError> {
        let (status, stdout, stderr) = self.run_unchecked(what, on, help)?;
        if status == Some(0) {
            return Ok(stdout);
        }
        Err(PgError::new(
            what,
            on,
            failure(&self.argv[0], status, &stderr, self.stream_stderr),
            help,
        ))
    }

    /// Runs it and gives the exit status (`None`: killed by a signal),
    /// stdout and stderr; `Err` only when it cannot start or times out.
    pub fn run_unchecked(
        &self,
        what: &str,
        on: &str,
        help: &str,
    ) -> Result<(Option<i32>, String, String), PgError> {
        let argv = self.full_argv();
        let mut command = Command::from_argv(&argv).timeout(self.limit);
        if self.stream_stderr {
            command = command.stderr_to_parent();
        }
        if let Some(dir) = &self.dir {
            command = command.current_dir(dir);
        }
        for (name, value) in &self.env {
            command = command.env(name, value);
        }
        match command.output() {
            Ok(out) => Ok((out.status.code(), out.stdout_text(), out.stderr_text())),
            Err(e) => Err(match &e.failure {
                Failure::TimedOut { .. } => PgError::new(
                    what,
                    on,
                    format!(
                        "{} did not finish within {}; it was killed",
                        self.argv[0],
                        seconds(self.limit)
                    ),
                    format!("{help}; if it is only slow, raise the timeout (the contract's timeouts)"),
                ),
                Failure::NotStarted(reason)
                    if reason.contains("not on PATH") || reason.contains("does not exist") =>
                {
                    PgError::new(
                        what,
                        on,
                        format!("{} is not installed (not found)", argv[0]),
                        "install it, or fix the program directory in the contract (cluster.pgBin, repository.s3.barmanBin)",
                    )
                }
                _ => PgError::new(what, on, format!("cannot start {}: {}", argv[0], e.message()), help),
            }),
        }
    }
}

/// The last lines of a failed program's stderr, as one line.
fn failure(program: &str, status: Option<i32>, stderr: &str, streamed: bool) -> String {
    let status = match status {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".into(),
    };
    if streamed {
        return format!("{program} failed ({status}); its messages are above");
    }
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = &lines[lines.len().saturating_sub(6)..];
    if tail.is_empty() {
        format!("{program} failed ({status})")
    } else {
        format!("{program} failed ({status}): {}", tail.join(" / "))
    }
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// A PostgreSQL call that failed: its line, its help, itself as the cause.
impl From<PgError> for zpersist_core::error::Error {
    fn from(e: PgError) -> zpersist_core::error::Error {
        let help = e.help.clone();
        zpersist_core::error::Error::failed(e.to_string())
            .with_help(help)
            .caused_by(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_quotes_the_last_lines_and_a_missing_program_says_install() {
        let call = Call::new(
            vec![
                "sh".into(),
                "-c".into(),
                "echo one >&2; echo two >&2; exit 3".into(),
            ],
            Duration::from_secs(5),
        );
        let e = call
            .run("listing backups", "/srv/repo", "fix it")
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "listing backups (on /srv/repo): sh failed (exit status 3): one / two"
        );
        let missing = Call::new(vec!["/nonexistent/pg_ctl".into()], Duration::from_secs(5));
        let e = missing.run("starting", "/d", "h").unwrap_err();
        assert!(e.message.contains("not installed"), "{e}");
        let slow = Call::new(vec!["sleep".into(), "5".into()], Duration::from_millis(200));
        let e = slow.run("waiting", "x", "h").unwrap_err();
        assert!(e.message.contains("did not finish within 0.2 s"), "{e}");
    }
}
