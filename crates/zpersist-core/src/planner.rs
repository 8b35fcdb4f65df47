//! Desired (a [`Plan`]) + observed (an [`ObservedPool`] and [`HostFacts`])
//! → an ordered list of [`Action`]s, and the [`Problem`]s that must not be
//! fixed automatically. Pure: it decides, the binary acts.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::encryption::{expected_root, locked_problem, KeyFacts, KeyState};
use crate::name::{is_within, parent_of};
use crate::observed::{HostFacts, ObservedPool, Source};
use crate::plan::{join_mountpoint, parse_mode, DatasetSpec, Mountpoint, Plan};
use crate::property::{is_create_only, values_match};

/// Properties every run reads besides the declared ones.
pub const ALWAYS_OBSERVED: &[&str] = &["type", "mountpoint", "canmount", "mounted"];

/// Properties read besides those when the plan declares encryption.
pub const ENCRYPTION_OBSERVED: &[&str] =
    &["encryption", "encryptionroot", "keystatus", "keylocation"];

/// A user or group as declared, with the id it resolved to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    pub id: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// `zfs create -p -o k=v ... dataset`
    Create {
        dataset: String,
        properties: BTreeMap<String, String>,
    },
    /// `zfs set property=to dataset`
    SetProperty {
        dataset: String,
        property: String,
        from: String,
        to: String,
    },
    /// `zfs mount dataset`
    Mount { dataset: String, mountpoint: String },
    /// Make the directory exist, then chown/chmod it.
    SetOwnership {
        dataset: String,
        path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<Principal>,
        #[serde(skip_serializing_if = "Option::is_none")]
        group: Option<Principal>,
        #[serde(skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
    },
}

impl Action {
    pub fn dataset(&self) -> &str {
        match self {
            Action::Create { dataset, .. }
            | Action::SetProperty { dataset, .. }
            | Action::Mount { dataset, .. }
            | Action::SetOwnership { dataset, .. } => dataset,
        }
    }

    /// One line for people: what will be (or was) done.
    pub fn describe(&self) -> String {
        match self {
            Action::Create {
                dataset,
                properties,
            } => {
                let props: Vec<String> =
                    properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
                if props.is_empty() {
                    format!("create  {dataset}")
                } else {
                    format!("create  {dataset} ({})", props.join(", "))
                }
            }
            Action::SetProperty {
                dataset,
                property,
                from,
                to,
            } => {
                let from = crate::property::display_value(property, from);
                format!("set     {dataset} {property}: {from} -> {to}")
            }
            Action::Mount {
                dataset,
                mountpoint,
            } => format!("mount   {dataset} on {mountpoint}"),
            Action::SetOwnership {
                dataset,
                path,
                owner,
                group,
                mode,
            } => {
                let mut parts = Vec::new();
                if let Some(owner) = owner {
                    parts.push(format!("owner {}", owner.name));
                }
                if let Some(group) = group {
                    parts.push(format!("group {}", group.name));
                }
                if let Some(mode) = mode {
                    parts.push(format!("mode {mode}"));
                }
                format!("own     {dataset} {path}: {}", parts.join(", "))
            }
        }
    }
}

