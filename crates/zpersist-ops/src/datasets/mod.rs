//! One run: lock, observe, plan, act, report.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use camino::Utf8Path;
use zpersist_core::ownership::parse_mode;
use zpersist_core::planner::{
    blocked_by, plan_actions_knowing, properties_to_observe, ALWAYS_OBSERVED,
};
use zpersist_core::Diagnostic;
use zpersist_core::{Action, Outcome, Plan};
use zpersist_host::RealHost;
use zpersist_report::{render, render_error};
use zpersist_zfs::{Zfs, ZfsError};

pub mod report;

use crate::datasets::report::{ActionReport, ProblemReport, Report, Status};

/// Runs the plan; `text` receives human progress, `None` for `--json`.
pub fn run(
    plan: &Plan,
    dry_run: bool,
    lock_file: &Utf8Path,
    lock_wait: Duration,
    mut text: Option<&mut dyn Write>,
) -> Report {
    let mut report = Report {
        pool: plan.pool.clone(),
        dry_run,
        datasets_declared: plan.datasets.len(),
        actions: Vec::new(),
        drift: Vec::new(),
        problems: Vec::new(),
        errors: Vec::new(),
    };
    let mut say = |line: String| {
        if let Some(out) = text.as_mut() {
            let _ = writeln!(out, "{line}");
        }
    };
    let fail = |report: &mut Report, say: &mut dyn FnMut(String), message: String, help: &str| {
        say(render_error(&message, help));
        report.errors.push(format!("{message} ({help})"));
    };

    let zfs = match Zfs::from_path() {
        Ok(zfs) => zfs,
        Err(e) => {
            fail(
                &mut report,
                &mut say,
                e.message(),
                "put the `zfs` command on PATH",
            );
            say(report.summary());
            return report;
        }
    };
    // A dry run changes nothing, so it need not wait for a running apply.
    let _lock = if dry_run {
        None
    } else {
        // Waiting is said on stderr at once, so a --json run can say it too.
        match zpersist_host::lock_within(lock_file.to_path_buf(), &mut std::io::stderr(), lock_wait)
        {
            Ok(lock) => Some(lock),
            Err(e) => {
                let help = if e.kind() == std::io::ErrorKind::TimedOut {
                    "nothing was changed; another ensure-datasets run holds the lock (a switch still running, or a stuck run): wait for it, or stop it; --lock-timeout sets how long to wait"
                } else {
                    "run as root, or pass --lock-file with a writable path"
                };
                fail(
                    &mut report,
                    &mut say,
                    format!("cannot take the lock {lock_file}: {e}"),
                    help,
                );
                say(report.summary());
                return report;
            }
        }
    };
    let outcome = match observe_and_plan(&zfs, plan) {
        Ok(outcome) => outcome,
        Err(e) => {
            let help = observe_help(&plan.pool, &e);
            fail(
                &mut report,
                &mut say,
                format!("cannot read pool {}: {e}", plan.pool),
                &help,
            );
            say(report.summary());
            return report;
        }
    };
    report.drift = outcome.drift;
    let total = outcome.actions.len();
    let mut failed: Vec<Action> = Vec::new();
    for (index, action) in outcome.actions.into_iter().enumerate() {
        let step = format!("[{}/{total}]", index + 1);
        if dry_run {
            say(format!("{step} would {}", action.describe()));
            report.actions.push(ActionReport {
                action,
                status: Status::Planned,
                error: None,
            });
            continue;
        }
        if let Some(blocker) = blocked_by(&action, &failed) {
            say(format!(
                "{step} skip  {} (an earlier step for {blocker} failed)",
                action.describe()
            ));
            report.actions.push(ActionReport {
                action,
                status: Status::Skipped,
                error: None,
            });
            continue;
        }
        say(format!("{step} {}", action.describe()));
        // The dataset's resource lock, for this step only: no other mover
        // (migrate, preseed, a backup snapshot) changes it meanwhile.
        let done = zpersist_host::resource_lock::lock_datasets(
            "ensure-datasets",
            &[action.dataset()],
            lock_wait,
            &mut std::io::stderr(),
        )
        .map_err(|f| format!("{} ({})", f.error, f.help))
        .and_then(|_lock| carry_out(&zfs, &action));
        match done {
            Ok(()) => report.actions.push(ActionReport {
                action,
                status: Status::Done,
                error: None,
            }),
            Err(message) => {
                say(render(&Diagnostic::new(&message)));
                failed.push(action.clone());
                report.actions.push(ActionReport {
                    action,
                    status: Status::Failed,
                    error: Some(message),
                });
            }
        }
    }
    for problem in outcome.problems {
        let problem = ProblemReport::from(problem);
        say(render_error(&problem.message, &problem.help));
        report.problems.push(problem);
    }
    say(report.summary());
    report
}

