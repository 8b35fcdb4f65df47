//! What the backup host says about one pulled dataset (issue 21, "both
//! sides in status"): the newest *policy* snapshot it holds (never a sync
//! snapshot), its age against the objective on the backup host's own
//! clock, whether the protected base is held, and the alarms a
//! compromised or broken source raises: a snapshot dated in the future, a
//! source whose history no longer holds what the backup host received last
//! (rolled back, or its snapshots destroyed), a source with no snapshot in
//! common at all (its guid lineage changed: a new dataset under the old
//! name). Pure: the listings come in as data (the target's with the local
//! zfs, the source's through the pull key, which may read).
//!
//! Not wired into zpersist-status yet: the caller is the status flow's
//! small hook (see docs/replication.md).

use crate::replication::Snapshot;
use crate::status::is_policy_snapshot;

/// How far ahead of the backup host's clock a snapshot may be dated before
/// it is an alarm (clock skew between hosts).
pub const FUTURE_SLACK_SECONDS: i64 = 300;

/// One alarm, with its message and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alarm {
    /// No snapshot received yet.
    NothingReceived,
    /// No policy snapshot, or the newest is older than the objective.
    Stale {
        newest: Option<String>,
        age: Option<i64>,
        max: i64,
    },
    /// A received snapshot dated after now (+ slack).
    FutureDated { snapshot: String, ahead: i64 },
    /// The base hold is missing.
    BaseNotHeld { snapshot: String, tag: String },
    /// The source no longer holds the newest snapshot the backup host has,
    /// but shares an older one: rolled back, or that snapshot destroyed.
    SourceRewound { newest_here: String, common: String },
    /// The source shares no snapshot (and no bookmark) with the backup
    /// host: a different dataset under the same name.
    LineageChanged,
}

impl Alarm {
    pub fn message(&self, dataset: &str, source: &str) -> String {
        match self {
            Alarm::NothingReceived => format!("{dataset}: nothing pulled from {source} yet"),
            Alarm::Stale { newest: None, max, .. } => {
                format!("{dataset}: holds no policy snapshot from {source} (objective: at most {max} s old)")
            }
            Alarm::Stale { newest: Some(n), age, max } => format!(
                "{dataset}: the newest policy snapshot pulled from {source} ({n}) is {} s old (objective: at most {max} s)",
                age.unwrap_or_default()
            ),
            Alarm::FutureDated { snapshot, ahead } => format!(
                "{dataset}@{snapshot}: dated {ahead} s in the future of this host's clock (a source whose clock was moved, or forged snapshots)"
            ),
            Alarm::BaseNotHeld { snapshot, tag } => {
                format!("{dataset}@{snapshot}: the base of the next pull is not held ({tag})")
            }
            Alarm::SourceRewound { newest_here, common } => format!(
                "{dataset}: {source} no longer has {newest_here}, the newest snapshot this host pulled; it shares {common} (rolled back, or snapshots destroyed there); pulls are refused and this replica is left as it is"
            ),
            Alarm::LineageChanged => format!(
                "{dataset}: {source}'s dataset shares no snapshot or bookmark with this replica (its guid lineage changed: a new dataset under the old name); pulls are refused and this replica is left as it is"
            ),
        }
    }

    pub fn help(&self, dataset: &str, source: &str) -> String {
        match self {
            Alarm::NothingReceived | Alarm::Stale { .. } => format!(
                "check the pull unit's journal (`journalctl -u 'syncoid-pull-{source}-*'`) and that {source} still takes its snapshots"
            ),
            Alarm::FutureDated { snapshot, .. } => format!(
                "check {source}'s clock and who took {snapshot}; it is kept until this host's own retention ages it: `zfs destroy {dataset}@{snapshot}` here removes it"
            ),
            Alarm::BaseNotHeld { snapshot, tag } => format!("run `zfs hold {tag} {dataset}@{snapshot}` (or the pull unit again)"),
            Alarm::SourceRewound { .. } | Alarm::LineageChanged => format!(
                "find out what happened on {source} before anything else (a compromised source looks like this); this replica is the copy to restore from, so keep it: never `zfs rollback` or `receive -F` it; to replicate again, pull into a new dataset"
            ),
        }
    }
}

/// The backup host's view of one pulled dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullView {
    /// The newest policy snapshot held, by the backup host's order.
    pub newest_policy: Option<Snapshot>,
    /// Its age on the backup host's clock (never negative).
    pub age: Option<i64>,
    pub alarms: Vec<Alarm>,
}

/// The facts of one pulled dataset.
pub struct PullFacts<'a> {
    /// The replica's snapshots, in the backup host's own (createtxg) order.
    pub held: &'a [Snapshot],
    /// The guids of the source's snapshots and bookmarks, when it could be
    /// read (`None`: unreachable; no lineage alarm then).
    pub source_guids: Option<&'a [String]>,
    /// The snapshots holding the base tag.
    pub base_held: &'a [String],
    pub tag: &'a str,
    /// Now, on the backup host's clock.
    pub now: i64,
    /// The objective: the newest policy snapshot at most this old.
    pub max_age: i64,
}

