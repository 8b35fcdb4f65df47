//! A wedged zfs-fuse never hangs the tests (issue 19, part 2): the
//! daemon is stopped (SIGSTOP: every request then hangs, as in the
//! deadlock under concurrent receive-and-mount runs) during a zfs call;
//! the call fails within its bound with a message naming zfs-fuse, the
//! daemon is restarted, and zfs answers again for the next test.
//!
//! Other tests of this machine share the daemon: the test holds the pools'
//! turn (zpersist_e2e::pool::exclusive_turn), so no test of any process
//! has a pool while the daemon is stopped, and the stop lasts the bound
//! (3 s) plus start-zfs.sh's probe (10 s).

use std::time::{Duration, Instant};

use zpersist_e2e::pool::exclusive_turn;
use zpersist_e2e::zfs_watchdog;

/// The host's zfs-fuse daemon: tests/env/start-zfs.sh's pidfile, which
/// the script writes whenever it finds the daemon answering.
fn daemon_pid() -> u32 {
    let script = zpersist_e2e::repo_root().join("tests/env/start-zfs.sh");
    let started = zfs_watchdog::run_within(script.as_str(), &[], Duration::from_secs(60))
        .expect("tests/env/start-zfs.sh ends");
    assert!(started.status.success(), "{started:?}");
    let pid: u32 = std::fs::read_to_string("/run/zfs-fuse.pid")
        .expect("/run/zfs-fuse.pid: start zfs-fuse with tests/env/start-zfs.sh")
        .trim()
        .parse()
        .expect("a pid in /run/zfs-fuse.pid");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "zfs-fuse", "pid {pid} of /run/zfs-fuse.pid");
    pid
}

fn signal(pid: u32, name: &str) {
    let _ = duct::cmd("kill", [format!("-{name}"), pid.to_string()])
        .stderr_null()
        .unchecked()
        .run();
}

/// Lets a stopped daemon go on, whatever happens to the test.
struct Continue(u32);

impl Drop for Continue {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

#[test]
fn a_stopped_zfs_fuse_fails_the_call_within_its_bound_naming_it_and_is_restarted() {
    let _turn = exclusive_turn();
    let answers = zfs_watchdog::run_within("zpool", &["list"], Duration::from_secs(30))
        .expect("zfs-fuse answers before the test");
    assert!(answers.status.success(), "{answers:?}");
    let stopped = daemon_pid();

    let bound = Duration::from_secs(3);
    let _continue = Continue(stopped);
    signal(stopped, "STOP");
    let started = Instant::now();
    let result = zfs_watchdog::run_within("zfs", &["list", "-H", "-o", "name"], bound);
    let took = started.elapsed();
    signal(stopped, "CONT");

    let hung = result.expect_err("zfs list returned although zfs-fuse was stopped");
    eprintln!("after {took:?}: {hung}");
    assert!(
        hung.0
            .starts_with("zfs-fuse did not answer in 3 s: restarted it"),
        "{hung}"
    );
    assert!(
        hung.0
            .contains(&format!("zfs-fuse (pid {stopped}) did not answer")),
        "{hung}"
    );
    assert!(
        hung.0.contains("`zfs list -H -o name` was killed"),
        "{hung}"
    );
    // The bound, the probe (10 s) and a restart: well within a minute.
    assert!(took < Duration::from_secs(45), "took {took:?}");

    // The next test finds a daemon that answers, and not the stopped one.
    let again = zfs_watchdog::run_within("zpool", &["list"], Duration::from_secs(30))
        .expect("zfs-fuse answers after the restart");
    assert!(again.status.success(), "{again:?}");
    assert_ne!(daemon_pid(), stopped);
    assert!(
        !std::path::Path::new(&format!("/proc/{stopped}")).exists(),
        "the stopped daemon (pid {stopped}) is still there"
    );
}

/// A call that hangs while zfs-fuse answers is that call's own hang: it
/// is killed, and the daemon left alone.
#[test]
fn a_hung_call_with_a_live_zfs_fuse_is_killed_and_the_daemon_kept() {
    let _turn = exclusive_turn();
    let before = daemon_pid();
    let started = Instant::now();
    let hung = zfs_watchdog::run_watching_zfs(
        duct::cmd("sleep", ["30"]).stdin_null().stdout_capture(),
        "sleep 30",
        Duration::from_secs(1),
    )
    .expect_err("sleep 30 ends after 1 s");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        hung.0,
        "`sleep 30` did not return in 1 s: killed it (zfs-fuse answers `zpool list`, so the call itself hung)"
    );
    assert_eq!(daemon_pid(), before);
}
