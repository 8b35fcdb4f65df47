//! Runs a set of generated service units as systemd's job engine would
//! when their start jobs are queued together, without systemd (the test
//! machine's PID 1 is not systemd): each unit's ExecStartPre, ExecStart and
//! ExecStopPost lines, with the ordering systemd gives them. What is
//! modelled, from systemd.unit(5)/systemd.service(5):
//!
//! - `After=B`: the unit's start job waits while B's start job is queued or
//!   running. B's start job ends, for `Type=oneshot`, when its ExecStart
//!   lines have exited (and, without RemainAfterExit, the unit has gone
//!   through ExecStopPost back to inactive); for `Type=simple` (or no
//!   Type=), as soon as ExecStartPre is done and the main process forked.
//!   Units named in `After=` that are not in the set have no job: no wait.
//! - Line prefixes: `-` ignores failure; `+`, `!`, `@`, `:` change
//!   credentials or expansion, which a test run as root does not need.
//! - A failed ExecStartPre line (without `-`) skips ExecStart; ExecStopPost
//!   runs whatever happened. Ordering does not care whether a unit it
//!   waits for failed.
//!
//! Used by tests that must show what a unit start order does at runtime
//! (issue: replication units started concurrently, in reverse order).

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// What the emulator needs of one `systemd.services.<name>` definition.
#[derive(Debug, Clone)]
pub struct Unit {
    /// `<name>.service`
    pub name: String,
    pub oneshot: bool,
    pub after: Vec<String>,
    pub pre: Vec<String>,
    pub start: Vec<String>,
    pub stop_post: Vec<String>,
    /// `PrivateTmp=`: the unit's processes get a /tmp of their own.
    pub private_tmp: bool,
}

impl Unit {
    /// From `systemd.services.<name>` as `nix-instantiate --json` prints it.
    pub fn from_definition(name: &str, def: &Value) -> Unit {
        let lines = |key: &str| -> Vec<String> {
            match &def["serviceConfig"][key] {
                Value::Null => Vec::new(),
                Value::String(line) => vec![line.clone()],
                Value::Array(lines) => lines
                    .iter()
                    .map(|l| l.as_str().expect("an Exec line is a string").to_owned())
                    .collect(),
                other => panic!("{name}: {key} is neither a string nor a list: {other}"),
            }
        };
        Unit {
            name: format!("{name}.service"),
            oneshot: def["serviceConfig"]["Type"] == "oneshot",
            after: def["after"]
                .as_array()
                .map(|a| a.iter().map(|u| u.as_str().unwrap().to_owned()).collect())
                .unwrap_or_default(),
            pre: lines("ExecStartPre"),
            start: lines("ExecStart"),
            stop_post: lines("ExecStopPost"),
            private_tmp: def["serviceConfig"]["PrivateTmp"] == true,
        }
    }
}

/// One Exec line, without its prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecLine {
    pub command: String,
    pub ignore_failure: bool,
}

pub fn exec_line(line: &str) -> ExecLine {
    let command = line.trim_start_matches(['-', '+', '!', '@', ':']);
    ExecLine {
        ignore_failure: line[..line.len() - command.len()].contains('-'),
        command: command.to_owned(),
    }
}

/// How a unit's run went.
#[derive(Debug, Clone)]
pub struct Run {
    pub unit: String,
    /// Unix nanoseconds: ExecStart began, and ended.
    pub main_started: u128,
    pub main_ended: u128,
    /// ExecStartPre and ExecStart all succeeded (or were allowed to fail).
    pub succeeded: bool,
    /// Every line run, with its exit status and output.
    pub log: String,
}

pub fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_nanos()
}

/// Where a unit's start job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Job {
    Waiting,
    /// The start job has ended (the unit started, or failed).
    Done,
}

/// Runs one line (prefixes removed) of a unit: `(success, output)`. The
/// caller maps the line's program onto this machine's, and gives a unit
/// with `private_tmp` a /tmp of its own ([`private_tmp_argv`]).
pub type LineRunner<'a> = dyn Fn(&Unit, &str) -> (bool, String) + Sync + 'a;

