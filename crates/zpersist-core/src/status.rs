//! `zpersist status` as data: the objectives a host promises per service
//! (`/etc/zpersist/status.json`, optional), the facts `zpersist-status`
//! gathered (one property listing, one snapshot listing, one listing per
//! replication target), and the verdict per service. No I/O, no clock:
//! `now` comes in as data.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::preseed::ResticSource;

pub mod drill;
pub mod pitr;
pub mod pools;
use crate::replication::SnapshotRef;
use crate::text::prometheus_label as label;

pub const STATUS_VERSION: u64 = 1;

/// `/etc/zpersist/status.json`: objectives per service. Every field is
/// optional; a missing objective is reported but never judged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusFile {
    pub version: u64,
    #[serde(default)]
    pub services: BTreeMap<String, Objectives>,
    /// The pools whose health and scrubs are checked, with their scrub
    /// objective; none listed: the pool of services.json, unjudged.
    #[serde(default)]
    pub pools: BTreeMap<String, pools::PoolObjectives>,
    /// PostgreSQL's recovery objectives, when the host archives WAL
    /// (`zpersist.postgresql.pitr`; the facts come from pitr.json).
    #[serde(default)]
    pub postgresql: Option<pitr::PitrObjectives>,
}

/// What one service promises.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Objectives {
    /// The newest policy snapshot of the dataset is at most this old.
    #[serde(default)]
    pub max_snapshot_age_seconds: Option<u64>,
    /// The sanoid periods of the dataset's policy (`hourly`, `daily`,
    /// ...): only `autosnap_*_<period>` snapshots count as its newest;
    /// `None`: sanoid's of any period. Never syncoid's or zpersist's own.
    #[serde(default)]
    pub snapshot_periods: Option<Vec<String>>,
    /// Each replication target holds a snapshot at most this far behind
    /// the newest local one.
    #[serde(default)]
    pub max_replication_lag_seconds: Option<u64>,
    /// The newest restic backup of the service's data is at most this old.
    #[serde(default)]
    pub max_backup_age_seconds: Option<u64>,
    /// Where the service's restic backups go (`backup.restic`), as preseed
    /// reads them: the repository, and the host and path they are
    /// recorded under.
    #[serde(default)]
    pub restic_backup: Option<ResticSource>,
    /// Where the service's restore drill leaves its result and what it
    /// promises; only for a service whose drill is enabled.
    #[serde(default)]
    pub drill: Option<drill::DrillObjectives>,
}

impl crate::contract::Contract for StatusFile {
    const KIND: &'static str = "status objectives file";
    const VERSION: u64 = STATUS_VERSION;
    const READER: &'static str = "zpersist status";
}

/// The dataset's properties as the one `zfs get` read them; `None` for
/// the whole struct when the dataset does not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetFacts {
    pub mounted: bool,
    pub mountpoint: Option<String>,
    pub used: Option<u64>,
    /// `None` (or 0, which zfs prints for none) when no quota is set.
    pub quota: Option<u64>,
    pub preseed: Option<String>,
    pub preseed_source: Option<String>,
    pub preseed_at: Option<String>,
    /// What the declared mountpoint shows, when zfs says the dataset is
    /// mounted there (`mounted::confirm_shown`): `mounted`, or a cover
    /// (`not-shown`) or `unverified`; `None` when it was not looked at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_state: Option<crate::mounted::MountState>,
    /// Its key, read only when it is not mounted (zfs-fuse: never):
    /// `locked` is told from plain "not mounted" (docs/encryption.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<crate::encryption::KeyState>,
}

impl DatasetFacts {
    /// Mounted, and its declared path shows it (no cover over it).
    pub fn mounted_and_shown(&self) -> bool {
        self.mounted
            && !matches!(
                self.path_state,
                Some(crate::mounted::MountState::NotShown { .. })
                    | Some(crate::mounted::MountState::Unverified { .. })
            )
    }
}

/// What one replication target was found to hold.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "state"
)]
pub enum TargetFacts {
    /// The target answered: the newest of this host's snapshots it holds
    /// (by guid), and how far behind the newest local one it is.
    Reached {
        newest_held: Option<SnapshotRef>,
        lag_seconds: Option<i64>,
        /// The newest snapshot of the target's copy dated in the future
        /// (`time::in_future`): the clock of the host that made it lied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        future_snapshot: Option<SnapshotRef>,
        /// Why it holds none of this host's snapshots, when it holds none.
        why_none: Option<String>,
        help: Option<String>,
    },
    /// The target did not answer (ssh failed or timed out, its pool is
    /// not imported): never in sync.
    Unreachable { error: String, help: String },
}

/// The newest restic backup of a service's path by its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRef {
    pub id: String,
    /// Seconds since the epoch.
    pub time: i64,
}

