//! A local replication target (`host = null`: a second pool on this host,
//! a backup pool or USB disk) with real tools: zfs-fuse, the real syncoid
//! receiving locally (no ssh), and replication-lag listing the target with
//! the local zfs. The syncoid argv and ExecStartPre lines come from the
//! evaluated module and run as systemd would (zpersist_e2e::syncoid: it
//! adds `--no-resume`, because zfs-fuse has no resumable receive, puts the
//! `zfs get -t` wrapper first on PATH, and skips nixpkgs' `zfs allow`
//! delegation, which zfs-fuse lacks; localTargetAllow is checked as data in
//! tests/e2e/tests/nix_replication.rs).

use std::time::Duration;

use serde_json::json;
use zpersist_e2e::pool::{exists, get, zfs, TestPool};
use zpersist_e2e::syncoid::{
    lag_json_with_config, lag_with_config, measurement, snapshots, syncoid, Replication,
};

const LAG: &str = env!("CARGO_BIN_EXE_replication-lag");

#[test]
fn syncoid_replicates_into_a_local_pool_incrementally_and_lag_follows_it() {
    let pool = TestPool::new("lrepl");
    // The "USB disk": a companion pool, dropped before `pool` (declared
    // after it), within its turn.
    let usb = pool.companion("usb");
    zfs(&["create", "-p", &pool.ds("services/sonarr")]);
    zfs(&["create", "-p", &usb.ds("backup/forge")]);
    std::fs::write(pool.mnt().join("services/sonarr/config.xml"), "<sonarr/>").unwrap();
    let module = format!(
        r#"{{
  networking.hostName = "forge";
  zpersist.pool = "{}";
  zpersist.datasets."services/sonarr".replicateTo = [ "usb" ];
  zpersist.replication.targets.usb = {{ dataset = "{}"; }};
}}"#,
        pool.name,
        usb.ds("backup/forge")
    );
    let generated = Replication::generate(&module, &pool);
    let command = "services-sonarr-to-usb";
    let target = usb.ds("backup/forge/services/sonarr");
    let source = pool.ds("services/sonarr");

    // What the module generated: a local target, no ssh anywhere, and the
    // undeclared level `services` created locally before the receive.
    let argv = generated.eval["argv"][command].clone();
    assert_eq!(argv[argv.as_array().unwrap().len() - 1], target.as_str());
    assert!(
        !argv.to_string().contains("ssh"),
        "a local target needs no ssh: {argv}"
    );
    // zpersist's level first, then nixpkgs' delegation on source and target.
    let pre = generated.pre(command);
    assert_eq!(pre.len(), 3, "{pre:?}");
    assert!(
        pre[1].contains("-zfs-allow-") && pre[2].contains("-zfs-allow-"),
        "{pre:?}"
    );
    assert!(
        pre[0].starts_with("-+")
            && pre[0].ends_with(&format!(
                "/bin/zfs create -p -o 'canmount=off' {}",
                usb.ds("backup/forge/services")
            )),
        "{pre:?}"
    );
    assert!(!generated
        .etc_files
        .keys()
        .any(|f| f.contains("known_hosts")));

    // First run: a full send into the second pool.
    let out = generated.run_ok(command);
    assert!(!out.contains("incremental"), "first run:\n{out}");
    assert!(exists(&target), "{target} was not received:\n{out}");
    assert_eq!(
        get(&usb.ds("backup/forge/services"), "canmount"),
        "off",
        "the level zpersist creates never mounts"
    );

    // Second run, one second later (sync snapshot names have 1-second
    // resolution): incremental.
    std::thread::sleep(Duration::from_millis(1100));
    let out = generated.run_ok(command);
    assert!(out.contains("incremental"), "second run:\n{out}");
    let local = snapshots(&source);
    let base = local
        .iter()
        .find(|s| s.starts_with("syncoid_usb_"))
        .unwrap_or_else(|| panic!("no sync snapshot for usb: {local:?}"));
    assert!(
        snapshots(&target).contains(base),
        "{:?}",
        snapshots(&target)
    );

    // Everything sent: lag 0, read from the local pool.
    let (code, all, textfile) = generated.lag(LAG);
    assert_eq!(code, 0, "{all:?}");
    let m = measurement(&all, &source, "usb");
    assert_eq!(m["lagSeconds"], 0, "{m}");
    assert_eq!(m["newestOnTarget"]["name"], json!(base), "{m}");
    assert!(
        textfile.contains(&format!(
            "zpersist_replication_lag_check_success{{host=\"forge\",dataset=\"{source}\",target=\"usb\"}} 1\n"
        )),
        "{textfile}"
    );

    // A newer local snapshot the target does not hold yet: lag > 0, naming
    // the newest snapshot the target does hold.
    std::thread::sleep(Duration::from_millis(2100));
    zfs(&["snapshot", &format!("{source}@autosnap_missed")]);
    let (code, all, _) = generated.lag(LAG);
    let m = measurement(&all, &source, "usb");
    assert!(m["lagSeconds"].as_i64().unwrap() >= 2, "{m}");
    assert_eq!(m["newestLocal"]["name"], "autosnap_missed", "{m}");
    assert_eq!(m["newestOnTarget"]["name"], json!(base), "{m}");
    assert_eq!(code, 0, "no maxLagSeconds is set: {all:?}");
}

