//! Commands over ssh (zpersist-ssh's pinned argv, run by
//! `Location::Ssh`) against the loopback sshd that tests/env/start-sshd.sh
//! starts: a real remote shell splits the command line, so these prove the
//! quoting, not just its text.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use zpersist_e2e::sshd;
use zpersist_process::{Failure as SshFailure, Location, ProcessError, SshTarget};

/// Runs `remote` on `target`, returning its stdout.
fn run<S: AsRef<OsStr>>(target: &SshTarget, remote: &[S]) -> Result<String, ProcessError> {
    Location::Ssh(target.clone()).command(remote).read()
}

fn test_sshd() -> SshTarget {
    let target = sshd::target(Duration::from_secs(30));
    if let Err(e) = run(&target, &["true"]) {
        panic!(
            "the test sshd does not answer ({e}); run tests/env/start-sshd.sh (scripts/test does)"
        );
    }
    target
}

#[test]
fn hostile_arguments_arrive_on_the_remote_side_unchanged() {
    let target = test_sshd();
    let hostile = [
        "tank/my data",
        "tank/it's",
        "tank/\"quoted\"",
        "tank/a;touch /tmp/zpersist-ssh-pwned",
        "tank/$(touch /tmp/zpersist-ssh-pwned)`id`",
        "tank/'; touch /tmp/zpersist-ssh-pwned; '",
        "tank/back\\slash",
        "tank/*",
        "",
    ];
    let mut remote = vec!["printf", "%s\\n"];
    remote.extend(hostile);
    let stdout = run(&target, &remote).unwrap();
    assert_eq!(stdout.lines().collect::<Vec<_>>(), hostile);
    assert!(!std::path::Path::new("/tmp/zpersist-ssh-pwned").exists());
}

#[test]
fn newlines_non_ascii_and_bytes_that_are_not_utf8_arrive_byte_for_byte() {
    let target = test_sshd();
    let words: [&OsStr; 5] = [
        OsStr::new("tank/new\nline"),
        OsStr::new("tank/Séries TV ☃"),
        OsStr::new("tank/$HOME"),
        OsStr::from_bytes(b"tank/\xff\xfe raw"),
        OsStr::new("tank/'\"'"),
    ];
    let mut remote = vec![OsStr::new("printf"), OsStr::new("%s\\0")];
    remote.extend(words);
    let output = Location::Ssh(target).command(&remote).run().unwrap();
    let arrived: Vec<&[u8]> = output
        .stdout
        .split(|b| *b == 0)
        .filter(|w| !w.is_empty())
        .collect();
    let sent: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    assert_eq!(arrived, sent);
}

#[test]
fn a_failing_remote_command_is_its_own_status_and_message_not_a_connection_failure() {
    let target = test_sshd();
    let e = run(&target, &["sh", "-c", "echo 'no such dataset' >&2; exit 3"]).unwrap_err();
    let SshFailure::Exited { status, stderr } = &e.failure else {
        panic!("{e:?}")
    };
    assert_eq!(status.code(), Some(3));
    assert_eq!(stderr, "no such dataset");
    assert_eq!(e.place.as_deref().unwrap(), "root@127.0.0.1:58222");
    assert!(
        e.help.contains("the command itself failed on 127.0.0.1"),
        "{}",
        e.help
    );
}

#[test]
fn a_host_key_that_is_not_pinned_is_refused() {
    let target = test_sshd();
    let empty = std::env::temp_dir().join(format!(
        "zpersist-ssh-empty-known-hosts-{}",
        std::process::id()
    ));
    std::fs::write(&empty, "").unwrap();
    let unpinned = SshTarget {
        known_hosts: empty.to_str().unwrap().into(),
        ..target
    };
    let e = run(&unpinned, &["true"]).unwrap_err();
    std::fs::remove_file(&empty).unwrap();
    let SshFailure::Exited { status, stderr } = &e.failure else {
        panic!("{e:?}")
    };
    assert_eq!(status.code(), Some(255), "{e}");
    assert!(stderr.contains("Host key verification failed"), "{stderr}");
    assert!(e.help.contains("pinned in"), "{}", e.help);
}

#[test]
fn a_target_that_does_not_answer_is_an_error_naming_it_with_help() {
    // Port 1 on loopback: nothing listens, ssh exits 255 at once.
    let target = SshTarget {
        port: 1,
        ..test_sshd()
    };
    let e = run(&target, &["zfs", "list", "tank/my data"]).unwrap_err();
    assert_eq!(e.place.as_deref().unwrap(), "root@127.0.0.1:1");
    assert_eq!(e.command(), "zfs list 'tank/my data'");
    let SshFailure::Exited { status, .. } = &e.failure else {
        panic!("{e:?}")
    };
    assert_eq!(status.code(), Some(255), "{e}");
    assert!(
        e.to_string()
            .starts_with("`zfs list 'tank/my data'` on root@127.0.0.1:1 failed ("),
        "{e}"
    );
    assert!(e.help.contains("127.0.0.1:1 is reachable"), "{}", e.help);
    assert!(
        e.help
            .contains(&format!("pinned in {}", sshd::known_hosts())),
        "{}",
        e.help
    );
}

#[test]
fn a_remote_command_that_hangs_is_killed_at_the_timeout_naming_target_and_limit() {
    // An authenticated session whose command never ends (as a zfs stuck on
    // a suspended pool would): keepalives are answered, so only the
    // wall-clock limit ends it.
    let target = SshTarget {
        timeout: Duration::from_secs(2),
        ..test_sshd()
    };
    let started = Instant::now();
    let e = run(&target, &["sleep", "30"]).unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert_eq!(
        e.failure,
        SshFailure::TimedOut {
            after: Duration::from_secs(2)
        }
    );
    assert_eq!(
        e.to_string(),
        "`sleep 30` on root@127.0.0.1:58222 did not finish within 2 s; ssh was killed"
    );
    assert!(
        e.help.contains("127.0.0.1:58222 accepted the connection"),
        "{}",
        e.help
    );
}
