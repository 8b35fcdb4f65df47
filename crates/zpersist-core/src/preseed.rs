//! Preseed as data: before a service starts, is its data there, and if not,
//! from which restore point does it come back. No I/O: `preseed-restore`
//! gathers the facts (does the mounted dataset hold data, the pool's health,
//! each source's restore points), asks [`decide`], then walks the steps
//! [`next_step`] gives it, journaling each, so a run killed anywhere resumes.
//!
//! The rules (docs/preseed.md):
//! - data present means never restore: `existing`, nothing touched;
//! - empty: the freshest restore point across all sources that holds data
//!   (ties: the order the sources are listed); a point that turns out to
//!   hold no data once received is skipped, never swapped in;
//! - a source that errors fails the run rather than letting an older source
//!   win, unless `allowStaleOnSourceError`;
//! - no source has ever held data: `fresh`, the service starts empty;
//! - a DEGRADED pool restores; FAULTED, UNAVAIL (anything but ONLINE or
//!   DEGRADED) fails.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::contract::{Contract, Diagnostic};
use crate::name::{is_within, name_problem, MAX_NAME_LEN};
use crate::ownership::{mode_problem, owner_problem};
use crate::plan::mountpoint_problem;

pub const PRESEED_VERSION: u64 = 1;

/// Where a restore point may come from, as the NixOS module writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SourceSpec {
    /// A replication target's copy of this dataset: over ssh (pinned host
    /// key) or, with `host` null, a pool on this host.
    Replica(ReplicaSource),
    /// This dataset's own snapshots (any naming: sanoid's `autosnap_*`,
    /// syncoid's sync snapshots, manual ones), never a child's.
    Local(LocalSource),
    /// A restic repository holding backups of the service's data directory.
    Restic(ResticSource),
    /// PostgreSQL's point-in-time recovery archive: the newest base backup
    /// and every archived WAL segment after it (recovery to the last
    /// archived transaction).
    Pitr(PitrSource),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PitrSource {
    /// The PITR contract (`/etc/zpersist/pitr.json`).
    pub contract: String,
    /// Where the cluster's data directory lies below the dataset's root
    /// (`16` for /var/lib/postgresql/16 on a dataset mounted on
    /// /var/lib/postgresql).
    pub data_dir: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicaSource {
    /// The target's name in zpersist.replication.targets.
    pub target: String,
    /// `None`: a local target (a second pool on this host).
    pub host: Option<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub ssh_key: Option<String>,
    #[serde(default)]
    pub known_hosts: Option<String>,
    /// The copy of this dataset on the target.
    pub dataset: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSource {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResticSource {
    /// The repository's name in the module (for provenance and messages).
    pub name: String,
    pub repository: String,
    pub password_file: String,
    /// A file of `NAME=value` lines for the repository's credentials.
    #[serde(default)]
    pub environment_file: Option<String>,
    /// Only snapshots made by this host (`--host`); `None`: any host.
    #[serde(default)]
    pub host: Option<String>,
    /// The backed-up path whose contents become the dataset's root.
    pub path: String,
}

impl SourceSpec {
    /// `replica:nas`, `local`, `restic:b2`: how reports and provenance name it.
    pub fn label(&self) -> String {
        match self {
            SourceSpec::Replica(r) => format!("replica:{}", r.target),
            SourceSpec::Local(_) => "local".into(),
            SourceSpec::Restic(r) => format!("restic:{}", r.name),
            SourceSpec::Pitr(_) => "pitr".into(),
        }
    }
}

/// The contract `preseed-restore --plan FILE` reads: one service's dataset,
/// what it must look like once restored, and its sources in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreseedPlan {
    pub version: u64,
    pub service: String,
    pub dataset: String,
    pub mountpoint: String,
    #[serde(default)]
    pub owner: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    /// Declared properties, set again on a restored dataset (a received
    /// stream brings the source's).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    pub sources: Vec<SourceSpec>,
    #[serde(default)]
    pub allow_stale_on_source_error: bool,
    /// Journal and lock live here (a directory on persistent storage).
    pub state_dir: String,
    /// Bound for each listing and remote call, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u64,
}

fn default_timeout() -> u64 {
    60
}

impl Contract for PreseedPlan {
    const KIND: &'static str = "plan";
    const VERSION: u64 = PRESEED_VERSION;
    const READER: &'static str = "preseed-restore";

    fn problems(&self) -> Vec<Diagnostic> {
        self.rule_problems()
            .into_iter()
            .map(Diagnostic::new)
            .collect()
    }
}

impl PreseedPlan {
    /// Parses and validates the plan's text (the one contract loader,
    /// [`crate::contract::parse`]); every problem, located, as text.
    pub fn parse(text: &str) -> Result<PreseedPlan, Vec<String>> {
        crate::contract::parse::<PreseedPlan>(text)
            .map_err(|problems| problems.iter().map(ToString::to_string).collect())
    }

    fn rule_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(why) = name_problem(&self.dataset) {
            problems.push(format!("dataset `{}`: {why}", crate::shown(&self.dataset)));
        } else if !self.dataset.contains('/') {
            problems.push(format!(
                "dataset `{}` is a pool's root dataset; preseed swaps datasets, so it needs one below the root",
                self.dataset
            ));
        } else if let Some(why) = dataset_length_problem(&self.dataset) {
            problems.push(why);
        }
        if let Some(why) = mountpoint_problem(&self.mountpoint) {
            problems.push(why);
        } else if !self.mountpoint.starts_with('/') {
            problems.push(format!(
                "mountpoint `{}` must be a path: preseed checks the data where the service reads it",
                self.mountpoint
            ));
        }
        problems.extend(self.mode.as_deref().and_then(mode_problem));
        for (field, who) in [("owner", &self.owner), ("group", &self.group)] {
            problems.extend(who.as_deref().and_then(|who| owner_problem(field, who)));
        }
        if self.service.is_empty()
            || !self
                .service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c))
        {
            problems.push(format!(
                "service `{}` must be a unit name's stem (letters, digits, `-_.@`)",
                crate::shown(&self.service)
            ));
        }
        if self.sources.is_empty() {
            problems.push("no sources: list at least one (replica, local or restic)".into());
        }
        if !self.state_dir.starts_with('/') {
            problems.push(format!(
                "stateDir `{}` must be an absolute path",
                self.state_dir
            ));
        }
        if self.timeout_seconds == 0 || self.timeout_seconds > 86_400 {
            problems.push(format!(
                "timeoutSeconds {} must be from 1 to 86400",
                self.timeout_seconds
            ));
        }
        for source in &self.sources {
            match source {
                SourceSpec::Replica(r) => {
                    if let Some(why) = name_problem(&r.dataset) {
                        problems.push(format!(
                            "replica `{}`: dataset `{}`: {why}",
                            r.target,
                            crate::shown(&r.dataset)
                        ));
                    }
                    if r.host.is_none() && is_within(&r.dataset, &self.dataset) {
                        problems.push(format!(
                            "replica `{}`: its dataset {} lies inside {}, the dataset it would restore",
                            r.target, r.dataset, self.dataset
                        ));
                    }
                    if r.host.is_some()
                        && (r.user.is_none() || r.ssh_key.is_none() || r.known_hosts.is_none())
                    {
                        problems.push(format!(
                            "replica `{}` is remote: it needs user, sshKey and knownHosts",
                            r.target
                        ));
                    }
                }
                SourceSpec::Local(_) => {}
                SourceSpec::Pitr(p) => {
                    if !p.contract.starts_with('/') {
                        problems.push(format!(
                            "pitr: contract `{}` must be an absolute path",
                            p.contract
                        ));
                    }
                    if p.data_dir.starts_with('/')
                        || p.data_dir.split('/').any(|c| c == ".." || c.is_empty())
                    {
                        problems.push(format!(
                            "pitr: dataDir `{}` must be a relative path below the dataset's root, like `16`",
                            p.data_dir
                        ));
                    }
                }
                SourceSpec::Restic(r) => {
                    if !r.path.starts_with('/') {
                        problems.push(format!(
                            "restic `{}`: path `{}` must be absolute",
                            r.name, r.path
                        ));
                    }
                    if !r.password_file.starts_with('/') {
                        problems.push(format!(
                            "restic `{}`: passwordFile `{}` must be absolute",
                            r.name, r.password_file
                        ));
                    }
                }
            }
        }
        let mut labels: Vec<String> = self.sources.iter().map(SourceSpec::label).collect();
        labels.sort();
        labels.dedup();
        if labels.len() != self.sources.len() {
            problems.push("a source is listed twice".into());
        }
        problems
    }

    /// The dataset a restore fills before it is swapped in: a sibling, never
    /// mounted where the service looks.
    pub fn sibling(&self) -> String {
        format!("{}{SIBLING_SUFFIX}", self.dataset)
    }

    /// Where the emptied original is kept (zpersist never destroys it).
    pub fn aside(&self, at: i64) -> String {
        format!("{}{ASIDE_SUFFIX}{at}", self.dataset)
    }

    /// Which names a restore would make do not fit ZFS's limit, now that
    /// the snapshots are known: the aside's snapshots (the dataset's own,
    /// `snapshots`, renamed with it) and the sibling's (the point's
    /// snapshot, `point_snapshot`, received into it). Asked before
    /// anything is touched, so that no restore stops half-way on a name.
    pub fn names_too_long(
        &self,
        at: i64,
        snapshots: &[String],
        point_snapshot: Option<&str>,
    ) -> Vec<String> {
        let aside = self.aside(at);
        let sibling = self.sibling();
        snapshots
            .iter()
            .map(|snapshot| format!("{aside}@{snapshot}"))
            .chain(point_snapshot.map(|snapshot| format!("{sibling}@{snapshot}")))
            .filter(|name| name.len() > MAX_NAME_LEN)
            .collect()
    }

    pub fn pool(&self) -> &str {
        crate::name::pool_of(&self.dataset)
    }
}

