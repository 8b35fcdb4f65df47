//! The datasets plan file (`docs/plan-format.md`): parsing and validation.
//! A plan that passes [`Plan::parse`] holds nothing ZFS would refuse.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::contract::{self, Contract, Diagnostic};
use crate::name::{depth_of, is_within, name_problem, parent_of};
pub use crate::ownership::parse_mode;
use crate::ownership::{mode_problem, owner_problem};
use crate::property::{property_name_problem, value_problem};

pub const PLAN_VERSION: u64 = 1;

/// The values of the `canmount` field.
pub const CANMOUNT_VALUES: [&str; 3] = ["on", "off", "noauto"];

/// The `canmount` of a dataset that is never mounted, and so may share its
/// path with another dataset (a parent whose child mounts where it would).
pub const CANMOUNT_NEVER: &str = "off";

/// The mountpoints that are not a path.
pub const MOUNTPOINT_KEYWORDS: [&str; 2] = [Mountpoint::NONE, Mountpoint::LEGACY];

/// Components a mountpoint may not hold: refused, not resolved.
pub const MOUNTPOINT_RESERVED_COMPONENTS: [&str; 2] = [".", ".."];

/// Longest mountpoint, in bytes (PATH_MAX is 4096 with the NUL).
pub const MAX_MOUNTPOINT_LEN: usize = 4095;

pub use crate::ownership::{is_owner_name, MODE_DIGITS, OWNER_FORBIDDEN_CHARS};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    pub version: u64,
    pub pool: String,
    pub datasets: Vec<DatasetSpec>,
    /// Where each name stands in `datasets` (the first, if declared twice),
    /// so looking a dataset up is not a scan: plans of 100k datasets
    /// validate in linear-logarithmic time.
    #[serde(skip)]
    index: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DatasetSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canmount: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_mountpoint_change: bool,
}

/// One thing wrong with a plan: a [`Diagnostic`] on the dataset it is on,
/// if it is on one (Display: `DATASET: MESSAGE`).
pub type PlanProblem = Diagnostic;

/// A plan ZFS would refuse, with every reason found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the plan has {} problem(s)", problems.len())]
pub struct InvalidPlan {
    pub problems: Vec<PlanProblem>,
}

fn problem(dataset: Option<&str>, message: impl Into<String>) -> PlanProblem {
    let diagnostic = Diagnostic::new(message);
    match dataset {
        Some(dataset) => diagnostic.on_dataset(dataset),
        None => diagnostic,
    }
}

impl Contract for Plan {
    const KIND: &'static str = "plan";
    const VERSION: u64 = PLAN_VERSION;
    const READER: &'static str = "ensure-datasets";

    fn loaded(&mut self) {
        for (position, spec) in self.datasets.iter().enumerate() {
            self.index.entry(spec.name.clone()).or_insert(position);
        }
    }

    fn problems(&self) -> Vec<Diagnostic> {
        self.validate().err().map_or_else(Vec::new, |e| e.problems)
    }
}

/// Where a mountpoint field leaves a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mountpoint {
    Path(String),
    None,
    Legacy,
}

impl Mountpoint {
    pub const NONE: &'static str = "none";
    pub const LEGACY: &'static str = "legacy";

    pub fn parse(value: &str) -> Option<Mountpoint> {
        match value {
            Mountpoint::NONE => Some(Mountpoint::None),
            Mountpoint::LEGACY => Some(Mountpoint::Legacy),
            path if path.starts_with('/') => Some(Mountpoint::Path(normalize_path(path))),
            _ => None,
        }
    }
}

/// Why ZFS (or a person reading the pool) would not take `mountpoint`.
/// `.` and `..` components are refused rather than resolved: `/srv/a/../b`
/// and `/srv/b` would otherwise be one path spelled two ways.
pub fn mountpoint_problem(mountpoint: &str) -> Option<String> {
    if mountpoint.chars().any(char::is_control) {
        return Some(format!(
            "mountpoint `{mountpoint}` holds a control character (a newline or tab); ZFS prints mountpoints one per line, so write it without"
        ));
    }
    if Mountpoint::parse(mountpoint).is_none() {
        return Some(format!(
            "mountpoint `{mountpoint}` must be an absolute path, `none` or `legacy`"
        ));
    }
    if mountpoint
        .split('/')
        .any(|c| MOUNTPOINT_RESERVED_COMPONENTS.contains(&c))
    {
        return Some(format!(
            "mountpoint `{mountpoint}` has a `.` or `..` component; write the path it means, without them"
        ));
    }
    if mountpoint.len() > MAX_MOUNTPOINT_LEN {
        return Some(format!(
            "mountpoint is {} bytes long; paths are at most {MAX_MOUNTPOINT_LEN}",
            mountpoint.len()
        ));
    }
    None
}

