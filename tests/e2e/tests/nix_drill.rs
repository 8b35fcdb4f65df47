//! The drill options as the module turns them into a drill plan per
//! service and a oneshot on a timer with a notification on failure; one
//! test per case of tests/nix/cases-drill.nix.

use serde_json::{json, Value};
use zpersist_e2e::nix::Eval;

fn drilled() -> Eval {
    Eval::host("forge").with_module(
        r#"{ zpersist.services.sonarr.drill = { enable = true; interval = "Sun 04:00"; check = [ "test" "-s" "sonarr.db" ]; }; }"#,
    )
}

/// The unit as the module defines it, without the stubs' empty defaults.
fn unit(eval: &Eval, kind: &str, name: &str) -> Value {
    let mut unit = eval.attr(&format!("config.systemd.{kind}.{name}"));
    unit.as_object_mut()
        .unwrap()
        .retain(|_, v| v != &json!([]) && v != &json!({}) && !v.is_null());
    unit
}

#[test]
fn a_drilled_service_gets_its_plan_a_unit_and_a_timer() {
    let eval = drilled();
    assert_eq!(eval.attr("failedAssertions"), json!([]));
    let plan = eval.attr("config.zpersist.internal.drillPlans.sonarr");
    insta::assert_json_snapshot!("forge_sonarr_drill_plan", plan);
    // What zpersist-drill reads: the plan passes its own validation.
    zpersist_core::contract::parse::<zpersist_core::drill::DrillPlan>(&plan.to_string())
        .expect("zpersist-drill accepts the plan the module writes");
    assert_eq!(plan["sqlite"], json!(["sonarr.db"]));
    assert_eq!(
        plan["preseed"],
        eval.attr("config.zpersist.internal.preseedPlans.sonarr"),
        "the drill restores from the preseed plan's sources"
    );

    let service = unit(&eval, "services", "zpersist-sonarr-drill");
    let timer = unit(&eval, "timers", "zpersist-sonarr-drill");
    insta::assert_json_snapshot!(
        "forge_sonarr_drill_units",
        json!({ "service": service, "timer": timer })
    );
    assert_eq!(service["serviceConfig"]["Type"], "oneshot");
    assert_eq!(service["onFailure"], json!(["zpersist-notify@%n.service"]));
    assert!(service["serviceConfig"]["ExecStart"]
        .as_str()
        .unwrap()
        .contains("/bin/zpersist-drill --plan /nix/store/"));
    assert_eq!(timer["timerConfig"]["OnCalendar"], "Sun 04:00");
    let notify = eval.attr("config.zpersist.notify.units");
    assert_eq!(
        notify["zpersist-sonarr-drill.service"]["datasets"],
        json!(["tank/services/sonarr"])
    );
}

#[test]
fn services_without_a_drill_get_no_unit() {
    let units = Eval::host("forge").attr("config.systemd.services");
    assert!(
        !units
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.ends_with("-drill") && k != "zpersist-pitr-drill"),
        "forge drills nothing by default"
    );
}

zpersist_e2e::nix_cases! {
    "cases-drill.nix", every_case_in_cases_drill_nix_has_a_test;
    assertion_no_sources => "drill-no-sources",
    assertion_replica_undeclared => "drill-replica-undeclared",
    assertion_postgresql_refused => "drill-postgresql-refused",
}
