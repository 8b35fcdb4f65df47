//! The planner's decisions for representative pools, as insta snapshots.
//! The host is a table, so these run anywhere.

use std::collections::BTreeMap;

use zpersist_core::observed::{DirState, HostFacts, ObservedPool, Source};
use zpersist_core::{plan_actions, Plan};

#[derive(Default)]
struct TableHost {
    dirs: BTreeMap<&'static str, DirState>,
    non_empty: Vec<&'static str>,
}

impl HostFacts for TableHost {
    fn user_id(&self, name: &str) -> Option<u32> {
        [("root", 0), ("sonarr", 274)]
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, id)| id)
    }
    fn group_id(&self, name: &str) -> Option<u32> {
        self.user_id(name)
    }
    fn directory(&self, path: &str) -> Option<DirState> {
        self.dirs.get(path).copied()
    }
    fn has_entries(&self, path: &str) -> Option<bool> {
        Some(self.non_empty.contains(&path))
    }
}

const PLAN: &str = r#"{
  "version": 1,
  "pool": "tank",
  "datasets": [
    { "name": "tank/services/sonarr", "properties": { "recordsize": "16K", "com.example:backup": "hourly" },
      "owner": "sonarr", "group": "sonarr", "mode": "0750" },
    { "name": "tank/services", "mountpoint": "/srv", "canmount": "off", "properties": { "compression": "on" } },
    { "name": "tank/db", "mountpoint": "/var/lib/postgresql", "properties": { "recordsize": "8K", "utf8only": "on" } }
  ]
}"#;

fn plan() -> Plan {
    Plan::parse(PLAN).unwrap()
}

fn root_only() -> ObservedPool {
    let mut pool = ObservedPool::default();
    for (p, v, s) in [
        ("type", "filesystem", Source::None),
        ("mountpoint", "/tank", Source::Default),
        ("canmount", "on", Source::Default),
        ("mounted", "yes", Source::None),
    ] {
        pool.insert("tank", p, v, s);
    }
    pool
}

/// The pool after the plan was applied.
fn in_shape() -> ObservedPool {
    let mut pool = root_only();
    let rows: &[(&str, &str, &str, Source)] = &[
        ("tank/services", "type", "filesystem", Source::None),
        ("tank/services", "mountpoint", "/srv", Source::Local),
        ("tank/services", "canmount", "off", Source::Local),
        ("tank/services", "mounted", "no", Source::None),
        ("tank/services", "compression", "on", Source::Local),
        ("tank/services/sonarr", "type", "filesystem", Source::None),
        (
            "tank/services/sonarr",
            "mountpoint",
            "/srv/sonarr",
            Source::InheritedFrom("tank/services".into()),
        ),
        ("tank/services/sonarr", "canmount", "on", Source::Default),
        ("tank/services/sonarr", "mounted", "yes", Source::None),
        ("tank/services/sonarr", "recordsize", "16384", Source::Local),
        (
            "tank/services/sonarr",
            "com.example:backup",
            "hourly",
            Source::Local,
        ),
        ("tank/db", "type", "filesystem", Source::None),
        (
            "tank/db",
            "mountpoint",
            "/var/lib/postgresql",
            Source::Local,
        ),
        ("tank/db", "canmount", "on", Source::Default),
        ("tank/db", "mounted", "yes", Source::None),
        ("tank/db", "recordsize", "8192", Source::Local),
        ("tank/db", "utf8only", "on", Source::Local),
    ];
    for (name, property, value, source) in rows {
        pool.insert(name, property, value, source.clone());
    }
    pool
}

fn sonarr_dir_in_shape() -> TableHost {
    TableHost {
        dirs: BTreeMap::from([(
            "/srv/sonarr",
            DirState {
                uid: 274,
                gid: 274,
                mode: 0o750,
            },
        )]),
        non_empty: vec!["/srv/sonarr", "/var/lib/postgresql"],
    }
}

#[test]
fn an_empty_pool_gets_every_dataset_parents_first() {
    insta::assert_json_snapshot!(plan_actions(&plan(), &root_only(), &TableHost::default()));
}

#[test]
fn a_pool_in_shape_needs_nothing() {
    let outcome = plan_actions(&plan(), &in_shape(), &sonarr_dir_in_shape());
    assert!(
        outcome.actions.is_empty() && outcome.problems.is_empty() && outcome.drift.is_empty(),
        "{outcome:#?}"
    );
}

#[test]
fn drift_is_set_create_only_drift_is_a_problem_and_data_is_never_moved() {
    let mut pool = in_shape();
    pool.insert(
        "tank/services/sonarr",
        "recordsize",
        "131072",
        Source::Local,
    );
    pool.insert("tank/services/sonarr", "mounted", "no", Source::None);
    pool.insert("tank/db", "utf8only", "off", Source::Local);
    pool.insert("tank/db", "mountpoint", "/old/postgresql", Source::Local);
    let mut host = sonarr_dir_in_shape();
    host.non_empty = vec!["/old/postgresql"];
    insta::assert_json_snapshot!(plan_actions(&plan(), &pool, &host));
}

#[test]
fn a_mountpoint_another_dataset_uses_is_refused() {
    let mut pool = root_only();
    pool.insert("tank/legacy", "type", "filesystem", Source::None);
    pool.insert(
        "tank/legacy",
        "mountpoint",
        "/var/lib/postgresql",
        Source::Local,
    );
    pool.insert("tank/legacy", "canmount", "on", Source::Default);
    let outcome = plan_actions(&plan(), &pool, &TableHost::default());
    insta::assert_json_snapshot!(outcome.problems);
    assert!(outcome.actions.iter().all(|a| a.dataset() != "tank/db"));
}
