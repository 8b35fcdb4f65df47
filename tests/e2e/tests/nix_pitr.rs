//! zpersist.postgresql.pitr as the module turns it into PostgreSQL's
//! archive settings, a contract the binaries accept, a repository dataset,
//! units with timers and notifications, and restic jobs that skip the data
//! directory; one test per case of tests/nix/cases-pitr.nix.

use serde_json::{json, Value};
use zpersist_e2e::nix::Eval;

const LOCAL: &str = r#"{
  zpersist.postgresql.pitr = {
    enable = true;
    repository.local.dataset = "backup/pitr";
    baseBackup.schedule = "daily";
    retention.recoveryWindow = "14d";
    drill.schedule = "weekly";
  };
  services.restic.backups.everything = { paths = [ "/var/lib" "/etc" ]; repository = "/mnt/restic"; };
}"#;

const S3: &str = r#"{
  zpersist.postgresql.pitr = {
    enable = true;
    repository.s3 = {
      destination = "s3://forge-backups/postgresql";
      endpointUrl = "https://s3.example.org";
      environmentFile = "/run/secrets/pitr-s3";
    };
    retention = { recoveryWindow = null; count = 4; };
  };
}"#;

fn contract_accepted(eval: &Eval) -> Value {
    let contract = eval.attr("config.zpersist.postgresql.pitr.internal.contract");
    zpersist_core::pitr::PitrContract::parse(&contract.to_string())
        .expect("the binaries accept the contract the module writes");
    contract
}

#[test]
fn a_local_repository_gets_archiving_a_dataset_units_and_timers() {
    let eval = Eval::host("forge").with_module(LOCAL);
    assert_eq!(eval.attr("failedAssertions"), json!([]));
    insta::assert_json_snapshot!("forge_pitr_local_contract", contract_accepted(&eval));
    let settings = eval.attr("config.services.postgresql.settings");
    assert_eq!(settings["archive_mode"], "on");
    assert_eq!(settings["wal_level"], "replica");
    assert!(settings["archive_command"]
        .as_str()
        .unwrap()
        .ends_with("/bin/pitr-archive-wal --contract /etc/zpersist/pitr.json %p %f"));
    // The archive is writable from inside nixpkgs' sandbox.
    let postgresql = eval.attr("config.systemd.services.postgresql");
    assert_eq!(postgresql["serviceConfig"]["ProtectSystem"], "strict");
    assert_eq!(
        postgresql["serviceConfig"]["ReadWritePaths"],
        json!(["/var/lib/zpersist-pitr"])
    );
    assert!(postgresql["unitConfig"]["RequiresMountsFor"]
        .as_array()
        .unwrap()
        .contains(&json!("/var/lib/zpersist-pitr")));
    let dataset = eval.attr(r#"config.zpersist.datasets."backup/pitr""#);
    assert_eq!(dataset["mountpoint"], "/var/lib/zpersist-pitr");
    assert_eq!(dataset["owner"], "postgres");
    assert_eq!(dataset["mode"], "0700");
    assert!(dataset["neededBy"]
        .as_array()
        .unwrap()
        .contains(&json!("postgresql.service")));

    let mut units = serde_json::Map::new();
    for name in [
        "zpersist-pitr-base-backup",
        "zpersist-pitr-drill",
        "zpersist-pitr-heartbeat",
    ] {
        let unit = eval.attr(&format!("config.systemd.services.{name}"));
        assert_eq!(
            unit["onFailure"],
            json!(["zpersist-notify@%n.service"]),
            "{name}"
        );
        assert_eq!(unit["serviceConfig"]["User"], "postgres", "{name}");
        let timer = eval.attr(&format!("config.systemd.timers.{name}"));
        units.insert(
            name.into(),
            json!({ "service": unit["serviceConfig"], "timer": timer["timerConfig"] }),
        );
    }
    insta::assert_json_snapshot!("forge_pitr_local_units", units);
    assert_eq!(
        eval.attr("config.systemd.timers.zpersist-pitr-base-backup.timerConfig.OnCalendar"),
        "daily"
    );
    assert_eq!(
        eval.attr("config.systemd.timers.zpersist-pitr-drill.timerConfig.OnCalendar"),
        "weekly"
    );
    // The host's restic job skips the data directory.
    assert_eq!(
        eval.attr("config.services.restic.backups.everything.exclude"),
        json!(["/var/lib/postgresql/16"])
    );
}

#[test]
fn an_s3_repository_names_barman_and_its_credentials() {
    let eval = Eval::host("forge").with_module(S3);
    assert_eq!(eval.attr("failedAssertions"), json!([]));
    insta::assert_json_snapshot!("forge_pitr_s3_contract", contract_accepted(&eval));
    let postgresql = eval.attr("config.systemd.services.postgresql.serviceConfig");
    assert!(postgresql.get("ReadWritePaths").is_none(), "{postgresql}");
    let backup = eval.attr("config.systemd.services.zpersist-pitr-base-backup.serviceConfig");
    assert!(backup["RestrictAddressFamilies"]
        .as_array()
        .unwrap()
        .contains(&json!("AF_INET")));
    assert!(
        backup.get("MemoryDenyWriteExecute").is_none(),
        "barman-cloud is Python"
    );
    // Its lock (a bucket has none) is in the metrics directory, which the
    // sandbox must let it write.
    let contract = contract_accepted(&eval);
    assert_eq!(
        backup["ReadWritePaths"],
        json!([contract["metricsDir"]]),
        "{backup}"
    );
}

#[test]
fn without_pitr_nothing_changes() {
    let eval = Eval::host("forge");
    assert!(eval
        .attr("config.services.postgresql.settings")
        .get("archive_mode")
        .is_none());
    assert!(eval
        .attr("config.systemd.services")
        .get("zpersist-pitr-drill")
        .is_none());
}

zpersist_e2e::nix_cases! {
    "cases-pitr.nix", every_case_in_cases_pitr_nix_has_a_test;
    assertion_no_repository => "pitr-no-repository",
    assertion_two_repositories => "pitr-two-repositories",
    assertion_postgresql_off => "pitr-postgresql-off",
    assertion_retention_both => "pitr-retention-both",
    assertion_retention_window_garbled => "pitr-retention-window-garbled",
    assertion_drill_port_clash => "pitr-drill-port-clash",
    assertion_repository_inside_data => "pitr-repository-inside-data",
    assertion_file_level_backup => "pitr-file-level-backup",
    assertion_drill_scratch_is_the_repository => "pitr-drill-scratch-is-the-repository",
    assertion_drill_scratch_holds_the_data => "pitr-drill-scratch-holds-the-data",
    assertion_drill_scratch_inside_a_dataset => "pitr-drill-scratch-inside-a-dataset",
}
