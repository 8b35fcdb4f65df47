//! The preseed options as the module turns them into a plan per service
//! and a oneshot between the service's mounted check and its units; one
//! test per case of tests/nix/cases-preseed.nix.

use serde_json::{json, Value};
use zpersist_e2e::nix::Eval;

fn forge() -> Eval {
    Eval::host("forge")
}

#[test]
fn a_preseeded_service_gets_its_plan_and_a_unit_before_its_units() {
    let eval = forge();
    assert_eq!(eval.attr("failedAssertions"), json!([]));
    let plan = eval.attr("config.zpersist.internal.preseedPlans.sonarr");
    insta::assert_json_snapshot!("forge_sonarr_preseed_plan", plan);
    // What preseed-restore reads: the plan passes its own validation.
    zpersist_core::preseed::PreseedPlan::parse(&plan.to_string())
        .expect("preseed-restore accepts the plan the module writes");

    let unit = eval.attr("config.systemd.services.zpersist-sonarr-preseed");
    assert_eq!(unit["requires"], json!(["zpersist-sonarr-mounted.service"]));
    assert_eq!(unit["requiredBy"], json!(["sonarr.service"]));
    assert_eq!(unit["before"], json!(["sonarr.service"]));
    assert_eq!(unit["serviceConfig"]["Type"], "oneshot");
    assert!(unit["serviceConfig"]
        .get("RemainAfterExit")
        .is_none_or(|v| v == &Value::Bool(false)));
    assert_eq!(unit["onFailure"], json!(["zpersist-notify@%n.service"]));
    assert!(unit["serviceConfig"]["ExecStart"]
        .as_str()
        .unwrap()
        .contains("/bin/preseed-restore --plan /nix/store/"));
}

#[test]
fn services_without_preseed_get_no_unit() {
    let units = Eval::host("forge").attr("config.systemd.services");
    let preseeds: Vec<&String> = units
        .as_object()
        .unwrap()
        .keys()
        .filter(|name| name.ends_with("-preseed"))
        .collect();
    assert_eq!(
        preseeds,
        ["zpersist-sonarr-preseed"],
        "forge preseeds sonarr only"
    );
}

zpersist_e2e::nix_cases! {
    "cases-preseed.nix", every_case_in_cases_preseed_nix_has_a_test;
    assertion_no_sources => "preseed-no-sources",
    assertion_replica_undeclared => "preseed-replica-undeclared",
    assertion_restic_undeclared => "preseed-restic-undeclared",
    assertion_source_ambiguous => "preseed-source-ambiguous",
    assertion_no_mountpoint => "preseed-no-mountpoint",
    assertion_with_children => "preseed-with-children",
    assertion_pitr_without_pitr => "preseed-pitr-without-pitr",
    assertion_name_too_long => "preseed-name-too-long",
}

/// PostgreSQL preseeded from its PITR archive: the plan names the contract
/// and where the data directory lies below the dataset's root.
#[test]
fn postgresql_can_be_preseeded_from_its_pitr_archive() {
    let eval = Eval::host("forge").with_module(
        r#"{
  zpersist.postgresql.pitr = { enable = true; repository.local.dataset = "backup/pitr"; };
  zpersist.services.postgresql.preseed = { enable = true; sources = [ { pitr = true; } { local = true; } ]; };
}"#,
    );
    assert_eq!(eval.attr("failedAssertions"), json!([]));
    let plan = eval.attr("config.zpersist.internal.preseedPlans.postgresql");
    assert_eq!(
        plan["sources"][0],
        json!({ "pitr": { "contract": "/etc/zpersist/pitr.json", "dataDir": "16" } })
    );
    assert_eq!(plan["mountpoint"], "/var/lib/postgresql");
    zpersist_core::preseed::PreseedPlan::parse(&plan.to_string())
        .expect("preseed-restore accepts the plan the module writes");
    // The archive it restores from must be mounted first: an unmounted
    // repository is an empty directory, never "nothing to restore".
    let unit = eval.attr("config.systemd.services.zpersist-postgresql-preseed");
    assert_eq!(
        unit["unitConfig"]["RequiresMountsFor"],
        json!(["/var/lib/zpersist-pitr"]),
        "{unit}"
    );
    assert!(
        unit["after"]
            .as_array()
            .unwrap()
            .contains(&json!("zpersist-datasets.service")),
        "{unit}"
    );
}