/// `/srv//a/` and `/srv/a` are one mountpoint.
pub fn normalize_path(path: &str) -> String {
    let joined: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    format!("/{}", joined.join("/"))
}

impl Plan {
    /// Parses and validates a plan file's text (the one contract loader,
    /// [`crate::contract::parse`]).
    pub fn parse(text: &str) -> Result<Plan, InvalidPlan> {
        contract::parse::<Plan>(text).map_err(|problems| InvalidPlan { problems })
    }

    /// Every reason ZFS would refuse this plan.
    pub fn validate(&self) -> Result<(), InvalidPlan> {
        let mut problems = Vec::new();
        if let Some(why) = name_problem(&self.pool) {
            problems.push(problem(None, format!("pool `{}`: {why}", self.pool)));
        } else if self.pool.contains('/') {
            problems.push(problem(
                None,
                format!("pool `{}` must be a pool name, without `/`", self.pool),
            ));
        }
        let mut seen = BTreeSet::new();
        for spec in &self.datasets {
            let name = spec.name.as_str();
            let at = Some(name);
            if let Some(why) = name_problem(name) {
                problems.push(problem(at, format!("invalid dataset name: {why}")));
                continue;
            }
            if !is_within(name, &self.pool) {
                problems.push(problem(
                    at,
                    format!(
                        "is outside the pool `{}`; names start with `{}/`",
                        self.pool, self.pool
                    ),
                ));
            }
            if !seen.insert(name) {
                problems.push(problem(at, "is declared twice"));
            }
            if let Some(mountpoint) = &spec.mountpoint {
                if let Some(why) = mountpoint_problem(mountpoint) {
                    problems.push(problem(at, why));
                }
            }
            if let Some(canmount) = &spec.canmount {
                if !CANMOUNT_VALUES.contains(&canmount.as_str()) {
                    problems.push(problem(
                        at,
                        format!("canmount `{canmount}` must be `on`, `off` or `noauto`"),
                    ));
                }
            }
            for (property, value) in &spec.properties {
                if let Some(why) = property_name_problem(property) {
                    problems.push(problem(at, format!("property {why}")));
                } else if let Some(why) = value_problem(property, value) {
                    problems.push(problem(at, format!("property `{property}`: {why}")));
                }
            }
            for (field, who) in [("owner", &spec.owner), ("group", &spec.group)] {
                if let Some(why) = who.as_deref().and_then(|who| owner_problem(field, who)) {
                    problems.push(problem(at, why));
                }
            }
            let unmounted = matches!(spec.mountpoint.as_deref(), Some("none" | "legacy"));
            if unmounted && (spec.owner.is_some() || spec.group.is_some() || spec.mode.is_some()) {
                problems.push(problem(
                    at,
                    "owner/group/mode need a mounted directory, but mountpoint is none or legacy; set them on the datasets that mount",
                ));
            }
            if let Some(why) = spec.mode.as_deref().and_then(mode_problem) {
                problems.push(problem(at, why));
            }
        }
        if problems.is_empty() {
            problems.extend(self.mountpoint_collisions());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(InvalidPlan { problems })
        }
    }

    /// Declared datasets that would mount on the same path, counting paths
    /// inherited from declared ancestors.
    fn mountpoint_collisions(&self) -> Vec<PlanProblem> {
        let mut by_path: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for spec in &self.datasets {
            if spec.canmount.as_deref() == Some(CANMOUNT_NEVER) {
                continue;
            }
            if let Some(path) = self.declared_mountpoint(&spec.name) {
                by_path.entry(path).or_default().push(&spec.name);
            }
        }
        by_path
            .into_iter()
            .filter(|(_, names)| names.len() > 1)
            .map(|(path, names)| {
                problem(
                    Some(names[0]),
                    format!(
                        "mounts on {path} like {}: one would hide the other's files; give each its own mountpoint",
                        names[1..].join(", ")
                    ),
                )
            })
            .collect()
    }

    /// The path a dataset mounts on as far as the plan alone says: its own
    /// mountpoint, or one inherited from the nearest declared ancestor.
    pub fn declared_mountpoint(&self, name: &str) -> Option<String> {
        let mut suffix = Vec::new();
        let mut current = name;
        loop {
            if let Some(spec) = self.dataset(current) {
                if let Some(mountpoint) = &spec.mountpoint {
                    return match Mountpoint::parse(mountpoint)? {
                        Mountpoint::Path(base) => Some(join_mountpoint(&base, &suffix)),
                        Mountpoint::None | Mountpoint::Legacy => None,
                    };
                }
            }
            let (parent, last) = current.rsplit_once('/')?;
            suffix.insert(0, last);
            current = parent;
        }
    }

    pub fn dataset(&self, name: &str) -> Option<&DatasetSpec> {
        self.index
            .get(name)
            .map(|&position| &self.datasets[position])
    }

