//! zpersist.services.<name>.backup.restic as the module turns it into a
//! job of nixpkgs' services.restic.backups (tests/nix/model-restic.nix
//! renders its units as nixpkgs does), a snapshot unit the job requires,
//! and the backup-age objective of status.json; one test per case of
//! tests/nix/cases-backup.nix.

use serde_json::{json, Value};
use zpersist_e2e::nix::Eval;

fn unit(eval: &Eval, kind: &str, name: &str) -> Value {
    let mut u = eval.attr(&format!("config.systemd.{kind}.\"{name}\""));
    // The stubs' empty lists say nothing.
    u.as_object_mut()
        .unwrap()
        .retain(|_, v| v != &json!([]) && v != &json!({}));
    u
}

#[test]
fn forge_backs_sonarr_up_from_a_snapshot_at_its_data_directory() {
    let eval = Eval::host("forge");
    assert_eq!(eval.attr("failedAssertions"), json!([]));
    let job = unit(&eval, "services", "restic-backups-zpersist-sonarr");
    let timer = unit(&eval, "timers", "restic-backups-zpersist-sonarr");
    let snapshot = unit(&eval, "services", "zpersist-sonarr-backup-snapshot");
    insta::assert_json_snapshot!(
        "forge_sonarr_backup_units",
        json!({ "job": job, "timer": timer, "snapshot": snapshot })
    );

    // The job reads the snapshot's clone where Sonarr's data is, and only
    // after the snapshot unit took it.
    let mountpoint = "/var/lib/sonarr/.config/NzbDrone";
    assert_eq!(
        job["serviceConfig"]["BindReadOnlyPaths"],
        json!([format!("/run/zpersist/restic-view/sonarr:{mountpoint}")])
    );
    assert_eq!(
        job["requires"],
        json!(["zpersist-sonarr-backup-snapshot.service"])
    );
    assert!(job["after"]
        .as_array()
        .unwrap()
        .contains(&json!("zpersist-sonarr-backup-snapshot.service")));
    let exec = job["serviceConfig"]["ExecStart"].as_array().unwrap();
    assert!(exec[0]
        .as_str()
        .unwrap()
        .contains("/bin/restic backup --host forge "));
    // Pruning stays within sonarr's own backups in a shared repository.
    assert!(exec[2].as_str().unwrap().ends_with(&format!(
        "forget --prune --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --host forge --path {mountpoint}"
    )));
    assert_eq!(job["onFailure"], json!(["zpersist-notify@%n.service"]));

    // The snapshot unit: taken before, released when no longer needed.
    assert_eq!(snapshot["unitConfig"]["StopWhenUnneeded"], true);
    assert_eq!(snapshot["serviceConfig"]["RemainAfterExit"], true);
    assert!(snapshot["serviceConfig"]["ExecStart"]
        .as_str()
        .unwrap()
        .ends_with(
        "/bin/zpersist-backup-snapshot take tank/services/sonarr /run/zpersist/restic-view/sonarr"
    ));
    assert!(snapshot["serviceConfig"]["ExecStop"]
        .as_str()
        .unwrap()
        .ends_with("/bin/zpersist-backup-snapshot release tank/services/sonarr"));
    assert_eq!(snapshot["restartIfChanged"], false);
    assert_eq!(snapshot["onFailure"], json!(["zpersist-notify@%n.service"]));
}