/// Something the plan asks for that must not, or cannot, be done
/// automatically. Each one fails the run (exit 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum Problem {
    CreateOnlyDrift {
        dataset: String,
        property: String,
        declared: String,
        actual: String,
    },
    /// Changing `property` (mountpoint or canmount) would move or unmount
    /// datasets that hold data: this one, or children that inherit its path.
    MountpointChangeRefused {
        dataset: String,
        property: String,
        from: String,
        to: String,
        /// `dataset (path)` of each dataset whose files would move or vanish.
        #[serde(rename = "holdingData")]
        holding_data: Vec<String>,
    },
    MountpointTaken {
        dataset: String,
        path: String,
        /// Every other dataset that mounts, or would mount, on `path`.
        by: String,
    },
    /// `zfs create -p` would make `parent` (which the plan does not declare)
    /// on a path that already holds files.
    ImplicitParentHidesFiles {
        dataset: String,
        parent: String,
        path: String,
    },
    /// A declared parent could not be created, so this dataset is not
    /// created either (`zfs create -p` would make a bare parent).
    ParentNotCreated {
        dataset: String,
        parent: String,
    },
    /// This ZFS does not know a property the plan declares.
    UnknownProperty {
        dataset: String,
        property: String,
    },
    MountpointNotEmpty {
        dataset: String,
        path: String,
    },
    UnknownUser {
        dataset: String,
        user: String,
    },
    UnknownGroup {
        dataset: String,
        group: String,
    },
    NotAFilesystem {
        dataset: String,
        kind: String,
    },
    /// The dataset (or the ancestor it would be created in) is encrypted
    /// and its key is not loaded: it cannot be mounted, created in or
    /// looked at, and its path beneath must not be taken for it.
    Locked {
        dataset: String,
        /// The encryption root whose key is missing.
        root: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        keylocation: Option<String>,
    },
    /// The plan expects this dataset to inherit `parent`'s encryption, but
    /// `parent` exists unencrypted: created now, it would be unencrypted.
    ParentNotEncrypted {
        dataset: String,
        parent: String,
    },
}

impl Problem {
    pub fn dataset(&self) -> &str {
        match self {
            Problem::CreateOnlyDrift { dataset, .. }
            | Problem::MountpointChangeRefused { dataset, .. }
            | Problem::MountpointTaken { dataset, .. }
            | Problem::ImplicitParentHidesFiles { dataset, .. }
            | Problem::ParentNotCreated { dataset, .. }
            | Problem::UnknownProperty { dataset, .. }
            | Problem::MountpointNotEmpty { dataset, .. }
            | Problem::UnknownUser { dataset, .. }
            | Problem::UnknownGroup { dataset, .. }
            | Problem::NotAFilesystem { dataset, .. }
            | Problem::Locked { dataset, .. }
            | Problem::ParentNotEncrypted { dataset, .. } => dataset,
        }
    }

