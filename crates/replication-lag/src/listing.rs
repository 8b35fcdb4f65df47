//! The snapshots of a dataset here and on a target: the same listing
//! (zpersist-zfs's argv and parser) run locally or over ssh (zpersist-ssh).
//! A target is read the same way wherever it is: a missing target root
//! (its pool not imported) is a failure, a missing dataset below an
//! existing root is `None` (never received).

use crate::config::Location;
use zpersist_core::replication::Snapshot;
use zpersist_host::seconds;
use zpersist_ssh::{SshError, SshFailure, SshTarget};
use zpersist_zfs::{parse_snapshots, says_dataset_missing, snapshots_argv, Zfs, ZfsError};

/// A listing that failed: what failed, and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: String,
    pub help: String,
    /// The target did not answer within the timeout (ssh was killed).
    pub timed_out: bool,
}

/// The local snapshots of `dataset`; a missing dataset is an error (there
/// is nothing to replicate). `zfs` is `Zfs::from_path()`, found once: when
/// it failed, every check fails with its message.
pub fn local(zfs: &Result<Zfs, ZfsError>, dataset: &str) -> Result<Vec<Snapshot>, Failure> {
    let zfs = zfs.as_ref().map_err(zfs_missing)?;
    match zfs.snapshots(dataset) {
        Ok(Some(snapshots)) => Ok(snapshots),
        Ok(None) => Err(Failure {
            error: format!("{dataset} does not exist on this host"),
            help: "zpersist-datasets.service creates the declared datasets; see `systemctl status zpersist-datasets`".into(),
            timed_out: false,
        }),
        Err(e) => Err(local_zfs_failed(dataset, e)),
    }
}

/// The snapshots of `dataset` on a target: `root` is the target's dataset
/// (below which `dataset` lies), `zfs` this host's (see [`local`]). `None`
/// when `dataset` does not exist there while `root` does (never received).
pub fn on_target(
    zfs: &Result<Zfs, ZfsError>,
    location: &Location,
    root: &str,
    dataset: &str,
) -> Result<Option<Vec<Snapshot>>, Failure> {
    let listed = match location {
        Location::Local => {
            let zfs = zfs.as_ref().map_err(zfs_missing)?;
            zfs.snapshots(dataset)
                .map_err(|e| local_zfs_failed(dataset, e))?
        }
        Location::Ssh(target) => over_ssh(target, dataset)?,
    };
    if listed.is_some() || exists(zfs, location, root)? {
        return Ok(listed);
    }
    // The pool is not imported (the disk not attached), or the root was
    // never created: not "never replicated", which would pass for fine.
    Err(Failure {
        error: format!(
            "the {}target {root} does not exist on {location}: import its pool{} or create it",
            if *location == Location::Local { "local " } else { "" },
            if *location == Location::Local {
                " (is the disk attached?)"
            } else {
                " there"
            },
        ),
        help: format!(
            "import the pool holding {root} on {location} (`zpool import`), or create the dataset there once with `zfs create -o canmount=off {root}` (see docs/replication.md)"
        ),
        timed_out: false,
    })
}

/// Whether `dataset` exists where the target is.
fn exists(
    zfs: &Result<Zfs, ZfsError>,
    location: &Location,
    dataset: &str,
) -> Result<bool, Failure> {
    let argv = ["zfs", "list", "-H", "-o", "name", dataset];
    let missing = match location {
        Location::Local => {
            let zfs = zfs.as_ref().map_err(zfs_missing)?;
            match zfs.run(&argv[1..]) {
                Ok(_) => return Ok(true),
                Err(e) if says_dataset_missing(&e.message) => true,
                Err(e) => return Err(local_zfs_failed(dataset, e)),
            }
        }
        Location::Ssh(target) => match target.run(&argv) {
            Ok(_) => return Ok(true),
            Err(e) if says_dataset_missing(e.stderr()) => true,
            Err(e) => return Err(ssh_failed(&format!("looking up {dataset}"), e)),
        },
    };
    Ok(!missing)
}

/// The snapshots of `dataset` on another host; `None` when the dataset does
/// not exist there.
fn over_ssh(target: &SshTarget, dataset: &str) -> Result<Option<Vec<Snapshot>>, Failure> {
    match target.run(&snapshots_argv(dataset)) {
        Ok(output) => parse_snapshots(dataset, &output)
            .map(Some)
            .map_err(|error| Failure {
                error: format!("reading the snapshots of {dataset} on {target}: {error}"),
                help: format!(
                    "the zfs on {} printed what replication-lag does not understand; run `{}` there",
                    target.host,
                    snapshots_argv(dataset).join(" ")
                ),
                timed_out: false,
            }),
        Err(e) if says_dataset_missing(e.stderr()) => Ok(None),
        Err(e) => Err(ssh_failed(&format!("listing the snapshots of {dataset}"), e)),
    }
}

fn ssh_failed(what: &str, e: SshError) -> Failure {
    let timed_out = matches!(e.failure, SshFailure::TimedOut { .. });
    Failure {
        error: match &e.failure {
            SshFailure::Exited { status, stderr } => {
                format!("{what} on {} failed ({status}): {stderr}", e.target)
            }
            SshFailure::TimedOut { after } => format!(
                "{what} on {} did not finish within {}; ssh was killed",
                e.target,
                seconds(*after)
            ),
            SshFailure::NotStarted(_) => e.to_string(),
        },
        help: if timed_out {
            format!(
                "{}; if it answers but listing takes longer, raise {TIMEOUT_OPTION}",
                e.help
            )
        } else {
            e.help
        },
        timed_out,
    }
}

/// Where the limit of each call is set.
pub const TIMEOUT_OPTION: &str =
    "zpersist.replication.lag.timeoutSeconds (replication-lag --timeout)";

fn local_zfs_failed(dataset: &str, e: ZfsError) -> Failure {
    Failure {
        error: format!(
            "listing the snapshots of {dataset} on this host failed: {}",
            e.message
        ),
        help: if e.timed_out() {
            format!("zfs waits on a pool in trouble here (see `zpool status`), or needs longer: raise {TIMEOUT_OPTION}")
        } else {
            format!("run `{}` here and see what zfs says", e.argv.join(" "))
        },
        timed_out: e.timed_out(),
    }
}

fn zfs_missing(e: &ZfsError) -> Failure {
    Failure {
        error: e.message.clone(),
        help: "replication-lag runs zfs from PATH (the unit puts the system's zfs there)".into(),
        timed_out: false,
    }
}
