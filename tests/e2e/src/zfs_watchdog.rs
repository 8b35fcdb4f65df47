//! Every call a test makes to a real component, bounded; and a watchdog
//! for the zfs-fuse daemon, which can wedge (every later request hangs:
//! see [`crate::pool`]'s turns).
//!
//! [`run`] starts a program and waits at most its limit ([`limit_for`]:
//! [`zfs_limit`] for `zfs` and `zpool`, [`OTHER_LIMIT`] for the rest),
//! then kills it. When a zfs or zpool call (or a call of a program that
//! drives zfs, [`run_watching_zfs`]) did not return in time, the watchdog
//! asks tests/env/start-zfs.sh to bring the daemon back: that script kills
//! a daemon that does not answer `zpool list` within
//! `ZFS_FUSE_PROBE_SECONDS` (10) and starts a new one. The call then fails
//! with a message naming zfs-fuse (`zfs-fuse did not answer in N s:
//! restarted it ...`), so a wedged daemon fails the test within minutes
//! instead of hanging the run, and the next test finds a daemon that
//! answers. A call that hung while zfs-fuse still answers is said to be
//! that call's own hang.

use std::process::Output;
use std::sync::Mutex;
use std::time::Duration;

use crate::repo_root;

/// How long a zfs or zpool call may take (`ZPERSIST_TEST_ZFS_LIMIT`
/// seconds; 120 by default).
pub fn zfs_limit() -> Duration {
    let seconds = std::env::var("ZPERSIST_TEST_ZFS_LIMIT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(120);
    Duration::from_secs(seconds)
}

/// How long any other program a test runs to the end may take.
pub const OTHER_LIMIT: Duration = Duration::from_secs(300);

/// How long tests/env/start-zfs.sh may take to bring zfs-fuse back.
pub const RESTART_LIMIT: Duration = Duration::from_secs(90);

/// Whether `program` is zfs or zpool (or a wrapper named so).
pub fn is_zfs(program: &str) -> bool {
    matches!(program.rsplit('/').next(), Some("zfs" | "zpool"))
}

/// The limit of a call of `program`.
pub fn limit_for(program: &str) -> Duration {
    if is_zfs(program) {
        zfs_limit()
    } else {
        OTHER_LIMIT
    }
}

/// A call that did not return within its limit and was killed; the
/// message says why and what the watchdog did.
#[derive(Debug, Clone)]
pub struct Hung(pub String);

impl Hung {
    /// Fails the test with the message (`.unwrap_or_else(Hung::fail)`).
    pub fn fail<T>(self) -> T {
        panic!("error: {self}")
    }
}

impl std::fmt::Display for Hung {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The call as a shell line, for messages.
fn shown(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `program args` (stdin empty, stdout and stderr captured, any exit
/// status), at most [`limit_for`] it.
pub fn run(program: &str, args: &[&str]) -> Result<Output, Hung> {
    run_within(program, args, limit_for(program))
}

/// [`run`] with an explicit limit.
pub fn run_within(program: &str, args: &[&str], limit: Duration) -> Result<Output, Hung> {
    let expression = duct::cmd(program, args)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    wait(expression, &shown(program, args), limit, is_zfs(program))
}

/// Runs `expression` (its output as the caller set it up, unchecked), a
/// program that drives zfs (a zpersist binary, syncoid), at most `limit`;
/// a run still going then is killed and zfs-fuse checked, as for a zfs
/// call.
pub fn run_watching_zfs(
    expression: duct::Expression,
    what: &str,
    limit: Duration,
) -> Result<Output, Hung> {
    wait(expression.unchecked(), what, limit, true)
}

/// Runs `expression` (unchecked), a program that does not drive zfs
/// (restic, a shell line), at most `limit`; killed after it.
pub fn run_bounded(
    expression: duct::Expression,
    what: &str,
    limit: Duration,
) -> Result<Output, Hung> {
    wait(expression.unchecked(), what, limit, false)
}

/// [`run_bounded`] for callers with help of their own when the program
/// cannot start (not installed): `Err` then, as duct's `run` gives it; a
/// run still going after `limit` is killed and fails the test.
pub fn try_run_bounded(
    expression: duct::Expression,
    what: &str,
    limit: Duration,
) -> std::io::Result<Output> {
    let handle = expression.unchecked().start()?;
    Ok(wait_for(&handle, what, limit, false).unwrap_or_else(Hung::fail))
}

/// Waits for a started run of a program that drives zfs (started
/// unchecked: several at once, say), at most `limit`, as
/// [`run_watching_zfs`] does.
pub fn wait_watching_zfs(
    handle: &duct::Handle,
    what: &str,
    limit: Duration,
) -> Result<Output, Hung> {
    wait_for(handle, what, limit, true)
}

fn wait(
    expression: duct::Expression,
    what: &str,
    limit: Duration,
    zfs_involved: bool,
) -> Result<Output, Hung> {
    let handle = expression
        .start()
        .unwrap_or_else(|e| panic!("error: cannot run `{what}`: {e}"));
    wait_for(&handle, what, limit, zfs_involved)
}

fn wait_for(
    handle: &duct::Handle,
    what: &str,
    limit: Duration,
    zfs_involved: bool,
) -> Result<Output, Hung> {
    match handle.wait_timeout(limit) {
        Ok(Some(output)) => return Ok(output.clone()),
        Ok(None) => {}
        Err(e) => panic!("error: waiting for `{what}`: {e}"),
    }
    let _ = handle.kill();
    let seconds = limit.as_secs_f64();
    if !zfs_involved {
        return Err(Hung(format!(
            "`{what}` did not return in {seconds} s: killed it"
        )));
    }
    Err(Hung(recover(what, seconds)))
}

/// One restart at a time in this process (tests/env/start-zfs.sh takes a
/// lock across processes).
static RESTART: Mutex<()> = Mutex::new(());

/// Asks tests/env/start-zfs.sh to bring zfs-fuse back after `what` hung
/// for `seconds`; what happened, as the failure's message.
fn recover(what: &str, seconds: f64) -> String {
    let _one = RESTART
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let script = repo_root().join("tests/env/start-zfs.sh");
    let handle = duct::cmd(script.as_str(), [] as [&str; 0])
        .stdin_null()
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .start()
        .unwrap_or_else(|e| panic!("error: cannot run {script}: {e}"));
    let restart = RESTART_LIMIT.as_secs();
    let Some(out) = handle.wait_timeout(RESTART_LIMIT).ok().flatten().cloned() else {
        let _ = handle.kill();
        return format!(
            "zfs-fuse did not answer in {seconds} s (`{what}` was killed), and {script} did not bring it back within {restart} s\n\
             help: kill the zfs-fuse daemon (/run/zfs-fuse.pid) and run tests/env/start-zfs.sh"
        );
    };
    let said = String::from_utf8_lossy(&out.stdout)
        .trim()
        .replace('\n', " / ");
    if !out.status.success() {
        format!(
            "zfs-fuse did not answer in {seconds} s (`{what}` was killed), and restarting it failed: {said}\n\
             help: run tests/env/start-zfs.sh and read what it says"
        )
    } else if said.contains("did not answer") {
        format!(
            "zfs-fuse did not answer in {seconds} s: restarted it ({said}); `{what}` was killed"
        )
    } else {
        format!(
            "`{what}` did not return in {seconds} s: killed it (zfs-fuse answers `zpool list`, so the call itself hung)"
        )
    }
}
