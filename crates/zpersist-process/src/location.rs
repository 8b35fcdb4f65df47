//! Where a command runs: here, or on another host over the pinned ssh.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::time::Duration;

use zpersist_ssh::{SshTarget, SSH_OWN_FAILURE};

use crate::command::Command;
use crate::error::Failure;

/// Where a command runs. The same argv runs either way: locally as it is,
/// over ssh as `ssh OPTIONS -- 'LINE'` (zpersist-ssh's pinned argv, the
/// words quoted for the remote shell), bounded by the target's timeout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Location {
    /// This host.
    #[default]
    Local,
    /// Another host, reached over ssh with its pinned host key.
    Ssh(SshTarget),
}

impl fmt::Display for Location {
    /// Where it is, as messages name it: `this host`, or `user@host:port`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local => f.write_str("this host"),
            Location::Ssh(target) => target.fmt(f),
        }
    }
}

impl From<SshTarget> for Location {
    fn from(target: SshTarget) -> Location {
        Location::Ssh(target)
    }
}

impl Location {
    pub fn is_local(&self) -> bool {
        matches!(self, Location::Local)
    }

    /// The argv that runs `argv` at this location: `argv` itself here;
    /// `ssh`, the target's options, `--` and the quoted command line there.
    pub fn argv_for<S: AsRef<OsStr>>(&self, argv: &[S]) -> Vec<OsString> {
        match self {
            Location::Local => argv.iter().map(|a| a.as_ref().to_owned()).collect(),
            Location::Ssh(target) => {
                let mut full = vec![OsString::from("ssh")];
                full.extend(target.argv(argv));
                full
            }
        }
    }

    /// A command running `argv` at this location.
    pub fn command<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        Command::from_argv(argv).at(self.clone())
    }

    /// The wall-clock limit of each call when the command sets none: the
    /// ssh target's `timeout`; none here.
    pub fn default_timeout(&self) -> Option<Duration> {
        match self {
            Location::Local => None,
            Location::Ssh(target) => Some(target.timeout),
        }
    }

    /// Where a failure happened, for its message: `None` here.
    pub(crate) fn place(&self) -> Option<String> {
        match self {
            Location::Local => None,
            Location::Ssh(target) => Some(target.to_string()),
        }
    }

    /// Why `program` could not be started here (or ssh, there).
    pub(crate) fn not_started(&self, program: &OsStr, error: &io::Error) -> String {
        let program = match self {
            Location::Local => program.to_string_lossy(),
            Location::Ssh(_) => "ssh".into(),
        };
        match error.kind() {
            io::ErrorKind::NotFound if !program.contains('/') => {
                format!("`{program}` is not on PATH")
            }
            io::ErrorKind::NotFound => format!("{program} does not exist"),
            _ => format!("cannot run {program}: {error}"),
        }
    }

    /// What to do about `failure` of `command` (its shell line).
    pub(crate) fn help(&self, command: &str, program: &str, failure: &Failure) -> String {
        match (self, failure) {
            (Location::Local, Failure::NotStarted(_)) => {
                format!("install {program} and make sure it is on PATH")
            }
            (Location::Local, Failure::Exited { .. }) => {
                format!("see its message; run `{command}` by hand to see more")
            }
            (Location::Local, Failure::TimedOut { .. }) => {
                "it did not end within its limit: see what it waits on (zfs waits on a suspended pool, a server may not answer)".into()
            }
            (Location::Ssh(_), Failure::NotStarted(_)) => {
                "install the OpenSSH client and make sure `ssh` is on PATH".into()
            }
            (Location::Ssh(target), Failure::Exited { status, .. })
                if status.code() == Some(SSH_OWN_FAILURE) =>
            {
                target.help_unreachable()
            }
            (Location::Ssh(target), Failure::Exited { .. }) => target.help_command_failed(),
            (Location::Ssh(target), Failure::TimedOut { .. }) => target.help_timed_out(),
        }
    }
}