pub fn assess(facts: &PullFacts<'_>) -> PullView {
    let mut alarms = Vec::new();
    let Some(newest_any) = facts.held.last() else {
        return PullView {
            newest_policy: None,
            age: None,
            alarms: vec![Alarm::NothingReceived],
        };
    };
    for s in facts.held {
        let ahead = s.creation - facts.now;
        if ahead > FUTURE_SLACK_SECONDS {
            alarms.push(Alarm::FutureDated {
                snapshot: s.name.clone(),
                ahead,
            });
        }
    }
    // Future-dated snapshots do not count as fresh.
    let newest_policy = facts
        .held
        .iter()
        .rev()
        .find(|s| {
            is_policy_snapshot(&s.name, None) && s.creation - facts.now <= FUTURE_SLACK_SECONDS
        })
        .cloned();
    let age = newest_policy
        .as_ref()
        .map(|s| (facts.now - s.creation).max(0));
    if age.is_none_or(|a| a > facts.max_age) {
        alarms.push(Alarm::Stale {
            newest: newest_policy.as_ref().map(|s| s.name.clone()),
            age,
            max: facts.max_age,
        });
    }
    if !facts
        .base_held
        .iter()
        .any(|h| h.ends_with(&format!("@{}", newest_any.name)))
    {
        alarms.push(Alarm::BaseNotHeld {
            snapshot: newest_any.name.clone(),
            tag: facts.tag.to_owned(),
        });
    }
    if let Some(source) = facts.source_guids {
        if !source.contains(&newest_any.guid) {
            match facts.held.iter().rev().find(|s| source.contains(&s.guid)) {
                Some(common) => alarms.push(Alarm::SourceRewound {
                    newest_here: newest_any.name.clone(),
                    common: common.name.clone(),
                }),
                None => alarms.push(Alarm::LineageChanged),
            }
        }
    }
    PullView {
        newest_policy,
        age,
        alarms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replication::tests::snap;

    fn guids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const NOW: i64 = 1_000_000;

    fn facts<'a>(
        held: &'a [Snapshot],
        source: Option<&'a [String]>,
        base: &'a [String],
    ) -> PullFacts<'a> {
        PullFacts {
            held,
            source_guids: source,
            base_held: base,
            tag: "zpersist-base-forge",
            now: NOW,
            max_age: 7200,
        }
    }

    #[test]
    fn a_fresh_replica_with_its_base_held_raises_nothing() {
        let held = [
            snap("autosnap_a_hourly", NOW - 7000, "g1"),
            snap("autosnap_b_hourly", NOW - 3600, "g2"),
        ];
        let source = guids(&["g1", "g2", "g3"]);
        let base = guids(&["b/x@autosnap_b_hourly"]);
        let v = assess(&facts(&held, Some(&source), &base));
        assert_eq!(v.alarms, vec![]);
        assert_eq!(v.age, Some(3600));
        assert_eq!(v.newest_policy.unwrap().name, "autosnap_b_hourly");
    }

    #[test]
    fn sync_and_future_dated_snapshots_never_count_as_fresh_and_the_future_is_an_alarm() {
        let held = [
            snap("autosnap_a_hourly", NOW - 90_000, "g1"),
            snap("syncoid_nas_forge_x", NOW - 10, "g2"),
            snap("autosnap_2027_daily", NOW + 31_536_000, "g3"),
        ];
        let source = guids(&["g1", "g2", "g3"]);
        let base = guids(&["b/x@autosnap_2027_daily"]);
        let v = assess(&facts(&held, Some(&source), &base));
        assert_eq!(v.newest_policy.unwrap().name, "autosnap_a_hourly");
        assert_eq!(
            v.alarms,
            vec![
                Alarm::FutureDated {
                    snapshot: "autosnap_2027_daily".into(),
                    ahead: 31_536_000
                },
                Alarm::Stale {
                    newest: Some("autosnap_a_hourly".into()),
                    age: Some(90_000),
                    max: 7200
                },
            ]
        );
        assert!(v.alarms[0]
            .message("b/x", "forge")
            .contains("in the future"));
    }

    #[test]
    fn a_rewound_source_a_changed_lineage_and_a_missing_base_are_alarms() {
        let held = [
            snap("autosnap_a_hourly", NOW - 100, "g1"),
            snap("autosnap_b_hourly", NOW - 50, "g2"),
        ];
        let base = guids(&[]);
        let rewound = guids(&["g1", "g9"]);
        let v = assess(&facts(&held, Some(&rewound), &base));
        assert_eq!(
            v.alarms,
            vec![
                Alarm::BaseNotHeld {
                    snapshot: "autosnap_b_hourly".into(),
                    tag: "zpersist-base-forge".into()
                },
                Alarm::SourceRewound {
                    newest_here: "autosnap_b_hourly".into(),
                    common: "autosnap_a_hourly".into()
                },
            ]
        );
        let other = guids(&["g7"]);
        assert!(assess(&facts(&held, Some(&other), &base))
            .alarms
            .contains(&Alarm::LineageChanged));
        // An unreachable source says nothing about lineage.
        assert!(!assess(&facts(&held, None, &base))
            .alarms
            .iter()
            .any(|a| matches!(a, Alarm::LineageChanged | Alarm::SourceRewound { .. })));
        assert_eq!(
            assess(&facts(&[], None, &base)).alarms,
            vec![Alarm::NothingReceived]
        );
    }
}