/// Looks at the pool and decides. A pool in shape is confirmed by reading
/// only the declared datasets and their ancestors (one `zfs get`, no
/// snapshots, no other datasets); anything to do is decided again with the
/// whole pool in view, so a new mountpoint is checked against every
/// dataset, declared or not.
fn observe_and_plan(zfs: &Zfs, plan: &Plan) -> Result<Outcome, String> {
    let mut properties = properties_to_observe(plan);
    let mut unknown = BTreeSet::new();
    let host = RealHost::new();
    let (named, missing) = read_known(&mut properties, &mut unknown, |props| {
        zfs.observe_named(&plan.datasets_and_ancestors(), props)
    })
    .map_err(|e| e.to_string())?;
    if missing.contains(&plan.pool) {
        return Err(format!(
            "cannot open '{}': dataset does not exist",
            plan.pool
        ));
    }
    let outcome = plan_actions_knowing(plan, &named, &host, &unknown);
    if outcome.actions.is_empty() && outcome.problems.is_empty() {
        return Ok(outcome);
    }
    let whole = read_known(&mut properties, &mut unknown, |props| {
        zfs.observe(&plan.pool, props)
    })
    .map_err(|e| e.to_string())?;
    Ok(plan_actions_knowing(plan, &whole, &host, &unknown))
}

/// Runs one `zfs get` of `properties`; a property this ZFS does not know
/// (zfs refuses the whole call for one) is moved to `unknown` and the call
/// made again without it, so one dataset's property cannot stop the others.
/// At most one retry per declared property.
fn read_known<T>(
    properties: &mut Vec<String>,
    unknown: &mut BTreeSet<String>,
    read: impl Fn(&[String]) -> Result<T, ZfsError>,
) -> Result<T, ZfsError> {
    loop {
        match read(properties) {
            Err(e) => {
                let Some(property) = zpersist_zfs::unknown_property(e.stderr())
                    .filter(|p| !ALWAYS_OBSERVED.contains(p))
                    .filter(|p| properties.iter().any(|q| q == p))
                    .map(str::to_string)
                else {
                    return Err(e);
                };
                properties.retain(|p| *p != property);
                unknown.insert(property);
            }
            ok => return ok,
        }
    }
}

/// Does one action; the error names the dataset, what was being done and
/// what the system said.
fn carry_out(zfs: &Zfs, action: &Action) -> Result<(), String> {
    let zfs_failure = |what: String, e: ZfsError| format!("{}: {what}: {e}", action.dataset());
    match action {
        Action::Create {
            dataset,
            properties,
        } => zfs
            .create(dataset, properties)
            .map_err(|e| zfs_failure("could not create it".into(), e)),
        Action::SetProperty {
            dataset,
            property,
            to,
            ..
        } if property == "mountpoint" => {
            zpersist_zfs::dataset::set_mountpoint_remounting(zfs, dataset, to).map_err(|e| {
                format!(
                    "{}: could not set mountpoint to {to}: {e}",
                    action.dataset()
                )
            })
        }
        Action::SetProperty {
            dataset,
            property,
            to,
            ..
        } => zfs
            .set(dataset, property, to)
            .map_err(|e| zfs_failure(format!("could not set {property} to {to}"), e)),
        Action::Mount {
            dataset,
            mountpoint,
        } => zfs
            .mount(dataset)
            .map_err(|e| zfs_failure(format!("could not mount it on {mountpoint}"), e)),
        Action::SetOwnership {
            dataset,
            path,
            owner,
            group,
            mode,
        } => zpersist_host::set_ownership(
            Path::new(path),
            owner.as_ref().map(|o| o.id),
            group.as_ref().map(|g| g.id),
            mode.as_deref().and_then(parse_mode),
        )
        .map_err(|e| format!("{dataset}: could not set owner/group/mode of {path}: {e}")),
    }
}

fn observe_help(pool: &str, e: &str) -> String {
    if e.contains("does not exist") || e.contains("no such pool") {
        format!("import the pool first (`zpool import {pool}`), or fix `pool` in the plan")
    } else if e.contains("invalid property") || e.contains("bad property list") {
        "this ZFS does not know a property the plan declares; remove it or upgrade ZFS".into()
    } else {
        "check that ZFS is running (`zpool status`) and try again".into()
    }
}