/// What preseed appends to the dataset's name for its sibling.
pub const SIBLING_SUFFIX: &str = ".zpersist-preseed";
/// What preseed appends, before a unix time, for the emptied original.
pub const ASIDE_SUFFIX: &str = ".zpersist-empty-";
/// Digits of the unix time in an aside's name (10 until the year 2286).
pub const ASIDE_TIME_DIGITS: usize = 10;
/// Room kept for a snapshot's part of a name (`@` and 63 bytes: sanoid's
/// `@autosnap_2026-11-30_10:00:00_frequently`, syncoid's sync snapshots),
/// since the sibling and the aside carry snapshots too.
pub const SNAPSHOT_NAME_ROOM: usize = 64;

/// The longest dataset name preseed takes: its aside's name and a
/// snapshot of it fit ZFS's limit (the sibling's suffix is shorter).
pub const MAX_PRESEED_DATASET_LEN: usize =
    MAX_NAME_LEN - ASIDE_SUFFIX.len() - ASIDE_TIME_DIGITS - SNAPSHOT_NAME_ROOM;

/// Why a dataset's name is too long for preseed's names derived from it.
pub fn dataset_length_problem(dataset: &str) -> Option<String> {
    (dataset.len() > MAX_PRESEED_DATASET_LEN).then(|| {
        format!(
            "dataset `{}` is {} bytes long: preseed names its emptied original `{}{ASIDE_SUFFIX}<unix time>` and its restore `{}{SIBLING_SUFFIX}`, which with their snapshots (`@` and up to {} bytes) must fit ZFS's {MAX_NAME_LEN}; a preseeded dataset's name is at most {MAX_PRESEED_DATASET_LEN} bytes",
            crate::shown(dataset),
            dataset.len(),
            crate::shown(dataset),
            crate::shown(dataset),
            SNAPSHOT_NAME_ROOM - 1,
        )
    })
}