/// What the service's restic repository was found to hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "state"
)]
pub enum BackupFacts {
    /// The repository answered: its newest snapshot of the path by the
    /// host, if any.
    Reached {
        repository: String,
        /// The newest not dated in the future (`time::newest_by_clock`).
        newest: Option<BackupRef>,
        /// The newest dated in the future: a clock that lied (`restic
        /// backup --time`, a host whose clock ran ahead).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        in_future: Option<BackupRef>,
    },
    /// The repository could not be read (unreachable, wrong password,
    /// timed out): never "fine".
    Unreachable {
        repository: String,
        error: String,
        help: String,
    },
}

/// One broken promise: what, and the command that fixes or explains it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub error: String,
    pub help: String,
}

/// One service's status.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    pub service: String,
    pub dataset: String,
    /// Where services.json says it mounts.
    pub declared_mountpoint: String,
    pub exists: bool,
    pub facts: Option<DatasetFacts>,
    /// The newest snapshot not dated in the future: what the age is
    /// judged from.
    pub newest_snapshot: Option<SnapshotRef>,
    pub snapshot_age_seconds: Option<i64>,
    /// The newest snapshot dated in the future, an alarm of its own.
    pub future_snapshot: Option<SnapshotRef>,
    pub objectives: Objectives,
    pub targets: BTreeMap<String, TargetFacts>,
    /// The restic repository's answer, when the service has `backup.restic`.
    pub backup: Option<BackupFacts>,
    pub backup_age_seconds: Option<i64>,
    /// The last restore drill, when the service has one (status.json's
    /// `drill`); `None`: no drill, nothing judged.
    pub drill: Option<drill::DrillStatus>,
    pub problems: Vec<Problem>,
    /// The clock the ages were judged by (the report's `now`).
    #[serde(skip)]
    pub now: i64,
}

