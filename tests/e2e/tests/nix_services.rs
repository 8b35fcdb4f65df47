//! `zpersist.services.<name>` evaluated with Nix 2.8 and the flake-locked
//! nixpkgs lib against the stubs of the NixOS options it reads and sets
//! (tests/nix/stubs.nix, stubs-services.nix): what each profile declares
//! (snapshots), how the services' units are ordered after their datasets,
//! that a service turned off leaves no trace, the services file
//! `migrate-to-dataset` reads, and one test per case of
//! tests/nix/cases-services.nix.

use serde_json::{json, Value};
use zpersist_e2e::nix::{self, strings, Eval};

/// Evaluates `module` (a Nix expression, with `lib` in scope) alone or on
/// top of an example host and returns, for the services it names, what the
/// zpersist modules make of them: the datasets (from the plan), the units
/// zpersist defines or adds to (empty lists left out), the tmpfiles rules,
/// /etc/zpersist/services.json, failed assertions and warnings.
fn services_view(host: Option<&str>, module: &str) -> Value {
    let host = host.map_or("null".to_string(), |h| format!("\"{h}\""));
    nix::eval_expr(&format!(
        r#"let
             lib = import ./tests/nix/lib.nix;
             r = import ./tests/nix/eval.nix {{ inherit lib; host = {host}; extraModule = {{ lib, ... }}: {module}; }};
             c = r.config;
             services = lib.filterAttrs (_: s: s.enable) c.zpersist.services;
             units = lib.concatMap (n: [ "zpersist-${{n}}-mounted" ] ++ map (lib.removeSuffix ".service") services.${{n}}.units) (builtins.attrNames services);
             clean = lib.filterAttrs (_: v: v != [ ] && v != {{ }});
             etc = c.environment.etc."zpersist/services.json" or null;
           in {{
             datasets = r.plan.datasets;
             units = lib.genAttrs (builtins.filter (n: c.systemd.services ? ${{n}}) units) (n: clean c.systemd.services.${{n}});
             datasetsUnit = lib.filterAttrs (n: _: lib.elem n [ "before" "wantedBy" ]) (c.systemd.services.zpersist-datasets or {{ }});
             tmpfiles = builtins.filter (r: !(lib.hasPrefix "d /run/zpersist" r)) c.systemd.tmpfiles.rules;
             lockRules = builtins.filter (lib.hasPrefix "d /run/zpersist") c.systemd.tmpfiles.rules;
             servicesJson = if etc == null then null else builtins.fromJSON etc.text;
             servicesPlan = c.zpersist.internal.servicesPlan;
             packages = lib.sort lib.lessThan (map (p: p.name) c.environment.systemPackages);
             inherit (r) failedAssertions warnings;
           }}"#
    ))
}

/// The smallest host running one profile: pool tank, the nixpkgs service
/// on, its users declared.
fn one_service(service: &str, nixpkgs: &str, extra: &str, users: &[(&str, &str)]) -> Value {
    let users: String = users
        .iter()
        .map(|(user, group)| {
            format!(
                r#"users.users.{user} = {{ isSystemUser = true; group = "{group}"; }}; users.groups.{group} = {{ }};"#
            )
        })
        .collect();
    let nixpkgs = if nixpkgs.is_empty() {
        String::new()
    } else {
        // Plex is unfree: nixpkgs evaluates it only when allowed.
        let unfree = if nixpkgs == "plex" {
            "nixpkgs.config.allowUnfree = true;"
        } else {
            ""
        };
        format!("services.{nixpkgs}.enable = true; {unfree}")
    };
    services_view(
        None,
        &format!(
            r#"{{ zpersist.pool = "tank"; zpersist.services.{service} = {{ enable = true; {extra} }}; {nixpkgs} {users} }}"#
        ),
    )
}

fn assert_clean(view: &Value) {
    assert_eq!(view["failedAssertions"], json!([]), "{view:#}");
    assert_eq!(view["warnings"], json!([]), "{view:#}");
}

// ---------------------------------------------------------------- profiles

