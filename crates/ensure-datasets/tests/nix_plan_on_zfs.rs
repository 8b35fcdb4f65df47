//! The whole path from a Nix option to a dataset on disk: the forge example
//! host evaluated by Nix 2.8 with the zpersist modules, its plan applied by
//! ensure-datasets to a zfs-fuse pool, a changed option re-evaluated and
//! re-applied.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use camino::Utf8Path;
use serde_json::Value;
use zpersist_e2e::nix::Eval;
use zpersist_e2e::pool::{get, run_ok, run_recorded, Recorded, TestPool};
use zpersist_e2e::zfs_fuse::{ensure_principals, fit_for_zfs_fuse};

/// Fits the plan for zfs-fuse (no lz4/zstd, no records over 128K) and moves
/// every absolute mountpoint below the test pool's root, so forge's
/// /var/lib/plex lands in <pool root>/var/lib/plex.
fn adopt(pool: &TestPool, mut plan: Value) -> Value {
    fit_for_zfs_fuse(&mut plan);
    pool.adopt_plan(&mut plan, "tank", "");
    plan
}

fn apply(pool: &TestPool, plan: &Value) -> Recorded {
    let path = pool.write_plan("forge.json", plan);
    let lock = pool.scratch("lock");
    run_recorded(
        Utf8Path::new(env!("CARGO_BIN_EXE_ensure-datasets")),
        &["--plan", path.as_str(), "--lock-file", lock.as_str()],
        &BTreeMap::new(),
    )
}

fn mode_of(path: &Utf8Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn forge_from_nix_option_to_dataset_on_disk() {
    let pool = TestPool::new("forge");
    let evaluated = Eval::host("forge").attr("plan");
    ensure_principals(&evaluated);
    let plan = adopt(&pool, evaluated);

    let first = apply(&pool, &plan);
    assert_eq!(first.code, 0, "{first:#?}");
    let sonarr = pool.ds("services/sonarr");
    assert_eq!(get(&sonarr, "recordsize"), "16384");
    assert_eq!(get(&sonarr, "quota"), (20u64 << 30).to_string());
    assert_eq!(get(&sonarr, "atime"), "off");
    assert_eq!(get(&pool.ds("services"), "canmount"), "off");
    assert_eq!(get(&pool.ds("services"), "mountpoint"), "none");
    assert_eq!(
        get(&pool.ds("services/postgresql"), "com.example:backup"),
        "hourly"
    );
    // zpersist.services.sonarr: mounted on services.sonarr.dataDir.
    let sonarr_dir = pool.mnt().join("var/lib/sonarr/.config/NzbDrone");
    assert_eq!(get(&sonarr, "mountpoint"), sonarr_dir.as_str());
    assert_eq!(get(&sonarr, "mounted"), "yes");
    let meta = std::fs::metadata(&sonarr_dir).unwrap();
    let sonarr_uid: u32 = run_ok("id", &["-u", "sonarr"]).trim().parse().unwrap();
    // 0700: what nixpkgs' tmpfiles rule for dataDir says too.
    assert_eq!((meta.uid(), mode_of(&sonarr_dir)), (sonarr_uid, 0o700));
    // Children of media inherit its path and keep their setgid group mode.
    assert_eq!(
        get(&pool.ds("media/tv"), "mountpoint"),
        pool.mnt().join("srv/media/tv").as_str()
    );
    assert_eq!(mode_of(&pool.mnt().join("srv/media/tv")), 0o2775);

    let again = apply(&pool, &plan);
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(again.mutating_calls().is_empty(), "{:?}", again.zfs_calls);

    // A changed option shows up in the plan, in the unit and on the pool.
    let change = r#"{ lib, ... }: { zpersist.datasets."services/sonarr".recordsize = lib.mkForce "64K"; zpersist.datasets."services/lidarr" = { mountpoint = "/var/lib/lidarr"; }; }"#;
    let changed = Eval::host("forge").with_module(change);
    let changed_plan = changed.attr("plan");
    let unit_before = Eval::host("forge").attr("unit");
    let unit_after = changed.attr("unit");
    assert_ne!(
        unit_before["serviceConfig"]["ExecStart"], unit_after["serviceConfig"]["ExecStart"],
        "a changed plan must change the unit, so the next switch re-runs it"
    );
    let rerun = apply(&pool, &adopt(&pool, changed_plan));
    assert_eq!(rerun.code, 0, "{rerun:#?}");
    let sets: Vec<String> = rerun
        .calls_named("set")
        .iter()
        .map(|a| a.join(" "))
        .collect();
    assert_eq!(sets, [format!("set recordsize=64K {sonarr}")]);
    assert_eq!(get(&sonarr, "recordsize"), "65536");
    assert_eq!(
        get(&pool.ds("services/lidarr"), "mountpoint"),
        pool.mnt().join("var/lib/lidarr").as_str()
    );
}
