//! Runs a command on a remote host over ssh, as an argv (never a local
//! shell string). Every connection is non-interactive (`BatchMode`), trusts
//! only the target's pinned known_hosts file with strict host key checking,
//! and uses the target's own key, so nothing depends on the host's ssh
//! config (no global `Host *` block).
//!
//! Every call is bounded: ssh gives up on a connection that does not
//! answer (`ConnectTimeout`, `ServerAliveInterval` x `ServerAliveCountMax`),
//! and the target's `timeout` is a hard wall-clock limit on the whole call
//! (zpersist_host::run_with_timeout kills ssh when it passes), which also
//! ends a remote command that hangs on a live connection.
//!
//! ssh always hands the remote side one command line, which the remote
//! user's shell splits again: the remote argv is quoted word by word here,
//! so a dataset name with spaces or quotes arrives as one argument.

use std::fmt;
use std::io::ErrorKind;
use std::process::ExitStatus;
use std::time::Duration;

use zpersist_host::{run_with_timeout, seconds, Bounded};

/// How long ssh may take to connect before the attempt counts as failed.
pub const CONNECT_TIMEOUT_SECONDS: u32 = 20;

/// Keepalives on an established connection (and during key exchange):
/// ssh gives up after `SERVER_ALIVE_COUNT_MAX` unanswered ones, sent every
/// `SERVER_ALIVE_INTERVAL_SECONDS`, so a peer that went silent is dropped
/// after 45 s. nix/modules/replication.nix gives syncoid's ssh the same.
pub const SERVER_ALIVE_INTERVAL_SECONDS: u32 = 15;
pub const SERVER_ALIVE_COUNT_MAX: u32 = 3;

/// The exit status ssh uses for its own failures (connection, auth, host
/// key); any other status is the remote command's.
const SSH_OWN_FAILURE: i32 = 255;

/// Where a remote command runs, and how ssh is allowed to get there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The private key (`ssh -i`).
    pub identity_file: String,
    /// The known_hosts file holding the target's pinned host key; the only
    /// one ssh consults.
    pub known_hosts: String,
    /// The wall-clock limit of one call ([`SshTarget::run`]): ssh is killed
    /// when it passes.
    pub timeout: Duration,
}

impl fmt::Display for SshTarget {
    /// `user@host:port`, as errors and progress name the target.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.user, self.host, self.port)
    }
}

impl SshTarget {
    /// The arguments of `ssh` (without `ssh` itself) that run `remote` on
    /// this target.
    pub fn argv<S: AsRef<str>>(&self, remote: &[S]) -> Vec<String> {
        vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            format!("ConnectTimeout={CONNECT_TIMEOUT_SECONDS}"),
            "-o".into(),
            format!("ServerAliveInterval={SERVER_ALIVE_INTERVAL_SECONDS}"),
            "-o".into(),
            format!("ServerAliveCountMax={SERVER_ALIVE_COUNT_MAX}"),
            "-i".into(),
            self.identity_file.clone(),
            "-p".into(),
            self.port.to_string(),
            format!("{}@{}", self.user, self.host),
            "--".into(),
            remote_command(remote),
        ]
    }

    /// Runs `remote` on this target and returns its stdout; ssh is killed
    /// when the call takes longer than `self.timeout`.
    pub fn run<S: AsRef<str>>(&self, remote: &[S]) -> Result<String, SshError> {
        let error = |failure| SshError {
            target: self.to_string(),
            command: remote_command(remote),
            help: self.help(&failure),
            failure,
        };
        let ssh = duct::cmd("ssh", self.argv(remote))
            .stdin_null()
            .stdout_capture()
            .stderr_capture();
        let output = match run_with_timeout(&ssh, self.timeout) {
            Ok(Bounded::Finished(output)) => output,
            Ok(Bounded::TimedOut) => {
                return Err(error(SshFailure::TimedOut {
                    after: self.timeout,
                }))
            }
            Err(e) => {
                return Err(error(SshFailure::NotStarted(
                    if e.kind() == ErrorKind::NotFound {
                        "ssh is not on PATH".into()
                    } else {
                        format!("cannot run ssh: {e}")
                    },
                )))
            }
        };
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        Err(error(SshFailure::Exited {
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }))
    }

    fn help(&self, failure: &SshFailure) -> String {
        match failure {
            SshFailure::NotStarted(_) => {
                "install the OpenSSH client and make sure `ssh` is on PATH".into()
            }
            SshFailure::Exited { status, .. } if status.code() == Some(SSH_OWN_FAILURE) => format!(
                "check that {}:{} is reachable, that the key {} is authorised for {} there, and that its host key is pinned in {}",
                self.host, self.port, self.identity_file, self.user, self.known_hosts
            ),
            SshFailure::Exited { .. } => format!(
                "the command itself failed on {}; see its message, and try it there by hand",
                self.host
            ),
            SshFailure::TimedOut { .. } => format!(
                "{}:{} accepted the connection but the call did not end in time: check that sshd there answers (`ssh -p {} {}@{} true`) and that the command is not stuck there (zfs waits on a suspended pool)",
                self.host, self.port, self.port, self.user, self.host
            ),
        }
    }
}