/// Each profile with nixpkgs' defaults, as it is declared: the dataset in
/// the plan, the units, the tmpfiles rule and the services.json entry.
macro_rules! profiles {
    ($($test:ident => ($service:literal, $profile:literal, $nixpkgs:literal, $extra:literal, $users:expr),)*) => {
        $(
            #[test]
            fn $test() {
                let mut view = one_service($service, $nixpkgs, $extra, $users);
                assert_clean(&view);
                // The same data as servicesJson (checked below).
                view.as_object_mut().unwrap().remove("servicesPlan");
                insta::assert_json_snapshot!(format!("profile-{}", $profile), view);
            }
        )*

        #[test]
        fn every_profile_has_a_snapshot_test() {
            let mut ours: Vec<&str> = vec![$($profile),*];
            ours.sort();
            let theirs = strings(nix::eval_expr(
                "builtins.attrNames (import ./nix/lib/profiles.nix { lib = import ./tests/nix/lib.nix; }).profiles",
            ));
            assert_eq!(theirs, ours, "nix/lib/profiles.nix and the profiles! list differ");
        }
    };
}

profiles! {
    profile_sonarr => ("sonarr", "sonarr", "sonarr", "", &[("sonarr", "sonarr")]),
    profile_radarr => ("radarr", "radarr", "radarr", "", &[("radarr", "radarr")]),
    profile_plex_with_its_media_dataset => ("plex", "plex", "plex", "media.enable = true;", &[("plex", "plex")]),
    profile_home_assistant => ("home-assistant", "home-assistant", "home-assistant", "", &[("hass", "hass")]),
    profile_postgresql => ("postgresql", "postgresql", "postgresql", "", &[("postgres", "postgres")]),
    profile_generic => ("paperless", "generic", "", r#"user = "paperless"; group = "paperless";"#, &[("paperless", "paperless")]),
}

/// The mountpoint follows the nixpkgs service's own option when it is set.
#[test]
fn mountpoints_follow_the_nixpkgs_data_directories() {
    let view = services_view(
        None,
        r#"{
          zpersist.pool = "tank";
          zpersist.allowUndeclaredOwners = true;
          services.sonarr = { enable = true; dataDir = "/srv/sonarr"; user = "media"; };
          services.postgresql = { enable = true; dataDir = "/var/lib/postgresql/17"; };
          services.home-assistant = { enable = true; configDir = "/srv/hass"; };
          zpersist.services = { sonarr.enable = true; postgresql.enable = true; home-assistant.enable = true; };
        }"#,
    );
    let plan = &view["servicesPlan"]["services"];
    assert_eq!(plan["sonarr"]["mountpoint"], "/srv/sonarr");
    assert_eq!(plan["sonarr"]["user"], "media");
    // The parent of the versioned data directory: one dataset across
    // major versions.
    assert_eq!(plan["postgresql"]["mountpoint"], "/var/lib/postgresql");
    assert_eq!(plan["home-assistant"]["mountpoint"], "/srv/hass");
    assert_eq!(
        view["units"]["sonarr"]["unitConfig"]["RequiresMountsFor"],
        json!(["/srv/sonarr"])
    );
}

/// Properties: the user's win over the profile's, and the dataset entry set
/// directly wins over both; services.json shows what is declared in the end.
#[test]
fn user_properties_win_over_the_profile_and_the_dataset_entry_over_both() {
    let view = services_view(
        None,
        r#"{
          zpersist.pool = "tank";
          services.sonarr.enable = true;
          users.users.sonarr = { isSystemUser = true; group = "sonarr"; };
          users.groups.sonarr = { };
          zpersist.services.sonarr = { enable = true; properties = { recordsize = "64K"; compression = "zstd"; "com.example:tier" = "gold"; }; };
          zpersist.datasets."services/sonarr" = { compression = "gzip"; mode = "0700"; };
        }"#,
    );
    assert_clean(&view);
    let sonarr = &view["servicesJson"]["services"]["sonarr"];
    assert_eq!(
        sonarr["properties"],
        json!({ "atime": "off", "compression": "gzip", "recordsize": "64K", "com.example:tier": "gold" })
    );
    assert_eq!(sonarr["mode"], "0700");
    let dataset = view["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "tank/services/sonarr")
        .unwrap();
    assert_eq!(dataset["properties"]["compression"], "gzip");
    assert_eq!(dataset["properties"]["recordsize"], "64K");
}

