//! How zpersist reaches another host over ssh, as data: the argv of `ssh`
//! for a pinned target, and the POSIX shell quoting its remote command
//! line needs. Nothing here runs a process: zpersist-process runs the argv
//! (`Location::Ssh`), bounds it in time and reads its result.
//!
//! Every connection is non-interactive (`BatchMode`), trusts only the
//! target's pinned known_hosts file with strict host key checking, and uses
//! the target's own key, so nothing depends on the host's ssh config (no
//! global `Host *` block). ssh gives up on a connection that does not
//! answer (`ConnectTimeout`, `ServerAliveInterval` x `ServerAliveCountMax`);
//! the target's `timeout` is the wall-clock limit zpersist-process puts on
//! each call, which also ends a remote command that hangs on a live
//! connection.
//!
//! ssh always hands the remote side one command line, which the remote
//! user's shell splits again: the remote argv is quoted word by word
//! ([`shell`]), so a dataset name with spaces, quotes, `$` or a newline
//! arrives as one argument.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::time::Duration;

pub mod shell;
pub use shell::{command_line, remote_command, shell_quote};

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
pub const SSH_OWN_FAILURE: i32 = 255;

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
    /// The wall-clock limit of one call: ssh is killed when it passes.
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
    /// this target: the options, the destination, `--` and the remote
    /// command line, each word quoted for the remote shell.
    pub fn argv<S: AsRef<OsStr>>(&self, remote: &[S]) -> Vec<OsString> {
        let mut argv: Vec<OsString> = [
            "-o".to_string(),
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
        ]
        .into_iter()
        .map(OsString::from)
        .collect();
        argv.push(command_line(remote));
        argv
    }

    /// What to do when ssh itself failed (exit status 255): connection,
    /// authentication or host key.
    pub fn help_unreachable(&self) -> String {
        format!(
            "check that {}:{} is reachable, that the key {} is authorised for {} there, and that its host key is pinned in {}",
            self.host, self.port, self.identity_file, self.user, self.known_hosts
        )
    }

    /// What to do when the remote command ran and failed.
    pub fn help_command_failed(&self) -> String {
        format!(
            "the command itself failed on {}; see its message, and try it there by hand",
            self.host
        )
    }

    /// What to do when the call was killed at the timeout.
    pub fn help_timed_out(&self) -> String {
        format!(
            "{}:{} accepted the connection but the call did not end in time: check that sshd there answers (`ssh -p {} {}@{} true`) and that the command is not stuck there (zfs waits on a suspended pool)",
            self.host, self.port, self.port, self.user, self.host
        )
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
    fn hostile_dataset_names_reach_the_remote_side_as_one_word() {
        for name in [
            "tank/my data",
            "tank/it's",
            "tank/\"quoted\"",
            "tank/a;rm -rf /",
            "tank/$(reboot)`id`",
            "tank/'; echo pwned; '",
            "tank/back\\slash",
            "tank/new\nline",
            "tank/Séries TV",
            "",
        ] {
            let argv = target().argv(&["zfs", "get", "guid", name]);
            assert_eq!(argv[argv.len() - 2], "--");
            let words = shell::tests::split_like_sh(argv.last().unwrap().to_str().unwrap());
            assert_eq!(words, ["zfs", "get", "guid", name], "{name:?}");
        }
    }
}