/// One restore point a source offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestorePoint {
    /// Index of the source in the plan.
    pub source: usize,
    /// What provenance records: `replica:nas:backup/forge/services/sonarr@autosnap_...`,
    /// `local:tank/services/sonarr@...`, `restic:b2:1a2b3c4d`.
    pub label: String,
    /// Seconds since the epoch.
    pub created: i64,
    /// The full snapshot name, or the restic snapshot id.
    pub reference: String,
}

/// What asking a source for its restore points gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "answer")]
pub enum SourceAnswer {
    /// Its restore points, any order (which hold data is found once one is
    /// received).
    Points { points: Vec<RestorePoint> },
    /// It could not be asked: unreachable, timed out, refused.
    Failed { error: String },
}

/// A source offering a point dated in the future (`time::in_future` by
/// this host's clock `now`) becomes [`SourceAnswer::Failed`], naming the
/// point: a clock lied when it was made, so how fresh it is cannot be
/// told, and it must never win "freshest" by its date. As for any source
/// that cannot be asked, [`decide`] then fails the run unless
/// `allowStaleOnSourceError` restores from the others.
pub fn refuse_future(answers: Vec<SourceAnswer>, now: i64) -> Vec<SourceAnswer> {
    answers
        .into_iter()
        .map(|answer| match answer {
            SourceAnswer::Points { points } => {
                match points
                    .iter()
                    .filter(|p| crate::time::in_future(p.created, now))
                    .max_by_key(|p| p.created)
                {
                    None => SourceAnswer::Points { points },
                    Some(p) => SourceAnswer::Failed {
                        error: format!(
                            "its point {} is dated {}, {} s ahead of this host's clock ({}): a clock ran ahead when it was made (or this one runs behind), so how fresh its data is cannot be told; check the clocks (`timedatectl status`), and restore by hand (docs/runbooks) if that point is the one to restore",
                            p.label,
                            crate::time::rfc3339(p.created),
                            p.created - now,
                            crate::time::rfc3339(now)
                        ),
                    },
                }
            }
            failed => failed,
        })
        .collect()
}

