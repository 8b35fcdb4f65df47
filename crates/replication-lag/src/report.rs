//! What the checks found, as the report and the Prometheus textfile (pure).

use serde::Serialize;

use zpersist_core::replication::SnapshotRef;

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
