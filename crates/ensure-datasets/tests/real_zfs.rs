//! ensure-datasets against real ZFS (zfs-fuse on file-backed pools). Every
//! run goes through the recording `zfs` wrapper, which also fails the test
//! if a destructive zfs command (destroy, rollback, rename, receive) runs.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{json, Value};
use zpersist_e2e::pool::{exists, get, run_recorded, zfs, Recorded, TestPool};

fn binary() -> &'static Utf8Path {
    Utf8Path::new(env!("CARGO_BIN_EXE_ensure-datasets"))
}

fn ensure(pool: &TestPool, plan: &Utf8Path, extra: &[&str]) -> Recorded {
    let lock = pool.scratch("run.lock");
    let mut args = vec!["--plan", plan.as_str(), "--lock-file", lock.as_str()];
    args.extend_from_slice(extra);
    run_recorded(binary(), &args, &BTreeMap::new())
}

fn apply(pool: &TestPool, plan: &Value) -> Recorded {
    let path = pool.write_plan("plan.json", plan);
    ensure(pool, &path, &[])
}

fn plan_of(pool: &TestPool, datasets: Value) -> Value {
    json!({ "version": 1, "pool": pool.name, "datasets": datasets })
}

fn ownership(path: &Utf8Path) -> (u32, u32, u32) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777)
}

#[test]
fn the_example_plan_applies_cleanly_and_then_is_in_shape() {
    let pool = TestPool::new("example");
    let plan = pool.example_plan();
    let first = apply(&pool, &plan);
    assert_eq!(first.code, 0, "{first:#?}");

    let sonarr = pool.ds("services/sonarr");
    assert_eq!(get(&sonarr, "recordsize"), "16384");
    assert_eq!(get(&sonarr, "quota"), (2u64 << 30).to_string());
    assert_eq!(get(&sonarr, "compression"), "on", "inherited from services");
    assert_eq!(get(&sonarr, "com.zpersist:backup"), "hourly");
    assert_eq!(get(&pool.ds("services"), "canmount"), "off");
    assert_eq!(
        get(&pool.ds("services/home-assistant"), "mountpoint"),
        pool.mnt().join("hass").as_str()
    );
    assert_eq!(get(&pool.ds("services/home-assistant"), "mounted"), "yes");
    assert_eq!(
        get(&pool.ds("media/plex-metadata"), "refquota"),
        (1u64 << 30).to_string()
    );
    assert_eq!(
        get(&pool.ds("media"), "reservation"),
        (64u64 << 20).to_string()
    );
    // daemon is uid/gid 1 on Debian, nobody:nogroup 65534.
    assert_eq!(
        ownership(&pool.mnt().join("services/sonarr")),
        (1, 1, 0o750)
    );
    assert_eq!(ownership(&pool.mnt().join("hass")), (65534, 65534, 0o700));
    assert_eq!(ownership(&pool.mnt().join("services/postgresql")).2, 0o700);

    // Parents first: every create comes after the create of its parent.
    let creates: Vec<&String> = first
        .calls_named("create")
        .iter()
        .map(|argv| argv.last().unwrap())
        .collect();
    for (i, name) in creates.iter().enumerate() {
        for later in &creates[i + 1..] {
            assert!(
                !name.starts_with(&format!("{later}/")),
                "{name} created before its parent {later}"
            );
        }
    }
    // One create per dataset, with all its properties.
    assert_eq!(creates.len(), 7);
    let sonarr_create = first
        .calls_named("create")
        .into_iter()
        .find(|a| a.last() == Some(&sonarr))
        .unwrap()
        .join(" ");
    assert!(
        sonarr_create.contains("-o recordsize=16K") && sonarr_create.contains("-o quota=2G"),
        "{sonarr_create}"
    );

    let second = apply(&pool, &plan);
    assert_eq!(second.code, 0, "{second:#?}");
    assert!(
        second.stdout.contains("7 datasets in shape, nothing to do"),
        "{}",
        second.stdout
    );
    assert!(
        second.mutating_calls().is_empty(),
        "a run in shape changed something: {:?}",
        second.zfs_calls
    );
    // One `zfs get` of the declared datasets and their ancestors: no `-r`,
    // so neither undeclared datasets nor snapshots are visited.
    assert_eq!(
        second.zfs_calls.len(),
        1,
        "steady state: {:?}",
        second.zfs_calls
    );
    assert!(
        !second.zfs_calls[0].contains(&"-r".to_string()),
        "{:?}",
        second.zfs_calls
    );
}