/// The pool's health, as `zpool list -H -o health` says it.
pub fn health_allows_restore(health: &str) -> bool {
    matches!(health, "ONLINE" | "DEGRADED")
}

/// What to do before the service starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "decision")]
pub enum Decision {
    /// The dataset holds data: record `existing`, touch nothing.
    Existing,
    /// No source has ever held data: record `fresh`; the service starts empty.
    Fresh { warnings: Vec<String> },
    /// Try these, freshest first, until one holds data once received.
    Restore {
        candidates: Vec<RestorePoint>,
        warnings: Vec<String>,
    },
    /// Data is missing and must not be guessed: the service stays down.
    Fail { error: String, help: String },
}

/// Decides from the facts. `health` is asked only when the dataset is
/// empty (`None` when data is present).
pub fn decide(
    holds_data: bool,
    health: Option<&str>,
    sources: &[SourceSpec],
    answers: &[SourceAnswer],
    allow_stale_on_source_error: bool,
) -> Decision {
    if holds_data {
        return Decision::Existing;
    }
    if let Some(health) = health {
        if !health_allows_restore(health) {
            return Decision::Fail {
                error: format!("the pool is {health}: nothing can be restored into it"),
                help: "repair the pool first (`zpool status -x` says what is wrong); the service stays down until then, and its next start tries again".into(),
            };
        }
    }
    let failures: Vec<String> = answers
        .iter()
        .zip(sources)
        .filter_map(|(answer, source)| match answer {
            SourceAnswer::Failed { error } => Some(format!("{}: {error}", source.label())),
            SourceAnswer::Points { .. } => None,
        })
        .collect();
    if !failures.is_empty() && (!allow_stale_on_source_error || failures.len() == answers.len()) {
        let help = if failures.len() == answers.len() {
            "no source answered, so whether data exists anywhere is unknown; fix the sources (the errors above say why), then start the service again"
        } else {
            "a source that did not answer may hold newer data than the others; fix it and start the service again, or set preseed.allowStaleOnSourceError = true to restore from the sources that answered"
        };
        return Decision::Fail {
            error: format!(
                "the dataset is empty and {} of {} source(s) could not be asked: {}",
                failures.len(),
                answers.len(),
                failures.join("; ")
            ),
            help: help.into(),
        };
    }
    let mut candidates: Vec<RestorePoint> = answers
        .iter()
        .filter_map(|answer| match answer {
            SourceAnswer::Points { points } => Some(points.iter().cloned()),
            SourceAnswer::Failed { .. } => None,
        })
        .flatten()
        .collect();
    // Freshest first; on a tie, the source listed first; then by name, so
    // the order never depends on how the sources listed them.
    candidates.sort_by(|a, b| {
        b.created
            .cmp(&a.created)
            .then(a.source.cmp(&b.source))
            .then(b.reference.cmp(&a.reference))
    });
    let warnings = failures
        .into_iter()
        .map(|f| format!("{f} (skipped: allowStaleOnSourceError is set)"))
        .collect();
    if candidates.is_empty() {
        Decision::Fresh { warnings }
    } else {
        Decision::Restore {
            candidates,
            warnings,
        }
    }
}

