//! The NixOS modules evaluated with Nix 2.8 and the flake-locked nixpkgs lib,
//! offline, against stubs of the NixOS options they set
//! (tests/nix/stubs.nix): snapshots of the plan and unit of both example
//! hosts, one test per assertion (tests/nix/cases.nix), and docs/options.md
//! kept in step with the options.

use serde_json::Value;
use zpersist_e2e::nix::{self, strings, Eval};

// ---------------------------------------------------------------- example hosts

#[test]
fn forge_plan() {
    insta::assert_json_snapshot!(nix::host_plan("forge"));
}

#[test]
fn forge_unit() {
    insta::assert_json_snapshot!(nix::host_unit("forge"));
}

#[test]
fn luna_plan() {
    insta::assert_json_snapshot!(nix::host_plan("luna"));
}

#[test]
fn luna_unit() {
    insta::assert_json_snapshot!(nix::host_unit("luna"));
}

#[test]
fn example_hosts_evaluate_without_failed_assertions_or_warnings() {
    for host in ["forge", "luna", "nas"] {
        let eval = Eval::host(host);
        assert_eq!(
            strings(eval.attr("failedAssertions")),
            Vec::<String>::new(),
            "{host}"
        );
        assert_eq!(
            strings(eval.attr("warnings")),
            Vec::<String>::new(),
            "{host}"
        );
    }
}

#[test]
fn plan_file_holds_exactly_the_plan_and_the_unit_runs_it() {
    let text = nix::host_plan_file_text("forge");
    let from_file: Value = serde_json::from_str(&text).expect("the plan file is JSON");
    assert_eq!(from_file, nix::host_plan("forge"));

    let unit = nix::host_unit("forge");
    let exec = unit["serviceConfig"]["ExecStart"].as_str().unwrap();
    let plan_file = Eval::host("forge").attr("planFile");
    assert!(
        exec.ends_with(&format!(
            "/bin/ensure-datasets --plan {}",
            plan_file.as_str().unwrap()
        )),
        "{exec}"
    );
}

#[test]
fn plan_datasets_are_sorted_and_carry_no_null_fields() {
    for host in ["forge", "luna"] {
        let plan = nix::host_plan(host);
        let datasets = plan["datasets"].as_array().unwrap();
        let names: Vec<&str> = datasets
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "{host}");
        for d in datasets {
            for (field, value) in d.as_object().unwrap() {
                assert!(!value.is_null(), "{host}: {field} of {d} is null");
            }
        }
    }
}

/// The plan files of both hosts are what `ensure-datasets` accepts: the
/// module and the binary agree on the plan format.
#[test]
fn ensure_datasets_accepts_the_rendered_plans() {
    for host in ["forge", "luna"] {
        let text = nix::host_plan_file_text(host);
        if let Err(invalid) = zpersist_core::Plan::parse(&text) {
            panic!("{host}: ensure-datasets would refuse the plan: {invalid:?}\n{text}");
        }
    }
}