/// A remote command that did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SshError {
    /// `user@host:port`.
    pub target: String,
    /// The command line as the remote shell received it.
    pub command: String,
    pub failure: SshFailure,
    /// What to do about it.
    pub help: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshFailure {
    /// ssh could not be started here.
    NotStarted(String),
    /// ssh exited non-zero: status 255 when ssh itself failed (connection,
    /// authentication, host key), otherwise the remote command's status.
    Exited { status: ExitStatus, stderr: String },
    /// The call was still running after the target's timeout; ssh was
    /// killed.
    TimedOut { after: Duration },
}

impl SshError {
    fn describe(&self) -> String {
        match &self.failure {
            SshFailure::NotStarted(reason) => {
                format!("cannot run `{}` on {}: {reason}", self.command, self.target)
            }
            SshFailure::Exited { status, stderr } => {
                format!(
                    "`{}` on {} failed ({status}): {stderr}",
                    self.command, self.target
                )
            }
            SshFailure::TimedOut { after } => format!(
                "`{}` on {} did not finish within {}; ssh was killed",
                self.command,
                self.target,
                seconds(*after)
            ),
        }
    }

    /// What ssh or the remote command printed on stderr (empty when ssh did
    /// not start).
    pub fn stderr(&self) -> &str {
        match &self.failure {
            SshFailure::NotStarted(_) | SshFailure::TimedOut { .. } => "",
            SshFailure::Exited { stderr, .. } => stderr,
        }
    }
}

/// `remote` as one command line for the remote shell, each word quoted.
pub fn remote_command<S: AsRef<str>>(remote: &[S]) -> String {
    remote
        .iter()
        .map(|a| shell_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Single-quotes `arg` for a POSIX shell unless it is plainly safe.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:,=@+".contains(c))
    {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> SshTarget {
        SshTarget {
            host: "nas.example".into(),
            port: 2222,
            user: "backup".into(),
            identity_file: "/etc/zpersist/ssh/id".into(),
            known_hosts: "/etc/zpersist/known_hosts/nas".into(),
            timeout: Duration::from_secs(60),
        }
    }

    /// Splits a line as a POSIX shell does for single quotes and plain words
    /// (all `shell_quote` produces), so the tests check what the remote side
    /// receives, not just the text.
    fn remote_shell_words(line: &str) -> Vec<String> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut quoted = false;
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\'' if quoted => quoted = false,
                '\'' => {
                    quoted = true;
                    in_word = true;
                }
                '\\' if !quoted => {
                    word.extend(chars.next());
                    in_word = true;
                }
                ' ' if !quoted => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                }
                c => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        assert!(!quoted, "unbalanced quote in {line:?}");
        if in_word {
            words.push(word);
        }
        words
    }

    #[test]
    fn the_argv_pins_the_host_key_and_uses_only_the_targets_key() {
        let argv = target().argv(&["zfs", "get", "-H", "creation", "tank/a"]);
        assert_eq!(
            argv,
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "UserKnownHostsFile=/etc/zpersist/known_hosts/nas",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "ConnectTimeout=20",
                "-o",
                "ServerAliveInterval=15",
                "-o",
                "ServerAliveCountMax=3",
                "-i",
                "/etc/zpersist/ssh/id",
                "-p",
                "2222",
                "backup@nas.example",
                "--",
                "zfs get -H creation tank/a",
            ]
        );
    }

    #[test]
    fn plain_words_stay_unquoted_and_the_rest_is_single_quoted() {
        assert_eq!(shell_quote("name,property,value"), "name,property,value");
        assert_eq!(shell_quote("tank/a@b"), "tank/a@b");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(reboot)"), "'$(reboot)'");
    }

    #[test]
    fn hostile_dataset_names_reach_the_remote_side_as_one_word() {
        for name in [
            "tank/my data",
            "tank/it's",
            "tank/\"quoted\"",
            "tank/a;rm -rf /",
            "tank/$(reboot)`id`",
            "tank/'; echo pwned; '",
            "tank/back\\slash",
            "",
        ] {
            let argv = target().argv(&["zfs", "get", "guid", name]);
            assert_eq!(argv[argv.len() - 2], "--");
            let words = remote_shell_words(argv.last().unwrap());
            assert_eq!(words, ["zfs", "get", "guid", name], "{name:?}");
        }
    }
}