/// What preseed looks for is what the backup records: same repository,
/// same host, same path.
#[test]
fn the_backup_is_recorded_where_preseed_restores_from() {
    let eval = Eval::host("forge");
    let plan = eval.attr("config.zpersist.internal.preseedPlans.sonarr");
    let restic = plan["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|s| s.get("restic"))
        .expect("forge preseeds sonarr from b2 too")
        .clone();
    let backup = eval.attr("config.services.restic.backups.zpersist-sonarr");
    assert_eq!(backup["paths"], json!([restic["path"]]));
    assert_eq!(backup["repository"], restic["repository"]);
    assert_eq!(backup["passwordFile"], restic["passwordFile"]);
    assert_eq!(backup["environmentFile"], restic["environmentFile"]);
    assert_eq!(
        backup["extraBackupArgs"][0],
        json!(format!("--host {}", restic["host"].as_str().unwrap()))
    );
    // status.json reads the same repository entry.
    let status = eval.attr("config.zpersist.status.internal.file");
    let mut expected = restic.clone();
    expected["name"] = json!("b2");
    assert_eq!(status["services"]["sonarr"]["resticBackup"], expected);
}

#[test]
fn the_backup_age_objective_defaults_from_the_timer() {
    let eval = Eval::host("forge").with_module(
        r#"{
  zpersist.services.radarr.backup.restic = { repository = "b2"; timerConfig = { OnCalendar = "hourly"; }; };
  zpersist.services.jellyfin.backup.restic = { repository = "b2"; timerConfig = null; };
  zpersist.services.plex = {
    backup.restic = { repository = "b2"; timerConfig.OnCalendar = "Mon,Thu 03:00"; };
    objectives.maxBackupAge = 400000;
  };
}"#,
    );
    assert_eq!(eval.attr("failedAssertions"), json!([]));
    let file = eval.attr("config.zpersist.status.internal.file");
    zpersist_core::contract::parse::<zpersist_core::status::StatusFile>(&file.to_string())
        .expect("zpersist-status accepts the file");
    let age = |s: &str| file["services"][s]["maxBackupAgeSeconds"].clone();
    assert_eq!(
        age("sonarr"),
        json!(2 * 86400 + 1800),
        "03:15 daily, 30 min delay"
    );
    assert_eq!(age("radarr"), json!(7200));
    assert_eq!(age("jellyfin"), Value::Null, "no timer, no default");
    assert_eq!(age("plex"), json!(400000), "explicit wins");
    assert!(
        file["services"]["home-assistant"]
            .get("resticBackup")
            .is_none(),
        "no backup.restic, nothing to check"
    );
    // No timer: nixpkgs' module makes none.
    assert!(eval
        .try_attr("config.systemd.timers.restic-backups-zpersist-jellyfin.timerConfig")
        .is_err());
}

/// The status unit can read the repositories: restic on its path and a
/// cache of its own.
#[test]
fn the_status_unit_runs_restic_with_a_cache() {
    let u = Eval::host("forge").attr("config.systemd.services.zpersist-status");
    assert!(u["path"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p.as_str().unwrap().ends_with("-restic")));
    assert_eq!(u["serviceConfig"]["CacheDirectory"], "zpersist-status");
    assert_eq!(
        u["serviceConfig"]["Environment"],
        json!(["RESTIC_CACHE_DIR=/var/cache/zpersist-status"])
    );
}

/// With PITR on, nixpkgs' restic jobs skip the data directory; a zpersist
/// job gets that exclude too and keeps its own.
#[test]
fn pitr_excludes_reach_zpersist_jobs_too() {
    let eval = Eval::host("forge").with_module(
        r#"{
  zpersist.postgresql.pitr = { enable = true; repository.local.dataset = "backup/pitr"; };
  zpersist.services.radarr.backup.restic = { repository = "b2"; exclude = [ "*.tmp" ]; };
}"#,
    );
    assert_eq!(eval.attr("failedAssertions"), json!([]));
    let mut exclude: Vec<String> = zpersist_e2e::nix::strings(
        eval.attr("config.services.restic.backups.zpersist-radarr.exclude"),
    );
    exclude.sort();
    assert_eq!(exclude, ["*.tmp", "/var/lib/postgresql/16"]);
}

zpersist_e2e::nix_cases! {
    "cases-backup.nix", every_case_in_cases_backup_nix_has_a_test;
    assertion_repository_undeclared => "backup-repository-undeclared",
    assertion_dataset_not_mounted => "backup-dataset-not-mounted",
    assertion_postgresql_refused => "backup-postgresql-refused",
    assertion_postgresql_by_another_name => "backup-postgresql-by-another-name",
    assertion_calendar_unreadable => "backup-calendar-unreadable",
    assertion_mountpoint_unsafe => "backup-mountpoint-unsafe",
    assertion_dataset_with_child => "backup-dataset-with-child",
}
