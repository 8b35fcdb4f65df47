//! A dataset's mount: its state, and mounting, unmounting and moving it
//! with retries while zfs says "busy". zfs-fuse unmounts asynchronously,
//! so a mount right after an unmount or a mountpoint change can be refused
//! as busy for a moment; OpenZFS can be briefly busy too. Every retry is
//! bounded ([`BUSY_RETRIES`] attempts, waiting 100 ms longer each time:
//! 12 s in all).

use std::time::Duration;

pub use zpersist_core::facts::DatasetState;

use crate::{Zfs, ZfsError};

/// How often a "busy" mount or unmount is tried again.
pub const BUSY_RETRIES: u32 = 15;

/// A mount, unmount or move that did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MountError {
    #[error("dataset {0} does not exist")]
    Missing(String),
    #[error(transparent)]
    Zfs(#[from] ZfsError),
}

/// Whether zfs refused because the filesystem is busy.
pub fn is_busy(e: &ZfsError) -> bool {
    e.message().contains("busy")
}

/// Its mountpoint and whether it is mounted, `None` if it does not exist.
pub fn dataset_state(zfs: &Zfs, dataset: &str) -> Result<Option<DatasetState>, ZfsError> {
    let props = zfs.get(dataset, &["mountpoint", "mounted"])?;
    Ok(props.map(|props| DatasetState {
        mountpoint: props.get("mountpoint").cloned().unwrap_or_default(),
        mounted: props.get("mounted").is_some_and(|m| m == "yes"),
    }))
}

/// Runs `attempt` until it is done, fails other than busy, or was busy
/// [`BUSY_RETRIES`] times, waiting 100 ms more after each busy answer.
fn retrying_while_busy(
    mut attempt: impl FnMut() -> Result<Option<()>, MountError>,
) -> Result<(), MountError> {
    let mut tries = 0;
    loop {
        match attempt() {
            Ok(Some(())) => return Ok(()),
            Ok(None) => {}
            Err(MountError::Zfs(e)) if is_busy(&e) && tries < BUSY_RETRIES => {}
            Err(e) => return Err(e),
        }
        tries += 1;
        std::thread::sleep(Duration::from_millis(100 * u64::from(tries)));
    }
}

/// Runs `zfs ARGS` (a rename, a `set mountpoint`, a `destroy -r`...),
/// retrying while zfs says the dataset is busy, as a mount is.
pub fn run_retrying(zfs: &Zfs, args: &[&str]) -> Result<(), MountError> {
    retrying_while_busy(|| zfs.run(args).map(|_| Some(())).map_err(MountError::from))
}

/// Mounts the dataset unless it is mounted, retrying while busy.
pub fn mount_retrying(zfs: &Zfs, dataset: &str) -> Result<(), MountError> {
    retrying_while_busy(|| match dataset_state(zfs, dataset)? {
        Some(ds) if ds.mounted => Ok(Some(())),
        Some(_) => zfs.mount(dataset).map(Some).map_err(MountError::from),
        None => Err(MountError::Missing(dataset.to_string())),
    })
}

/// Unmounts the dataset if it is mounted, retrying while busy.
pub fn unmount_retrying(zfs: &Zfs, dataset: &str) -> Result<(), MountError> {
    retrying_while_busy(|| match dataset_state(zfs, dataset)? {
        Some(ds) if !ds.mounted => Ok(Some(())),
        Some(_) => zfs
            .run(&["unmount", dataset])
            .map(|_| Some(()))
            .map_err(MountError::from),
        None => Err(MountError::Missing(dataset.to_string())),
    })
}

/// Gives the dataset `mountpoint` (ZFS remounts it there) and makes sure it
/// is mounted there. A `zfs set` that set the property but could not
/// remount ("busy") is finished by the mount.
pub fn move_mountpoint(zfs: &Zfs, dataset: &str, mountpoint: &str) -> Result<(), MountError> {
    let ds = dataset_state(zfs, dataset)?.ok_or_else(|| MountError::Missing(dataset.into()))?;
    if ds.mountpoint != mountpoint {
        set_mountpoint_remounting(zfs, dataset, mountpoint)?;
    }
    mount_retrying(zfs, dataset)
}

/// `zfs set mountpoint=...`, which unmounts the dataset and every
/// descendant inheriting it and mounts them at the new place. When ZFS set
/// the property but a remount found a filesystem busy ("property may be
/// set but unable to remount filesystem"), the remounts are finished here,
/// retrying while busy; any other failure is returned as it was.
pub fn set_mountpoint_remounting(
    zfs: &Zfs,
    dataset: &str,
    mountpoint: &str,
) -> Result<(), MountError> {
    let Err(e) = zfs.set(dataset, "mountpoint", mountpoint) else {
        return Ok(());
    };
    let now = dataset_state(zfs, dataset)?;
    if !(is_busy(&e) && now.is_some_and(|ds| ds.mountpoint == mountpoint)) {
        return Err(e.into());
    }
    let listing = zfs.run(&[
        "list",
        "-H",
        "-r",
        "-t",
        "filesystem",
        "-o",
        "name,canmount,mountpoint,mounted",
        dataset,
    ])?;
    for line in listing.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        if let [name, "on", path, "no"] = fields[..] {
            if path.starts_with('/') {
                mount_retrying(zfs, name)?;
            }
        }
    }
    Ok(())
}

/// Unmounts and destroys a filesystem or a snapshot (no `-r`: children,
/// snapshots and dependent clones make zfs refuse, and nothing else is
/// destroyed), retrying while busy. Gone already is done.
pub fn destroy_retrying(zfs: &Zfs, name: &str) -> Result<(), MountError> {
    if !name.contains('@') {
        match unmount_retrying(zfs, name) {
            Err(MountError::Missing(_)) => return Ok(()),
            other => other?,
        }
    }
    retrying_while_busy(|| match zfs.run(&["destroy", name]) {
        Ok(_) => Ok(Some(())),
        Err(e) if crate::says_dataset_missing(e.stderr()) => Ok(Some(())),
        Err(e) => Err(MountError::from(e)),
    })
}

/// A mount, unmount or destroy that failed: a missing dataset names it; a
/// zfs failure is zpersist-process's error.
impl From<MountError> for zpersist_core::error::Error {
    fn from(e: MountError) -> zpersist_core::error::Error {
        match e {
            MountError::Missing(dataset) => zpersist_core::error::Error::failed(
                "the dataset does not exist",
            )
            .on_dataset(dataset)
            .with_help(
                "zpersist-datasets.service creates it; `systemctl status zpersist-datasets`",
            ),
            MountError::Zfs(z) => z.into(),
        }
    }
}
