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

/// One of a replica's snapshots as a restore point, dated by the data from
/// this host it is known to hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaPoint {
    pub snapshot: Snapshot,
    /// The creation of the newest snapshot from this host the target's
    /// copy held when `snapshot` was taken: `snapshot`'s own creation
    /// when it is one of those, else its anchor's.
    pub data_from: i64,
    /// The anchor that dates it, when that is another snapshot.
    pub dated_by: Option<String>,
}

/// Whether a snapshot name is one this host's sanoid or syncoid takes
/// (`autosnap_<date>_<period>`; `syncoid_[<identifier>_]<host>_<date>`
/// naming `this_host`, any host when it is unknown).
fn named_by_sources_tools(name: &str, this_host: Option<&str>) -> bool {
    name.starts_with("autosnap_")
        || name
            .strip_prefix("syncoid_")
            .is_some_and(|rest| match this_host {
                Some(host) => {
                    rest.starts_with(&format!("{host}_")) || rest.contains(&format!("_{host}_"))
                }
                None => true,
            })
}

/// How fresh the data in each of a target's snapshots (`held`) is, for
/// preseed's "freshest" (docs/preseed.md, "Which point is freshest").
///
/// A snapshot's `creation` says when it was taken, not how new its data
/// is: a snapshot the target takes of its own old copy is newer than the
/// last one received, but holds that one's data. So a held snapshot counts
/// by its own creation only when it is known to come from this host (an
/// **anchor**):
///
/// - it matches one of this host's snapshots (`local`) by guid, as
///   [`measure`] counts them; or
/// - it is named as this host's sanoid and syncoid name theirs
///   (`autosnap_*`, `syncoid_*_<this_host>_*`): after the source is lost
///   there is nothing to match, and a snapshot this host has destroyed
///   since (the newest, when the dataset died) is still its own.
///
/// Any other held snapshot (taken on the target, by hand or by a tool of
/// its own) is dated by the newest anchor at or before it by creation: the
/// newest data from this host it is known to hold. One older than every
/// anchor keeps its own creation (it is older data anyway); with no anchor
/// at all, each keeps its own: nothing better is known. Nothing is
/// dropped: a snapshot dated by its anchor stays a candidate, never
/// fresher than the data it holds from here, so a local snapshot holding
/// newer data wins over it.
pub fn replica_points(
    local: &[Snapshot],
    held: &[Snapshot],
    this_host: Option<&str>,
) -> Vec<ReplicaPoint> {
    let ours: HashSet<&str> = local.iter().map(|s| s.guid.as_str()).collect();
    let anchor =
        |s: &Snapshot| ours.contains(s.guid.as_str()) || named_by_sources_tools(&s.name, this_host);
    let mut in_order: Vec<&Snapshot> = held.iter().collect();
    in_order.sort_by(|a, b| (a.creation, &a.name).cmp(&(b.creation, &b.name)));
    let mut last_anchor: Option<&Snapshot> = None;
    in_order
        .into_iter()
        .map(|s| {
            let (data_from, dated_by) = match last_anchor {
                _ if anchor(s) => {
                    last_anchor = Some(s);
                    (s.creation, None)
                }
                Some(a) => (a.creation, Some(a.name.clone())),
                None => (s.creation, None),
            };
            ReplicaPoint {
                snapshot: s.clone(),
                data_from,
                dated_by,
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn snap(name: &str, creation: i64, guid: &str) -> Snapshot {
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

    fn dated(points: &[ReplicaPoint]) -> Vec<(&str, i64, Option<&str>)> {
        points
            .iter()
            .map(|p| (p.snapshot.name.as_str(), p.data_from, p.dated_by.as_deref()))
            .collect()
    }

    /// Issue 18: the target snapshots its own old copy. Its creation is
    /// newer than a local snapshot holding newer data; it counts by the
    /// snapshot from this host it holds.
    #[test]
    fn a_snapshot_made_on_the_target_counts_by_the_source_snapshot_it_holds() {
        let local = [
            snap("autosnap_1", 100, "g1"),
            snap("before-upgrade", 150, "g15"),
            snap("autosnap_2", 200, "g2"),
        ];
        let held = [
            snap("autosnap_1", 100, "g1"),
            snap("before-upgrade", 150, "g15"),
            snap("mine", 300, "t1"),
            // syncoid on the target, sending the copy on to a third host.
            snap("syncoid_offsite_nas_2026", 400, "t2"),
        ];
        assert_eq!(
            dated(&replica_points(&local, &held, Some("forge"))),
            [
                ("autosnap_1", 100, None),
                ("before-upgrade", 150, None),
                ("mine", 150, Some("before-upgrade")),
                ("syncoid_offsite_nas_2026", 150, Some("before-upgrade")),
            ]
        );
    }

    #[test]
    fn without_a_match_the_names_anchor_and_else_the_creation() {
        let held = [
            snap("before", 50, "t0"),
            snap("autosnap_1", 100, "g1"),
            snap("syncoid_usb_forge_2", 150, "g2"),
            snap("mine", 300, "t1"),
        ];
        // The source lost, or its newest snapshots destroyed here.
        assert_eq!(
            dated(&replica_points(&[], &held, Some("forge"))),
            [
                ("before", 50, None),
                ("autosnap_1", 100, None),
                ("syncoid_usb_forge_2", 150, None),
                ("mine", 150, Some("syncoid_usb_forge_2")),
            ]
        );
        // Another host's sync snapshot is no anchor.
        assert_eq!(
            dated(&replica_points(&[], &held, Some("nas")))[2..],
            [
                ("syncoid_usb_forge_2", 100, Some("autosnap_1")),
                ("mine", 100, Some("autosnap_1")),
            ]
        );
        // No anchor by any rule: each by its own creation.
        let manual = [snap("a", 10, "t1"), snap("b", 20, "t2")];
        assert_eq!(
            dated(&replica_points(&[], &manual, None)),
            [("a", 10, None), ("b", 20, None)]
        );
    }
}
