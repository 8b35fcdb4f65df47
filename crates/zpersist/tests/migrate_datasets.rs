//! `zpersist datasets apply` and `zpersist migrate` on a zfs-fuse pool,
//! their contracts in a configuration directory as the NixOS module lays
//! it out (`datasets.json`, `services.json`): a dry run changes nothing,
//! a run does the work, a second run has nothing to do.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::json;
use zpersist_e2e::pool::{exists, get, run_logged, run_recorded, Recorded, TestPool};

fn binary() -> &'static Utf8Path {
    Utf8Path::new(env!("CARGO_BIN_EXE_zpersist"))
}

fn zpersist(config: &Utf8Path, args: &[&str]) -> Recorded {
    let mut all = vec!["--config-dir", config.as_str()];
    all.extend_from_slice(args);
    run_recorded(binary(), &all, &BTreeMap::new())
}

#[test]
fn datasets_apply_and_migrate_do_their_work_and_a_dry_run_changes_nothing() {
    let pool = TestPool::new("clidsmig");
    let config: Utf8PathBuf = pool.scratch("etc-zpersist");
    std::fs::create_dir_all(&config).unwrap();

    // datasets apply: the declared dataset, created once.
    let app = pool.ds("services/app");
    let app_dir = pool.mnt().join("var/lib/app");
    let plan = json!({ "version": 1, "pool": pool.name, "datasets": [
        { "name": app, "mountpoint": app_dir, "mode": "0750" },
    ]});
    std::fs::write(config.join("datasets.json"), plan.to_string()).unwrap();
    let dry = zpersist(&config, &["datasets", "apply", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:#?}");
    assert!(dry.mutating_calls().is_empty(), "{:?}", dry.zfs_calls);
    assert!(!exists(&app));
    let run = zpersist(&config, &["datasets", "apply"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(exists(&app));
    assert_eq!(get(&app, "mountpoint"), app_dir.as_str());
    let again = zpersist(&config, &["--json", "datasets", "apply"]);
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(again.mutating_calls().is_empty(), "{:?}", again.zfs_calls);
    let doc: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(doc["actions"], json!([]), "{doc:#}");

    // migrate: an existing directory into the service's dataset.
    let old_dir = pool.mnt().join("var/lib/old");
    std::fs::create_dir_all(old_dir.join("db")).unwrap();
    std::fs::write(old_dir.join("db/old.db"), "the data").unwrap();
    let old = pool.ds("services/old");
    let services = json!({ "version": 1, "pool": pool.name, "services": {
        "old": { "dataset": old, "mountpoint": old_dir, "units": [] },
    }});
    std::fs::write(config.join("services.json"), services.to_string()).unwrap();
    let dry = zpersist(&config, &["migrate", "old", "--dry-run"]);
    assert_eq!(dry.code, 0, "{dry:#?}");
    assert!(dry.mutating_calls().is_empty(), "{:?}", dry.zfs_calls);
    assert!(!exists(&old));
    let unknown = zpersist(&config, &["migrate", "new"]);
    assert_eq!(unknown.code, 2, "{unknown:#?}");
    assert!(
        unknown.stderr.contains("no service named `new`") && unknown.stderr.contains("old"),
        "{}",
        unknown.stderr
    );
    assert!(unknown.zfs_calls.is_empty());
    // migrate renames nothing of the user's, but the recording wrapper's
    // run_recorded refuses any rename: run it logged, and look.
    let mut all = vec!["--config-dir", config.as_str()];
    all.extend(["migrate", "old"]);
    let run = run_logged(binary(), &all, &BTreeMap::new());
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(get(&old, "mounted"), "yes");
    assert_eq!(get(&old, "mountpoint"), old_dir.as_str());
    assert_eq!(
        std::fs::read_to_string(old_dir.join("db/old.db")).unwrap(),
        "the data"
    );
    let cleanup = zpersist(&config, &["migrate", "old", "--cleanup"]);
    assert_eq!(cleanup.code, 0, "{cleanup:#?}");
}