    /// The pool's root dataset, every declared dataset and every ancestor of
    /// one: all a run must see when the pool is in shape.
    pub fn datasets_and_ancestors(&self) -> Vec<String> {
        let mut names = BTreeSet::from([self.pool.clone()]);
        for spec in &self.datasets {
            let mut current = Some(spec.name.as_str());
            while let Some(name) = current {
                names.insert(name.to_string());
                current = parent_of(name);
            }
        }
        names.into_iter().collect()
    }

    /// Datasets parents first, so `zfs create` never makes a parent on its own.
    pub fn in_creation_order(&self) -> Vec<&DatasetSpec> {
        let mut specs: Vec<&DatasetSpec> = self.datasets.iter().collect();
        specs.sort_by(|a, b| {
            depth_of(&a.name)
                .cmp(&depth_of(&b.name))
                .then(a.name.cmp(&b.name))
        });
        specs
    }

    /// The nearest declared ancestor of a dataset.
    pub fn declared_parent(&self, name: &str) -> Option<&DatasetSpec> {
        let mut current = parent_of(name);
        while let Some(parent) = current {
            if let Some(spec) = self.dataset(parent) {
                return Some(spec);
            }
            current = parent_of(parent);
        }
        None
    }
}

pub fn join_mountpoint(base: &str, suffix: &[&str]) -> String {
    if suffix.is_empty() {
        return base.to_string();
    }
    normalize_path(&format!("{base}/{}", suffix.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(text: &str) -> Vec<String> {
        Plan::parse(text)
            .unwrap_err()
            .problems
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_minimal_plan_parses() {
        let plan =
            Plan::parse(r#"{"version":1,"pool":"tank","datasets":[{"name":"tank/a"}]}"#).unwrap();
        assert_eq!(plan.datasets[0].name, "tank/a");
    }

    #[test]
    fn unknown_versions_and_fields_are_rejected() {
        assert!(messages(r#"{"version":2,"pool":"tank","datasets":[]}"#)[0]
            .contains("version 2 is not supported"));
        assert!(messages(r#"{"pool":"tank","datasets":[]}"#)[0].contains("missing field `version`"));
        assert!(
            messages(r#"{"version":1,"pool":"tank","datasets":[],"extra":1}"#)[0]
                .contains("unknown field `extra`")
        );
        assert!(messages(
            r#"{"version":1,"pool":"tank","datasets":[{"name":"tank/a","recordsize":"16K"}]}"#
        )[0]
        .contains("unknown field `recordsize`"));
    }

    #[test]
    fn every_problem_is_reported_with_its_dataset() {
        let found = messages(
            r#"{"version":1,"pool":"tank","datasets":[
                {"name":"rpool/a"},
                {"name":"tank/b@x"},
                {"name":"tank/c","properties":{"recordsize":"24K","used":"1","backup":"yes"}},
                {"name":"tank/d","mode":"rwx","owner":"1000"},
                {"name":"tank/d"}
            ]}"#,
        );
        insta::assert_debug_snapshot!(found);
    }

    #[test]
    fn shared_mountpoints_are_rejected_including_inherited_ones() {
        let found = messages(
            r#"{"version":1,"pool":"tank","datasets":[
                {"name":"tank/srv","mountpoint":"/srv"},
                {"name":"tank/srv/media"},
                {"name":"tank/other","mountpoint":"/srv/media/"}
            ]}"#,
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("/srv/media"), "{found:?}");
    }

    #[test]
    fn canmount_off_parents_may_share_a_path_with_their_children() {
        Plan::parse(
            r#"{"version":1,"pool":"tank","datasets":[
                {"name":"tank/base","mountpoint":"/var/lib","canmount":"off"},
                {"name":"tank/base/x","mountpoint":"/var/lib"}
            ]}"#,
        )
        .unwrap();
    }

    #[test]
    fn ownership_needs_a_mounted_directory() {
        let found = messages(
            r#"{"version":1,"pool":"tank","datasets":[{"name":"tank/a","mountpoint":"none","owner":"root"}]}"#,
        );
        assert!(found[0].contains("need a mounted directory"), "{found:?}");
    }

    #[test]
    fn a_run_looks_at_the_declared_datasets_and_their_ancestors() {
        let plan = Plan::parse(
            r#"{"version":1,"pool":"tank","datasets":[{"name":"tank/a/b/c"},{"name":"tank/d"}]}"#,
        )
        .unwrap();
        assert_eq!(
            plan.datasets_and_ancestors(),
            ["tank", "tank/a", "tank/a/b", "tank/a/b/c", "tank/d"]
        );
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("0750"), Some(0o750));
        assert_eq!(parse_mode("755"), Some(0o755));
        assert_eq!(parse_mode("0758"), None);
        assert_eq!(parse_mode("75"), None);
    }
}