// ---------------------------------------------------------------- ordering

/// On forge every guarded unit requires, and is ordered after, its check
/// unit, which is ordered after (and wants) zpersist-datasets.service; the
/// datasets unit is pulled in by and ordered before the guarded unit; the
/// unit needs its mountpoint mounted (RequiresMountsFor).
#[test]
fn every_guarded_unit_waits_for_its_dataset_to_be_mounted() {
    let view = services_view(Some("forge"), "{ }");
    assert_clean(&view);
    let services = view["servicesPlan"]["services"].as_object().unwrap();
    assert_eq!(services.len(), 6, "forge showcases six services");
    for (name, service) in services {
        let check = format!("zpersist-{name}-mounted");
        let check_unit = &view["units"][&check];
        assert_eq!(
            check_unit["wants"],
            json!(["zpersist-datasets.service"]),
            "{name}"
        );
        assert_eq!(
            check_unit["after"],
            json!(["zpersist-datasets.service"]),
            "{name}"
        );
        assert_eq!(check_unit["serviceConfig"]["Type"], "oneshot");
        assert_eq!(check_unit["serviceConfig"]["RemainAfterExit"], true);
        let exec = check_unit["serviceConfig"]["ExecStart"].as_str().unwrap();
        assert!(
            exec.contains(&format!(
                " {name} {} {}",
                service["dataset"].as_str().unwrap(),
                service["mountpoint"].as_str().unwrap()
            )),
            "{exec}"
        );
        for unit in strings(service["units"].clone()) {
            let short = unit.strip_suffix(".service").unwrap();
            let u = &view["units"][short];
            assert_eq!(u["requires"], json!([format!("{check}.service")]), "{unit}");
            let after = strings(u["after"].clone());
            assert!(
                after.contains(&format!("{check}.service")),
                "{unit}: {after:?}"
            );
            assert!(
                after.contains(&"zpersist-datasets.service".to_string()),
                "{unit}"
            );
            let mounts = strings(u["unitConfig"]["RequiresMountsFor"].clone());
            assert!(
                mounts.contains(&service["mountpoint"].as_str().unwrap().to_string()),
                "{unit}: {mounts:?}"
            );
            for field in ["before", "wantedBy"] {
                assert!(
                    strings(view["datasetsUnit"][field].clone()).contains(&unit),
                    "zpersist-datasets.{field} lacks {unit}"
                );
            }
        }
    }
    // Plex also waits for its media dataset.
    assert_eq!(
        view["units"]["plex"]["unitConfig"]["RequiresMountsFor"],
        json!(["/var/lib/plex", "/srv/media"])
    );
}

/// No service requires zpersist-datasets.service: systemd restarts the
/// units that require a unit whenever that unit restarts, and it restarts
/// on every switch that changes the plan. A dataset declared for another
/// service changes that unit, and nothing of sonarr's.
#[test]
fn a_plan_change_elsewhere_does_not_touch_the_services_units() {
    let before = services_view(Some("forge"), "{ }");
    let after = services_view(
        Some("forge"),
        r#"{
          zpersist.services.lidarr = { enable = true; user = "lidarr"; group = "lidarr"; };
          users.users.lidarr = { isSystemUser = true; group = "lidarr"; };
          users.groups.lidarr = { };
        }"#,
    );
    assert_clean(&after);
    for (name, unit) in before["units"].as_object().unwrap() {
        assert!(
            !unit["requires"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("zpersist-datasets.service"))),
            "{name} requires zpersist-datasets.service"
        );
        assert_eq!(&after["units"][name], unit, "{name} changed");
    }
    assert_ne!(
        nix::host_unit("forge")["serviceConfig"]["ExecStart"],
        Eval::host("forge")
            .with_module(r#"{ zpersist.services.lidarr = { enable = true; }; }"#)
            .attr("unit")["serviceConfig"]["ExecStart"],
        "the plan, and with it zpersist-datasets.service, did change"
    );
}