impl ServiceStatus {
    pub fn in_shape(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The prefix of the snapshots sanoid takes (`autosnap_<date>_<period>`).
pub const POLICY_PREFIX: &str = "autosnap_";

/// Whether a snapshot is one the snapshot policy took: sanoid's
/// `autosnap_*` of one of `periods` (any period when `None`). syncoid's
/// sync snapshots (`syncoid_*`), zpersist's own (`zpersist-*`) and
/// snapshots made by hand never are: they say nothing about sanoid.
pub fn is_policy_snapshot(name: &str, periods: Option<&[String]>) -> bool {
    let Some(rest) = name.strip_prefix(POLICY_PREFIX) else {
        return false;
    };
    periods.is_none_or(|periods| {
        periods.iter().any(|p| {
            rest.strip_suffix(p.as_str())
                .is_some_and(|r| r.ends_with('_'))
        })
    })
}

/// The inputs of [`evaluate`] for one service.
pub struct Inputs<'a> {
    pub service: &'a str,
    pub dataset: &'a str,
    pub declared_mountpoint: &'a str,
    pub facts: Option<DatasetFacts>,
    /// The dataset's snapshots, all of them: only the policy's count
    /// ([`is_policy_snapshot`]).
    pub snapshots: Vec<SnapshotRef>,
    pub objectives: Objectives,
    pub targets: BTreeMap<String, TargetFacts>,
    pub backup: Option<BackupFacts>,
    /// The drill's result file as read, when `objectives.drill` is set.
    pub drill: Option<drill::DrillFacts>,
    pub now: i64,
}

/// The problem of a point dated `at`, `now` being this host's clock: what
/// it is (`what`: "the snapshot tank/x@y"), and that its age says nothing.
fn future_problem(what: &str, at: i64, now: i64, judged: &str, help: String) -> Problem {
    Problem {
        error: format!(
            "{what} is dated {}, {} s ahead of this host's clock ({}): a clock ran ahead when it was made, or this one runs behind; its age says nothing, so {judged}",
            crate::time::rfc3339(at),
            at - now,
            crate::time::rfc3339(now)
        ),
        help,
    }
}

const CLOCK_HELP: &str = "check the clocks (`timedatectl status`, `chronyc tracking`, here and on the host that made it)";

/// The verdict: every objective checked, each miss a [`Problem`].
pub fn evaluate(inputs: Inputs<'_>) -> ServiceStatus {
    let Inputs {
        service,
        dataset,
        declared_mountpoint,
        facts,
        snapshots,
        objectives,
        targets,
        backup,
        drill,
        now,
    } = inputs;
    let periods = objectives.snapshot_periods.as_deref();
    let (policy, others): (Vec<SnapshotRef>, Vec<SnapshotRef>) = snapshots
        .into_iter()
        .partition(|s| is_policy_snapshot(&s.name, periods));
    let (newest_snapshot, future_snapshot) =
        crate::time::newest_by_clock(policy, |s| s.creation, now);
    // Newer snapshots that do not count (syncoid's, zpersist's, by hand):
    // named in the problem, so a fresh syncoid_* is not mistaken for sanoid.
    let newer_others: Vec<&str> = others
        .iter()
        .filter(|o| {
            newest_snapshot
                .as_ref()
                .is_none_or(|n| o.creation > n.creation)
        })
        .map(|o| o.name.as_str())
        .collect();
    let not_counted = if newer_others.is_empty() {
        String::new()
    } else {
        format!(
            "; {} newer snapshot{} not taken by the snapshot policy do{} not count ({}{})",
            newer_others.len(),
            if newer_others.len() == 1 { "" } else { "s" },
            if newer_others.len() == 1 { "es" } else { "" },
            newer_others
                .iter()
                .take(3)
                .copied()
                .collect::<Vec<_>>()
                .join(", "),
            if newer_others.len() > 3 { ", ..." } else { "" }
        )
    };
    let policy_words = match periods {
        Some(p) => format!("sanoid's autosnap_* of {}", p.join("/")),
        None => "sanoid's autosnap_*".into(),
    };
    let mut problems = Vec::new();
    match &facts {
        None => problems.push(Problem {
            error: format!("{dataset} (zpersist.services.{service}) does not exist"),
            help: "zpersist-datasets.service creates it: `systemctl restart zpersist-datasets` and see `journalctl -u zpersist-datasets`".into(),
        }),
        Some(DatasetFacts { mounted: false, key: Some(key), .. }) if key.is_locked() => {
            let (error, help) = crate::encryption::locked_problem(
                dataset,
                key,
                &format!("{service} stays down (its mount check fails)"),
            )
            .unwrap_or_default();
            problems.push(Problem {
                error,
                help: format!("{help}; then `systemctl restart zpersist-datasets` and start {service}"),
            })
        }
        Some(f) if !f.mounted => problems.push(Problem {
            error: format!("{dataset} is not mounted (it should be at {declared_mountpoint})"),
            help: format!("`zfs mount {dataset}`; `systemctl status zpersist-{service}-mounted` says why it was not"),
        }),
        Some(f) if f.mountpoint.as_deref() != Some(declared_mountpoint) => problems.push(Problem {
            error: format!(
                "{dataset} is mounted at {}, not at {declared_mountpoint} as declared",
                f.mountpoint.as_deref().unwrap_or("-")
            ),
            help: "`systemctl restart zpersist-datasets` sets the declared mountpoint".into(),
        }),
        Some(f) => {
            if let Some((error, help)) = f.path_state.as_ref().and_then(|state| {
                crate::mounted::not_shown_problem(dataset, declared_mountpoint, state)
            }) {
                problems.push(Problem {
                    error: format!("{error}; {service} would not see its data"),
                    help,
                });
            }
        }
    }
    let snapshot_age_seconds = newest_snapshot.as_ref().map(|s| (now - s.creation).max(0));
    if let Some(f) = &future_snapshot {
        problems.push(future_problem(
            &format!("the snapshot {dataset}@{}", f.name),
            f.creation,
            now,
            &format!(
                "the snapshot age is judged from the newest snapshot not in the future ({})",
                newest_snapshot.as_ref().map(|s| s.name.as_str()).unwrap_or("none")
            ),
            format!("{CLOCK_HELP}; once the clock is right, see what the snapshot holds and destroy it (`zfs destroy {dataset}@{}`) if it is not needed: while it is there, this stays red", f.name),
        ));
    }
    if let Some(max) = objectives.max_snapshot_age_seconds {
        match snapshot_age_seconds {
            None if facts.is_some() => problems.push(Problem {
                error: format!(
                    "{dataset} has no policy snapshot ({policy_words}){} (objective: at most {max} s old){not_counted}",
                    if future_snapshot.is_some() { " that is not dated in the future" } else { "" }
                ),
                help: "`systemctl status sanoid` and `journalctl -u sanoid`: sanoid takes the snapshots (zpersist.datasets.<name>.snapshots)".into(),
            }),
            Some(age) if age as u64 > max => problems.push(Problem {
                error: format!(
                    "the newest policy snapshot of {dataset} ({}) is {age} s old (objective: at most {max} s){not_counted}",
                    newest_snapshot.as_ref().map(|s| s.name.as_str()).unwrap_or("-")
                ),
                help: "`systemctl status sanoid` and `journalctl -u sanoid`: sanoid takes the snapshots".into(),
            }),
            _ => {}
        }
    }
    for (target, found) in &targets {
        if let TargetFacts::Reached {
            future_snapshot: Some(f),
            ..
        } = found
        {
            problems.push(future_problem(
                &format!("the snapshot {} on target {target} (the copy of {dataset})", f.name),
                f.creation,
                now,
                "it never counts as what the target holds from this host",
                format!("{CLOCK_HELP}; then see what the snapshot holds on {target} and destroy it there if it is not needed"),
            ));
        }
        match found {
            TargetFacts::Unreachable { error, help } => problems.push(Problem {
                error: format!("target {target} of {dataset} is unreachable: {error}"),
                help: help.clone(),
            }),
            TargetFacts::Reached {
                newest_held: None,
                why_none,
                help,
                ..
            } => problems.push(Problem {
                error: format!(
                    "target {target} holds none of this host's snapshots of {dataset}: {}",
                    why_none.as_deref().unwrap_or("nothing received")
                ),
                help: help.clone().unwrap_or_else(|| {
                    "`systemctl list-units 'syncoid-*'` and the syncoid unit's journal".into()
                }),
            }),
            TargetFacts::Reached {
                lag_seconds: Some(lag),
                ..
            } => {
                if let Some(max) = objectives.max_replication_lag_seconds {
                    if *lag as u64 > max {
                        problems.push(Problem {
                            error: format!(
                                "target {target} is {lag} s behind on {dataset} (objective: at most {max} s)"
                            ),
                            help: format!("`systemctl list-units 'syncoid-*'`, then `systemctl start` the unit sending {dataset} to {target} and see its journal; `replication-lag` measures it again"),
                        });
                    }
                }
            }
            TargetFacts::Reached { .. } => {}
        }
    }
    let backup_age_seconds = match &backup {
        Some(BackupFacts::Reached {
            newest: Some(b), ..
        }) => Some((now - b.time).max(0)),
        _ => None,
    };
    let unit = format!("restic-backups-zpersist-{service}");
    if let Some(BackupFacts::Reached {
        repository,
        in_future: Some(f),
        newest,
    }) = &backup
    {
        problems.push(future_problem(
            &format!("the restic backup {} of {service} in {repository}", f.id),
            f.time,
            now,
            &format!(
                "the backup age is judged from the newest backup not in the future ({})",
                newest.as_ref().map(|b| b.id.as_str()).unwrap_or("none")
            ),
            format!("{CLOCK_HELP}; a backup dated ahead hides that no real backup is made: `systemctl start {unit}` makes one now, and `restic forget {}` (with the repository's options) removes the misdated one once you have checked it", f.id),
        ));
    }
    match &backup {
        Some(BackupFacts::Unreachable {
            repository,
            error,
            help,
        }) => problems.push(Problem {
            error: format!(
                "the restic repository {repository} (backups of {service}) cannot be read: {error}"
            ),
            help: help.clone(),
        }),
        Some(BackupFacts::Reached {
            repository,
            newest: None,
            in_future,
        }) => problems.push(Problem {
            error: format!(
                "the restic repository {repository} holds no backup of {service}'s data{}{}",
                if in_future.is_some() { " that is not dated in the future" } else { "" },
                objectives
                    .restic_backup
                    .as_ref()
                    .map(|r| format!(
                        " ({} by host {})",
                        r.path,
                        r.host.as_deref().unwrap_or("any")
                    ))
                    .unwrap_or_default()
            ),
            help: format!("`systemctl start {unit}` makes one; `journalctl -u {unit}` says why the timer's runs did not"),
        }),
        Some(BackupFacts::Reached {
            repository,
            newest: Some(b),
            ..
        }) => {
            let age = backup_age_seconds.unwrap_or(0);
            if let Some(max) = objectives.max_backup_age_seconds {
                if age as u64 > max {
                    problems.push(Problem {
                        error: format!(
                            "the newest restic backup of {service} in {repository} ({}, {}) is {age} s old (objective: at most {max} s)",
                            b.id,
                            crate::time::rfc3339(b.time)
                        ),
                        help: format!("`systemctl list-timers {unit}` and `journalctl -u {unit}`: the backup timer's runs fail or do not run; `systemctl start {unit}` runs one now"),
                    });
                }
            }
        }
        None => {}
    }
    let drill = objectives.drill.as_ref().map(|o| {
        drill::evaluate_drill(
            service,
            o,
            drill.unwrap_or(drill::DrillFacts::Never),
            now,
            &mut problems,
        )
    });
    ServiceStatus {
        service: service.into(),
        dataset: dataset.into(),
        declared_mountpoint: declared_mountpoint.into(),
        exists: facts.is_some(),
        facts,
        newest_snapshot,
        snapshot_age_seconds,
        future_snapshot,
        objectives,
        targets,
        backup,
        backup_age_seconds,
        drill,
        problems,
        now,
    }
}

/// One gauge of a Prometheus textfile: its HELP and TYPE lines and a row
/// per (labels, value).
fn metric<V: std::fmt::Display>(out: &mut String, name: &str, help: &str, rows: Vec<(String, V)>) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    for (labels, value) in rows {
        out.push_str(&format!("{name}{{{labels}}} {value}\n"));
    }
}

