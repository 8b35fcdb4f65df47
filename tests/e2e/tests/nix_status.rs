//! /etc/zpersist/status.json as the modules write it: the snapshot-age
//! objective defaults from the sanoid template (the most frequent period
//! with a count above 0, times 2), an explicit objective wins, a dataset
//! without a template has none; and zpersist-core's loader (what
//! zpersist-status reads) accepts the file.

use serde_json::json;
use zpersist_core::status::StatusFile;
use zpersist_e2e::nix::eval_expr;

/// The modules evaluated on pool `tank` with `module` (Nix attributes,
/// owners allowed undeclared), returning `result` (a Nix expression over
/// the evaluation `e`) and the failed assertions.
fn eval_with(module: &str, result: &str) -> serde_json::Value {
    eval_expr(&format!(
        r#"let
  lib = import ./tests/nix/lib.nix;
  e = import ./tests/nix/eval.nix {{ inherit lib; extraModule = {{
    zpersist.pool = "tank";
    zpersist.allowUndeclaredOwners = true;
    {module}
  }}; }};
in {{ result = {result}; failed = e.failedAssertions; }}"#
    ))
}

#[test]
fn status_json_objectives_default_from_the_sanoid_template() {
    let v = eval_with(
        r#"zpersist.snapshots.templates.services = { hourly = 0; daily = 7; };
    zpersist.snapshots.templates.busy = { hourly = 24; daily = 7; };
    zpersist.datasets."services".snapshots = "services";
    zpersist.datasets."services/radarr".snapshots = "busy";
    zpersist.datasets."services/vault".snapshots = "none";
    services.sonarr.enable = true;
    services.radarr.enable = true;
    zpersist.services.sonarr.enable = true;
    zpersist.services.radarr.enable = true;
    zpersist.services.vault.enable = true;
    zpersist.services.lidarr = { enable = true; objectives = { maxSnapshotAge = 60; maxReplicationLag = 600; }; };"#,
        r#"e.config.environment.etc."zpersist/status.json".text"#,
    );
    assert_eq!(v["failed"], json!([]), "{v}");
    let text = v["result"].as_str().unwrap();
    let file = zpersist_core::contract::parse::<StatusFile>(text).unwrap();
    let age = |s: &str| file.services[s].max_snapshot_age_seconds;
    assert_eq!(
        age("sonarr"),
        Some(2 * 86400),
        "daily is the most frequent kept"
    );
    assert_eq!(age("radarr"), Some(2 * 3600), "hourly = 24");
    assert_eq!(age("vault"), None, "no template, no objective");
    assert_eq!(age("lidarr"), Some(60));
    assert_eq!(
        file.services["lidarr"].max_replication_lag_seconds,
        Some(600)
    );
    assert_eq!(file.services["sonarr"].max_replication_lag_seconds, None);
}

#[test]
fn the_status_unit_writes_the_textfile_on_a_timer() {
    let v = eval_with(
        r#"services.sonarr.enable = true;
    zpersist.services.sonarr.enable = true;
    zpersist.status.textfile = "/var/lib/node-exporter/zpersist-status.prom";"#,
        r#"{ u = e.config.systemd.services.zpersist-status;
     notify = e.config.zpersist.notify.units ? "zpersist-status.service"; }"#,
    );
    assert_eq!(v["failed"], json!([]), "{v}");
    let u = &v["result"]["u"];
    assert!(u["serviceConfig"]["ExecStart"].as_str().unwrap().ends_with(
        "/bin/zpersist-status --config /etc/zpersist --textfile /var/lib/node-exporter/zpersist-status.prom"
    ), "{u}");
    assert_eq!(u["startAt"], "*:0/15");
    assert_eq!(
        u["serviceConfig"]["ReadWritePaths"],
        json!(["/var/lib/node-exporter"])
    );
    assert_eq!(u["serviceConfig"]["TimeoutStartSec"], 900);
    assert_eq!(
        v["result"]["notify"], true,
        "a missed objective fails the unit and notifies"
    );
}