/// A service's own dataset or mountpoint changing changes its check unit,
/// so the switch restarts the check and, through Requires=, the service.
#[test]
fn moving_a_service_changes_its_check_unit_so_the_switch_restarts_it() {
    let before = services_view(Some("forge"), "{ }");
    let after = services_view(
        Some("forge"),
        r#"{ zpersist.services.sonarr.mountpoint = "/srv/sonarr"; }"#,
    );
    let exec =
        |v: &Value| v["units"]["zpersist-sonarr-mounted"]["serviceConfig"]["ExecStart"].clone();
    assert_ne!(exec(&before), exec(&after));
    assert!(exec(&after).as_str().unwrap().ends_with(" /srv/sonarr"));
    assert_eq!(
        before["units"]["zpersist-radarr-mounted"], after["units"]["zpersist-radarr-mounted"],
        "radarr's check is untouched"
    );
}

/// The check units run zpersist-check-mounted as the current system has it
/// (/run/current-system/sw/bin), not as a store path of the package: a new
/// zpersist build changes zpersist-datasets.service, which names the
/// package, but no check unit, so upgrading zpersist restarts no service.
#[test]
fn a_new_zpersist_package_changes_no_check_unit() {
    let rebuilt = r#"{
      zpersist.package = {
        type = "derivation";
        name = "zpersist-next";
        outPath = "/nix/store/11111111111111111111111111111111-zpersist-next";
      };
    }"#;
    let before = services_view(Some("forge"), "{ }");
    let after = services_view(Some("forge"), rebuilt);
    assert_clean(&after);
    for (name, unit) in before["units"].as_object().unwrap() {
        assert_eq!(&after["units"][name], unit, "{name} changed");
    }
    assert_ne!(
        nix::host_unit("forge")["serviceConfig"]["ExecStart"],
        Eval::host("forge").with_module(rebuilt).attr("unit")["serviceConfig"]["ExecStart"],
        "zpersist-datasets.service does run the new package"
    );
}

#[test]
fn tmpfiles_give_each_mountpoint_its_owner_and_mode() {
    let view = services_view(Some("forge"), "{ }");
    let rules = strings(view["tmpfiles"].clone());
    for rule in [
        "d /var/lib/sonarr/.config/NzbDrone 0700 sonarr sonarr -",
        "d /var/lib/radarr/.config/Radarr 0700 radarr radarr -",
        "d /var/lib/plex 0750 plex plex -",
        "d /var/lib/hass 0700 hass hass -",
        "d /var/lib/postgresql 0750 postgres postgres -",
        "d /var/lib/jellyfin 0750 jellyfin jellyfin -",
    ] {
        assert!(
            rules.contains(&rule.to_string()),
            "{rule} missing from {rules:#?}"
        );
    }
    // A generic service without owner or mode: tmpfiles leaves them alone.
    let view = one_service("paperless", "", "", &[]);
    assert_eq!(view["tmpfiles"], json!(["d /var/lib/paperless - - - -"]));
}

// ----------------------------------------------------- turning a service off

