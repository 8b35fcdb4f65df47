//! Moving a service's existing directory into its own dataset
//! (`migrate-to-dataset`, docs/migration.md): what to migrate, the journal
//! of completed stages, and which step comes next given the journal and the
//! real state. Pure: the binary observes, decides here, and acts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::contract::services::{ServiceEntry, ServicesFile, SERVICES_VERSION};
pub use crate::facts::{DatasetState, PathState, TreeSummary};
use crate::facts::{Mount, ProcessUse, UnitState};
use crate::name::{depth_of, name_problem};
pub use crate::ownership::parse_mode;
use crate::ownership::{mode_problem, owner_problem};
use crate::property::{property_name_problem, value_problem};
use crate::steps::StepJournal;

pub const JOURNAL_VERSION: u64 = 1;

/// What one migration moves where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationTarget {
    pub dataset: String,
    /// The service's directory, which becomes the dataset's mountpoint.
    pub path: String,
    /// systemd units that must not be running.
    pub units: Vec<String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub mode: Option<String>,
    /// Given to `zfs create`.
    pub properties: BTreeMap<String, String>,
}

/// Suffixes of the sibling paths a migration uses next to the directory.
pub const TEMPORARY_SUFFIX: &str = ".zpersist-new";
pub const ASIDE_SUFFIX: &str = ".zpersist-old";
pub const DELETING_SUFFIX: &str = ".zpersist-deleting";
pub const JOURNAL_SUFFIX: &str = ".zpersist-migration.json";

impl MigrationTarget {
    /// Where the new dataset is mounted while the data is copied.
    pub fn temporary(&self) -> String {
        format!("{}{TEMPORARY_SUFFIX}", self.path)
    }

    /// Where the original directory is kept until `--cleanup`.
    pub fn aside(&self) -> String {
        format!("{}{ASIDE_SUFFIX}", self.path)
    }

    /// Where `--cleanup` moves the verified original to remove it: only a
    /// cleanup that recorded its start puts anything there, so what is left
    /// after an interruption is known to be removable.
    pub fn deleting(&self) -> String {
        format!("{}{DELETING_SUFFIX}", self.path)
    }

    pub fn journal(&self) -> String {
        format!("{}{JOURNAL_SUFFIX}", self.path)
    }

    /// Everything ZFS or the migration would refuse, before anything runs.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(problem) = name_problem(&self.dataset) {
            problems.push(format!("dataset `{}`: {problem}", self.dataset));
        } else if depth_of(&self.dataset) == 0 {
            problems.push(format!(
                "dataset `{}` is a pool's root dataset; migrate into a dataset below it (e.g. `{}/services/NAME`)",
                self.dataset, self.dataset
            ));
        }
        if let Some(problem) = path_problem(&self.path) {
            problems.push(format!("path `{}`: {problem}", self.path));
        }
        for unit in &self.units {
            if unit.is_empty() || unit.contains(['/', '\n', '\0']) || unit.starts_with('-') {
                problems.push(format!("unit `{unit}` is not a systemd unit name"));
            }
        }
        for (property, value) in &self.properties {
            if let Some(problem) = property_name_problem(property) {
                problems.push(format!("property `{property}`: {problem}"));
            } else if let Some(problem) = value_problem(property, value) {
                problems.push(format!("property `{property}={value}`: {problem}"));
            }
        }
        problems.extend(self.mode.as_deref().and_then(mode_problem));
        for (what, name) in [("user", &self.user), ("group", &self.group)] {
            problems.extend(name.as_deref().and_then(|name| owner_problem(what, name)));
        }
        problems
    }
}

/// Why a directory path cannot be migrated, if it cannot.
pub fn path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some("must be an absolute path".into());
    }
    if path == "/" {
        return Some("the root directory cannot be migrated".into());
    }
    if path.ends_with('/') {
        return Some("must not end with `/`".into());
    }
    if path.contains(['\n', '\0', '\t']) {
        return Some("must not contain newlines, tabs or NUL".into());
    }
    if path[1..]
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Some("must be normalised (no `//`, `.` or `..`)".into());
    }
    if [TEMPORARY_SUFFIX, ASIDE_SUFFIX, DELETING_SUFFIX]
        .iter()
        .any(|suffix| path.ends_with(suffix))
    {
        return Some("is one of the migration's own working directories".into());
    }
    None
}