/// Issue 22: status.json names the pools with their scrub objective
/// (twice autoScrub's monthly interval plus its 6 h delay), the module
/// turns autoScrub on unless the host says otherwise, PostgreSQL's
/// objectives come from the PITR schedules, and only the template's
/// periods count as policy snapshots.
#[test]
fn status_json_has_pools_postgresql_and_policy_periods_and_autoscrub_is_on() {
    let base = r#"zpersist.snapshots.templates.services = { hourly = 0; daily = 7; };
    zpersist.snapshots.templates.busy = { frequently = 4; hourly = 24; daily = 7; };
    zpersist.datasets."services".snapshots = "services";
    zpersist.datasets."services/radarr".snapshots = "busy";
    zpersist.datasets."services/vault".snapshots = "none";
    services.sonarr.enable = true;
    services.radarr.enable = true;
    zpersist.services.sonarr.enable = true;
    zpersist.services.radarr.enable = true;
    zpersist.services.vault.enable = true;"#;
    let result = r#"{ text = e.config.environment.etc."zpersist/status.json".text;
     scrub = e.config.services.zfs.autoScrub.enable;
     caps = e.config.systemd.services.zpersist-status.serviceConfig.CapabilityBoundingSet; }"#;
    let v = eval_with(
        &format!(
            r#"{base}
    services.postgresql.enable = true;
    zpersist.postgresql.pitr = {{ enable = true; repository.local.dataset = "backup/pitr"; }};
    services.zfs.autoScrub.pools = [ "tank" "usb" ];"#
        ),
        result,
    );
    assert_eq!(v["failed"], json!([]), "{v}");
    assert_eq!(v["result"]["scrub"], true, "on by default");
    let file = zpersist_core::contract::parse::<StatusFile>(v["result"]["text"].as_str().unwrap())
        .unwrap();
    let monthly = 2 * 31 * 86_400 + 6 * 3600;
    for pool in ["tank", "usb"] {
        assert_eq!(
            file.pools[pool].max_scrub_age_seconds,
            Some(monthly),
            "{file:?}"
        );
    }
    let pg = file.postgresql.as_ref().expect("pitr is on");
    assert_eq!(pg.max_base_backup_age_seconds, Some(2 * 86_400), "daily");
    assert_eq!(pg.max_drill_age_seconds, Some(2 * 7 * 86_400), "weekly");
    assert_eq!(pg.max_rpo_seconds, Some(3600), "maxArchiveAgeSeconds");
    let periods = |s: &str| file.services[s].snapshot_periods.clone();
    assert_eq!(periods("sonarr"), Some(vec!["daily".to_string()]));
    assert_eq!(
        periods("radarr"),
        Some(vec![
            "frequently".to_string(),
            "hourly".to_string(),
            "daily".to_string()
        ])
    );
    assert_eq!(periods("vault"), None, "no template: any autosnap_");
    assert_eq!(
        v["result"]["caps"],
        json!(["CAP_DAC_READ_SEARCH", "CAP_SETUID", "CAP_SETGID"]),
        "runuser for psql"
    );

    // The host says no: autoScrub stays off, the pool is shown, unjudged.
    let v = eval_with(
        &format!("{base}\n    services.zfs.autoScrub.enable = false;"),
        result,
    );
    assert_eq!(v["failed"], json!([]), "{v}");
    assert_eq!(v["result"]["scrub"], false);
    let file = zpersist_core::contract::parse::<StatusFile>(v["result"]["text"].as_str().unwrap())
        .unwrap();
    assert_eq!(file.pools["tank"].max_scrub_age_seconds, None);
    assert!(file.postgresql.is_none());
    assert_eq!(v["result"]["caps"], json!(["CAP_DAC_READ_SEARCH"]));
}

/// Issue 22 part 3: status.json learns where each drilled service's drill
/// result lives and its objectives (twice the drill's interval plus the
/// timer's hour of delay, or the declared ones); a service without a drill
/// has none; zpersist-status's loader accepts the file.
#[test]
fn status_json_has_the_drill_of_each_drilled_service_only() {
    let text = |module: &str| {
        let eval = zpersist_e2e::nix::Eval::host("forge").with_module(module);
        let text = eval.attr(r#"config.environment.etc."zpersist/status.json".text"#);
        zpersist_core::contract::parse::<StatusFile>(text.as_str().unwrap())
            .expect("zpersist-status reads the status.json the module writes")
    };
    let file =
        text(r#"{ zpersist.services.sonarr.drill = { enable = true; interval = "Sun 04:00"; }; }"#);
    let drill = file.services["sonarr"]
        .drill
        .as_ref()
        .expect("sonarr is drilled");
    assert_eq!(drill.result_file, "/var/lib/zpersist/drill/sonarr.json");
    assert_eq!(drill.unit, "zpersist-sonarr-drill.service");
    assert_eq!(drill.max_age_seconds, Some(2 * 7 * 86_400 + 3600), "weekly");
    assert_eq!(drill.max_rpo_seconds, None, "none declared");
    for (name, objectives) in &file.services {
        if name != "sonarr" {
            assert!(
                objectives.drill.is_none(),
                "{name} has no drill: {objectives:?}"
            );
        }
    }
    let file = text(
        r#"{ zpersist.services.sonarr = { drill = { enable = true; interval = "daily"; }; objectives.maxDrillRpo = 7200; }; }"#,
    );
    let drill = file.services["sonarr"].drill.as_ref().unwrap();
    assert_eq!(drill.max_age_seconds, Some(2 * 86_400 + 3600), "daily");
    assert_eq!(drill.max_rpo_seconds, Some(7200));
    let file = text(
        r#"{ zpersist.services.sonarr = { drill.enable = true; objectives.maxDrillAge = 600; }; }"#,
    );
    assert_eq!(
        file.services["sonarr"]
            .drill
            .as_ref()
            .unwrap()
            .max_age_seconds,
        Some(600)
    );
    let file = text("{ }");
    assert!(
        file.services.values().all(|o| o.drill.is_none()),
        "{file:?}"
    );
}