#[test]
fn a_pool_in_shape_is_read_without_visiting_snapshots_or_undeclared_datasets() {
    let pool = TestPool::new("narrow");
    let plan = plan_of(
        &pool,
        json!([{ "name": pool.ds("app/data"), "properties": { "atime": "off" } }]),
    );
    assert_eq!(apply(&pool, &plan).code, 0);
    zfs(&["create", &pool.ds("unrelated")]);
    zfs(&["snapshot", "-r", &format!("{}@autosnap_1", pool.name)]);
    let run = apply(&pool, &plan);
    assert_eq!(run.code, 0, "{run:#?}");
    let read: Vec<String> = run.zfs_calls[0][6..].to_vec();
    assert_eq!(
        read,
        [pool.name.clone(), pool.ds("app"), pool.ds("app/data")]
    );
    // Something to do: decided with the whole pool in view (-r).
    zfs(&["set", "atime=on", &pool.ds("app/data")]);
    let fix = apply(&pool, &plan);
    assert_eq!(fix.code, 0, "{fix:#?}");
    assert_eq!(fix.calls_named("get").len(), 2, "{:?}", fix.zfs_calls);
    assert!(
        fix.calls_named("get")[1].contains(&"-r".to_string()),
        "{:?}",
        fix.zfs_calls
    );
}