/// How far a restore has come; written to the journal after each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The candidate is chosen; the sibling may be partly filled.
    Chosen,
    /// The sibling holds the candidate's data and was checked to hold data.
    Filled,
    /// The original (empty) dataset is renamed aside.
    Aside,
    /// The sibling is renamed to the dataset's name.
    SwappedIn,
    /// Properties, mountpoint, ownership set; provenance recorded.
    Done,
}

/// The restore journal (`<stateDir>/<service>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Journal {
    pub version: u64,
    pub dataset: String,
    pub point: RestorePoint,
    pub stage: Stage,
    /// Where the original went (set once it is renamed aside).
    #[serde(default)]
    pub aside: Option<String>,
    /// Points already received and found to hold no data, by label.
    #[serde(default)]
    pub skipped_empty: Vec<String>,
    pub started_at: i64,
    /// The restored root's owner before the ownership fix-up changed
    /// anything (the ids of the host the data came from): recorded first,
    /// so that a run killed mid-way remaps by these, not by a root it
    /// already changed.
    #[serde(default)]
    pub owners_from: Option<OwnerIds>,
    /// A restore by hand over data that was there (`zpersist restore
    /// --replace`): the move aside takes that data (kept, never
    /// destroyed) instead of refusing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub replace: bool,
}

/// A uid and a gid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerIds {
    pub uid: u32,
    pub gid: u32,
}

/// What the pool shows now, for resuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwapFacts {
    pub dataset_exists: bool,
    pub sibling_exists: bool,
    /// The sibling carries preseed's mark with this service's name
    /// ([`PROP_SIBLING`]); any other is never cleared, renamed or used.
    pub sibling_ours: bool,
    /// The sibling holds the chosen point (received snapshot present, or a
    /// completed restic restore marked on it).
    pub sibling_complete: bool,
    pub aside_exists: bool,
}

/// The next step of a restore, from the journal and what the pool shows:
/// a step is redone when its effect is not visible, skipped when it is, so
/// a run killed between any two steps converges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "step")]
pub enum Step {
    /// Fill the sibling from the point (a partial sibling is cleared first).
    Fill { clear_partial: bool },
    /// Mount the sibling privately and check it holds data.
    Verify,
    /// Rename the (empty) dataset aside.
    MoveAside,
    /// Rename the sibling to the dataset's name.
    SwapIn,
    /// Set properties, mountpoint, ownership; record provenance.
    Finish,
    /// The journal and the pool disagree in a way no step repairs.
    Stuck { why: String },
    /// A dataset by the sibling's name exists that is not preseed's own (no
    /// mark, or another service's): nothing is done to it, a person looks.
    NotOurs { dataset: String },
}