/// Turning a service off removes everything zpersist declared for it (its
/// dataset entry, its check unit, its unit overrides, its tmpfiles rule,
/// its services.json entry) and changes nothing of the other services.
/// (Its dataset stays on the pool: zpersist never destroys.)
#[test]
fn a_disabled_service_leaves_no_trace_and_the_others_are_unchanged() {
    let forge = services_view(Some("forge"), "{ }");
    let without = services_view(
        Some("forge"),
        "{ zpersist.services.sonarr.enable = lib.mkForce false; }",
    );
    assert_clean(&without);
    // Sonarr's nixpkgs module (still enabled) keeps its own tmpfiles rule.
    let text = without.to_string().replace(
        "d '/var/lib/sonarr/.config/NzbDrone' 0700 sonarr sonarr - -",
        "",
    );
    assert!(
        !text.contains("sonarr") && !text.contains("NzbDrone"),
        "{without:#}"
    );

    let others = |v: &Value| -> Value {
        let mut units = v["units"].clone();
        units
            .as_object_mut()
            .unwrap()
            .retain(|n, _| !n.contains("sonarr"));
        let mut services = v["servicesJson"]["services"].clone();
        services.as_object_mut().unwrap().remove("sonarr");
        let datasets: Vec<Value> = v["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["name"] != "tank/services/sonarr")
            .cloned()
            .collect();
        json!({ "units": units, "services": services, "datasets": datasets })
    };
    assert_eq!(others(&without), others(&forge));

    // The plan otherwise stays valid for ensure-datasets.
    let plan = serde_json::to_string(&json!({
        "version": 1, "pool": "tank", "datasets": without["datasets"]
    }))
    .unwrap();
    zpersist_core::Plan::parse(&plan).expect("ensure-datasets accepts the plan");
}

#[test]
fn no_enabled_service_means_no_services_file_and_no_units() {
    let view = services_view(
        None,
        r#"{ zpersist.pool = "tank"; zpersist.services.sonarr.enable = false; zpersist.datasets.media = { }; }"#,
    );
    assert_eq!(view["servicesJson"], Value::Null);
    assert_eq!(view["units"], json!({}));
    assert_eq!(view["tmpfiles"], json!([]));
    // The movers' resource locks are there whenever zpersist is.
    assert_eq!(
        view["lockRules"],
        json!([
            "d /run/zpersist 0755 root root -",
            "d /run/zpersist/locks 1777 root root -"
        ])
    );
    // The operator's `zpersist` is there for the datasets; rsync is not.
    assert_eq!(view["packages"], json!(["zpersist"]));
    assert_eq!(view["servicesPlan"]["services"], json!({}));
}

#[test]
fn zpersist_enable_false_runs_nothing_for_the_services() {
    let view = services_view(Some("forge"), "{ zpersist.enable = false; }");
    // Only what nixpkgs itself defines (tests/nix/model-postgresql.nix
    // models the postgresql unit): nothing of zpersist's.
    let units = view["units"].as_object().unwrap();
    assert!(units.keys().all(|name| name == "postgresql"), "{units:?}");
    assert!(
        !view["units"].to_string().contains("zpersist"),
        "{}",
        view["units"]
    );
    assert_eq!(view["servicesJson"], Value::Null);
}

// ------------------------------------------------------- the services file

/// /etc/zpersist/services.json: the contract with migrate-to-dataset.
#[test]
fn services_json_holds_exactly_what_migrate_to_dataset_reads() {
    let view = services_view(Some("forge"), "{ }");
    assert_eq!(view["servicesJson"], view["servicesPlan"]);
    assert_eq!(
        view["packages"],
        json!(["rsync", "zpersist"]),
        "zpersist (and migrate-to-dataset) on PATH, with the rsync it copies with"
    );
    let file = &view["servicesJson"];
    assert_eq!(file["version"], 1);
    assert_eq!(file["pool"], "tank");
    let sonarr = file["services"]["sonarr"].as_object().unwrap();
    let mut keys: Vec<&str> = sonarr.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "dataset",
            "group",
            "mode",
            "mountpoint",
            "properties",
            "units",
            "user"
        ]
    );
    assert_eq!(
        file["services"]["sonarr"],
        json!({
            "dataset": "tank/services/sonarr",
            "mountpoint": "/var/lib/sonarr/.config/NzbDrone",
            "units": ["sonarr.service"],
            "user": "sonarr",
            "group": "sonarr",
            "mode": "0700",
            "properties": { "atime": "off", "compression": "lz4", "quota": "20G", "recordsize": "16K" }
        })
    );
    // A generic service without owner: nulls, as the contract allows.
    let view = one_service("paperless", "", "", &[]);
    let paperless = &view["servicesJson"]["services"]["paperless"];
    assert_eq!(paperless["user"], Value::Null);
    assert_eq!(paperless["mode"], Value::Null);
}