/// `argv` run in a mount namespace of its own with an empty /tmp, as
/// `PrivateTmp=yes` gives a unit (syncoid's ssh control sockets live in
/// /tmp: without it, concurrent runs to one host trip over each other's).
pub fn private_tmp_argv(argv: &[String]) -> Vec<String> {
    let mut wrapped: Vec<String> = [
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        "mount -t tmpfs -o mode=1777 zpersist-private-tmp /tmp && exec \"$0\" \"$@\"",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    wrapped.extend(argv.iter().cloned());
    wrapped
}

/// Queues a start job for every unit of `units`, in `order` (each name is
/// started `stagger` after the previous one), and runs them to the end as
/// systemd would order them. Every wait is bounded by `deadline`.
pub fn run_jobs(
    units: &[Unit],
    order: &[String],
    stagger: Duration,
    deadline: Duration,
    run_line: &LineRunner,
) -> Vec<Run> {
    let by_name: BTreeMap<&str, &Unit> = units.iter().map(|u| (u.name.as_str(), u)).collect();
    let jobs: Arc<(Mutex<BTreeMap<String, Job>>, Condvar)> = Arc::new((
        Mutex::new(
            units
                .iter()
                .map(|u| (u.name.clone(), Job::Waiting))
                .collect(),
        ),
        Condvar::new(),
    ));
    let started = Instant::now();
    let runs: Vec<Run> = std::thread::scope(|scope| {
        let handles: Vec<_> = order
            .iter()
            .enumerate()
            .map(|(position, name)| {
                let unit = *by_name
                    .get(name.as_str())
                    .unwrap_or_else(|| panic!("{name} is not one of the units"));
                let jobs = Arc::clone(&jobs);
                scope.spawn(move || {
                    std::thread::sleep(stagger * position as u32);
                    wait_for_ordering(unit, &jobs, started + deadline);
                    run_unit(unit, &jobs, run_line)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a unit thread panicked"))
            .collect()
    });
    runs
}

fn wait_for_ordering(
    unit: &Unit,
    jobs: &Arc<(Mutex<BTreeMap<String, Job>>, Condvar)>,
    until: Instant,
) {
    let (lock, changed) = &**jobs;
    let mut state = lock.lock().unwrap();
    loop {
        let blocking: Vec<&String> = unit
            .after
            .iter()
            .filter(|a| state.get(*a) == Some(&Job::Waiting))
            .collect();
        if blocking.is_empty() {
            return;
        }
        let now = Instant::now();
        assert!(
            now < until,
            "{} still waits for {blocking:?} at the deadline: {state:?}",
            unit.name
        );
        state = changed.wait_timeout(state, until - now).unwrap().0;
    }
}

fn finish_job(unit: &Unit, jobs: &Arc<(Mutex<BTreeMap<String, Job>>, Condvar)>) {
    let (lock, changed) = &**jobs;
    lock.lock().unwrap().insert(unit.name.clone(), Job::Done);
    changed.notify_all();
}

fn run_unit(
    unit: &Unit,
    jobs: &Arc<(Mutex<BTreeMap<String, Job>>, Condvar)>,
    run_line: &LineRunner,
) -> Run {
    let mut log = String::new();
    let run_all = |lines: &[String], log: &mut String| -> bool {
        for line in lines {
            let exec = exec_line(line);
            let (ok, output) = run_line(unit, &exec.command);
            log.push_str(&format!(
                "$ {line}\n{output}[{}]\n",
                if ok { "ok" } else { "failed" }
            ));
            if !ok && !exec.ignore_failure {
                return false;
            }
        }
        true
    };
    let pre_ok = run_all(&unit.pre, &mut log);
    let main_started = unix_nanos();
    let mut succeeded = pre_ok;
    if pre_ok {
        if !unit.oneshot {
            // A simple unit counts as started once its process is forked.
            finish_job(unit, jobs);
        }
        succeeded = run_all(&unit.start, &mut log);
    }
    let main_ended = unix_nanos();
    run_all(&unit.stop_post, &mut log);
    finish_job(unit, jobs);
    Run {
        unit: unit.name.clone(),
        main_started,
        main_ended,
        succeeded,
        log,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(name: &str, oneshot: bool, after: &[&str]) -> Unit {
        Unit {
            name: name.into(),
            oneshot,
            after: after.iter().map(|s| s.to_string()).collect(),
            pre: vec![],
            start: vec![format!("sleep-then-log {name}")],
            stop_post: vec![],
            private_tmp: false,
        }
    }

    /// A child ordered after its parent starts only when a oneshot parent
    /// has finished, but as soon as a simple parent has started.
    #[test]
    fn after_waits_for_a_oneshot_to_end_and_for_a_simple_unit_to_start() {
        for (oneshot, child_waits) in [(true, true), (false, false)] {
            let units = [
                unit("parent.service", oneshot, &[]),
                unit("child.service", oneshot, &["parent.service"]),
            ];
            let order = ["child.service".to_string(), "parent.service".to_string()];
            let runner = |_unit: &Unit, line: &str| {
                if line.ends_with("parent.service") {
                    std::thread::sleep(Duration::from_millis(300));
                }
                (true, String::new())
            };
            let runs = run_jobs(
                &units,
                &order,
                Duration::from_millis(20),
                Duration::from_secs(10),
                &runner,
            );
            let run = |n: &str| runs.iter().find(|r| r.unit == n).unwrap();
            let waited = run("child.service").main_started >= run("parent.service").main_ended;
            assert_eq!(waited, child_waits, "oneshot: {oneshot}");
        }
    }

    #[test]
    fn prefixes_are_read() {
        assert_eq!(
            exec_line("-+/bin/zfs create x"),
            ExecLine {
                command: "/bin/zfs create x".into(),
                ignore_failure: true
            }
        );
        assert!(!exec_line("+/bin/true").ignore_failure);
    }
}