/// The stages of a migration, in order; the journal records the last one
/// completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// Preflight passed; the journal exists.
    Started,
    /// The dataset exists, mounted at the temporary path.
    Created,
    /// rsync finished.
    Copied,
    /// Both trees compared equal.
    Verified,
    /// The original directory is at the aside path.
    MovedAside,
    /// The dataset is mounted at the real path.
    Mounted,
    /// The mounted data compared equal to what was verified.
    Done,
}

/// The work between two stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    Create,
    Copy,
    Verify,
    MoveAside,
    Mount,
    VerifyMounted,
}

impl Step {
    pub const ALL: [Step; 6] = [
        Step::Create,
        Step::Copy,
        Step::Verify,
        Step::MoveAside,
        Step::Mount,
        Step::VerifyMounted,
    ];

    /// The stage this step completes.
    pub fn completes(self) -> Stage {
        match self {
            Step::Create => Stage::Created,
            Step::Copy => Stage::Copied,
            Step::Verify => Stage::Verified,
            Step::MoveAside => Stage::MovedAside,
            Step::Mount => Stage::Mounted,
            Step::VerifyMounted => Stage::Done,
        }
    }

    /// The name used in reports and failpoints.
    pub fn name(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Copy => "copy",
            Step::Verify => "verify",
            Step::MoveAside => "move-aside",
            Step::Mount => "mount",
            Step::VerifyMounted => "verify-mounted",
        }
    }

    /// The steps from this one to the end.
    pub fn remaining(self) -> &'static [Step] {
        let at = Step::ALL.iter().position(|s| *s == self).unwrap_or(0);
        &Step::ALL[at..]
    }
}

impl Stage {
    /// The step that follows this stage, or `None` when done.
    pub fn next_step(self) -> Option<Step> {
        match self {
            Stage::Started => Some(Step::Create),
            Stage::Created => Some(Step::Copy),
            Stage::Copied => Some(Step::Verify),
            Stage::Verified => Some(Step::MoveAside),
            Stage::MovedAside => Some(Step::Mount),
            Stage::Mounted => Some(Step::VerifyMounted),
            Stage::Done => None,
        }
    }
}

/// The migration's state file (`PATH.zpersist-migration.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journal {
    pub version: u64,
    pub dataset: String,
    pub path: String,
    /// The last stage completed.
    pub stage: Stage,
    /// The tree that was verified identical on both sides.
    #[serde(default)]
    pub verified: Option<TreeSummary>,
    /// When each stage was reached (seconds since the epoch).
    #[serde(default)]
    pub history: Vec<(Stage, u64)>,
    /// When `--cleanup` verified the original once more and began to remove
    /// it (seconds since the epoch); absent until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup_started: Option<u64>,
}

impl Journal {
    pub fn new(target: &MigrationTarget, now: u64) -> Journal {
        Journal {
            version: JOURNAL_VERSION,
            dataset: target.dataset.clone(),
            path: target.path.clone(),
            stage: Stage::Started,
            verified: None,
            history: vec![(Stage::Started, now)],
            cleanup_started: None,
        }
    }

    pub fn reach(&mut self, stage: Stage, now: u64) {
        self.stage = stage;
        self.history.push((stage, now));
    }
}

impl StepJournal for Journal {
    type Step = Step;

    fn step_name(step: Step) -> &'static str {
        step.name()
    }

    fn step_after(step: Step) -> Option<Step> {
        step.completes().next_step()
    }

    fn record(&mut self, step: Step, now: u64) {
        self.reach(step.completes(), now);
    }

    fn resumes_at(&self) -> Option<Step> {
        self.stage.next_step()
    }
}

/// The real state the decision rests on: the journal can be one step
/// behind it after a crash between an action and the journal write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationFacts {
    pub dataset: Option<DatasetState>,
    pub path: PathState,
    pub temporary: PathState,
    pub aside: PathState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// The dataset is the path's mountpoint and no migration is under way.
    AlreadyMigrated { mounted: bool, aside_kept: bool },
    /// Run from `from` on; `stage` is the last stage already complete.
    Run { stage: Stage, from: Step },
    /// Touch nothing: a person must look.
    Refuse { problem: String, help: String },
}