/// A newly declared dataset changes the plan file and with it ExecStart, so
/// switch-to-configuration restarts the unit and creates the dataset on the
/// next switch, without a reboot.
#[test]
fn a_new_dataset_changes_the_unit_so_a_switch_reruns_it() {
    let before = nix::host_unit("forge");
    let after = Eval::host("forge")
        .with_module(r#"{ zpersist.datasets."services/lidarr".mountpoint = "/var/lib/lidarr"; }"#)
        .attr("unit");
    assert_ne!(
        before["serviceConfig"]["ExecStart"],
        after["serviceConfig"]["ExecStart"]
    );
    assert_ne!(before["restartTriggers"], after["restartTriggers"]);
    assert_eq!(after["restartIfChanged"], Value::Bool(true));
    assert_eq!(after["serviceConfig"]["Type"], "oneshot");
    assert_eq!(after["serviceConfig"]["RemainAfterExit"], Value::Bool(true));
}

#[test]
fn no_datasets_means_no_unit() {
    let eval = Eval::module(r#"{ zpersist.pool = "tank"; }"#);
    assert_eq!(eval.attr("unit"), Value::Null);
    assert_eq!(strings(eval.attr("failedAssertions")), Vec::<String>::new());
}

#[test]
fn enable_false_keeps_the_declarations_but_defines_no_unit() {
    let eval = Eval::host("forge").with_module("{ zpersist.enable = false; }");
    assert_eq!(eval.attr("unit"), Value::Null);
}

#[test]
fn a_mountpoint_that_is_not_absolute_none_or_legacy_is_a_type_error() {
    let err = Eval::module(
        r#"{ zpersist.pool = "tank"; zpersist.datasets.media.mountpoint = "srv/media"; }"#,
    )
    .try_attr("plan")
    .expect_err("a relative mountpoint must not evaluate");
    assert!(err.contains("zpersist.datasets.media.mountpoint"), "{err}");
    assert!(err.contains("is not of type"), "{err}");
}

/// The typed options take what ensure-datasets takes (nix/lib/rules.nix):
/// `recordsize = "24K"` fails the evaluation, not the unit at switch time.
#[test]
fn a_recordsize_that_is_not_a_power_of_two_is_a_type_error() {
    let err =
        Eval::module(r#"{ zpersist.pool = "tank"; zpersist.datasets.media.recordsize = "24K"; }"#)
            .try_attr("plan")
            .expect_err("recordsize 24K must not evaluate");
    assert!(err.contains("zpersist.datasets.media.recordsize"), "{err}");
    assert!(err.contains("a power of two from 512 to 16M"), "{err}");
}

#[test]
fn an_unknown_compression_is_a_type_error() {
    let err = Eval::module(
        r#"{ zpersist.pool = "tank"; zpersist.datasets.media.compression = "brotli"; }"#,
    )
    .try_attr("plan")
    .expect_err("an unknown compression must not evaluate");
    assert!(err.contains("zpersist.datasets.media.compression"), "{err}");
}

// ------------------------------------------------------------- one test per rule

zpersist_e2e::nix_cases! {
    "cases.nix", every_case_in_cases_nix_has_a_test;
    assertion_pool_unset => "pool-unset",
    assertion_zfs_not_enabled => "zfs-not-enabled",
    assertion_pool_invalid => "pool-invalid",
    assertion_outside_pool_repeated => "outside-pool-repeated",
    assertion_outside_pool_other_pool => "outside-pool-other-pool",
    assertion_name_invalid_component => "name-invalid-component",
    assertion_name_snapshot_syntax => "name-snapshot-syntax",
    assertion_name_empty_component => "name-empty-component",
    assertion_name_too_long => "name-too-long",
    assertion_mountpoint_duplicate => "mountpoint-duplicate",
    assertion_mountpoint_duplicate_inherited => "mountpoint-duplicate-inherited",
    canmount_off_parent_shares_its_childs_mountpoint => "mountpoint-shared-by-canmount-off-parent",
    assertion_property_unknown => "property-unknown",
    assertion_property_value_invalid => "property-value-invalid",
    assertion_owner_numeric => "owner-numeric",
    assertion_create_only_unacknowledged => "create-only-unacknowledged",
    create_only_acknowledged_is_accepted => "create-only-acknowledged",
    assertion_mountpoint_in_properties => "mountpoint-in-properties",
    assertion_typed_property_twice => "typed-property-twice",
    assertion_owner_undeclared => "owner-undeclared",
    assertion_group_undeclared => "group-undeclared",
    warning_owner_undeclared_allowed => "owner-undeclared-allowed",
    assertion_owner_on_unmounted => "owner-on-unmounted",
}

// ------------------------------------------------------------------------- docs

/// docs/options.md is generated from the options; this fails when it is stale.
/// Regenerate with `UPDATE_DOCS=1 cargo test -p zpersist-e2e --test nix_modules`.
#[test]
fn options_md_is_up_to_date() {
    zpersist_e2e::generated::assert_up_to_date(
        "docs/options.md",
        &nix::options_markdown(),
        "UPDATE_DOCS",
        "UPDATE_DOCS=1 cargo test -p zpersist-e2e --test nix_modules",
    );
}

/// docs/nix-module.md shows both example hosts verbatim.
#[test]
fn nix_module_md_shows_the_example_hosts_as_they_are() {
    let root = nix::repo_root();
    let doc = std::fs::read_to_string(root.join("docs/nix-module.md")).unwrap();
    for host in ["forge", "luna"] {
        let file = std::fs::read_to_string(root.join(format!("examples/hosts/{host}/default.nix")))
            .unwrap();
        assert!(
            doc.contains(&file),
            "docs/nix-module.md does not contain examples/hosts/{host}/default.nix as it is; paste it again"
        );
    }
}

/// What the flake's `checks` evaluate (tests/nix/check.nix) passes too.
#[test]
fn flake_check_expression_passes() {
    let report = nix::eval_expr("import ./tests/nix/check.nix { }");
    assert!(report.as_str().unwrap().starts_with("ok:"), "{report}");
}

/// nixpkgs' lib is the one flake.lock pins, found by its narHash.
#[test]
fn lib_comes_from_flake_lock() {
    let v = nix::eval_expr(
        r#"let lock = builtins.fromJSON (builtins.readFile ./flake.lock);
               locked = lock.nodes.nixpkgs-lib.locked;
           in { inherit (locked) rev; src = (builtins.fetchTree locked).narHash;
                version = (import ./tests/nix/lib.nix).version; }"#,
    );
    assert_eq!(v["rev"], "45c0f194de16fd8fed47598efc58634bb3fdac1b");
    assert_eq!(
        v["src"],
        "sha256-pzAH4XEwJ8hOlzN2W19aD3Ma0WuUxCzt0usw0jdxR4I="
    );
}

/// NixOS types `before`/`wantedBy` as unit names: a bare "syncthing" in
/// `neededBy` would pass a loose type and break `nixos-rebuild` with an
/// error blamed on zpersist's own unit. zpersist's option refuses it
/// itself, naming the option and what a unit name looks like.
#[test]
fn needed_by_takes_unit_names_as_nixos_types_them() {
    let bare = Eval::module(
        r#"{ zpersist.pool = "tank"; zpersist.datasets."state/syncthing".neededBy = [ "syncthing" ]; }"#,
    )
    .try_attr("config.systemd.services.zpersist-datasets.before");
    let error = bare.expect_err("a bare service name must be refused");
    assert!(
        error.contains("zpersist.datasets.\"state/syncthing\".neededBy")
            && error.contains("systemd unit name with its suffix"),
        "{error}"
    );
    let named = Eval::module(
        r#"{ zpersist.pool = "tank"; zpersist.datasets."state/syncthing".neededBy = [ "syncthing.service" ]; }"#,
    )
    .attr("config.systemd.services.zpersist-datasets.before");
    assert_eq!(named, serde_json::json!(["syncthing.service"]));
}

/// The stubs type unit lists as NixOS does: the same bare name given
/// straight to systemd.services is refused there too (so a test passing
/// here would not pass with a looser model).
#[test]
fn the_test_model_types_unit_lists_like_nixos() {
    let error = Eval::module(r#"{ systemd.services.x.before = [ "syncthing" ]; }"#)
        .try_attr("config.systemd.services.x.before")
        .expect_err("NixOS refuses a unit name without a suffix");
    assert!(error.contains("systemd.services.x.before"), "{error}");
}