#[test]
fn drift_is_repaired_and_undeclared_properties_are_left_alone() {
    let pool = TestPool::new("drift");
    let plan = pool.example_plan();
    assert_eq!(apply(&pool, &plan).code, 0);
    let sonarr = pool.ds("services/sonarr");
    zfs(&["set", "recordsize=128K", &sonarr]);
    zfs(&["set", "com.zpersist:backup=never", &sonarr]);
    // Undeclared on sonarr: an admin's own choices stay.
    zfs(&["set", "atime=on", &sonarr]);
    zfs(&["set", "com.example:note=mine", &sonarr]);
    std::fs::set_permissions(
        pool.mnt().join("services/sonarr"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();

    let run = apply(&pool, &plan);
    assert_eq!(run.code, 0, "{run:#?}");
    let sets: Vec<String> = run.calls_named("set").iter().map(|a| a.join(" ")).collect();
    assert_eq!(
        sets,
        [
            format!("set com.zpersist:backup=hourly {sonarr}"),
            format!("set recordsize=16K {sonarr}")
        ]
    );
    assert_eq!(run.mutating_calls().len(), 2, "{:?}", run.zfs_calls);
    assert_eq!(get(&sonarr, "recordsize"), "16384");
    assert_eq!(get(&sonarr, "atime"), "on");
    assert_eq!(get(&sonarr, "com.example:note"), "mine");
    assert_eq!(ownership(&pool.mnt().join("services/sonarr")).2, 0o750);
}

#[test]
fn create_only_drift_is_reported_untouched_and_fails_the_run() {
    let pool = TestPool::new("createonly");
    let docs = pool.ds("docs");
    zfs(&["create", "-o", "utf8only=on", &docs]);
    let plan = plan_of(
        &pool,
        json!([
            { "name": docs, "properties": { "utf8only": "off", "atime": "off" } },
            { "name": pool.ds("other"), "properties": { "recordsize": "32K" } }
        ]),
    );
    let run = apply(&pool, &plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains(&format!(
            "{docs}: `utf8only` is `on` but the plan says `off`"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("can only be chosen when a dataset is created"),
        "{}",
        run.stdout
    );
    assert_eq!(get(&docs, "utf8only"), "on");
    assert!(
        run.mutating_calls()
            .iter()
            .all(|a| !a.join(" ").contains("utf8only")),
        "{:?}",
        run.zfs_calls
    );
    // The rest of the plan still happened.
    assert_eq!(get(&docs, "atime"), "off");
    assert_eq!(get(&pool.ds("other"), "recordsize"), "32768");
}

#[test]
fn a_dataset_holding_data_is_not_moved_unless_the_plan_allows_it() {
    let pool = TestPool::new("move");
    let app = pool.ds("app");
    let old = pool.mnt().join("app");
    let new = pool.mnt().join("elsewhere/app");
    zfs(&["create", &app]);
    std::fs::write(old.join("state.db"), b"precious").unwrap();

    let mut plan = plan_of(&pool, json!([{ "name": app, "mountpoint": new }]));
    let refused = apply(&pool, &plan);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused.stdout.contains("refusing to move it"),
        "{}",
        refused.stdout
    );
    assert!(
        refused.stdout.contains("allowMountpointChange"),
        "{}",
        refused.stdout
    );
    assert!(
        refused.mutating_calls().is_empty(),
        "{:?}",
        refused.zfs_calls
    );
    assert_eq!(get(&app, "mountpoint"), old.as_str());

    plan["datasets"][0]["allowMountpointChange"] = true.into();
    let allowed = apply(&pool, &plan);
    assert_eq!(allowed.code, 0, "{allowed:#?}");
    assert_eq!(get(&app, "mountpoint"), new.as_str());
    assert_eq!(std::fs::read(new.join("state.db")).unwrap(), b"precious");
}

#[test]
fn an_empty_dataset_moves_freely() {
    let pool = TestPool::new("moveempty");
    let app = pool.ds("app");
    zfs(&["create", &app]);
    let new = pool.mnt().join("moved");
    let run = apply(
        &pool,
        &plan_of(&pool, json!([{ "name": app, "mountpoint": new }])),
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(get(&app, "mountpoint"), new.as_str());
}

#[test]
fn a_mountpoint_used_by_another_dataset_or_holding_files_is_refused() {
    let pool = TestPool::new("taken");
    let squatter = pool.ds("squatter");
    let taken = pool.mnt().join("taken");
    zfs(&["create", "-o", &format!("mountpoint={taken}"), &squatter]);
    let busy = pool.scratch("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), b"do not hide me").unwrap();

    let plan = plan_of(
        &pool,
        json!([
            { "name": pool.ds("newcomer"), "mountpoint": taken },
            { "name": pool.ds("hider"), "mountpoint": busy },
            { "name": pool.ds("fine") }
        ]),
    );
    let run = apply(&pool, &plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout
            .contains(&format!("{taken} is already the mountpoint of {squatter}")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!("{busy} already holds files")),
        "{}",
        run.stdout
    );
    assert!(!exists(&pool.ds("newcomer")) && !exists(&pool.ds("hider")));
    assert!(
        exists(&pool.ds("fine")),
        "the rest of the plan still applies"
    );
    assert_eq!(
        std::fs::read(busy.join("keep.txt")).unwrap(),
        b"do not hide me"
    );
}

#[test]
fn a_failed_zfs_command_fails_the_run_naming_dataset_and_property() {
    let pool = TestPool::new("failset");
    let existing = pool.ds("existing");
    zfs(&["create", &existing]);
    // lz4 is valid for OpenZFS, so the plan passes validation; zfs-fuse
    // refuses it, which is exactly the "zfs set failed" path.
    let plan = plan_of(
        &pool,
        json!([
            { "name": existing, "properties": { "compression": "lz4" } },
            { "name": pool.ds("broken"), "properties": { "compression": "lz4" } },
            { "name": pool.ds("broken/child") },
            { "name": pool.ds("healthy"), "properties": { "recordsize": "64K" } }
        ]),
    );
    let run = apply(&pool, &plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains(&format!("error: {existing}: could not set compression to lz4: `zfs set compression=lz4 {existing}` failed: ")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "error: {}: could not create it",
            pool.ds("broken")
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains(&format!("an earlier step for {} failed", pool.ds("broken"))),
        "{}",
        run.stdout
    );
    // The child was not created bare through `create -p`.
    assert!(!exists(&pool.ds("broken")) && !exists(&pool.ds("broken/child")));
    assert_eq!(get(&pool.ds("healthy"), "recordsize"), "65536");
}

#[test]
fn an_unknown_owner_is_an_error_for_that_dataset_only() {
    let pool = TestPool::new("owner");
    let plan = plan_of(
        &pool,
        json!([
            { "name": pool.ds("ghost"), "owner": "no-such-user-zp", "mode": "0700" },
            { "name": pool.ds("ok"), "owner": "daemon", "group": "nogroup-not-here" },
            { "name": pool.ds("fine"), "owner": "nobody" }
        ]),
    );
    let run = apply(&pool, &plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains(&format!(
            "{}: owner `no-such-user-zp` is not a user on this host",
            pool.ds("ghost")
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("group `nogroup-not-here` is not a group"),
        "{}",
        run.stdout
    );
    assert!(
        exists(&pool.ds("ghost")),
        "the dataset itself is still created"
    );
    assert_eq!(ownership(&pool.mnt().join("fine")).0, 65534);
}

#[test]
fn bad_plans_exit_2_and_run_no_zfs_command() {
    let pool = TestPool::new("badplan");
    let cases: Vec<(&str, String, &str)> = vec![
        ("missing file", String::new(), "cannot read the plan"),
        ("not json", "{".into(), "not valid JSON"),
        ("future version", json!({"version": 2, "pool": pool.name, "datasets": []}).to_string(), "version 2 is not supported"),
        ("unknown field", json!({"version": 1, "pool": pool.name, "datasets": [{"name": pool.ds("a"), "recordsize": "16K"}]}).to_string(), "unknown field `recordsize`"),
        ("bad name", plan_of(&pool, json!([{"name": pool.ds("a@b")}])).to_string(), "invalid dataset name"),
        ("outside pool", plan_of(&pool, json!([{"name": "elsewhere/a"}])).to_string(), "is outside the pool"),
        ("bad recordsize", plan_of(&pool, json!([{"name": pool.ds("a"), "properties": {"recordsize": "3K"}}])).to_string(), "not a power of two"),
        ("read-only property", plan_of(&pool, json!([{"name": pool.ds("a"), "properties": {"used": "1"}}])).to_string(), "read-only"),
        ("bad mode", plan_of(&pool, json!([{"name": pool.ds("a"), "mode": "0999"}])).to_string(), "octal"),
        (
            "shared mountpoint",
            plan_of(&pool, json!([{"name": pool.ds("a"), "mountpoint": "/srv/x"}, {"name": pool.ds("b"), "mountpoint": "/srv/x"}])).to_string(),
            "one would hide the other's files",
        ),
    ];
    for (case, text, expected) in cases {
        let path: Utf8PathBuf = pool.scratch("bad.json");
        let _ = std::fs::remove_file(&path);
        if !text.is_empty() {
            std::fs::write(&path, &text).unwrap();
        }
        let run = ensure(&pool, &path, &[]);
        assert_eq!(run.code, 2, "{case}: {run:#?}");
        assert!(
            run.stderr.contains(expected),
            "{case}: expected {expected:?} in {}",
            run.stderr
        );
        assert!(
            run.zfs_calls.is_empty(),
            "{case}: ran zfs {:?}",
            run.zfs_calls
        );
    }
    let no_args = run_recorded(binary(), &["--dry-run"], &BTreeMap::new());
    assert_eq!(no_args.code, 2, "{no_args:#?}");
    assert!(no_args.zfs_calls.is_empty());
}

#[test]
fn dry_run_prints_the_actions_and_changes_nothing() {
    let pool = TestPool::new("dryrun");
    let path = pool.write_plan("plan.json", &pool.example_plan());
    let run = ensure(&pool, &path, &["--dry-run"]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(
        run.stdout
            .contains(&format!("would create  {}", pool.ds("services/sonarr"))),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("nothing was changed"), "{}", run.stdout);
    assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    assert!(!exists(&pool.ds("services")));
}

#[test]
fn json_report_lists_actions_drift_and_problems() {
    let pool = TestPool::new("json");
    let app = pool.ds("app");
    zfs(&["create", "-o", "recordsize=64K", "-o", "utf8only=on", &app]);
    let plan = plan_of(
        &pool,
        json!([{ "name": app, "properties": { "recordsize": "16K", "utf8only": "off" } }]),
    );
    let path = pool.write_plan("plan.json", &plan);
    let run = ensure(&pool, &path, &["--json"]);
    assert_eq!(run.code, 1, "{run:#?}");
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {}", run.stdout));
    assert_eq!(report["actions"][0]["action"], "set-property");
    assert_eq!(report["actions"][0]["status"], "done");
    assert_eq!(report["actions"][0]["from"], "65536");
    assert_eq!(report["drift"].as_array().unwrap().len(), 2);
    assert_eq!(report["problems"][0]["problem"], "create-only-drift");
    assert!(report["problems"][0]["help"]
        .as_str()
        .unwrap()
        .contains("zfs send"));
}

#[test]
fn a_missing_pool_is_a_clear_error() {
    let pool = TestPool::new("nopool");
    let plan =
        json!({ "version": 1, "pool": "zpnotapool", "datasets": [{ "name": "zpnotapool/a" }] });
    let run = apply(&pool, &plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains("cannot read pool zpnotapool"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("zpool import zpnotapool"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_run_waits_for_the_lock_held_by_another() {
    let pool = TestPool::new("lock");
    let lock_path = pool.scratch("run.lock");
    let held = std::fs::File::create(&lock_path).unwrap();
    held.lock().unwrap();
    let path = pool.write_plan(
        "plan.json",
        &plan_of(&pool, json!([{ "name": pool.ds("a") }])),
    );
    let handle = duct::cmd(
        binary().as_str(),
        ["--plan", path.as_str(), "--lock-file", lock_path.as_str()],
    )
    .stdout_capture()
    .stderr_capture()
    .unchecked()
    .start()
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        handle.try_wait().unwrap().is_none(),
        "the run did not wait for the lock"
    );
    assert!(
        !exists(&pool.ds("a")),
        "the run acted while another held the lock"
    );
    held.unlock().unwrap();
    let output = zpersist_e2e::zfs_watchdog::wait_watching_zfs(
        &handle,
        "ensure-datasets after the lock",
        zpersist_e2e::zfs_watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(zpersist_e2e::zfs_watchdog::Hung::fail);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("waiting up to 120 s for another run"));
    assert!(exists(&pool.ds("a")));
}

#[test]
fn concurrent_runs_do_not_interleave() {
    let pool = TestPool::new("concurrent");
    let datasets: Vec<Value> = (0..25)
        .map(|i| json!({ "name": pool.ds(&format!("svc{i}")), "properties": { "atime": "off" } }))
        .collect();
    let path = pool.write_plan("plan.json", &plan_of(&pool, Value::Array(datasets)));
    let runs: Vec<Recorded> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| ensure(&pool, &path, &[])))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for run in &runs {
        assert_eq!(run.code, 0, "{run:#?}");
    }
    // Each dataset was created exactly once: the runs took turns, and the
    // later ones found the pool in shape.
    let creates: usize = runs.iter().map(|r| r.calls_named("create").len()).sum();
    assert_eq!(creates, 25, "{runs:#?}");
}

#[test]
fn hybrid_mounts_parents_legacy_or_none_children_mount_themselves() {
    let pool = TestPool::new("hybrid");
    let plan = plan_of(
        &pool,
        json!([
            { "name": pool.ds("local"), "mountpoint": "legacy" },
            { "name": pool.ds("local/nix"), "mountpoint": "legacy" },
            { "name": pool.ds("state"), "mountpoint": "none", "canmount": "off" },
            { "name": pool.ds("state/hass"), "mountpoint": pool.mnt().join("var/lib/hass"), "mode": "0700" },
            { "name": pool.ds("local/cache"), "mountpoint": pool.mnt().join("var/cache/app") }
        ]),
    );
    let first = apply(&pool, &plan);
    assert_eq!(first.code, 0, "{first:#?}");
    assert_eq!(
        get(&pool.ds("local"), "mounted"),
        "no",
        "legacy is mounted by fileSystems, not by zpersist"
    );
    assert_eq!(get(&pool.ds("state"), "mounted"), "no");
    assert_eq!(get(&pool.ds("state/hass"), "mounted"), "yes");
    assert_eq!(
        get(&pool.ds("local/cache"), "mounted"),
        "yes",
        "a child of a legacy parent mounts on its own path"
    );
    assert_eq!(ownership(&pool.mnt().join("var/lib/hass")).2, 0o700);
    let second = apply(&pool, &plan);
    assert_eq!(second.code, 0, "{second:#?}");
    assert!(second.mutating_calls().is_empty(), "{:?}", second.zfs_calls);
}

// ---- Hostile cases: each class below once ended in exit 0 with data moved,
// hidden or doubly mounted, or in zfs refusing what the plan let through.

/// Writes `text` as a plan and runs on it: for plans serde_json cannot
/// build (duplicate keys, raw bytes).
fn apply_text(pool: &TestPool, text: &str) -> Recorded {
    let path = pool.scratch("plan.txt.json");
    std::fs::write(&path, text).unwrap();
    ensure(pool, &path, &[])
}

#[test]
fn values_zfs_would_refuse_are_a_bad_plan_before_any_zfs_call() {
    let pool = TestPool::new("strictvalues");
    let cases: &[(&str, &str, &str)] = &[
        ("atime", "OFF", "is not one of"),
        ("normalization", "formd", "is not one of"),
        ("recordsize", "16K ", "not a power of two"),
        ("recordsize", " 16K", "not a power of two"),
        ("quota", "16 G", "is not a size"),
        ("quota", "16E", "is not a size"),
        ("quota", "17179869184G", "is not a size"),
        ("reservation", "+5G", "is not a size"),
    ];
    for (property, value, expected) in cases {
        let run = apply(
            &pool,
            &plan_of(
                &pool,
                json!([{ "name": pool.ds("a"), "properties": { *property: value } }]),
            ),
        );
        assert_eq!(run.code, 2, "{property}={value:?}: {run:#?}");
        assert!(
            run.stderr.contains(expected),
            "{property}={value:?}: {}",
            run.stderr
        );
        assert!(
            run.zfs_calls.is_empty(),
            "{property}={value:?}: {:?}",
            run.zfs_calls
        );
    }
}

#[test]
fn a_path_inherited_from_an_undeclared_pool_root_is_not_mounted_twice() {
    let pool = TestPool::new("rootinherit");
    // The pool's root mounts on mnt/, so `y` would inherit mnt/y: the very
    // path `x` declares for itself.
    let plan = plan_of(
        &pool,
        json!([
            { "name": pool.ds("x"), "mountpoint": pool.mnt().join("y") },
            { "name": pool.ds("y") },
            { "name": pool.ds("fine") }
        ]),
    );
    let run = apply(&pool, &plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains(&format!(
            "{} is already the mountpoint of",
            pool.mnt().join("y")
        )),
        "{}",
        run.stdout
    );
    assert!(
        !exists(&pool.ds("x")) && !exists(&pool.ds("y")),
        "{:?}",
        run.zfs_calls
    );
    assert!(exists(&pool.ds("fine")));
}

#[test]
fn a_path_an_undeclared_child_inherits_from_a_declared_parent_is_taken() {
    let pool = TestPool::new("childinherit");
    let srv = pool.scratch("srv");
    let parent = plan_of(
        &pool,
        json!([{ "name": pool.ds("srv"), "mountpoint": srv }]),
    );
    assert_eq!(apply(&pool, &parent).code, 0);
    // Made by hand, not in the plan: mounts on srv/media by inheritance.
    zfs(&["create", &pool.ds("srv/media")]);
    std::fs::write(srv.join("media/film.mkv"), b"frames").unwrap();

    let plan = plan_of(
        &pool,
        json!([
            { "name": pool.ds("srv"), "mountpoint": srv },
            { "name": pool.ds("other"), "mountpoint": srv.join("media") }
        ]),
    );
    let run = apply(&pool, &plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains(&format!(
            "is already the mountpoint of {}",
            pool.ds("srv/media")
        )),
        "{}",
        run.stdout
    );
    assert!(!exists(&pool.ds("other")));
    assert_eq!(
        std::fs::read(srv.join("media/film.mkv")).unwrap(),
        b"frames"
    );
}

#[test]
fn one_path_spelled_two_ways_is_refused_before_any_zfs_call() {
    let pool = TestPool::new("dotdot");
    let plan = plan_of(
        &pool,
        json!([
            { "name": pool.ds("a"), "mountpoint": format!("{}/x/../b", pool.mnt()) },
            { "name": pool.ds("b") }
        ]),
    );
    let run = apply(&pool, &plan);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("`..` component"), "{}", run.stderr);
    assert!(run.zfs_calls.is_empty(), "{:?}", run.zfs_calls);
}

#[test]
fn moving_a_canmount_off_parent_does_not_move_a_child_holding_data() {
    let pool = TestPool::new("offparent");
    let (old, new) = (pool.scratch("s1"), pool.scratch("s2"));
    let mut plan = plan_of(
        &pool,
        json!([
            { "name": pool.ds("services"), "mountpoint": old, "canmount": "off" },
            { "name": pool.ds("services/app") }
        ]),
    );
    assert_eq!(apply(&pool, &plan).code, 0);
    std::fs::write(old.join("app/state.db"), b"precious").unwrap();

    plan["datasets"][0]["mountpoint"] = new.as_str().into();
    let refused = apply(&pool, &plan);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused.stdout.contains(&format!(
            "{} ({})",
            pool.ds("services/app"),
            old.join("app")
        )),
        "the refusal names the child that holds data: {}",
        refused.stdout
    );
    assert!(
        refused.mutating_calls().is_empty(),
        "{:?}",
        refused.zfs_calls
    );
    assert_eq!(
        std::fs::read(old.join("app/state.db")).unwrap(),
        b"precious"
    );

    plan["datasets"][0]["allowMountpointChange"] = true.into();
    let allowed = apply(&pool, &plan);
    assert_eq!(allowed.code, 0, "{allowed:#?}");
    assert_eq!(
        std::fs::read(new.join("app/state.db")).unwrap(),
        b"precious"
    );
}

#[test]
fn canmount_off_does_not_make_data_vanish_from_its_path() {
    let pool = TestPool::new("canmountoff");
    let app = pool.ds("app");
    let mut plan = plan_of(&pool, json!([{ "name": app }]));
    assert_eq!(apply(&pool, &plan).code, 0);
    std::fs::write(pool.mnt().join("app/state.db"), b"precious").unwrap();

    plan["datasets"][0]["canmount"] = "off".into();
    let refused = apply(&pool, &plan);
    assert_eq!(refused.code, 1, "{refused:#?}");
    assert!(
        refused
            .stdout
            .contains("refusing to set canmount from on to off"),
        "{}",
        refused.stdout
    );
    assert_eq!(get(&app, "mounted"), "yes");
    assert_eq!(
        std::fs::read(pool.mnt().join("app/state.db")).unwrap(),
        b"precious"
    );
}

#[test]
fn an_implicit_parent_never_hides_files_on_its_path() {
    let pool = TestPool::new("implicit");
    // Files where `zfs create -p` would mount the undeclared parent `impl`.
    std::fs::create_dir_all(pool.mnt().join("impl")).unwrap();
    std::fs::write(pool.mnt().join("impl/notes.txt"), b"mine").unwrap();
    let plan = plan_of(&pool, json!([{ "name": pool.ds("impl/child") }]));
    let run = apply(&pool, &plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout
            .contains(&format!("also create its parent {}", pool.ds("impl"))),
        "{}",
        run.stdout
    );
    assert!(run.mutating_calls().is_empty(), "{:?}", run.zfs_calls);
    assert!(!exists(&pool.ds("impl")));
    // A run again is still a refusal, never a success over hidden files.
    assert_eq!(apply(&pool, &plan).code, 1);
    assert_eq!(
        std::fs::read(pool.mnt().join("impl/notes.txt")).unwrap(),
        b"mine"
    );
}

#[test]
fn an_unmounted_parent_whose_path_holds_files_is_reported_not_left_behind() {
    let pool = TestPool::new("halfparent");
    // What a half-created `zfs create -p` leaves: the parent exists and
    // should mount, but its path holds files, so it is not mounted.
    let parent = pool.ds("half");
    zfs(&["create", "-o", "canmount=noauto", &parent]);
    std::fs::create_dir_all(pool.mnt().join("half")).unwrap();
    std::fs::write(pool.mnt().join("half/notes.txt"), b"mine").unwrap();
    zfs(&["set", "canmount=on", &parent]);
    assert_eq!(get(&parent, "mounted"), "no");

    let run = apply(
        &pool,
        &plan_of(&pool, json!([{ "name": pool.ds("half/child") }])),
    );
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains(&format!(
            "{parent}: {} already holds files",
            pool.mnt().join("half")
        )),
        "{}",
        run.stdout
    );
    assert_eq!(
        std::fs::read(pool.mnt().join("half/notes.txt")).unwrap(),
        b"mine"
    );
}

#[test]
fn control_characters_in_a_plan_are_refused_and_printed_on_one_line() {
    let pool = TestPool::new("newline");
    let run = apply(
        &pool,
        &plan_of(
            &pool,
            json!([{ "name": pool.ds("a"), "mountpoint": "/srv/a\nb" }]),
        ),
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains(r"`/srv/a\nb`"), "{}", run.stderr);
    assert!(run.zfs_calls.is_empty());

    let forged = format!("{}/a\nerror: all is well", pool.name);
    let run = apply(&pool, &plan_of(&pool, json!([{ "name": forged }])));
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains(r"a\nerror: all is well"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr
            .lines()
            .any(|l| l.starts_with("error: all is well")),
        "a name printed raw across two lines: {}",
        run.stderr
    );
}

#[test]
fn a_duplicate_key_is_a_bad_plan_not_a_silent_choice() {
    let pool = TestPool::new("dupkey");
    let text = format!(
        r#"{{"version":1,"pool":"{0}","pool":"other{0}","datasets":[{{"name":"{0}/a"}}]}}"#,
        pool.name
    );
    let run = apply_text(&pool, &text);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.stderr.contains("`pool` is given twice"),
        "{}",
        run.stderr
    );
    assert!(run.zfs_calls.is_empty(), "{:?}", run.zfs_calls);
}

/// zfs-fuse does not know `relatime` (OpenZFS does): exactly the case of a
/// plan written for a newer ZFS than the host runs.
#[test]
fn a_property_this_zfs_does_not_know_stops_only_its_dataset() {
    let pool = TestPool::new("unknownprop");
    let plan = plan_of(
        &pool,
        json!([
            { "name": pool.ds("new"), "properties": { "relatime": "on" } },
            { "name": pool.ds("other"), "properties": { "atime": "off" } }
        ]),
    );
    let run = apply(&pool, &plan);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        exists(&pool.ds("other")),
        "the other dataset was not processed"
    );
    assert_eq!(get(&pool.ds("other"), "atime"), "off");
    assert!(!exists(&pool.ds("new")));
    let complaint: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains("relatime"))
        .collect();
    assert!(
        complaint
            .iter()
            .any(|l| l.contains("does not know the property `relatime`")),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("usage:"),
        "zfs's usage text leaked: {}",
        run.stdout
    );
}

#[test]
fn a_lock_never_released_is_given_up_on_naming_its_holder() {
    let pool = TestPool::new("stucklock");
    let lock_path = pool.scratch("run.lock");
    std::fs::write(
        &lock_path,
        "pid 4242 (ensure-datasets --plan /stuck.json), since 1\n",
    )
    .unwrap();
    let held = std::fs::File::open(&lock_path).unwrap();
    held.lock().unwrap();
    let path = pool.write_plan(
        "plan.json",
        &plan_of(&pool, json!([{ "name": pool.ds("a") }])),
    );
    let started = std::time::Instant::now();
    let run = ensure(&pool, &path, &["--lock-timeout", "1"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(
        run.stdout.contains("still held after 1 s by pid 4242"),
        "{}",
        run.stdout
    );
    assert!(
        run.zfs_calls.iter().all(|argv| argv[1] != "create"),
        "{:?}",
        run.zfs_calls
    );
    assert!(!exists(&pool.ds("a")));
}