fn refuse(problem: impl Into<String>, help: impl Into<String>) -> Decision {
    Decision::Refuse {
        problem: problem.into(),
        help: help.into(),
    }
}

/// Where to resume, from the journal (if any) and what is really there.
pub fn decide(
    target: &MigrationTarget,
    journal: Option<&Journal>,
    facts: &MigrationFacts,
) -> Decision {
    let (dataset, path, temporary, aside) = (
        &target.dataset,
        &target.path,
        target.temporary(),
        target.aside(),
    );
    let journal_file = target.journal();
    let Some(journal) = journal else {
        return match &facts.dataset {
            Some(ds) if ds.mountpoint == *path => Decision::AlreadyMigrated {
                mounted: ds.mounted,
                aside_kept: facts.aside != PathState::Missing,
            },
            Some(ds) => refuse(
                format!("dataset {dataset} exists already (mountpoint {}); a migration creates its own dataset and never takes over an existing one", ds.mountpoint),
                format!("choose a dataset that does not exist yet; if {dataset} is empty and was made for this, remove it yourself (`zfs destroy {dataset}`) and run again"),
            ),
            None if facts.aside != PathState::Missing => refuse(
                format!("{aside} exists, but there is no migration journal ({journal_file})"),
                format!("it looks like the leftover of an earlier migration; check its contents and move it away before migrating {path}"),
            ),
            None if facts.path == PathState::Missing => refuse(
                format!("{path} does not exist: there is nothing to migrate"),
                "a new service needs no migration: zpersist-datasets creates its dataset (ensure-datasets)",
            ),
            None if !facts.path.is_dir() => refuse(
                format!("{path} is not a directory (a file or a symlink)"),
                "migrate the directory itself: give its real path",
            ),
            None if !matches!(facts.temporary, PathState::Missing | PathState::EmptyDir) => refuse(
                format!("{temporary} exists and is not an empty directory; the new dataset is mounted there while copying"),
                format!("move {temporary} away, then run again"),
            ),
            None => Decision::Run {
                stage: Stage::Started,
                from: Step::Create,
            },
        };
    };
    if journal.dataset != *dataset || journal.path != *path {
        return refuse(
            format!(
                "{journal_file} belongs to a migration of {} into {}, not into {dataset}",
                journal.path, journal.dataset
            ),
            format!(
                "finish that migration (run migrate-to-dataset with --dataset {}), or remove the journal if it is abandoned",
                journal.dataset
            ),
        );
    }
    if journal.stage == Stage::Done {
        return match &facts.dataset {
            Some(ds) if ds.mountpoint == *path => Decision::AlreadyMigrated {
                mounted: ds.mounted,
                aside_kept: facts.aside != PathState::Missing,
            },
            _ => refuse(
                format!("the journal says {path} was migrated into {dataset}, but that dataset is not mounted there any more"),
                format!("check `zfs get mountpoint {dataset}`; the original data is kept at {aside} until --cleanup"),
            ),
        };
    }
    let Some(ds) = &facts.dataset else {
        if journal.stage == Stage::Started {
            return Decision::Run {
                stage: Stage::Started,
                from: Step::Create,
            };
        }
        return refuse(
            format!("dataset {dataset} no longer exists, though this migration created it"),
            format!("the original data is untouched (at {path} or {aside}); look at what happened, then remove {journal_file} to start over"),
        );
    };
    // What the real state proves done, whatever the journal managed to record.
    let by_state = if ds.mountpoint == *path {
        if ds.mounted {
            Stage::Mounted
        } else {
            Stage::MovedAside
        }
    } else if facts.aside.is_dir() && matches!(facts.path, PathState::Missing | PathState::EmptyDir)
    {
        Stage::MovedAside
    } else {
        Stage::Created
    };
    let stage = journal.stage.max(by_state);
    if stage < Stage::MovedAside {
        if ds.mountpoint != temporary {
            return refuse(
                format!("dataset {dataset} is mounted at {}, not at {temporary} where this migration put it", ds.mountpoint),
                format!("set it back with `zfs set mountpoint={temporary} {dataset}`, then run again"),
            );
        }
        if !facts.path.is_dir() {
            return refuse(
                format!("{path} is gone, but the journal says the data was not moved aside yet"),
                format!("look for the data; the copy so far is in {dataset} at {temporary}"),
            );
        }
        if facts.aside != PathState::Missing {
            return refuse(
                format!("{aside} exists before this migration moved anything there"),
                format!("move {aside} away (it is not this migration's), then run again"),
            );
        }
    } else {
        if !facts.aside.is_dir() {
            return refuse(
                format!("the original data should be at {aside}, but it is not there"),
                format!("look for it before anything else; {dataset} holds the verified copy"),
            );
        }
        if stage == Stage::MovedAside
            && facts.path == PathState::NonEmptyDir
            && ds.mountpoint != *path
        {
            return refuse(
                format!("{path} holds new files written after the original data was moved aside"),
                format!("a service probably started; stop it, move what it wrote out of {path}, and run again"),
            );
        }
        if journal.verified.is_none() {
            return refuse(
                format!("the journal {journal_file} has no record of a verified copy"),
                format!("the original data is at {aside}; the journal was edited or damaged"),
            );
        }
    }
    match stage.next_step() {
        Some(from) => Decision::Run { stage, from },
        None => Decision::AlreadyMigrated {
            mounted: ds.mounted,
            aside_kept: facts.aside != PathState::Missing,
        },
    }
}

