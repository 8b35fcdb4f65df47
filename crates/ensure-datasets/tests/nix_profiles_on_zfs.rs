//! Every service profile from a Nix option to a dataset on disk: forge, which
//! enables every profile (`zpersist.services`), evaluated by Nix 2.8; its
//! plan applied by ensure-datasets to a zfs-fuse pool; each service's
//! dataset then has the properties, mountpoint, owner and mode that
//! /etc/zpersist/services.json (what migrate-to-dataset reads) says; and
//! the check unit's command (zpersist-check-mounted with the unit's
//! arguments), run against the pool, passes while the dataset is mounted
//! and refuses once it is not.
//!
//! zfs-fuse has no lz4 and no records over 128K: the plan goes through
//! `fit_for_zfs_fuse` (lz4 -> on, 1M -> 128K) and the expectations with it;
//! the real values are in the evaluation snapshots (nix_services.rs).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use camino::Utf8Path;
use zpersist_core::property::normalize;
use zpersist_e2e::binaries;
use zpersist_e2e::nix::Eval;
use zpersist_e2e::pool::{get, run_ok, run_recorded, TestPool};
use zpersist_e2e::zfs_fuse::{ensure_principals, fit_for_zfs_fuse};

fn id(flag: &str, name: &str) -> u32 {
    run_ok("id", &[flag, name]).trim().parse().unwrap()
}

fn gid(group: &str) -> u32 {
    run_ok("getent", &["group", group])
        .split(':')
        .nth(2)
        .unwrap()
        .parse()
        .unwrap()
}

/// Runs the check unit's ExecStart (`/run/current-system/sw/bin/
/// zpersist-check-mounted`, here the freshly built binary, and its
/// arguments, with the dataset and mountpoint moved onto the test pool)
/// with zfs on PATH.
fn run_check(program: &str, args: &[String]) -> std::process::Output {
    assert_eq!(
        program, "/run/current-system/sw/bin/zpersist-check-mounted",
        "the check unit runs the check as the current system has it"
    );
    zpersist_e2e::zfs_watchdog::run_watching_zfs(
        duct::cmd(
            binaries::fresh("zpersist-check-mounted").into_string(),
            args,
        )
        .stdin_null()
        .stdout_capture()
        .stderr_capture(),
        "zpersist-check-mounted",
        zpersist_e2e::zfs_watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(zpersist_e2e::zfs_watchdog::Hung::fail)
}

#[test]
fn every_profile_creates_its_dataset_as_services_json_says() {
    let forge = Eval::host("forge").read_write();
    let services = forge.attr("config.zpersist.internal.servicesPlan");
    let evaluated = forge.attr("plan");
    let profiles: Vec<String> = Eval::host("forge")
        .attr("config.zpersist.services")
        .as_object()
        .unwrap()
        .values()
        .filter(|s| s["enable"] == true)
        .map(|s| s["profile"].as_str().unwrap().to_string())
        .collect();
    for profile in [
        "sonarr",
        "radarr",
        "plex",
        "home-assistant",
        "postgresql",
        "generic",
    ] {
        assert!(
            profiles.iter().any(|p| p == profile),
            "forge lacks {profile}"
        );
    }

    let pool = TestPool::new("profiles");
    ensure_principals(&evaluated);
    let mut plan = evaluated;
    fit_for_zfs_fuse(&mut plan);
    pool.adopt_plan(&mut plan, "tank", "");
    let path = pool.write_plan("forge.json", &plan);
    let lock = pool.scratch("lock");
    let run = run_recorded(
        Utf8Path::new(env!("CARGO_BIN_EXE_ensure-datasets")),
        &["--plan", path.as_str(), "--lock-file", lock.as_str()],
        &BTreeMap::new(),
    );
    assert_eq!(run.code, 0, "{run:#?}");

    let on_pool = |dataset: &str| format!("{}{}", pool.name, dataset.strip_prefix("tank").unwrap());
    for (name, service) in services["services"].as_object().unwrap() {
        let dataset = on_pool(service["dataset"].as_str().unwrap());
        let mountpoint = format!("{}{}", pool.mnt(), service["mountpoint"].as_str().unwrap());
        assert_eq!(get(&dataset, "mountpoint"), mountpoint, "{name}");
        assert_eq!(get(&dataset, "mounted"), "yes", "{name}");

        let mut properties =
            serde_json::json!({ "datasets": [{ "properties": service["properties"] }] });
        fit_for_zfs_fuse(&mut properties);
        for (property, value) in properties["datasets"][0]["properties"].as_object().unwrap() {
            assert_eq!(
                get(&dataset, property),
                normalize(property, value.as_str().unwrap()),
                "{name}: {property} of {dataset}"
            );
        }

        let meta = std::fs::metadata(&mountpoint).unwrap();
        if let Some(user) = service["user"].as_str() {
            assert_eq!(meta.uid(), id("-u", user), "{name}: owner");
        }
        if let Some(group) = service["group"].as_str() {
            assert_eq!(meta.gid(), gid(group), "{name}: group");
        }
        if let Some(mode) = service["mode"].as_str() {
            assert_eq!(
                meta.permissions().mode() & 0o7777,
                u32::from_str_radix(mode, 8).unwrap(),
                "{name}: mode"
            );
        }
    }
    // Plex's media dataset: large records (128K is zfs-fuse's largest).
    assert_eq!(
        get(&pool.ds("media"), "recordsize"),
        (128 << 10).to_string()
    );
    assert_eq!(get(&pool.ds("services/postgresql"), "recordsize"), "8192");
    assert_eq!(get(&pool.ds("services/postgresql"), "logbias"), "latency");
    assert_eq!(get(&pool.ds("services"), "canmount"), "off");

    // The check unit of sonarr, run against this pool: passes while the
    // dataset is mounted, refuses (exit 1, saying what and what to do) once
    // it is not.
    let exec =
        forge.attr("config.systemd.services.zpersist-sonarr-mounted.serviceConfig.ExecStart");
    let argv: Vec<&str> = exec.as_str().unwrap().split(' ').collect();
    assert_eq!(
        argv[1..],
        [
            "sonarr",
            "tank/services/sonarr",
            "/var/lib/sonarr/.config/NzbDrone"
        ]
    );
    let sonarr = on_pool(argv[2]);
    let args = vec![
        "sonarr".to_string(),
        sonarr.clone(),
        format!("{}{}", pool.mnt(), argv[3]),
    ];
    let ok = run_check(argv[0], &args);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("is mounted on"));

    run_ok("zfs", &["unmount", &sonarr]);
    let refused = run_check(argv[0], &args);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("error: {sonarr} is not mounted on")),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: journalctl -u zpersist-datasets.service"),
        "{stderr}"
    );

    let missing = run_check(
        argv[0],
        &["sonarr".into(), pool.ds("services/nothing"), "/x".into()],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("which zfs cannot read"));

    // ensure-datasets mounts it again.
    let again = run_recorded(
        Utf8Path::new(env!("CARGO_BIN_EXE_ensure-datasets")),
        &["--plan", path.as_str(), "--lock-file", lock.as_str()],
        &BTreeMap::new(),
    );
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(run_check(argv[0], &args).status.success());
}
