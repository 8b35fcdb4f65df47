//! The user story of a host that already has data where a service's dataset
//! should go, from the Nix options on: forge's plan is applied while
//! Sonarr's data directory is full of files, so ensure-datasets creates
//! every other dataset and refuses to hide Sonarr's files, pointing at
//! migrate-to-dataset; migrate-to-dataset, reading the services file the
//! module renders, moves the data in; the next ensure-datasets run finds
//! the pool in shape and the data where Sonarr reads it.
//!
//! zfs-fuse has no lz4 and no records over 128K: plan and services file go
//! through `fit_for_zfs_fuse` (said where it happens).

use std::collections::BTreeMap;

use camino::Utf8Path;
use serde_json::Value;
use zpersist_e2e::binaries;
use zpersist_e2e::nix::Eval;
use zpersist_e2e::pool::{exists, get, run_ok, run_recorded, Recorded, TestPool};
use zpersist_e2e::zfs_fuse::{ensure_principals, fit_for_zfs_fuse};

fn ensure(pool: &TestPool, plan: &Utf8Path) -> Recorded {
    let lock = pool.scratch("ensure.lock");
    run_recorded(
        &binaries::fresh("ensure-datasets"),
        &["--plan", plan.as_str(), "--lock-file", lock.as_str()],
        &BTreeMap::new(),
    )
}

#[test]
fn existing_data_is_refused_then_migrated_then_in_shape() {
    let forge = Eval::host("forge");
    let mut plan = forge.attr("plan");
    let mut services = forge.attr("config.zpersist.internal.servicesPlan");
    ensure_principals(&plan);
    let pool = TestPool::new("story");
    // zfs-fuse: lz4 -> on, records over 128K -> 128K, in both files alike.
    fit_for_zfs_fuse(&mut plan);
    let mut properties: Value = serde_json::json!({ "datasets": services["services"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| serde_json::json!({ "properties": s["properties"] }))
        .collect::<Vec<_>>() });
    fit_for_zfs_fuse(&mut properties);
    for (service, fitted) in services["services"]
        .as_object_mut()
        .unwrap()
        .values_mut()
        .zip(properties["datasets"].as_array().unwrap())
    {
        service["properties"] = fitted["properties"].clone();
    }
    pool.adopt_plan(&mut plan, "tank", "");
    pool.adopt_services(&mut services, "tank", "");
    let plan_file = pool.write_plan("forge.json", &plan);
    let services_file = pool.write_plan("services.json", &services);

    // Sonarr ran before zpersist: its data directory is full.
    let sonarr = &services["services"]["sonarr"];
    let data_dir = Utf8Path::new(sonarr["mountpoint"].as_str().unwrap()).to_owned();
    let dataset = sonarr["dataset"].as_str().unwrap().to_owned();
    std::fs::create_dir_all(data_dir.join("Backups")).unwrap();
    std::fs::write(
        data_dir.join("config.xml"),
        "<Config><Port>8989</Port></Config>",
    )
    .unwrap();
    run_ok(
        "sqlite3",
        &[
            data_dir.join("sonarr.db").as_str(),
            "create table series(title); insert into series values ('Andor');",
        ],
    );
    std::fs::write(
        data_dir.join("Backups/nzbdrone_backup.zip"),
        vec![7u8; 100_000],
    )
    .unwrap();

    // 1. ensure-datasets: everything else is created; Sonarr's files are
    //    not hidden under a new mount, and the message says what to do.
    let first = ensure(&pool, &plan_file);
    assert_eq!(first.code, 1, "{first:#?}");
    assert!(
        first
            .stdout
            .contains(&format!("{dataset}: {data_dir} already holds files")),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("migrate-to-dataset"),
        "{}",
        first.stdout
    );
    assert!(!exists(&dataset));
    assert!(
        exists(&pool.ds("services/radarr")),
        "the other services' datasets exist"
    );
    assert_eq!(
        std::fs::read_to_string(data_dir.join("config.xml")).unwrap(),
        "<Config><Port>8989</Port></Config>"
    );

    // 2. migrate-to-dataset, as the README tells the admin to run it.
    let migrate = binaries::fresh("migrate-to-dataset");
    let migrated = zpersist_e2e::zfs_watchdog::run_watching_zfs(
        duct::cmd(
            migrate.as_str(),
            ["sonarr", "--services", services_file.as_str()],
        )
        .stdin_null()
        .stdout_capture()
        .stderr_capture(),
        "migrate-to-dataset sonarr",
        zpersist_e2e::zfs_watchdog::OTHER_LIMIT,
    )
    .unwrap_or_else(zpersist_e2e::zfs_watchdog::Hung::fail);
    assert!(
        migrated.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&migrated.stdout),
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert_eq!(get(&dataset, "mountpoint"), data_dir.as_str());
    assert_eq!(get(&dataset, "mounted"), "yes");
    assert_eq!(get(&dataset, "recordsize"), "16384");

    // 3. ensure-datasets again: in shape, and Sonarr's data is on the dataset.
    let second = ensure(&pool, &plan_file);
    assert_eq!(second.code, 0, "{second:#?}");
    let third = ensure(&pool, &plan_file);
    assert_eq!(third.code, 0, "{third:#?}");
    assert!(third.mutating_calls().is_empty(), "{:?}", third.zfs_calls);
    assert_eq!(
        run_ok(
            "sqlite3",
            &[
                data_dir.join("sonarr.db").as_str(),
                "select title from series"
            ]
        )
        .trim(),
        "Andor"
    );
    let on_dataset = run_ok(
        "df",
        &["--output=source", data_dir.join("config.xml").as_str()],
    );
    assert!(
        on_dataset.contains(&dataset),
        "config.xml is not on {dataset}: {on_dataset}"
    );
}