/// The Prometheus text exposition of `statuses` (node_exporter's textfile
/// collector reads it): the same numbers `--json` prints.
pub fn textfile(statuses: &[ServiceStatus]) -> String {
    let mut out = String::new();
    let base = |s: &ServiceStatus| {
        format!(
            "service=\"{}\",dataset=\"{}\"",
            label(&s.service),
            label(&s.dataset)
        )
    };
    metric(
        &mut out,
        "zpersist_status_ok",
        "1 when every objective of the service is met (zpersist-status exits 0 for it).",
        statuses
            .iter()
            .map(|s| (base(s), i64::from(s.in_shape())))
            .collect(),
    );
    metric(
        &mut out,
        "zpersist_status_mounted",
        "1 when the service's dataset exists, is mounted, and its path shows it (no other filesystem mounted over it).",
        statuses
            .iter()
            .map(|s| {
                (
                    base(s),
                    i64::from(s.facts.as_ref().is_some_and(DatasetFacts::mounted_and_shown)),
                )
            })
            .collect(),
    );
    metric(
        &mut out,
        "zpersist_status_snapshot_age_seconds",
        "Age of the newest snapshot of the service's dataset.",
        statuses
            .iter()
            .filter_map(|s| s.snapshot_age_seconds.map(|a| (base(s), a)))
            .collect(),
    );
    metric(
        &mut out,
        "zpersist_status_snapshot_age_objective_seconds",
        "The most the newest snapshot may be old (status.json).",
        statuses
            .iter()
            .filter_map(|s| {
                s.objectives
                    .max_snapshot_age_seconds
                    .map(|a| (base(s), a as i64))
            })
            .collect(),
    );
    let per_target = |f: fn(&TargetFacts) -> Option<i64>| {
        statuses
            .iter()
            .flat_map(|s| {
                s.targets.iter().filter_map(move |(t, facts)| {
                    f(facts).map(|v| (format!("{},target=\"{}\"", base(s), label(t)), v))
                })
            })
            .collect::<Vec<_>>()
    };
    metric(
        &mut out,
        "zpersist_status_replication_lag_seconds",
        "How far the newest of this host's snapshots the target holds (by guid) is behind the newest local one.",
        per_target(|f| match f {
            TargetFacts::Reached { lag_seconds, .. } => *lag_seconds,
            TargetFacts::Unreachable { .. } => None,
        }),
    );
    metric(
        &mut out,
        "zpersist_status_target_reachable",
        "1 when the target could be read (0: unreachable, never in sync).",
        per_target(|f| Some(i64::from(matches!(f, TargetFacts::Reached { .. })))),
    );
    metric(
        &mut out,
        "zpersist_status_replication_lag_objective_seconds",
        "The most a target may be behind (status.json, else replication.json's maxLagSeconds).",
        statuses
            .iter()
            .filter_map(|s| {
                s.objectives
                    .max_replication_lag_seconds
                    .map(|a| (base(s), a as i64))
            })
            .collect(),
    );
    let with_repository = |s: &ServiceStatus| {
        let repository = match &s.backup {
            Some(BackupFacts::Reached { repository, .. })
            | Some(BackupFacts::Unreachable { repository, .. }) => repository.as_str(),
            None => "",
        };
        format!("{},repository=\"{}\"", base(s), label(repository))
    };
    metric(
        &mut out,
        "zpersist_status_backup_age_seconds",
        "Age of the newest restic backup of the service's data (backup.restic).",
        statuses
            .iter()
            .filter_map(|s| s.backup_age_seconds.map(|a| (with_repository(s), a)))
            .collect(),
    );
    metric(
        &mut out,
        "zpersist_status_backup_reachable",
        "1 when the service's restic repository could be read (0: unreachable, never fine).",
        statuses
            .iter()
            .filter_map(|s| {
                s.backup.as_ref().map(|b| {
                    (
                        with_repository(s),
                        i64::from(matches!(b, BackupFacts::Reached { .. })),
                    )
                })
            })
            .collect(),
    );
    metric(
        &mut out,
        "zpersist_status_backup_age_objective_seconds",
        "The most the newest restic backup may be old (status.json).",
        statuses
            .iter()
            .filter_map(|s| {
                s.objectives
                    .max_backup_age_seconds
                    .map(|a| (base(s), a as i64))
            })
            .collect(),
    );
    // Every service has a row per kind it has (0: nothing dated ahead), so
    // an alert can fire on `> 0` and a missing series means no data.
    metric(
        &mut out,
        "zpersist_status_future_dated_seconds",
        "How far ahead of this host's clock the newest point dated in the future is (kind: snapshot, replica, backup); 0 when none is. Its age says nothing; the age series are judged from the newest point not in the future.",
        statuses
            .iter()
            .flat_map(|s| {
                let ahead = |at: Option<i64>| at.map_or(0, |at| at - s.now);
                let mut rows = vec![(
                    format!("{},kind=\"snapshot\"", base(s)),
                    ahead(s.future_snapshot.as_ref().map(|f| f.creation)),
                )];
                for (t, facts) in &s.targets {
                    if let TargetFacts::Reached { future_snapshot, .. } = facts {
                        rows.push((
                            format!("{},kind=\"replica\",target=\"{}\"", base(s), label(t)),
                            ahead(future_snapshot.as_ref().map(|f| f.creation)),
                        ));
                    }
                }
                if let Some(BackupFacts::Reached { in_future, .. }) = &s.backup {
                    rows.push((
                        format!("{},kind=\"backup\"", with_repository(s)),
                        ahead(in_future.as_ref().map(|f| f.time)),
                    ));
                }
                rows
            })
            .collect(),
    );
    metric(
        &mut out,
        "zpersist_status_preseed_info",
        "1 when the dataset was preseeded; the labels say how, from where and when (com.zpersist:preseed*).",
        statuses
            .iter()
            .filter_map(|s| {
                let f = s.facts.as_ref()?;
                let how = f.preseed.as_ref()?;
                Some((
                    format!(
                        "{},preseed=\"{}\",source=\"{}\",at=\"{}\"",
                        base(s),
                        label(how),
                        label(f.preseed_source.as_deref().unwrap_or("")),
                        label(f.preseed_at.as_deref().unwrap_or(""))
                    ),
                    1,
                ))
            })
            .collect(),
    );
    drill_textfile(&mut out, statuses, &base);
    out
}