    /// What is wrong, and what to do about it.
    pub fn message_and_help(&self) -> (String, String) {
        match self {
            Problem::CreateOnlyDrift { dataset, property, declared, actual } if property == "encryption" && actual == "off" => (
                format!("{dataset}: `{property}` is `{actual}` but the plan says `{declared}`"),
                format!("ZFS cannot encrypt an existing dataset in place, and zpersist never tries: declare a new dataset with this encryption and move the data into it, with `migrate-to-dataset` (docs/migration.md) or `zfs send {dataset}@SNAP | zfs receive -u NEW` below an encrypted parent (a plain stream received there is encrypted with the parent's key); then point the service at the new dataset. Or remove `encryption` from {dataset}'s declaration. Nothing was changed on {dataset}."),
            ),
            Problem::CreateOnlyDrift { dataset, property, declared, actual } => (
                format!("{dataset}: `{property}` is `{actual}` but the plan says `{declared}`"),
                format!("`{property}` can only be chosen when a dataset is created; ZFS cannot change it now. Put the old value back in the plan, or create a new dataset and move the data (zfs send | zfs receive)."),
            ),
            Problem::MountpointChangeRefused { dataset, property, from, to, holding_data } => {
                let what = if property == "canmount" {
                    format!("refusing to set canmount from {from} to {to}: that unmounts it")
                } else {
                    format!("refusing to move it from {from} to {to}")
                };
                (
                    format!("{dataset}: {what}, and these hold data there: {}", holding_data.join(", ")),
                    "anything using the old path would lose its files; stop those services, then set `allowMountpointChange = true` for this dataset (and remove it afterwards).".into(),
                )
            }
            Problem::MountpointTaken { dataset, path, by } => (
                format!("{dataset}: {path} is already the mountpoint of {by}"),
                format!("one would hide the other's files; give {dataset} another mountpoint, or change {by}'s (a dataset without a mountpoint of its own inherits its parent's path plus its name)."),
            ),
            Problem::ImplicitParentHidesFiles { dataset, parent, path } => (
                format!("{dataset}: creating it would also create its parent {parent} (not in the plan) on {path}, which already holds files that mounting {parent} would hide"),
                format!("declare {parent} with `mountpoint = \"none\"` or `canmount = \"off\"` if it only groups datasets, or move those files away (or into it with migrate-to-dataset); nothing was created."),
            ),
            Problem::ParentNotCreated { dataset, parent } => (
                format!("{dataset}: not created, because its parent {parent} was not"),
                format!("fix the problem reported for {parent}; {dataset} is created on the next run after that."),
            ),
            Problem::UnknownProperty { dataset, property } => (
                format!("{dataset}: this ZFS does not know the property `{property}`"),
                format!("remove `{property}` from the plan, or upgrade ZFS; nothing was done for {dataset}, the other datasets were processed."),
            ),
            Problem::MountpointNotEmpty { dataset, path } => (
                format!("{dataset}: {path} already holds files that mounting the dataset would hide"),
                "move them into the dataset first (`migrate-to-dataset SERVICE`, or `migrate-to-dataset --dataset DS --path DIR`), or move them away; nothing was created or mounted there.".into(),
            ),
            Problem::UnknownUser { dataset, user } => (
                format!("{dataset}: owner `{user}` is not a user on this host"),
                "create the user first (users.users on NixOS) or fix the owner in the plan; the dataset itself was still kept in shape.".into(),
            ),
            Problem::UnknownGroup { dataset, group } => (
                format!("{dataset}: group `{group}` is not a group on this host"),
                "create the group first (users.groups on NixOS) or fix the group in the plan; the dataset itself was still kept in shape.".into(),
            ),
            Problem::NotAFilesystem { dataset, kind } => (
                format!("{dataset}: is a {kind}, not a filesystem"),
                "the plan declares filesystems only; rename the plan's entry or the existing dataset.".into(),
            ),
            Problem::Locked { dataset, root, keylocation } => {
                let state = KeyState::Locked { root: root.clone(), keylocation: keylocation.clone() };
                let (what, help) = locked_problem(dataset, &state, "nothing was mounted, created or owned there").unwrap_or_default();
                (what, format!("{help}; then run `systemctl restart zpersist-datasets.service`"))
            }
            Problem::ParentNotEncrypted { dataset, parent } => (
                format!("{dataset}: not created, because its parent {parent} is not encrypted (the plan declares its encryption): created now, {dataset} would be unencrypted"),
                format!("fix the problem reported for {parent} (a new encrypted dataset, the data moved into it); {dataset} is created, encrypted, on the next run after that."),
            ),
        }
    }
}

/// A declared value that differs from what the pool has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub dataset: String,
    pub property: String,
    pub declared: String,
    pub actual: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub actions: Vec<Action>,
    pub drift: Vec<Drift>,
    pub problems: Vec<Problem>,
}

/// The properties a run must read: the always-needed ones and every one the
/// plan declares, deduplicated and sorted.
pub fn properties_to_observe(plan: &Plan) -> Vec<String> {
    let mut names: BTreeSet<String> = ALWAYS_OBSERVED.iter().map(|s| s.to_string()).collect();
    for spec in &plan.datasets {
        names.extend(spec.properties.keys().cloned());
    }
    // Where the plan declares encryption: whether each dataset and the
    // ancestor it is created in is encrypted, and locked (ZFS without
    // encryption does not know these: read_known drops them).
    if plan
        .datasets
        .iter()
        .any(|spec| spec.properties.contains_key("encryption"))
    {
        names.extend(ENCRYPTION_OBSERVED.iter().map(|s| s.to_string()));
    }
    names.into_iter().collect()
}