// ------------------------------------------------------------- hooks

/// snapshots and replicateTo are forwarded to the dataset only when set.
#[test]
fn snapshot_and_replication_hooks_reach_the_dataset_only_when_set() {
    let eval = |extra: &str| {
        nix::eval_expr(&format!(
            r#"let r = import ./tests/nix/eval.nix {{ lib = import ./tests/nix/lib.nix; extraModule = {{
                 zpersist.pool = "tank"; zpersist.services.paperless = {{ enable = true; {extra} }};
               }}; }};
               d = r.config.zpersist.datasets."services/paperless";
             in {{ inherit (d) snapshots replicateTo; }}"#
        ))
    };
    assert_eq!(eval(""), json!({ "snapshots": null, "replicateTo": null }));
    assert_eq!(
        eval(r#"snapshots = "services"; replicateTo = [ "nas" ];"#),
        json!({ "snapshots": "services", "replicateTo": ["nas"] })
    );
}

/// The parent is declared never-mounted unless the host says otherwise.
#[test]
fn the_services_parent_is_declared_unmounted_unless_declared_otherwise() {
    let parent = |module: &str| -> Value {
        let view = services_view(None, module);
        view["datasets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "tank/apps")
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        parent(
            r#"{ zpersist.pool = "tank"; zpersist.servicesParent = "apps"; zpersist.services.paperless.enable = true; }"#
        ),
        json!({ "name": "tank/apps", "mountpoint": "none", "canmount": "off", "properties": {} })
    );
    assert_eq!(
        parent(
            r#"{ zpersist.pool = "tank"; zpersist.servicesParent = "apps"; zpersist.services.paperless.enable = true; zpersist.datasets.apps.mountpoint = "/srv/apps"; }"#
        )["mountpoint"],
        "/srv/apps"
    );
    assert_eq!(
        parent(
            r#"{ zpersist.pool = "tank"; zpersist.servicesParent = "apps"; zpersist.services.paperless = { enable = true; dataset = "paperless"; }; }"#
        ),
        Value::Null,
        "no service below it: not declared"
    );
}

// ------------------------------------------------------- one test per rule

zpersist_e2e::nix_cases! {
    "cases-services.nix", every_case_in_cases_services_nix_has_a_test;
    assertion_profile_unknown => "services-profile-unknown",
    assertion_dataset_shared => "services-dataset-shared",
    assertion_mountpoint_shared => "services-mountpoint-shared",
    assertion_dataset_outside_pool => "services-dataset-outside-pool",
    assertion_dataset_is_parent => "services-dataset-is-parent",
    warning_nixpkgs_service_disabled => "services-nixpkgs-service-disabled",
    assertion_user_undeclared => "services-user-undeclared",
    assertion_mode_fights_tmpfiles => "services-mode-fights-tmpfiles",
    sonarr_with_its_nixpkgs_service_is_clean => "services-sonarr-clean",
}

/// docs/profiles.md explains every default each profile sets.
#[test]
fn profiles_md_explains_every_default() {
    let doc = std::fs::read_to_string(nix::repo_root().join("docs/profiles.md")).unwrap();
    let profiles = nix::eval_expr(
        r#"let lib = import ./tests/nix/lib.nix;
               p = (import ./nix/lib/profiles.nix { inherit lib; });
               config = { };
           in lib.mapAttrs (n: f: let v = f config n; in v.properties // { inherit (v) mode; }) p.profiles"#,
    );
    for (profile, values) in profiles.as_object().unwrap() {
        let heading = format!("## {profile}");
        let section = doc
            .split("\n## ")
            .find(|s| format!("## {s}").starts_with(&heading))
            .unwrap_or_else(|| panic!("docs/profiles.md has no section {heading}"));
        for (property, value) in values.as_object().unwrap() {
            if value.is_null() {
                continue;
            }
            let needle = format!("`{property} = {}`", value.as_str().unwrap());
            assert!(
                section.contains(&needle),
                "docs/profiles.md, section {heading}, does not explain {needle}"
            );
        }
    }
}
