//! Facts about the host and its datasets, as the adapters observe them
//! (zpersist-host's `path`, `inuse` and `manifest`, zpersist-zfs's
//! `dataset`) and the decisions read them: what is at a path, a dataset's
//! mount, a verified tree, units and processes using a directory, mounts.

use serde::{Deserialize, Serialize};

/// What is at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathState {
    Missing,
    EmptyDir,
    NonEmptyDir,
    /// A file, a symlink, or something unreadable.
    Other,
}

impl PathState {
    pub fn is_dir(self) -> bool {
        matches!(self, PathState::EmptyDir | PathState::NonEmptyDir)
    }
}

/// Where a dataset is mounted, or would be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetState {
    pub mountpoint: String,
    pub mounted: bool,
}

/// What verification saw: enough to re-check a tree without keeping its list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeSummary {
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
    /// SHA-256 over the canonical listing (names, types, owners, modes,
    /// sizes, contents, link targets, hardlinks, xattrs).
    pub digest: String,
}

/// What systemd said about one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitState {
    /// active, activating, deactivating, reloading, refreshing.
    Running(String),
    /// inactive, failed, unknown, dead.
    Stopped(String),
    /// systemd is not reachable (not PID 1, no systemctl): why.
    Unknown(String),
}

/// A process using something in a watched directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessUse {
    pub pid: u32,
    pub command: String,
    /// What it holds: `cwd /var/lib/x/sub`, `fd 3 /var/lib/x/db.sqlite`...
    pub what: String,
}

/// A mounted filesystem, as /proc/self/mountinfo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mountpoint: String,
    /// `tmpfs`, `ext4`, `fuse.zfs`...
    pub fstype: String,
    /// What is mounted: a device, a dataset, or any name (tmpfs).
    pub source: String,
    /// The directory of the filesystem mounted there: `/`, or the
    /// directory a bind mount shows.
    pub root: String,
    /// The filesystem's device as `major:minor` (what `stat` gives as
    /// st_dev for every file on it).
    pub device: String,
}

impl Mount {
    /// A ZFS dataset (OpenZFS's `zfs`, zfs-fuse's `fuse.zfs`), mounted
    /// whole: its source is the dataset's name.
    pub fn is_zfs_dataset(&self, dataset: &str) -> bool {
        matches!(self.fstype.as_str(), "zfs" | "fuse.zfs")
            && self.source == dataset
            && self.root == "/"
    }

    /// Its files exist in memory only: unmounting it (or a reboot) loses them.
    pub fn is_volatile(&self) -> bool {
        matches!(self.fstype.as_str(), "tmpfs" | "ramfs")
    }

    /// `tmpfs from hass-state`, `ext4 from /dev/sdb1 (a bind mount of its /srv/x)`.
    pub fn describe(&self) -> String {
        let mut text = format!("{} from {}", self.fstype, self.source);
        if self.root != "/" {
            text.push_str(&format!(" (a bind mount of its {})", self.root));
        }
        text
    }
}