/// Every declared property with its declared value, the plan's own fields first.
fn declared_properties(spec: &DatasetSpec) -> Vec<(&str, &str)> {
    let mut all = Vec::new();
    if let Some(mountpoint) = &spec.mountpoint {
        all.push(("mountpoint", mountpoint.as_str()));
    }
    if let Some(canmount) = &spec.canmount {
        all.push(("canmount", canmount.as_str()));
    }
    all.extend(
        spec.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    all
}

struct Planner<'a> {
    plan: &'a Plan,
    pool: &'a ObservedPool,
    host: &'a dyn HostFacts,
    outcome: Outcome,
    /// Every path some known dataset (observed, declared, or a missing
    /// parent `zfs create -p` would make) mounts on once the plan is
    /// applied, with the datasets that claim it.
    claims: BTreeMap<String, Vec<String>>,
    /// Datasets that will exist after this run: observed or to be created.
    created: BTreeSet<String>,
    /// Undeclared ancestors already looked at.
    ancestors_seen: BTreeSet<String>,
}

/// Decides what to do. `unknown_properties` are declared properties this
/// ZFS does not know: datasets declaring one are reported and left alone.
pub fn plan_actions(plan: &Plan, pool: &ObservedPool, host: &dyn HostFacts) -> Outcome {
    plan_actions_knowing(plan, pool, host, &BTreeSet::new())
}

pub fn plan_actions_knowing(
    plan: &Plan,
    pool: &ObservedPool,
    host: &dyn HostFacts,
    unknown_properties: &BTreeSet<String>,
) -> Outcome {
    let mut planner = Planner {
        plan,
        pool,
        host,
        outcome: Outcome::default(),
        claims: BTreeMap::new(),
        created: pool.datasets.keys().cloned().collect(),
        ancestors_seen: BTreeSet::new(),
    };
    planner.claims = planner.all_claims();
    for spec in plan.in_creation_order() {
        if let Some(property) = spec
            .properties
            .keys()
            .find(|p| unknown_properties.contains(*p))
        {
            planner.problem(Problem::UnknownProperty {
                dataset: spec.name.clone(),
                property: property.clone(),
            });
            continue;
        }
        planner.dataset(spec);
    }
    planner.outcome
}