pub fn next_step(journal: &Journal, facts: SwapFacts) -> Step {
    if facts.sibling_exists && !facts.sibling_ours {
        return Step::NotOurs {
            dataset: format!("{}{SIBLING_SUFFIX}", journal.dataset),
        };
    }
    match journal.stage {
        Stage::Chosen => {
            if facts.sibling_complete {
                Step::Verify
            } else {
                Step::Fill {
                    clear_partial: facts.sibling_exists,
                }
            }
        }
        Stage::Filled => {
            if !facts.sibling_exists {
                return Step::Stuck {
                    why: format!(
                        "the journal says the sibling was filled, but {}.zpersist-preseed is gone",
                        journal.dataset
                    ),
                };
            }
            if facts.dataset_exists {
                Step::MoveAside
            } else {
                Step::SwapIn
            }
        }
        Stage::Aside => {
            if facts.sibling_exists && !facts.dataset_exists {
                Step::SwapIn
            } else if facts.sibling_exists && facts.dataset_exists {
                // Something (a boot's ensure-datasets) made a new, empty
                // dataset in between: it goes aside too, after a check.
                Step::MoveAside
            } else if !facts.sibling_exists && facts.dataset_exists {
                Step::Finish
            } else {
                Step::Stuck {
                    why: format!("neither {} nor its filled sibling exists", journal.dataset),
                }
            }
        }
        Stage::SwappedIn | Stage::Done => {
            if facts.dataset_exists {
                Step::Finish
            } else {
                Step::Stuck {
                    why: format!(
                        "the journal says the restored data was swapped in, but {} does not exist",
                        journal.dataset
                    ),
                }
            }
        }
    }
}

/// The user properties a run records on the dataset.
pub const PROP_PRESEED: &str = "com.zpersist:preseed";
pub const PROP_SOURCE: &str = "com.zpersist:preseed-source";
pub const PROP_AT: &str = "com.zpersist:preseed-at";
/// Marks a sibling as preseed's own (the only dataset it may clear).
pub const PROP_SIBLING: &str = "com.zpersist:preseed-sibling";
/// Marks an emptied original preseed moved aside (the service's name).
pub const PROP_ASIDE: &str = "com.zpersist:preseed-aside";