#[test]
fn a_local_target_whose_pool_is_missing_is_a_failed_check_not_never_replicated() {
    let pool = TestPool::new("lrmiss");
    zfs(&["create", &pool.ds("data")]);
    zfs(&["snapshot", &format!("{}@one", pool.ds("data"))]);
    let missing_root = format!("{}-usb-not-imported/backup", pool.name);
    let config = json!({
        "version": 1, "host": "forge", "textfile": pool.scratch("lag.prom").as_str(), "maxLagSeconds": null,
        "targets": { "usb": { "host": null, "dataset": missing_root, "identifier": "usb" } },
        "datasets": [ { "source": pool.ds("data"), "target": "usb", "targetDataset": format!("{missing_root}/data") } ]
    });
    let (code, stderr) = lag_with_config(LAG, &config, &pool);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: {} -> usb: the local target {missing_root} does not exist on this host: import its pool",
            pool.ds("data")
        )),
        "{stderr}"
    );
}

/// A snapshot taken on the target itself (not received) is newer than
/// anything this host sent, but it is none of this host's snapshots: the
/// lag is measured against the newest snapshot the target holds *from
/// here* (matched by guid), so the missed local snapshot still shows.
#[test]
fn a_snapshot_taken_on_the_target_does_not_hide_the_lag() {
    let pool = TestPool::new("lrown");
    let usb = pool.companion("usb");
    zfs(&["create", &pool.ds("data")]);
    zfs(&["create", &usb.ds("backup")]);
    let source = pool.ds("data");
    let target = usb.ds("backup/data");
    // A real syncoid run into the local pool: the target holds the sync
    // snapshot, matched to the local one by guid.
    let (synced, out) = syncoid(&["--identifier=usb", &source, &target]);
    assert!(synced, "{out}");
    let base = snapshots(&target)
        .into_iter()
        .find(|s| s.starts_with("syncoid_usb_"))
        .expect("syncoid sent its sync snapshot");

    // Missed: a newer local snapshot; then someone snapshots the target.
    std::thread::sleep(Duration::from_millis(2100));
    zfs(&["snapshot", &format!("{source}@autosnap_missed")]);
    std::thread::sleep(Duration::from_millis(1100));
    zfs(&["snapshot", &format!("{target}@made_on_the_target")]);

    let config = json!({
        "version": 1, "host": "forge", "textfile": pool.scratch("lag.prom").as_str(), "maxLagSeconds": null,
        "targets": { "usb": { "host": null, "dataset": usb.ds("backup"), "identifier": "usb" } },
        "datasets": [ { "source": source, "target": "usb", "targetDataset": target } ]
    });
    let (code, all, stderr) = lag_json_with_config(LAG, &config, &pool, &["--max-lag", "1"]);
    let m = measurement(&all, &source, "usb");
    assert_eq!(m["newestOnTarget"]["name"], json!(base), "{m}");
    assert_eq!(m["newestLocal"]["name"], "autosnap_missed", "{m}");
    assert!(m["lagSeconds"].as_i64().unwrap() >= 2, "{m}");
    assert_eq!(
        code, 1,
        "a lag of 2 s or more is above --max-lag 1: {stderr}"
    );
    assert!(
        stderr.contains(&format!("error: {source} is ")) && stderr.contains("behind on usb"),
        "{stderr}"
    );
}
