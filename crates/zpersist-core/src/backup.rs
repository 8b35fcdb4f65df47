//! File-level backups of a service's dataset from a consistent point: the
//! names `zpersist-backup-snapshot` gives the snapshot and the read-only
//! clone restic reads (bound over the dataset's mountpoint inside the
//! backup unit, so restic records the mountpoint's path), and which
//! existing snapshots and clones are ours to destroy. Pure: the listing
//! comes in as data.
//!
//! Ownership: a snapshot is ours when it is the service dataset's own and
//! its name starts with [`SNAPSHOT_PREFIX`]; the clone is ours when it has
//! the view name, [`PROP_VIEW`] equal to the service dataset, and its
//! origin is one of our snapshots. Anything else is never destroyed.

/// Prefix of the snapshots a backup takes (`<dataset>@zpersist-restic-<time>`).
pub const SNAPSHOT_PREFIX: &str = "zpersist-restic-";

/// User property on the clone naming the dataset it is a view of.
pub const PROP_VIEW: &str = "com.zpersist:restic-view";

/// Suffix of the clone's name, a sibling of the dataset.
pub const VIEW_SUFFIX: &str = "-zpersist-restic";

/// The clone restic reads: `<dataset>-zpersist-restic`, next to the
/// dataset (not below it: a child would show inside the live mountpoint).
pub fn view_dataset(dataset: &str) -> String {
    format!("{dataset}{VIEW_SUFFIX}")
}

/// `<dataset>@zpersist-restic-20261130T101500Z`.
pub fn snapshot_name(dataset: &str, now: i64) -> String {
    let stamp: String = crate::time::rfc3339(now)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    format!("{dataset}@{SNAPSHOT_PREFIX}{stamp}")
}

/// Whether `snapshot` (a full `dataset@name`) is one of ours on `dataset`.
pub fn is_ours(dataset: &str, snapshot: &str) -> bool {
    snapshot
        .split_once('@')
        .is_some_and(|(ds, name)| ds == dataset && name.starts_with(SNAPSHOT_PREFIX))
}

/// Why `dataset` cannot be backed up when it has descendant datasets
/// (`descendants`: the names `zfs list -r` prints, the dataset itself
/// included or not): the backup reads a clone of the dataset's own
/// snapshot, which shows none of its children, so their files would be
/// silently missing from every backup. `None` when it has none. The NixOS
/// module refuses the same at evaluation (nix/modules/backup.nix).
pub fn children_problem(dataset: &str, descendants: &[String]) -> Option<(String, String)> {
    let below = format!("{dataset}/");
    let children: Vec<&str> = descendants
        .iter()
        .map(String::as_str)
        .filter(|d| d.starts_with(&below))
        .collect();
    if children.is_empty() {
        return None;
    }
    Some((
        format!(
            "{} has child dataset(s) {}: the backup reads a clone of {}'s own snapshot, which shows none of a child's files, so they would be missing from the backup; nothing was snapshotted",
            crate::shown(dataset),
            children.iter().map(|c| crate::shown(c)).collect::<Vec<_>>().join(", "),
            crate::shown(dataset),
        ),
        format!(
            "back up each child as a service of its own (zpersist.services.<name>.backup.restic), or move its data into {} (`zfs rename` it elsewhere, or copy its files in and destroy it)",
            crate::shown(dataset)
        ),
    ))
}

/// The view dataset as `zfs get` found it (`None` when it does not exist).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewFacts {
    /// [`PROP_VIEW`]'s value, `None` when unset.
    pub view_of: Option<String>,
    /// `origin`: the snapshot it was cloned from, `None` for no clone.
    pub origin: Option<String>,
}

/// What to do with an existing view dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewVerdict {
    /// Ours: unmount and destroy it.
    Destroy,
    /// Not ours: touch nothing; the message says why.
    Foreign(String),
}

/// Whether the existing `view` of `dataset` is ours to destroy.
pub fn judge_view(dataset: &str, view: &str, facts: &ViewFacts) -> ViewVerdict {
    let ours_by_property = facts.view_of.as_deref() == Some(dataset);
    let ours_by_origin = facts.origin.as_deref().is_some_and(|o| is_ours(dataset, o));
    if ours_by_property && ours_by_origin {
        ViewVerdict::Destroy
    } else {
        ViewVerdict::Foreign(format!(
            "{view} exists but is not a backup view of {dataset} ({PROP_VIEW} = {}, origin = {}); zpersist uses that name for the clone restic reads and never destroys what it did not make",
            facts.view_of.as_deref().unwrap_or("-"),
            facts.origin.as_deref().unwrap_or("-"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_sortable_and_recognised() {
        let s = snapshot_name("tank/services/sonarr", 1_796_053_954);
        assert_eq!(s, "tank/services/sonarr@zpersist-restic-20261130T155234Z");
        assert!(is_ours("tank/services/sonarr", &s));
        assert!(!is_ours(
            "tank/services/sonarr",
            "tank/services/sonarr@autosnap_x"
        ));
        assert!(
            !is_ours(
                "tank/services/sonarr",
                "tank/services/sonarr/child@zpersist-restic-1"
            ),
            "a child's snapshot is not the dataset's"
        );
        assert_eq!(
            view_dataset("tank/services/sonarr"),
            "tank/services/sonarr-zpersist-restic"
        );
    }

    #[test]
    fn a_dataset_with_children_is_refused_naming_them() {
        let ds = "tank/services/sonarr";
        let listed = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(children_problem(ds, &listed(&[ds])), None);
        assert_eq!(
            children_problem(ds, &listed(&[ds, "tank/services/sonarr-zpersist-restic"])),
            None,
            "the view is a sibling, not a child"
        );
        let (what, help) =
            children_problem(ds, &listed(&[ds, "tank/services/sonarr/media"])).unwrap();
        assert!(
            what.contains("child dataset(s) tank/services/sonarr/media"),
            "{what}"
        );
        assert!(what.contains("nothing was snapshotted"), "{what}");
        assert!(help.contains("service of its own"), "{help}");
    }

    #[test]
    fn only_our_clone_is_destroyed() {
        let ds = "tank/services/sonarr";
        let view = view_dataset(ds);
        let ours = ViewFacts {
            view_of: Some(ds.into()),
            origin: Some(format!("{ds}@zpersist-restic-20261130T155234Z")),
        };
        assert_eq!(judge_view(ds, &view, &ours), ViewVerdict::Destroy);
        for foreign in [
            ViewFacts {
                view_of: None,
                origin: ours.origin.clone(),
            },
            ViewFacts {
                view_of: Some(ds.into()),
                origin: None,
            },
            ViewFacts {
                view_of: Some("tank/other".into()),
                origin: ours.origin.clone(),
            },
            ViewFacts {
                view_of: Some(ds.into()),
                origin: Some(format!("{ds}@autosnap_2026")),
            },
        ] {
            assert!(
                matches!(judge_view(ds, &view, &foreign), ViewVerdict::Foreign(m) if m.contains("never destroys")),
                "{foreign:?}"
            );
        }
    }
}