/// The drill rows of [`textfile`]: only services with a drill have them.
fn drill_textfile(
    out: &mut String,
    statuses: &[ServiceStatus],
    base: &dyn Fn(&ServiceStatus) -> String,
) {
    let drilled: Vec<(&ServiceStatus, &drill::DrillStatus)> = statuses
        .iter()
        .filter_map(|s| s.drill.as_ref().map(|d| (s, d)))
        .collect();
    let per_source = |f: fn(&crate::drill::SourceResult) -> Option<f64>| {
        drilled
            .iter()
            .flat_map(|(s, d)| {
                d.result().into_iter().flat_map(move |r| {
                    r.sources.iter().filter_map(move |src| {
                        f(src)
                            .map(|v| (format!("{},source=\"{}\"", base(s), label(&src.source)), v))
                    })
                })
            })
            .collect::<Vec<_>>()
    };
    metric(
        out,
        "zpersist_status_drill_ok",
        "1 when the service's last restore drill ran within its objective, every source restored and passed its checks, within the RPO objective (0 also when none has run or its result cannot be read).",
        drilled
            .iter()
            .map(|(s, d)| (base(s), i64::from(d.ok)))
            .collect(),
    );
    metric(
        out,
        "zpersist_status_drill_success",
        "1 when the source's freshest point restored into a scratch copy that passed every check in the last drill.",
        per_source(|src| Some(f64::from(u8::from(src.success)))),
    );
    metric(
        out,
        "zpersist_status_drill_rpo_seconds",
        "Age of the data the last drill restored from the source when it started (its recovery point).",
        per_source(|src| src.rpo_seconds.map(|r| r as f64)),
    );
    metric(
        out,
        "zpersist_status_drill_rto_seconds",
        "Seconds from the source's start to a checked copy in the last drill (its recovery time).",
        per_source(|src| Some(src.rto_seconds)),
    );
    metric(
        out,
        "zpersist_status_drill_age_seconds",
        "Since the service's last restore drill started.",
        drilled
            .iter()
            .filter_map(|(s, d)| d.age_seconds.map(|a| (base(s), a)))
            .collect(),
    );
    metric(
        out,
        "zpersist_status_drill_age_objective_seconds",
        "The most the last restore drill may be old (status.json).",
        drilled
            .iter()
            .filter_map(|(s, _)| {
                let o = s.objectives.drill.as_ref()?;
                o.max_age_seconds.map(|m| (base(s), m as i64))
            })
            .collect(),
    );
    metric(
        out,
        "zpersist_status_drill_rpo_objective_seconds",
        "The most data a restore drill's source may lose (status.json; absent when none is declared).",
        drilled
            .iter()
            .filter_map(|(s, _)| {
                let o = s.objectives.drill.as_ref()?;
                o.max_rpo_seconds.map(|m| (base(s), m as i64))
            })
            .collect(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(facts: Option<DatasetFacts>) -> Inputs<'static> {
        Inputs {
            service: "sonarr",
            dataset: "tank/services/sonarr",
            declared_mountpoint: "/var/lib/sonarr",
            facts,
            snapshots: vec![SnapshotRef {
                name: "autosnap_a_hourly".into(),
                creation: 100,
            }],
            objectives: Objectives {
                max_snapshot_age_seconds: Some(50),
                max_replication_lag_seconds: Some(10),
                ..Default::default()
            },
            targets: BTreeMap::new(),
            backup: None,
            drill: None,
            now: 120,
        }
    }

    fn mounted() -> DatasetFacts {
        DatasetFacts {
            mounted: true,
            mountpoint: Some("/var/lib/sonarr".into()),
            ..Default::default()
        }
    }

    #[test]
    fn in_shape_has_no_problem() {
        let s = evaluate(inputs(Some(mounted())));
        assert!(s.in_shape(), "{s:?}");
        assert_eq!(s.snapshot_age_seconds, Some(20));
    }

    #[test]
    fn each_broken_promise_is_a_problem() {
        assert!(evaluate(inputs(None)).problems[0]
            .error
            .contains("does not exist"));
        let unmounted = DatasetFacts {
            mounted: false,
            ..mounted()
        };
        assert!(evaluate(inputs(Some(unmounted.clone()))).problems[0]
            .error
            .contains("is not mounted"));
        let locked = DatasetFacts {
            key: Some(crate::encryption::KeyState::Locked {
                root: "tank/services".into(),
                keylocation: None,
            }),
            ..unmounted
        };
        let problem = &evaluate(inputs(Some(locked))).problems[0];
        assert!(
            problem.error.starts_with("tank/services/sonarr is locked: its encryption key is not loaded (keystatus: unavailable, encryption root tank/services)"),
            "{problem:?}"
        );
        assert!(
            problem.help.contains("zfs load-key tank/services"),
            "{problem:?}"
        );
        let mut stale = inputs(Some(mounted()));
        stale.now = 200;
        assert!(evaluate(stale).problems[0].error.contains("100 s old"));
        let mut lagging = inputs(Some(mounted()));
        lagging.targets.insert(
            "nas".into(),
            TargetFacts::Reached {
                newest_held: Some(SnapshotRef {
                    name: "b".into(),
                    creation: 80,
                }),
                lag_seconds: Some(20),
                future_snapshot: None,
                why_none: None,
                help: None,
            },
        );
        lagging.targets.insert(
            "usb".into(),
            TargetFacts::Unreachable {
                error: "ssh: connection refused".into(),
                help: "h".into(),
            },
        );
        let s = evaluate(lagging);
        assert_eq!(s.problems.len(), 2, "{s:?}");
        assert!(s.problems[0].error.contains("nas is 20 s behind"));
        assert!(s.problems[1]
            .error
            .contains("usb of tank/services/sonarr is unreachable"));
    }

    #[test]
    fn restic_backups_are_judged_and_unreachable_is_never_fine() {
        let with = |backup: BackupFacts, max: Option<u64>| {
            let mut i = inputs(Some(mounted()));
            i.objectives.max_backup_age_seconds = max;
            i.backup = Some(backup);
            evaluate(i)
        };
        let fresh = BackupFacts::Reached {
            repository: "b2".into(),
            newest: Some(BackupRef {
                id: "abc".into(),
                time: 100,
            }),
            in_future: None,
        };
        let s = with(fresh.clone(), Some(30));
        assert!(s.in_shape(), "{s:?}");
        assert_eq!(s.backup_age_seconds, Some(20));
        let s = with(fresh.clone(), Some(10));
        assert!(
            s.problems[0]
                .error
                .contains("is 20 s old (objective: at most 10 s)"),
            "{s:?}"
        );
        assert!(s.problems[0]
            .help
            .contains("restic-backups-zpersist-sonarr"));
        assert!(with(fresh, None).in_shape(), "no objective, no judgement");
        let none = with(
            BackupFacts::Reached {
                repository: "b2".into(),
                newest: None,
                in_future: None,
            },
            None,
        );
        assert!(none.problems[0].error.contains("holds no backup of sonarr"));
        let down = with(
            BackupFacts::Unreachable {
                repository: "b2".into(),
                error: "timed out".into(),
                help: "h".into(),
            },
            None,
        );
        assert!(down.problems[0].error.contains("cannot be read: timed out"));
        assert_eq!(down.backup_age_seconds, None);
        let text = textfile(&[down]);
        assert!(text.contains(
            "zpersist_status_backup_reachable{service=\"sonarr\",dataset=\"tank/services/sonarr\",repository=\"b2\"} 0"
        ), "{text}");
        assert!(!text.contains("zpersist_status_backup_age_seconds{"));
    }

    /// Issue 18: a point dated 30 days ahead (`restic backup --time`, a
    /// clock that ran ahead) is an alarm, and the ages are judged from the
    /// newest point that is not in the future.
    #[test]
    fn a_point_dated_in_the_future_is_an_alarm_and_never_the_newest() {
        let month = 30 * 86_400;
        let mut i = inputs(Some(mounted()));
        i.snapshots.push(SnapshotRef {
            name: "autosnap_ahead_hourly".into(),
            creation: 120 + month,
        });
        i.objectives.max_backup_age_seconds = Some(30);
        i.backup = Some(BackupFacts::Reached {
            repository: "b2".into(),
            newest: Some(BackupRef {
                id: "old".into(),
                time: 0,
            }),
            in_future: Some(BackupRef {
                id: "ahead".into(),
                time: 120 + month,
            }),
        });
        let s = evaluate(i);
        assert_eq!(
            s.newest_snapshot.as_ref().unwrap().name,
            "autosnap_a_hourly"
        );
        assert_eq!(s.snapshot_age_seconds, Some(20));
        assert_eq!(
            s.future_snapshot.as_ref().unwrap().name,
            "autosnap_ahead_hourly"
        );
        assert_eq!(s.backup_age_seconds, Some(120), "judged from `old`");
        let errors: Vec<&str> = s.problems.iter().map(|p| p.error.as_str()).collect();
        assert_eq!(errors.len(), 3, "{errors:#?}");
        assert!(errors[0].starts_with("the snapshot tank/services/sonarr@autosnap_ahead_hourly is dated 1970-01-31T00:02:00Z, 2592000 s ahead of this host's clock"), "{}", errors[0]);
        assert!(
            errors[1].starts_with("the restic backup ahead of sonarr in b2 is dated"),
            "{}",
            errors[1]
        );
        assert!(
            errors[1].contains("judged from the newest backup not in the future (old)"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].contains("(old, 1970-01-01T00:00:00Z) is 120 s old"),
            "{}",
            errors[2]
        );
        let text = textfile(&[s]);
        for row in [
            "zpersist_status_future_dated_seconds{service=\"sonarr\",dataset=\"tank/services/sonarr\",kind=\"snapshot\"} 2592000",
            "zpersist_status_future_dated_seconds{service=\"sonarr\",dataset=\"tank/services/sonarr\",repository=\"b2\",kind=\"backup\"} 2592000",
            "zpersist_status_backup_age_seconds{service=\"sonarr\",dataset=\"tank/services/sonarr\",repository=\"b2\"} 120",
        ] {
            assert!(text.contains(row), "{row}\n{text}");
        }

        // Only a future point: no age at all, never 0.
        let mut only = inputs(Some(mounted()));
        only.snapshots = vec![SnapshotRef {
            name: "autosnap_ahead_hourly".into(),
            creation: 120 + month,
        }];
        let s = evaluate(only);
        assert_eq!(s.snapshot_age_seconds, None);
        assert!(
            s.problems
                .iter()
                .any(|p| p.error.contains("that is not dated in the future")),
            "{s:?}"
        );

        // A target holding a snapshot dated ahead.
        let mut target = inputs(Some(mounted()));
        target.targets.insert(
            "nas".into(),
            TargetFacts::Reached {
                newest_held: Some(SnapshotRef {
                    name: "a".into(),
                    creation: 100,
                }),
                lag_seconds: Some(0),
                future_snapshot: Some(SnapshotRef {
                    name: "made-there".into(),
                    creation: 120 + month,
                }),
                why_none: None,
                help: None,
            },
        );
        let s = evaluate(target);
        assert_eq!(s.problems.len(), 1, "{s:?}");
        assert!(
            s.problems[0]
                .error
                .starts_with("the snapshot made-there on target nas"),
            "{s:?}"
        );
        assert!(textfile(&[s]).contains("kind=\"replica\",target=\"nas\"} 2592000"));
    }

    /// Issue 22: a sanoid that stopped while syncoid keeps shipping its
    /// sync snapshots (and backups take zpersist's own) is stale: only
    /// the policy's autosnap_* of its periods count.
    #[test]
    fn only_policy_snapshots_count_for_freshness() {
        let hourly = Some(vec!["hourly".to_string(), "daily".to_string()]);
        assert!(is_policy_snapshot(
            "autosnap_2026-12-07_10:00:01_hourly",
            hourly.as_deref()
        ));
        assert!(is_policy_snapshot(
            "autosnap_2026-12-07_00:00:01_daily",
            hourly.as_deref()
        ));
        assert!(!is_policy_snapshot(
            "autosnap_2026-12-07_10:15:00_frequently",
            hourly.as_deref()
        ));
        assert!(is_policy_snapshot(
            "autosnap_2026-12-07_10:15:00_frequently",
            None
        ));
        for name in [
            "syncoid_usb_forge_2026-12-07:10:20:00-GMT00:00",
            "zpersist-restic-20261207T102000Z",
            "zpersist-preseed-1",
            "before-upgrade",
            "autosnap_x_nothourly",
        ] {
            assert!(!is_policy_snapshot(name, hourly.as_deref()), "{name}");
        }
        let mut i = inputs(Some(mounted()));
        i.objectives.snapshot_periods = hourly;
        i.now = 1000;
        i.snapshots.push(SnapshotRef {
            name: "syncoid_usb_forge_2026-12-07:10:20:00-GMT00:00".into(),
            creation: 990,
        });
        i.snapshots.push(SnapshotRef {
            name: "zpersist-restic-20261207T102000Z".into(),
            creation: 995,
        });
        let s = evaluate(i);
        assert_eq!(
            s.newest_snapshot.as_ref().unwrap().name,
            "autosnap_a_hourly"
        );
        assert_eq!(s.snapshot_age_seconds, Some(900));
        assert_eq!(s.problems.len(), 1, "{s:?}");
        assert!(
            s.problems[0].error.starts_with(
                "the newest policy snapshot of tank/services/sonarr (autosnap_a_hourly) is 900 s old (objective: at most 50 s); 2 newer snapshots not taken by the snapshot policy do not count (syncoid_usb_forge_"
            ),
            "{}",
            s.problems[0].error
        );
        let mut only_sync = inputs(Some(mounted()));
        only_sync.snapshots = vec![SnapshotRef {
            name: "syncoid_usb_forge_x".into(),
            creation: 119,
        }];
        let s = evaluate(only_sync);
        assert_eq!(s.snapshot_age_seconds, None);
        assert!(
            s.problems[0]
                .error
                .contains("has no policy snapshot (sanoid's autosnap_*)"),
            "{s:?}"
        );
    }
}
