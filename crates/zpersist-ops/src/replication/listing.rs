//! The snapshots of a dataset here and on a target: zpersist-zfs's typed
//! listing at the target's `Location` (this host, or over the pinned ssh),
//! read the same way wherever it is. A missing target root (its pool not
//! imported) is a failure, a missing dataset below an existing root is
//! `None` (never received).

use zpersist_core::replication::Snapshot;
use zpersist_process::{Failure as Ended, Location};
use zpersist_zfs::{Zfs, ZfsError};

/// A listing that failed: what failed, and what to do.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub error: String,
    pub help: String,
    /// The call did not finish within the timeout (zfs or ssh was killed).
    pub timed_out: bool,
}

/// A listing that failed, as the operations' one error.
impl From<Failure> for zpersist_core::error::Error {
    fn from(f: Failure) -> zpersist_core::error::Error {
        zpersist_core::error::Error::failed(f.error).with_help(f.help)
    }
}

/// Where the limit of each call is set.
pub const TIMEOUT_OPTION: &str =
    "zpersist.replication.lag.timeoutSeconds (replication-lag --timeout)";

/// The local snapshots of `dataset`; a missing dataset is an error (there
/// is nothing to replicate). `zfs` is this host's, found once: when it was
/// not found, every check fails with that message.
pub fn local(zfs: &Result<Zfs, ZfsError>, dataset: &str) -> Result<Vec<Snapshot>, Failure> {
    let zfs = zfs.as_ref().map_err(zfs_missing)?;
    match zfs.snapshots(dataset) {
        Ok(Some(snapshots)) => Ok(snapshots),
        Ok(None) => Err(Failure {
            error: format!("{dataset} does not exist on this host"),
            help: "zpersist-datasets.service creates the declared datasets; see `systemctl status zpersist-datasets`".into(),
            timed_out: false,
        }),
        Err(e) => Err(failed(&format!("listing the snapshots of {dataset}"), e)),
    }
}

/// The snapshots of `dataset` on a target: `root` is the target's dataset
/// (below which `dataset` lies), `here` this host's zfs (see [`local`]),
/// which a local target uses too. `None` when `dataset` does not exist
/// there while `root` does (never received).
pub fn on_target(
    here: &Result<Zfs, ZfsError>,
    location: &Location,
    root: &str,
    dataset: &str,
) -> Result<Option<Vec<Snapshot>>, Failure> {
    let zfs = match location {
        Location::Local => here.as_ref().map_err(zfs_missing)?.clone(),
        // Each call bounded by the target's timeout.
        Location::Ssh(_) => Zfs::at(location.clone()).map_err(|e| zfs_missing(&e))?,
    };
    let listed = zfs
        .snapshots(dataset)
        .map_err(|e| failed(&format!("listing the snapshots of {dataset}"), e))?;
    if listed.is_some() {
        return Ok(listed);
    }
    let root_exists = zfs
        .exists(root)
        .map_err(|e| failed(&format!("looking up {root}"), e))?;
    if root_exists {
        return Ok(None);
    }
    // The pool is not imported (the disk not attached), or the root was
    // never created: not "never replicated", which would pass for fine.
    let local = location.is_local();
    Err(Failure {
        error: format!(
            "the {}target {root} does not exist on {location}: import its pool{} or create it",
            if local { "local " } else { "" },
            if local { " (is the disk attached?)" } else { " there" },
        ),
        help: format!(
            "import the pool holding {root} on {location} (`zpool import`), or create the dataset there once with `zfs create -o canmount=off {root}` (see docs/replication.md)"
        ),
        timed_out: false,
    })
}

/// `what` (e.g. "listing the snapshots of tank/a") failed: where, how, and
/// what to do.
fn failed(what: &str, e: ZfsError) -> Failure {
    let place = e.place.clone().unwrap_or_else(|| "this host".into());
    let timed_out = e.timed_out();
    let remote = e.place.is_some();
    let help = match &e.failure {
        Ended::TimedOut { .. } if remote => format!(
            "{}; if it answers but listing takes longer, raise {TIMEOUT_OPTION}",
            e.help
        ),
        Ended::TimedOut { .. } => format!(
            "zfs waits on a pool in trouble here (see `zpool status`), or needs longer: raise {TIMEOUT_OPTION}"
        ),
        Ended::Exited { .. } if !remote => {
            format!("run `{}` here and see what zfs says", e.command())
        }
        _ => e.help.clone(),
    };
    Failure {
        error: format!("{what} on {place} {}", e.outcome()),
        help,
        timed_out,
    }
}

fn zfs_missing(e: &ZfsError) -> Failure {
    Failure {
        error: e.message(),
        help: "replication-lag runs zfs from PATH (the unit puts the system's zfs there)".into(),
        timed_out: false,
    }
}