/// `zfs list -r -t all -o name,...` of a dataset in preseed's way: what a
/// person runs to see whose it is.
pub fn inspect_command(dataset: &str) -> String {
    format!(
        "zfs list -r -t all -o name,{PROP_SIBLING},{PROP_ASIDE},used,creation {}",
        crate::shown(dataset)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(target: &str) -> SourceSpec {
        SourceSpec::Replica(ReplicaSource {
            target: target.into(),
            host: None,
            port: None,
            user: None,
            ssh_key: None,
            known_hosts: None,
            dataset: format!("{target}pool/forge/sonarr"),
        })
    }

    fn point(source: usize, label: &str, created: i64) -> RestorePoint {
        RestorePoint {
            source,
            label: label.into(),
            created,
            reference: label.into(),
        }
    }

    fn points(list: &[RestorePoint]) -> SourceAnswer {
        SourceAnswer::Points {
            points: list.to_vec(),
        }
    }

    #[test]
    fn a_point_dated_in_the_future_never_wins_and_fails_its_source() {
        let now = 1_000_000;
        let month = 30 * 86_400;
        let answers = refuse_future(
            vec![
                points(&[point(0, "replica:nas:x@a", now - 100)]),
                points(&[
                    point(1, "local:x@old", now - 50),
                    point(1, "local:x@ahead", now + month),
                ]),
            ],
            now,
        );
        assert_eq!(
            answers[0],
            points(&[point(0, "replica:nas:x@a", now - 100)])
        );
        let SourceAnswer::Failed { error } = &answers[1] else {
            panic!("{answers:?}");
        };
        assert!(
            error.starts_with(
                "its point local:x@ahead is dated 1970-02-11T13:46:40Z, 2592000 s ahead"
            ),
            "{error}"
        );
        let sources = [replica("nas"), SourceSpec::Local(LocalSource {})];
        assert!(matches!(
            decide(false, Some("ONLINE"), &sources, &answers, false),
            Decision::Fail { .. }
        ));
        // With the opt-in, the other sources restore; the future one never wins.
        let Decision::Restore { candidates, .. } =
            decide(false, Some("ONLINE"), &sources, &answers, true)
        else {
            panic!()
        };
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].label, "replica:nas:x@a");
    }

    #[test]
    fn data_present_is_never_restored() {
        let sources = [replica("nas")];
        let answers = [points(&[point(0, "a", 10)])];
        assert_eq!(
            decide(true, None, &sources, &answers, false),
            Decision::Existing
        );
    }

    #[test]
    fn the_freshest_point_across_sources_wins_and_ties_go_to_the_source_listed_first() {
        let sources = [
            replica("nas"),
            SourceSpec::Local(LocalSource {}),
            replica("usb"),
        ];
        let answers = [
            points(&[point(0, "nas-old", 10), point(0, "nas-new", 30)]),
            points(&[point(1, "local", 30)]),
            points(&[point(2, "usb", 20)]),
        ];
        let Decision::Restore { candidates, .. } =
            decide(false, Some("ONLINE"), &sources, &answers, false)
        else {
            panic!()
        };
        let order: Vec<&str> = candidates.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(order, ["nas-new", "local", "usb", "nas-old"]);
    }

    #[test]
    fn a_source_that_fails_fails_the_run_unless_stale_restores_are_allowed() {
        let sources = [replica("nas"), SourceSpec::Local(LocalSource {})];
        let answers = [
            SourceAnswer::Failed {
                error: "ssh timed out".into(),
            },
            points(&[point(1, "local", 5)]),
        ];
        let Decision::Fail { error, help } =
            decide(false, Some("ONLINE"), &sources, &answers, false)
        else {
            panic!()
        };
        assert!(error.contains("replica:nas: ssh timed out"), "{error}");
        assert!(help.contains("allowStaleOnSourceError"), "{help}");
        let Decision::Restore {
            candidates,
            warnings,
        } = decide(false, Some("ONLINE"), &sources, &answers, true)
        else {
            panic!()
        };
        assert_eq!(candidates[0].label, "local");
        assert!(warnings[0].contains("replica:nas"), "{warnings:?}");
    }

    #[test]
    fn every_source_failing_is_a_failure_even_with_the_opt_in() {
        let sources = [replica("nas")];
        let answers = [SourceAnswer::Failed {
            error: "refused".into(),
        }];
        assert!(matches!(
            decide(false, Some("ONLINE"), &sources, &answers, true),
            Decision::Fail { .. }
        ));
    }

    #[test]
    fn nothing_anywhere_is_fresh() {
        let sources = [replica("nas"), SourceSpec::Local(LocalSource {})];
        let answers = [points(&[]), points(&[])];
        assert_eq!(
            decide(false, Some("ONLINE"), &sources, &answers, false),
            Decision::Fresh { warnings: vec![] }
        );
    }

    #[test]
    fn a_degraded_pool_restores_a_faulted_one_does_not() {
        let sources = [SourceSpec::Local(LocalSource {})];
        let answers = [points(&[point(0, "local", 5)])];
        assert!(matches!(
            decide(false, Some("DEGRADED"), &sources, &answers, false),
            Decision::Restore { .. }
        ));
        for health in ["FAULTED", "UNAVAIL", "SUSPENDED"] {
            let Decision::Fail { error, .. } =
                decide(false, Some(health), &sources, &answers, false)
            else {
                panic!("{health}")
            };
            assert!(error.contains(health));
        }
    }

    fn journal(stage: Stage) -> Journal {
        Journal {
            version: 1,
            dataset: "tank/s".into(),
            point: point(0, "p", 1),
            stage,
            aside: None,
            skipped_empty: vec![],
            started_at: 0,
            owners_from: None,
            replace: false,
        }
    }

    fn facts(dataset: bool, sibling: bool, complete: bool) -> SwapFacts {
        SwapFacts {
            dataset_exists: dataset,
            sibling_exists: sibling,
            sibling_ours: sibling,
            sibling_complete: complete,
            aside_exists: false,
        }
    }

    /// Killed between any two steps, the next run picks up where the pool is.
    #[test]
    fn every_stage_resumes_from_what_the_pool_shows() {
        let table = [
            (
                Stage::Chosen,
                facts(true, false, false),
                Step::Fill {
                    clear_partial: false,
                },
            ),
            (
                Stage::Chosen,
                facts(true, true, false),
                Step::Fill {
                    clear_partial: true,
                },
            ),
            (Stage::Chosen, facts(true, true, true), Step::Verify),
            (Stage::Filled, facts(true, true, true), Step::MoveAside),
            (Stage::Filled, facts(false, true, true), Step::SwapIn),
            (Stage::Aside, facts(false, true, true), Step::SwapIn),
            (Stage::Aside, facts(true, true, true), Step::MoveAside),
            (Stage::Aside, facts(true, false, false), Step::Finish),
            (Stage::SwappedIn, facts(true, false, false), Step::Finish),
        ];
        for (stage, facts, step) in table {
            assert_eq!(
                next_step(&journal(stage), facts),
                step,
                "{stage:?} {facts:?}"
            );
        }
        assert!(matches!(
            next_step(&journal(Stage::Aside), facts(false, false, false)),
            Step::Stuck { .. }
        ));
    }

    /// A dataset by the sibling's name without preseed's mark (a user's
    /// own, `-` included) is never cleared, renamed or swapped in, at
    /// whatever stage.
    #[test]
    fn a_sibling_that_is_not_ours_stops_every_stage() {
        for stage in [Stage::Chosen, Stage::Filled, Stage::Aside, Stage::SwappedIn] {
            let foreign = SwapFacts {
                sibling_ours: false,
                ..facts(true, true, false)
            };
            assert_eq!(
                next_step(&journal(stage), foreign),
                Step::NotOurs {
                    dataset: "tank/s.zpersist-preseed".into()
                },
                "{stage:?}"
            );
        }
    }

    /// A dataset whose aside name and a snapshot of it would not fit is
    /// refused when the plan is checked; the longest accepted one fits,
    /// and at run time the snapshots really there are checked too.
    #[test]
    fn names_preseed_derives_always_fit_zfs_s_limit() {
        let plan = |dataset: String| {
            let text = json_plan(&dataset);
            PreseedPlan::parse(&text)
        };
        let longest = format!("tank/{}", "a".repeat(MAX_PRESEED_DATASET_LEN - 5));
        let plan_ok = plan(longest.clone()).expect("the longest accepted name");
        let aside = plan_ok.aside(9_999_999_999);
        let sibling = plan_ok.sibling();
        assert!(aside.len() + SNAPSHOT_NAME_ROOM <= MAX_NAME_LEN, "{aside}");
        assert!(
            sibling.len() + SNAPSHOT_NAME_ROOM <= MAX_NAME_LEN,
            "{sibling}"
        );
        let problems = plan(format!("{longest}a")).unwrap_err();
        assert!(problems[0].contains("at most 165 bytes"), "{problems:?}");
        let fits = "autosnap_2026-11-30_10:00:00_frequently".to_string();
        assert!(plan_ok
            .names_too_long(9_999_999_999, std::slice::from_ref(&fits), Some(&fits))
            .is_empty());
        let long = "s".repeat(80);
        assert_eq!(
            plan_ok
                .names_too_long(9_999_999_999, std::slice::from_ref(&long), Some(&long))
                .len(),
            2
        );
    }

    fn json_plan(dataset: &str) -> String {
        serde_json::json!({
            "version": 1, "service": "sonarr", "dataset": dataset,
            "mountpoint": "/var/lib/sonarr", "sources": [{ "local": {} }],
            "stateDir": "/var/lib/zpersist/preseed",
        })
        .to_string()
    }

    #[test]
    fn a_plan_is_validated_with_every_problem_named() {
        let text = r#"{"version":1,"service":"sonarr","dataset":"tank","mountpoint":"relative",
            "mode":"999","sources":[],"stateDir":"var/lib","timeoutSeconds":0}"#;
        let problems = PreseedPlan::parse(text).unwrap_err();
        insta::assert_debug_snapshot!(problems);
        let dup = r#"{"version":1,"version":1}"#;
        assert!(PreseedPlan::parse(dup).unwrap_err()[0].contains("given twice"));
    }
}
