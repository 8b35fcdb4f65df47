//! What the checks found, as the report and the Prometheus textfile (pure).

use serde::Serialize;

use zpersist_core::replication::{Snapshot, SnapshotRef};
use zpersist_core::text::prometheus_label as label;

/// What one check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    pub source: String,
    pub target: String,
    pub target_dataset: String,
    pub newest_local: Option<SnapshotRef>,
    /// The newest of this host's snapshots the target holds (by guid).
    pub newest_on_target: Option<SnapshotRef>,
    /// How much newer the newest local snapshot is than `newest_on_target`;
    /// `None` when the target holds none (or the check failed).
    pub lag_seconds: Option<i64>,
    /// Why the check failed (ssh, zfs, a timeout), when it did.
    pub error: Option<String>,
    /// Why the target holds none of this host's snapshots of the dataset,
    /// when both sides could be read and it holds none (a failure too).
    pub no_common_snapshot: Option<String>,
    /// What to do about `error` or `no_common_snapshot`.
    pub help: Option<String>,
}

/// Why the target holds none of this host's snapshots of `source`, and what
/// to do: `place` is where the target is (`this host`, `user@host:port`),
/// `on_target` its snapshots of `target_dataset` (`None`: no such dataset).
pub fn no_common_snapshot(
    source: &str,
    target: &str,
    target_dataset: &str,
    place: &str,
    local: &[Snapshot],
    on_target: Option<&[Snapshot]>,
) -> (String, String) {
    let run_syncoid = format!(
        "run the syncoid unit that sends {source} to {target} (`systemctl list-units 'syncoid-*'` lists them) and see its journal"
    );
    match on_target {
        None => (
            format!("{target_dataset} does not exist on {place}: nothing of {source} was ever received there"),
            run_syncoid,
        ),
        Some(_) if local.is_empty() => (
            format!("{source} has no snapshot on this host, so {target_dataset} on {place} cannot hold one of it"),
            "snapshots come from sanoid (zpersist.datasets.<name>.snapshots) and from each syncoid run; see `systemctl status sanoid` and the syncoid units' journal".into(),
        ),
        Some([]) => (
            format!("{target_dataset} on {place} holds no snapshot: nothing of {source} was received there"),
            run_syncoid,
        ),
        Some(held) => (
            format!(
                "{target_dataset} on {place} holds {} snapshot{} but none of this host's snapshots of {source} (no common guid): it was not received from here, or every snapshot it shared with {source} was destroyed here",
                held.len(),
                if held.len() == 1 { "" } else { "s" }
            ),
            format!(
                "syncoid cannot send incrementally without a common snapshot: check that {target_dataset} is the right target dataset; if it is, rename or destroy it on {place} so that the next syncoid run sends {source} in full"
            ),
        ),
    }
}

/// A metric: name, help text, and its value for one measurement.
type Metric = (&'static str, &'static str, fn(&Measurement) -> Option<i64>);

/// The Prometheus text exposition of the measurements.
pub fn textfile(host: &str, measurements: &[Measurement]) -> String {
    let mut out = String::new();
    let metrics: [Metric; 5] = [
        (
            "zpersist_replication_lag_seconds",
            "Seconds between the newest local snapshot and the newest of them the target holds (matched by guid).",
            |m| m.lag_seconds,
        ),
        (
            "zpersist_replication_target_newest_snapshot_timestamp_seconds",
            "Creation time of the newest of this host's snapshots the target holds.",
            |m| m.newest_on_target.as_ref().map(|s| s.creation),
        ),
        (
            "zpersist_replication_local_newest_snapshot_timestamp_seconds",
            "Creation time of the newest local snapshot.",
            |m| m.newest_local.as_ref().map(|s| s.creation),
        ),
        (
            "zpersist_replication_target_has_snapshots",
            "1 when the target holds at least one of this host's snapshots of the dataset (matched by guid).",
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
            no_common_snapshot: None,
            help: None,
        };
        let text = textfile("forge", &[m]);
        assert!(text.contains(
            "zpersist_replication_target_has_snapshots{host=\"forge\",dataset=\"tank/s\",target=\"nas\"} 0\n"
        ));
        assert!(!text.contains("zpersist_replication_lag_seconds{"));
    }

    #[test]
    fn no_common_snapshot_says_which_case_it_is() {
        let snap = |guid: &str| Snapshot {
            name: "s".into(),
            creation: 1,
            guid: guid.into(),
        };
        let why = |local: &[Snapshot], on_target: Option<&[Snapshot]>| {
            no_common_snapshot("tank/s", "nas", "b/s", "this host", local, on_target).0
        };
        let here = [snap("1")];
        assert!(why(&here, None).starts_with("b/s does not exist on this host: nothing of tank/s"));
        assert!(why(&[], Some(&[])).starts_with("tank/s has no snapshot on this host"));
        assert!(why(&here, Some(&[])).starts_with("b/s on this host holds no snapshot"));
        assert!(why(&here, Some(&[snap("2"), snap("3")]))
            .starts_with("b/s on this host holds 2 snapshots but none of this host's snapshots of tank/s (no common guid)"));
    }
}