impl Planner<'_> {
    fn dataset(&mut self, spec: &DatasetSpec) {
        let name = spec.name.as_str();
        if !self.ancestors_in_shape(name) || !self.encryption_in_shape(spec) {
            return;
        }
        let desired_path = match self.desired_mountpoint(name) {
            Mountpoint::Path(path) => Some(path),
            _ => None,
        };
        let canmount = self.canmount(name);
        let will_mount = canmount == "on" && desired_path.is_some();
        if let Some(path) = desired_path.as_deref().filter(|_| canmount != "off") {
            if self.refuse_taken(name, path) {
                return;
            }
        }

        let mut changes_mount_state = false;
        if !self.pool.exists(name) {
            if let Some(path) = desired_path.as_deref().filter(|_| will_mount) {
                if self.refuse_hiding(name, path) {
                    return;
                }
            }
            let properties = declared_properties(spec)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            self.outcome.actions.push(Action::Create {
                dataset: name.to_string(),
                properties,
            });
            self.created.insert(name.to_string());
            changes_mount_state = true;
        } else {
            let kind = self.pool.value(name, "type").unwrap_or("filesystem");
            if kind != "filesystem" {
                self.problem(Problem::NotAFilesystem {
                    dataset: name.into(),
                    kind: kind.into(),
                });
                return;
            }
            let mounted = self.pool.value(name, "mounted") == Some("yes");
            // A refused mountpoint keeps the dataset where it is: its other
            // properties are still checked, but it is not mounted or owned.
            let mut mountpoint_refused = false;
            // Declared encrypted, found unencrypted: one drift (encryption),
            // not also its key's properties, which ZFS has none of.
            let unencrypted = spec
                .properties
                .get("encryption")
                .is_some_and(|v| v != "off")
                && self.pool.value(name, "encryption") == Some("off");
            for (property, declared) in declared_properties(spec) {
                let actual = self.pool.value(name, property).unwrap_or("-");
                if values_match(property, declared, actual)
                    || (unencrypted
                        && matches!(property, "keyformat" | "keylocation" | "pbkdf2iters"))
                {
                    continue;
                }
                self.outcome.drift.push(Drift {
                    dataset: name.into(),
                    property: property.into(),
                    declared: declared.into(),
                    actual: actual.into(),
                });
                if is_create_only(property) {
                    self.problem(Problem::CreateOnlyDrift {
                        dataset: name.into(),
                        property: property.into(),
                        declared: declared.into(),
                        actual: actual.into(),
                    });
                    continue;
                }
                if property == "mountpoint" || property == "canmount" {
                    let holding_data = if spec.allow_mountpoint_change {
                        Vec::new()
                    } else {
                        self.data_moved_by(name, property, declared, mounted)
                    };
                    if !holding_data.is_empty() {
                        self.problem(Problem::MountpointChangeRefused {
                            dataset: name.into(),
                            property: property.into(),
                            from: actual.into(),
                            to: declared.into(),
                            holding_data,
                        });
                        mountpoint_refused = true;
                        continue;
                    }
                }
                if property == "mountpoint" {
                    if let Some(path) = desired_path.as_deref().filter(|_| will_mount) {
                        if self.refuse_hiding(name, path) {
                            mountpoint_refused = true;
                            continue;
                        }
                    }
                    changes_mount_state = true;
                }
                self.outcome.actions.push(Action::SetProperty {
                    dataset: name.into(),
                    property: property.into(),
                    from: actual.into(),
                    to: declared.into(),
                });
            }
            if mountpoint_refused {
                return;
            }
            // `zfs set mountpoint` remounts a mounted dataset by itself.
            if will_mount && !mounted {
                let path = desired_path.clone().unwrap_or_default();
                if !changes_mount_state && self.host.has_entries(&path) == Some(true) {
                    self.problem(Problem::MountpointNotEmpty {
                        dataset: name.into(),
                        path,
                    });
                    return;
                }
                self.outcome.actions.push(Action::Mount {
                    dataset: name.into(),
                    mountpoint: path,
                });
                changes_mount_state = true;
            }
        }
        if let Some(path) = desired_path {
            self.ownership(spec, &path, changes_mount_state);
        }
    }

    /// Checks the ancestors of a declared dataset that the plan does not
    /// declare itself. A missing one is made by `zfs create -p`, so its
    /// path must not hide files; an existing one that should be mounted and
    /// is not gets mounted (or reported, if mounting would hide files). A
    /// declared ancestor that will not exist stops the dataset. `false`
    /// when the dataset must not be touched.
    fn ancestors_in_shape(&mut self, name: &str) -> bool {
        let mut ancestors = Vec::new();
        let mut current = parent_of(name);
        while let Some(ancestor) = current {
            ancestors.push(ancestor);
            current = parent_of(ancestor);
        }
        // Top down, so a parent is mounted before its child.
        for ancestor in ancestors.into_iter().rev() {
            let declared = self.plan.dataset(ancestor).is_some();
            if declared {
                if !self.created.contains(ancestor) {
                    self.problem(Problem::ParentNotCreated {
                        dataset: name.into(),
                        parent: ancestor.into(),
                    });
                    return false;
                }
                continue;
            }
            let Mountpoint::Path(path) = self.desired_mountpoint(ancestor) else {
                continue;
            };
            if self.canmount(ancestor) != "on" {
                continue;
            }
            if !self.pool.exists(ancestor) {
                if self.host.has_entries(&path) == Some(true) {
                    self.problem(Problem::ImplicitParentHidesFiles {
                        dataset: name.into(),
                        parent: ancestor.into(),
                        path,
                    });
                    return false;
                }
                continue;
            }
            if self.pool.value(ancestor, "mounted") == Some("yes")
                || !self.ancestors_seen.insert(ancestor.to_string())
            {
                continue;
            }
            if self.host.has_entries(&path) == Some(true) {
                self.problem(Problem::MountpointNotEmpty {
                    dataset: ancestor.into(),
                    path,
                });
                continue;
            }
            self.outcome.actions.push(Action::Mount {
                dataset: ancestor.into(),
                mountpoint: path,
            });
        }
        true
    }

    /// A dataset's key, from what the pool says (nothing where this ZFS has
    /// no encryption).
    fn key_state(&self, name: &str) -> KeyState {
        KeyFacts::from_values(|p| self.pool.value(name, p)).state(name)
    }

    /// Encryption as the plan expects it: an existing dataset whose key is
    /// not loaded is locked (never mounted, owned or created in); a missing
    /// one is not created in a locked ancestor, nor, when it should inherit
    /// a declared ancestor's encryption, below that ancestor found
    /// unencrypted (it would be unencrypted). `false`: leave it alone.
    fn encryption_in_shape(&mut self, spec: &DatasetSpec) -> bool {
        let name = spec.name.as_str();
        let mut within = Some(name);
        while let Some(n) = within.filter(|n| !self.pool.exists(n)) {
            within = parent_of(n);
        }
        if let Some(existing) = within {
            if let KeyState::Locked { root, keylocation } = self.key_state(existing) {
                self.problem(Problem::Locked {
                    dataset: name.into(),
                    root,
                    keylocation,
                });
                return false;
            }
        }
        if self.pool.exists(name) || spec.properties.contains_key("encryption") {
            return true;
        }
        match expected_root(self.plan, name) {
            Some(root) if self.pool.value(root, "encryption") == Some("off") => {
                self.problem(Problem::ParentNotEncrypted {
                    dataset: name.into(),
                    parent: root.into(),
                });
                false
            }
            _ => true,
        }
    }

    /// `dataset (path)` of every mounted dataset holding data whose files
    /// would move or vanish if `property` of `name` became `declared`:
    /// a new mountpoint moves the dataset and every descendant that
    /// inherits its path (a `canmount=off` parent included); canmount=off
    /// unmounts the dataset itself.
    fn data_moved_by(
        &self,
        name: &str,
        property: &str,
        declared: &str,
        mounted: bool,
    ) -> Vec<String> {
        let mut affected = Vec::new();
        if mounted && (property == "mountpoint" || declared == "off") {
            affected.push(name.to_string());
        }
        if property == "mountpoint" {
            let prefix = format!("{name}/");
            for (child, _) in self
                .pool
                .datasets
                .range(prefix.clone()..)
                .take_while(|(child, _)| child.starts_with(&prefix))
            {
                let follows = matches!(
                    self.pool.source(child, "mountpoint"),
                    Some(Source::InheritedFrom(from)) if is_within(name, from)
                );
                if follows && self.pool.value(child, "mounted") == Some("yes") {
                    affected.push(child.clone());
                }
            }
        }
        affected
            .into_iter()
            .filter_map(|dataset| {
                let path = self.pool.value(&dataset, "mountpoint")?.to_string();
                (self.host.has_entries(&path) != Some(false)).then(|| format!("{dataset} ({path})"))
            })
            .collect()
    }

    /// Refuses (and records why) a path that another dataset mounts on, or
    /// will once the plan is applied.
    fn refuse_taken(&mut self, name: &str, path: &str) -> bool {
        let others: Vec<&str> = self
            .claims
            .get(path)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|other| *other != name)
            .collect();
        if others.is_empty() {
            return false;
        }
        let by = others.join(", ");
        self.problem(Problem::MountpointTaken {
            dataset: name.into(),
            path: path.into(),
            by,
        });
        true
    }

    /// Refuses (and records why) a path that holds files mounting would hide.
    fn refuse_hiding(&mut self, name: &str, path: &str) -> bool {
        if self.host.has_entries(path) == Some(true) {
            self.problem(Problem::MountpointNotEmpty {
                dataset: name.into(),
                path: path.into(),
            });
            return true;
        }
        false
    }

    /// canmount as it will be: declared, else observed, else ZFS's default.
    fn canmount(&self, name: &str) -> &str {
        self.plan
            .dataset(name)
            .and_then(|spec| spec.canmount.as_deref())
            .or_else(|| self.pool.value(name, "canmount"))
            .unwrap_or("on")
    }

    /// Path → datasets that mount on it once the plan is applied (all but
    /// `canmount=off` ones, which never mount), over every known dataset.
    fn all_claims(&self) -> BTreeMap<String, Vec<String>> {
        let mut known: BTreeSet<String> = self.pool.datasets.keys().cloned().collect();
        known.extend(self.plan.datasets_and_ancestors());
        let mut claims: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in known {
            if self.canmount(&name) == "off" {
                continue;
            }
            if let Mountpoint::Path(path) = self.desired_mountpoint(&name) {
                claims.entry(path).or_default().push(name);
            }
        }
        claims
    }

    fn ownership(&mut self, spec: &DatasetSpec, path: &str, mount_state_changes: bool) {
        if spec.owner.is_none() && spec.group.is_none() && spec.mode.is_none() {
            return;
        }
        let name = spec.name.as_str();
        let owner = self.resolve(
            spec.owner.as_deref(),
            |host, n| host.user_id(n),
            |user| Problem::UnknownUser {
                dataset: name.into(),
                user,
            },
        );
        let group = self.resolve(
            spec.group.as_deref(),
            |host, n| host.group_id(n),
            |group| Problem::UnknownGroup {
                dataset: name.into(),
                group,
            },
        );
        let (Ok(owner), Ok(group)) = (owner, group) else {
            return;
        };
        let mode_bits = spec.mode.as_deref().and_then(parse_mode);
        let in_shape = !mount_state_changes
            && self.host.directory(path).is_some_and(|dir| {
                owner.as_ref().is_none_or(|o| o.id == dir.uid)
                    && group.as_ref().is_none_or(|g| g.id == dir.gid)
                    && mode_bits.is_none_or(|m| m == dir.mode & 0o7777)
            });
        if !in_shape {
            self.outcome.actions.push(Action::SetOwnership {
                dataset: name.into(),
                path: path.into(),
                owner,
                group,
                mode: spec.mode.clone(),
            });
        }
    }

    /// Looks a declared user or group up; an unknown name is recorded as a
    /// problem and makes the dataset's ownership unresolvable (`Err`).
    fn resolve(
        &mut self,
        declared: Option<&str>,
        lookup: impl Fn(&dyn HostFacts, &str) -> Option<u32>,
        unknown: impl Fn(String) -> Problem,
    ) -> Result<Option<Principal>, ()> {
        let Some(name) = declared else {
            return Ok(None);
        };
        match lookup(self.host, name) {
            Some(id) => Ok(Some(Principal {
                name: name.to_string(),
                id,
            })),
            None => {
                self.problem(unknown(name.to_string()));
                Err(())
            }
        }
    }

    /// Where a dataset will mount once the plan is applied.
    fn desired_mountpoint(&self, name: &str) -> Mountpoint {
        if let Some(declared) = self
            .plan
            .dataset(name)
            .and_then(|s| s.mountpoint.as_deref())
        {
            return Mountpoint::parse(declared).unwrap_or(Mountpoint::None);
        }
        let inherits = !matches!(
            self.pool.source(name, "mountpoint"),
            Some(Source::Local | Source::Received | Source::Temporary)
        );
        if !inherits || parent_of(name).is_none() {
            let observed = self.pool.value(name, "mountpoint");
            return match observed {
                Some(value) => Mountpoint::parse(value).unwrap_or(Mountpoint::None),
                None => Mountpoint::Path(format!("/{name}")),
            };
        }
        let parent = parent_of(name).unwrap_or(name);
        match self.desired_mountpoint(parent) {
            Mountpoint::Path(base) => {
                let last = &name[parent.len() + 1..];
                Mountpoint::Path(join_mountpoint(&base, &[last]))
            }
            other => other,
        }
    }

    fn problem(&mut self, problem: Problem) {
        self.outcome.problems.push(problem);
    }
}

/// The dataset whose failed action `action` depends on, if any: a failed
/// create blocks everything at or below that dataset (so `zfs create -p`
/// never makes the parent bare), any other failure blocks the rest of that
/// dataset's actions.
pub fn blocked_by<'a>(action: &Action, failed: &'a [Action]) -> Option<&'a str> {
    failed
        .iter()
        .find(|f| match f {
            Action::Create { dataset, .. } => is_within(action.dataset(), dataset),
            other => other.dataset() == action.dataset(),
        })
        .map(Action::dataset)
}
