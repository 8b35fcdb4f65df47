//! Replication lag as data: which snapshots a dataset has here and on a
//! target, and how far the target is behind. No I/O; zpersist-zfs lists the
//! snapshots, replication-lag runs the listings and reports.

use std::collections::HashSet;

use serde::Serialize;

/// One snapshot of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The part after '@'.
    pub name: String,
    /// Seconds since the epoch.
    pub creation: i64,
    pub guid: String,
}

/// A snapshot as a report names it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRef {
    pub name: String,
    pub creation: i64,
}

impl From<&Snapshot> for SnapshotRef {
    fn from(s: &Snapshot) -> Self {
        SnapshotRef {
            name: s.name.clone(),
            creation: s.creation,
        }
    }
}

/// The identifier whose sync snapshot this is (`syncoid_<id>_<host>_<date>`),
/// choosing the longest identifier that matches.
fn sync_snapshot_owner<'a>(name: &str, identifiers: &'a [String]) -> Option<&'a str> {
    identifiers
        .iter()
        .filter(|id| name.starts_with(&format!("syncoid_{id}_")))
        .max_by_key(|id| id.len())
        .map(String::as_str)
}

/// Compares what the target holds with what this host has: the newest local
/// snapshot, the newest of this host's snapshots the target holds, and the
/// lag in seconds (`None` when the target holds none of them).
///
/// Only this host's snapshots count on the target, matched by guid: a
/// snapshot made on the target itself, one of an unrelated dataset of the
/// same name, or one this host has since destroyed says nothing about what
/// was received from here (and syncoid cannot send incrementally from it).
/// A matched snapshot is the same snapshot, with the same creation time.
///
/// The newest local snapshot ignores the sync snapshots other targets'
/// syncoid runs took (`syncoid_<other identifier>_...`): they say when
/// another target was last served, not what this one misses.
pub fn measure(
    identifier: &str,
    identifiers: &[String],
    local: &[Snapshot],
    remote: &[Snapshot],
) -> (Option<SnapshotRef>, Option<SnapshotRef>, Option<i64>) {
    let newest_local = local
        .iter()
        .filter(|s| match sync_snapshot_owner(&s.name, identifiers) {
            Some(owner) => owner == identifier,
            None => true,
        })
        .max_by_key(|s| s.creation);
    let on_target: HashSet<&str> = remote.iter().map(|s| s.guid.as_str()).collect();
    let newest_held = local
        .iter()
        .filter(|s| on_target.contains(s.guid.as_str()))
        .max_by_key(|s| s.creation);
    let lag = match (newest_local, newest_held) {
        (Some(l), Some(h)) => Some((l.creation - h.creation).max(0)),
        // Only other targets' sync snapshots here, and the target holds one.
        (None, Some(_)) => Some(0),
        (_, None) => None,
    };
    (
        newest_local.map(SnapshotRef::from),
        newest_held.map(SnapshotRef::from),
        lag,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, creation: i64, guid: &str) -> Snapshot {
        Snapshot {
            name: name.into(),
            creation,
            guid: guid.into(),
        }
    }

    fn ids() -> Vec<String> {
        vec!["nas".into(), "nas_2".into()]
    }

    #[test]
    fn lag_is_the_newest_local_against_what_arrived() {
        let local = [
            snap("syncoid_nas_h_1", 100, "g1"),
            snap("autosnap_hourly", 400, "g2"),
        ];
        let remote = [snap("syncoid_nas_h_1", 100, "g1")];
        let (l, r, lag) = measure("nas", &ids(), &local, &remote);
        assert_eq!(l.unwrap().name, "autosnap_hourly");
        assert_eq!(r.unwrap().name, "syncoid_nas_h_1");
        assert_eq!(lag, Some(300));
    }

    #[test]
    fn other_targets_sync_snapshots_do_not_count_as_local_news() {
        let local = [
            snap("syncoid_nas_h_1", 100, "g1"),
            snap("syncoid_nas_2_h_2", 500, "g2"),
        ];
        let remote = [snap("syncoid_nas_h_1", 100, "g1")];
        assert_eq!(measure("nas", &ids(), &local, &remote).2, Some(0));
        // ... but for nas_2 the nas snapshot is the older one.
        let remote2 = [snap("syncoid_nas_2_h_2", 500, "g2")];
        assert_eq!(measure("nas_2", &ids(), &local, &remote2).2, Some(0));
    }

    #[test]
    fn only_snapshots_of_this_host_count_on_the_target_matched_by_guid() {
        let local = [
            snap("syncoid_nas_h_1", 100, "g1"),
            snap("autosnap_hourly", 400, "g2"),
        ];
        // A newer snapshot made on the target, and one of this name with
        // another guid: neither was received from here.
        let remote = [
            snap("syncoid_nas_h_1", 100, "g1"),
            snap("made_there", 500, "t1"),
            snap("autosnap_hourly", 450, "t2"),
        ];
        let (_, r, lag) = measure("nas", &ids(), &local, &remote);
        assert_eq!(r.unwrap().name, "syncoid_nas_h_1");
        assert_eq!(lag, Some(300));
        // No common guid at all: no lag, not 0.
        let unrelated = [snap("made_there", 500, "t1")];
        assert_eq!(
            measure("nas", &ids(), &local, &unrelated),
            (Some((&local[1]).into()), None, None)
        );
    }

    #[test]
    fn a_target_holding_nothing_has_no_lag_value() {
        let local = [snap("a", 1, "g")];
        assert_eq!(measure("nas", &ids(), &local, &[]).2, None);
    }
}
