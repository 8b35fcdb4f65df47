//! The loopback sshd that tests/env/start-sshd.sh starts: where it listens,
//! the client key it accepts, the known_hosts file pinning its host key.

/// Keys, known_hosts, config and pid file of the test sshd.
pub const DIR: &str = "/run/zpersist-test-sshd";
pub const HOST: &str = "127.0.0.1";
pub const PORT: u16 = 58222;
/// The user the test sessions log in as.
pub const USER: &str = "root";

/// The private key the test sshd accepts.
pub fn client_key() -> String {
    format!("{DIR}/client_ed25519")
}

/// A known_hosts file holding exactly the test sshd's host key.
pub fn known_hosts() -> String {
    format!("{DIR}/known_hosts")
}

/// The test sshd as a pinned ssh target, each call bounded by `timeout`
/// (`zpersist_process::Location::Ssh(sshd::target(...))` runs there).
pub fn target(timeout: std::time::Duration) -> zpersist_ssh::SshTarget {
    zpersist_ssh::SshTarget {
        host: HOST.into(),
        port: PORT,
        user: USER.into(),
        identity_file: client_key(),
        known_hosts: known_hosts(),
        timeout,
    }
}

/// Checks that the test sshd answers with the pinned key and returns its
/// host key as a `hostKey` option takes it (`ssh-ed25519 AAAA...`).
pub fn require() -> String {
    let pubkey = std::fs::read_to_string(format!("{DIR}/host_ed25519.pub")).unwrap_or_else(|e| {
        panic!("the test sshd is not set up ({DIR}/host_ed25519.pub: {e}); run tests/env/start-sshd.sh (scripts/test does)")
    });
    let answers = duct::cmd(
        "ssh",
        [
            "-o",
            "BatchMode=yes",
            "-o",
            &format!("UserKnownHostsFile={}", known_hosts()),
            "-o",
            "StrictHostKeyChecking=yes",
            "-i",
            &client_key(),
            "-p",
            &PORT.to_string(),
            &format!("{USER}@{HOST}"),
            "true",
        ],
    )
    .stdin_null()
    .stdout_null()
    .stderr_null();
    let answers = crate::zfs_watchdog::run_bounded(
        answers,
        "ssh to the test sshd",
        std::time::Duration::from_secs(30),
    )
    .unwrap_or_else(crate::zfs_watchdog::Hung::fail)
    .status
    .success();
    assert!(
        answers,
        "the test sshd on {HOST}:{PORT} does not answer; run tests/env/start-sshd.sh (scripts/test does)"
    );
    pubkey
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}