/// A refusal and what to do about it.
pub type Refusal = (String, String);

/// Refusals that hold for any step: a declared unit running (`units`, as
/// systemd answered for each), a process using the directory or the
/// migration's own siblings (`users`). The notes say when systemd did not
/// answer and the process scan decided alone.
pub fn in_use_problems(
    target: &MigrationTarget,
    units: &[(String, UnitState)],
    users: &[ProcessUse],
) -> (Vec<Refusal>, Vec<String>) {
    let mut problems = Vec::new();
    let mut systemd_unreachable = None;
    for (unit, state) in units {
        match state {
            UnitState::Running(state) => problems.push((
                format!("{unit} is {state}"),
                format!("stop it first (`systemctl stop {unit}`), then run again"),
            )),
            UnitState::Stopped(_) => {}
            UnitState::Unknown(why) => systemd_unreachable = Some(why),
        }
    }
    let notes = systemd_unreachable
        .map(|why| format!("systemd did not answer ({why}); relying on the process scan alone"))
        .into_iter()
        .collect();
    if !users.is_empty() {
        let list: Vec<String> = users
            .iter()
            .take(10)
            .map(|u| format!("pid {} ({}): {}", u.pid, u.command, u.what))
            .collect();
        problems.push((
            format!(
                "{} process(es) use {}:\n    {}",
                users.len(),
                target.path,
                list.join("\n    ")
            ),
            "stop the service (and anything else using the directory), then run again".into(),
        ));
    }
    (problems, notes)
}

