//! The lag of one dataset on one target, and the Prometheus textfile (pure).

use serde::Serialize;

use crate::snapshots::Snapshot;

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

/// What one check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    pub source: String,
    pub target: String,
    pub target_dataset: String,
    pub newest_local: Option<SnapshotRef>,
    pub newest_on_target: Option<SnapshotRef>,
    /// How much newer the newest local snapshot is than the newest one the
    /// target holds; `None` when the target holds none (or the check failed).
    pub lag_seconds: Option<i64>,
    /// Why the check failed (ssh, zfs), when it did.
    pub error: Option<String>,
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

/// Compares what the target holds with what this host has.
///
/// The newest local snapshot ignores the sync snapshots other targets'
/// syncoid runs took (`syncoid_<other identifier>_...`): they say when
/// another target was last served, not what this one misses. The target's
/// newest snapshot is matched to the local one by guid (same snapshot, so
/// the same creation time); when it no longer exists locally, its own
/// creation time counts.
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
    let newest_remote = remote.iter().max_by_key(|s| s.creation);
    let lag = match (newest_local, newest_remote) {
        (Some(l), Some(r)) => {
            let arrived = local
                .iter()
                .find(|s| s.guid == r.guid)
                .map_or(r.creation, |s| s.creation);
            Some((l.creation - arrived).max(0))
        }
        (None, Some(_)) => Some(0),
        (_, None) => None,
    };
    (
        newest_local.map(SnapshotRef::from),
        newest_remote.map(SnapshotRef::from),
        lag,
    )
}

/// A metric: name, help text, and its value for one measurement.
type Metric = (&'static str, &'static str, fn(&Measurement) -> Option<i64>);

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The Prometheus text exposition of the measurements.
pub fn textfile(host: &str, measurements: &[Measurement]) -> String {
    let mut out = String::new();
    let metrics: [Metric; 5] = [
        (
            "zpersist_replication_lag_seconds",
            "Seconds between the newest local snapshot and the newest snapshot the target holds.",
            |m| m.lag_seconds,
        ),
        (
            "zpersist_replication_target_newest_snapshot_timestamp_seconds",
            "Creation time of the newest snapshot the target holds.",
            |m| m.newest_on_target.as_ref().map(|s| s.creation),
        ),
        (
            "zpersist_replication_local_newest_snapshot_timestamp_seconds",
            "Creation time of the newest local snapshot.",
            |m| m.newest_local.as_ref().map(|s| s.creation),
        ),
        (
            "zpersist_replication_target_has_snapshots",
            "1 when the target holds at least one snapshot of the dataset.",
            |m| {
                m.error
                    .is_none()
                    .then_some(i64::from(m.newest_on_target.is_some()))
            },
        ),
        (
            "zpersist_replication_lag_check_success",
            "1 when the target and the local snapshots could be read.",
            |m| Some(i64::from(m.error.is_none())),
        ),
    ];
    for (name, help, value) in metrics {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for m in measurements {
            if let Some(v) = value(m) {
                out.push_str(&format!(
                    "{name}{{host=\"{}\",dataset=\"{}\",target=\"{}\"}} {v}\n",
                    label(host),
                    label(&m.source),
                    label(&m.target)
                ));
            }
        }
    }
    out
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
    fn a_target_holding_nothing_has_no_lag_value() {
        let local = [snap("a", 1, "g")];
        assert_eq!(measure("nas", &ids(), &local, &[]).2, None);
    }

    #[test]
    fn the_textfile_labels_every_series() {
        let m = Measurement {
            source: "tank/s".into(),
            target: "nas".into(),
            target_dataset: "b/s".into(),
            newest_local: Some(SnapshotRef {
                name: "a".into(),
                creation: 10,
            }),
            newest_on_target: None,
            lag_seconds: None,
            error: None,
        };
        let text = textfile("forge", &[m]);
        assert!(text.contains(
            "zpersist_replication_target_has_snapshots{host=\"forge\",dataset=\"tank/s\",target=\"nas\"} 0\n"
        ));
        assert!(!text.contains("zpersist_replication_lag_seconds{"));
    }
}