/// Refusals for filesystems mounted at the directory or inside it
/// (`mounts`: those at or below `resolved`, the directory as /proc shows
/// it). The help never says to unmount: that would hide the mount's files,
/// or destroy them (tmpfs). The data has to be copied off the mount first,
/// or the mount kept (and moved by its configuration, when its files are
/// on a disk).
pub fn mount_problems(path: &str, resolved: &str, mounts: &[Mount]) -> Vec<Refusal> {
    let (at, inside): (Vec<&Mount>, Vec<&Mount>) = mounts
        .iter()
        .partition(|mount| mount.mountpoint == resolved);
    let in_memory = |mounts: &[&Mount]| {
        mounts.iter().find(|m| m.is_volatile()).map(|m| {
            format!(
                "a {} keeps its files in memory only, and an unmount or a reboot loses them: ",
                m.fstype
            )
        })
    };
    let mut problems = Vec::new();
    // A directory mounted over more than once shows the top mount.
    if let Some(mount) = at.last() {
        let (fstype, source) = (&mount.fstype, &mount.source);
        let what = mount.describe();
        let name = path
            .rsplit('/')
            .next()
            .filter(|n| !n.is_empty())
            .unwrap_or("data");
        problems.push((
            format!(
                "{path} is itself a mount of {what}: a migration renames the directory aside and mounts the dataset in its place, which a mount point does not allow, and the files are that filesystem's"
            ),
            format!(
                "{}copy the data off that mount first, with the service stopped (e.g. `cp -a {path}/. /var/tmp/{name}-copy/`); once the copy is complete, stop mounting {fstype} at {path} (fstab, a .mount unit, the service's own settings), put the copy at {path} as a plain directory and run again{}; or keep the data on that mount and do not migrate {path}",
                in_memory(&at).unwrap_or_else(|| format!("its files live on {source}, not in the directory: ")),
                if mount.is_volatile() {
                    String::new()
                } else {
                    format!(" (or mount it elsewhere instead: its files stay on {source})")
                }
            ),
        ));
    }
    if !inside.is_empty() {
        let list: Vec<String> = inside
            .iter()
            .map(|m| {
                format!(
                    "{} is a mount of {} inside {path}",
                    m.mountpoint,
                    m.describe()
                )
            })
            .collect();
        let volatile = in_memory(&inside);
        problems.push((
            format!(
                "{}: a migration copies {path}'s own filesystem only, so the files on {} would not come along",
                list.join("; "),
                if inside.len() == 1 { "it" } else { "them" }
            ),
            format!(
                "{}copy the files of each mount that belong in the dataset off it into a plain directory inside {path} first (with the service stopped), and stop mounting it there; a mount whose files should stay on their own filesystem can be mounted outside {path} during the migration and at its place again afterwards{}; then run again",
                volatile.clone().unwrap_or_default(),
                if volatile.is_some() {
                    " (not a tmpfs: mounted again, it starts empty)"
                } else {
                    ""
                }
            ),
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> MigrationTarget {
        MigrationTarget {
            dataset: "tank/services/sonarr".into(),
            path: "/var/lib/sonarr".into(),
            units: vec!["sonarr.service".into()],
            user: None,
            group: None,
            mode: None,
            properties: BTreeMap::new(),
        }
    }

    fn facts(dataset: Option<(&str, bool)>, path: PathState, aside: PathState) -> MigrationFacts {
        MigrationFacts {
            dataset: dataset.map(|(mountpoint, mounted)| DatasetState {
                mountpoint: mountpoint.into(),
                mounted,
            }),
            path,
            temporary: PathState::Missing,
            aside,
        }
    }

    fn journal(stage: Stage) -> Journal {
        let mut j = Journal::new(&target(), 0);
        j.stage = stage;
        if stage >= Stage::Verified {
            j.verified = Some(TreeSummary {
                entries: 1,
                files: 0,
                bytes: 0,
                digest: "x".into(),
            });
        }
        j
    }

    const NEW: &str = "/var/lib/sonarr.zpersist-new";
    const REAL: &str = "/var/lib/sonarr";
    use PathState::*;

    #[test]
    fn a_fresh_directory_starts_at_create() {
        let d = decide(&target(), None, &facts(None, NonEmptyDir, Missing));
        assert_eq!(
            d,
            Decision::Run {
                stage: Stage::Started,
                from: Step::Create
            }
        );
    }

    #[test]
    fn a_dataset_at_the_path_without_journal_is_already_migrated() {
        let d = decide(
            &target(),
            None,
            &facts(Some((REAL, true)), NonEmptyDir, Missing),
        );
        assert_eq!(
            d,
            Decision::AlreadyMigrated {
                mounted: true,
                aside_kept: false
            }
        );
    }

    #[test]
    fn an_existing_dataset_elsewhere_is_never_taken_over() {
        let d = decide(
            &target(),
            None,
            &facts(Some(("/x", true)), NonEmptyDir, Missing),
        );
        assert!(matches!(d, Decision::Refuse { .. }), "{d:?}");
    }

    #[test]
    fn the_real_state_moves_past_a_stale_journal() {
        // Crash after `zfs create`, before the journal said so.
        let d = decide(
            &target(),
            Some(&journal(Stage::Started)),
            &facts(Some((NEW, true)), NonEmptyDir, Missing),
        );
        assert_eq!(
            d,
            Decision::Run {
                stage: Stage::Created,
                from: Step::Copy
            }
        );
        // Crash after the rename, before the journal said so.
        let d = decide(
            &target(),
            Some(&journal(Stage::Verified)),
            &facts(Some((NEW, true)), Missing, NonEmptyDir),
        );
        assert_eq!(
            d,
            Decision::Run {
                stage: Stage::MovedAside,
                from: Step::Mount
            }
        );
        // Crash after `zfs set mountpoint`, before the journal said so.
        let d = decide(
            &target(),
            Some(&journal(Stage::MovedAside)),
            &facts(Some((REAL, true)), NonEmptyDir, NonEmptyDir),
        );
        assert_eq!(
            d,
            Decision::Run {
                stage: Stage::Mounted,
                from: Step::VerifyMounted
            }
        );
    }

    #[test]
    fn copy_and_verify_are_redone_unless_journaled() {
        let d = decide(
            &target(),
            Some(&journal(Stage::Copied)),
            &facts(Some((NEW, true)), NonEmptyDir, Missing),
        );
        assert_eq!(
            d,
            Decision::Run {
                stage: Stage::Copied,
                from: Step::Verify
            }
        );
    }

    #[test]
    fn a_lost_original_or_a_vanished_dataset_stops_everything() {
        let d = decide(
            &target(),
            Some(&journal(Stage::MovedAside)),
            &facts(Some((NEW, true)), Missing, Missing),
        );
        assert!(matches!(d, Decision::Refuse { .. }), "{d:?}");
        let d = decide(
            &target(),
            Some(&journal(Stage::Copied)),
            &facts(None, NonEmptyDir, Missing),
        );
        assert!(matches!(d, Decision::Refuse { .. }), "{d:?}");
    }

    #[test]
    fn new_files_at_the_path_after_moving_aside_are_refused() {
        let d = decide(
            &target(),
            Some(&journal(Stage::MovedAside)),
            &facts(Some((NEW, true)), NonEmptyDir, NonEmptyDir),
        );
        assert!(matches!(d, Decision::Refuse { .. }), "{d:?}");
    }

    #[test]
    fn paths_must_be_plain_absolute_directories() {
        for bad in [
            "",
            "/",
            "var/lib",
            "/var/lib/",
            "/var//lib",
            "/var/../x",
            "/x.zpersist-old",
            "/x.zpersist-deleting",
        ] {
            assert!(path_problem(bad).is_some(), "{bad:?}");
        }
        assert_eq!(path_problem("/var/lib/Séries TV"), None);
    }

    #[test]
    fn a_running_unit_or_a_process_inside_refuses_and_a_silent_systemd_is_noted() {
        let units = [
            (
                "sonarr.service".to_string(),
                UnitState::Running("active".into()),
            ),
            (
                "other.service".to_string(),
                UnitState::Unknown("not PID 1".into()),
            ),
        ];
        let users = [ProcessUse {
            pid: 42,
            command: "sqlite3".into(),
            what: "fd 3 /var/lib/sonarr/sonarr.db".into(),
        }];
        let (problems, notes) = in_use_problems(&target(), &units, &users);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].0, "sonarr.service is active");
        assert!(
            problems[1].0.contains("pid 42 (sqlite3): fd 3"),
            "{problems:?}"
        );
        assert_eq!(notes.len(), 1);
        assert!(notes[0].contains("not PID 1"));
        let stopped = [(
            "sonarr.service".to_string(),
            UnitState::Stopped("inactive".into()),
        )];
        assert_eq!(in_use_problems(&target(), &stopped, &[]), (vec![], vec![]));
    }

    #[test]
    fn mounts_at_or_inside_are_refused_never_with_unmount_advice() {
        let tmpfs = |at: &str| Mount {
            mountpoint: at.into(),
            fstype: "tmpfs".into(),
            source: "state".into(),
            root: "/".into(),
            device: "0:99".into(),
        };
        let problems = mount_problems(REAL, REAL, &[tmpfs(REAL), tmpfs("/var/lib/sonarr/cache")]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0]
            .0
            .contains("is itself a mount of tmpfs from state"));
        assert!(problems[0].1.contains("in memory"));
        assert!(problems[1]
            .0
            .contains("/var/lib/sonarr/cache is a mount of tmpfs"));
        for (_, help) in &problems {
            assert!(
                !help.contains("unmount it") && !help.contains("`umount"),
                "{help}"
            );
        }
        assert!(mount_problems(REAL, REAL, &[]).is_empty());
    }
}
