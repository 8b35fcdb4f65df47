//! Snapshot policies, replication and notifications as the modules generate
//! them (Nix 2.8, flake-locked lib, stubs of nixpkgs' services.sanoid and
//! services.syncoid with their real option structure): the inheritance walk,
//! the sanoid.conf and syncoid argv as nixpkgs would render them, the units
//! and files, the `zfs allow` sets (as data: zfs-fuse has no `zfs allow`),
//! and one test per case of tests/nix/cases-replication.nix. The real tools
//! run on this configuration in tests/e2e/tests/nix_snapshots.rs (sanoid),
//! crates/replication-lag/tests (syncoid over ssh, lag) and
//! crates/zpersist-notify/tests (a syncoid failure reaching the command).

use serde_json::{json, Value};
use zpersist_e2e::nix::{eval_expr, strings};

/// The issue's example host: services on a template, sonarr's cache opted
/// out of both, media on its own template, radarr nested two levels below
/// an undeclared level.
const FORGE: &str = r#"{
  networking.hostName = "forge";
  zpersist.pool = "tank";
  zpersist.snapshots.templates = {
    services = { hourly = 36; daily = 30; monthly = 3; };
    media = { daily = 7; autoprune = true; hourly_warn = 2880; };
  };
  zpersist.datasets."services" = { snapshots = "services"; replicateTo = [ "nas" ]; };
  zpersist.datasets."services/sonarr" = { };
  zpersist.datasets."services/sonarr/cache" = { snapshots = "none"; replicateTo = [ ]; };
  zpersist.datasets."media" = { snapshots = "media"; };
  zpersist.datasets."media/tv/archive" = { replicateTo = [ "nas" "offsite" ]; };
  zpersist.replication.targets.nas = {
    host = "nas-1"; user = "zfs-recv"; dataset = "backup/forge";
    sshKey = "/run/secrets/syncoid"; hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0st";
  };
  zpersist.replication.targets.offsite = {
    host = "offsite.example.org"; port = 2222; user = "recv"; dataset = "tank/forge";
    sshKey = "/run/secrets/offsite"; hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOff";
    interval = "daily"; sendOptions = "w"; extraArgs = [ "--compress=zstd-fast" ];
  };
  zpersist.notify.ntfy = { url = "https://ntfy.example.org"; topic = "forge"; tokenFile = "/run/secrets/ntfy"; };
}"#;

/// What the modules make of `module`: sanoid.conf and the syncoid argv as
/// nixpkgs renders them, the units zpersist defines or adds to (empty
/// lists left out), the /etc files, the commands' allow lists.
fn view(module: &str) -> Value {
    eval_expr(&format!(
        r#"let
  lib = import ./tests/nix/lib.nix;
  e = import ./tests/nix/eval.nix {{ inherit lib; extraModule = {module}; }};
  c = e.config;
  clean = lib.filterAttrs (_: v: v != [ ] && v != {{ }});
  ours = n: lib.hasPrefix "syncoid-" n || lib.hasPrefix "zpersist-notify" n || n == "sanoid" || n == "zpersist-replication-lag";
in {{
  sanoidEnabled = c.services.sanoid.enable;
  sanoidConf = import ./tests/nix/sanoid-ini.nix {{ inherit lib; sanoid = c.services.sanoid; }};
  syncoidEnabled = c.services.syncoid.enable;
  syncoidArgv = import ./tests/nix/syncoid-argv.nix {{ inherit lib; syncoid = c.services.syncoid; }};
  localSourceAllow = lib.mapAttrs (_: cmd: cmd.localSourceAllow) c.services.syncoid.commands;
  localTargetAllow = lib.mapAttrs (_: cmd: cmd.localTargetAllow) c.services.syncoid.commands;
  notifySummaries = lib.mapAttrs (_: u: u.summary) c.zpersist.notify.units;
  units = lib.mapAttrs (_: clean) (lib.filterAttrs (n: _: ours n) c.systemd.services);
  etc = lib.mapAttrs (_: v: v.text) (lib.filterAttrs (n: v: lib.hasPrefix "zpersist/" n && v ? text) c.environment.etc);
  policies = c.zpersist.snapshots.internal.policies;
  failed = e.failedAssertions;
  warnings = e.warnings;
}}"#
    ))
}

fn forge() -> Value {
    let v = view(FORGE);
    assert_eq!(v["failed"], json!([]));
    assert_eq!(v["warnings"], json!([]));
    v
}

#[test]
fn inheritance_takes_the_nearest_declared_ancestor_across_undeclared_levels() {
    let resolved = eval_expr(
        r#"let
  lib = import ./tests/nix/lib.nix;
  inheritance = (import ./nix/lib { inherit lib; }).inheritance;
  d = v: { snapshots = v; };
in inheritance.resolve {
  "a" = d "top";
  "a/b/c" = d null;          # b is not declared: inherits from a
  "a/b/c/d" = d "deeper";    # overrides
  "a/b/c/d/e" = d null;      # inherits the override, not the top
  "a/x" = d "none";          # a value, so it decides (opting out)
  "a/x/y" = d null;
  "z" = d null;              # no ancestor sets it
} "snapshots""#,
    );
    assert_eq!(
        resolved,
        json!({
            "a": "top", "a/b/c": "top", "a/b/c/d": "deeper", "a/b/c/d/e": "deeper",
            "a/x": "none", "a/x/y": "none", "z": null
        })
    );
}

#[test]
fn an_empty_replicate_to_opts_a_subtree_out_and_null_inherits() {
    let resolved = eval_expr(
        r#"let
  lib = import ./tests/nix/lib.nix;
  inheritance = (import ./nix/lib { inherit lib; }).inheritance;
in inheritance.resolve {
  "s" = { replicateTo = [ "nas" ]; };
  "s/a" = { replicateTo = null; };
  "s/a/cache" = { replicateTo = [ ]; };
  "s/a/cache/tmp" = { replicateTo = null; };
} "replicateTo""#,
    );
    assert_eq!(
        resolved,
        json!({ "s": ["nas"], "s/a": ["nas"], "s/a/cache": [], "s/a/cache/tmp": [] })
    );
}

#[test]
fn every_dataset_gets_its_inherited_policy_as_its_own_sanoid_entry() {
    let v = forge();
    assert_eq!(
        v["policies"],
        json!({
            "tank/services": "services", "tank/services/sonarr": "services",
            "tank/media": "media", "tank/media/tv/archive": "media"
        })
    );
    assert_eq!(v["sanoidEnabled"], true);
    insta::assert_snapshot!("forge_sanoid_conf", v["sanoidConf"].as_str().unwrap());
}

#[test]
fn every_dataset_and_target_is_one_syncoid_command_with_its_own_identifier() {
    let v = forge();
    assert_eq!(v["syncoidEnabled"], true);
    insta::assert_json_snapshot!("forge_syncoid_argv", v["syncoidArgv"]);
    for (name, argv) in v["syncoidArgv"].as_object().unwrap() {
        let target = name.rsplit("-to-").next().unwrap();
        let argv = strings(argv.clone());
        assert!(
            argv.contains(&format!("--identifier={target}")),
            "{name}: {argv:?}"
        );
        assert!(
            argv.contains(&format!(
                "--sshoption=UserKnownHostsFile=/etc/zpersist/known_hosts/{target}"
            )),
            "{name}: {argv:?}"
        );
        assert!(argv.contains(&"--sshoption=StrictHostKeyChecking=yes".to_string()));
    }
}

#[test]
fn units_get_the_notify_hook_ordering_parent_creation_and_intervals() {
    let v = forge();
    insta::assert_json_snapshot!("forge_units", v["units"]);
    let units = v["units"].as_object().unwrap();
    for name in [
        "sanoid",
        "syncoid-services-to-nas",
        "syncoid-media-tv-archive-to-offsite",
        "zpersist-replication-lag",
    ] {
        assert_eq!(
            units[name]["onFailure"],
            json!(["zpersist-notify@%n.service"]),
            "{name}"
        );
    }
    // media/tv is not declared and media is not replicated: both levels are
    // created (canmount=off) on the target before the receive.
    let pre = strings(
        units["syncoid-media-tv-archive-to-offsite"]["serviceConfig"]["ExecStartPre"].clone(),
    );
    // zpersist's two levels, then nixpkgs' delegation on the source.
    assert_eq!(pre.len(), 3, "{pre:?}");
    assert!(
        pre[2].starts_with("-+/nix/store/") && pre[2].ends_with("-zfs-allow-tank-media-tv-archive"),
        "{pre:?}"
    );
    assert!(
        pre[0].starts_with("-/nix/store/")
            && pre[0].ends_with("zfs create -p -o 'canmount=off' tank/forge/media"),
        "{pre:?}"
    );
    assert!(pre[1].ends_with("tank/forge/media/tv"), "{pre:?}");
    assert!(
        pre[0].contains("-p 2222 recv@offsite.example.org"),
        "{pre:?}"
    );
    // sonarr's parent is replicated to the same target: received first.
    // oneshot, so that `after` waits for the parent's run to end (nixpkgs
    // sets no Type=, and a simple unit counts as started at once).
    assert_eq!(
        units["syncoid-services-sonarr-to-nas"]["after"],
        json!([
            "zfs.target",
            "zpersist-syncoid-allow.service",
            "syncoid-services-to-nas.service"
        ])
    );
    assert_eq!(
        units["syncoid-services-sonarr-to-nas"]["serviceConfig"]["Type"],
        "oneshot"
    );
    assert_eq!(
        units["syncoid-media-tv-archive-to-offsite"]["startAt"],
        "daily"
    );
}

#[test]
fn every_wait_of_the_generated_units_is_bounded() {
    let v = forge();
    let units = v["units"].as_object().unwrap();
    // Every ssh that zpersist or syncoid opens drops a silent peer.
    for (name, argv) in v["syncoidArgv"].as_object().unwrap() {
        let argv = strings(argv.clone());
        for option in [
            "ConnectTimeout=20",
            "ServerAliveInterval=15",
            "ServerAliveCountMax=3",
        ] {
            assert!(
                argv.contains(&format!("--sshoption={option}")),
                "{name}: {argv:?}"
            );
        }
    }
    for line in strings(
        units["syncoid-media-tv-archive-to-offsite"]["serviceConfig"]["ExecStartPre"].clone(),
    )
    .into_iter()
    .filter(|line| line.contains("/bin/ssh "))
    {
        assert!(
            line.contains(
                "-o 'ConnectTimeout=20' -o 'ServerAliveInterval=15' -o 'ServerAliveCountMax=3'"
            ),
            "{line}"
        );
    }
    // A syncoid run (a oneshot: no start timeout of its own) ends at its
    // target's runTimeout.
    for name in [
        "syncoid-services-to-nas",
        "syncoid-media-tv-archive-to-offsite",
    ] {
        assert_eq!(
            units[name]["serviceConfig"]["TimeoutStartSec"], "12h",
            "{name}"
        );
    }
    // The lag check: each call at most timeoutSeconds, and the oneshot
    // (which systemd leaves unbounded) ends after the binary's own worst
    // case: 3 calls per check, 4 checks, (60 + 2) s each, plus a minute.
    let config: Value =
        serde_json::from_str(v["etc"]["zpersist/replication.json"].as_str().unwrap()).unwrap();
    assert_eq!(config["timeoutSeconds"], 60);
    assert_eq!(
        units["zpersist-replication-lag"]["serviceConfig"]["TimeoutStartSec"],
        3 * 4 * (60 + 2) + 60
    );
    // Notifications: each delivery (all at once) and the journal read at
    // most timeoutSeconds, then the unit: both plus a minute.
    let context: Value =
        serde_json::from_str(v["etc"]["zpersist/notify-context.json"].as_str().unwrap()).unwrap();
    assert_eq!(context["timeoutSeconds"], 30);
    assert_eq!(
        units["zpersist-notify@"]["serviceConfig"]["TimeoutStartSec"],
        2 * 30 + 60
    );
    // Both are the user's to change.
    let v = view(&FORGE.replace(
        "zpersist.pool = \"tank\";",
        r#"zpersist.pool = "tank";
  zpersist.replication.lag.timeoutSeconds = 10;
  zpersist.notify.timeoutSeconds = 10;"#,
    ));
    assert_eq!(v["failed"], json!([]));
    let config: Value =
        serde_json::from_str(v["etc"]["zpersist/replication.json"].as_str().unwrap()).unwrap();
    assert_eq!(config["timeoutSeconds"], 10);
    assert_eq!(
        v["units"]["zpersist-replication-lag"]["serviceConfig"]["TimeoutStartSec"],
        3 * 4 * (10 + 2) + 60
    );
    assert_eq!(
        v["units"]["zpersist-notify@"]["serviceConfig"]["TimeoutStartSec"],
        2 * 10 + 60
    );
}

#[test]
fn host_keys_are_pinned_per_target_and_the_allow_sets_are_generated() {
    let v = forge();
    let etc = &v["etc"];
    assert_eq!(
        etc["zpersist/known_hosts/nas"],
        "nas-1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0st\n"
    );
    assert_eq!(
        etc["zpersist/known_hosts/offsite"],
        "[offsite.example.org]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOff\n"
    );
    assert!(etc["zpersist/replication/nas.target-allow"]
        .as_str()
        .unwrap()
        .contains(
            "zfs allow -u zfs-recv change-key,compression,create,mount,mountpoint,receive,rollback,destroy,canmount,send backup/forge\n"
        ));
    // nixpkgs grants these to the syncoid user on each source dataset in
    // ExecStartPre (and revokes them after): send and hold for the stream,
    // snapshot/destroy (+mount, which destroy needs on Linux) for the sync
    // snapshots, bookmark.
    for allow in v["localSourceAllow"].as_object().unwrap().values() {
        assert_eq!(
            allow,
            &json!(["bookmark", "hold", "send", "snapshot", "destroy", "mount"])
        );
    }
    let config: Value =
        serde_json::from_str(etc["zpersist/replication.json"].as_str().unwrap()).unwrap();
    insta::assert_json_snapshot!("forge_replication_json", config);
    let context: Value =
        serde_json::from_str(etc["zpersist/notify-context.json"].as_str().unwrap()).unwrap();
    insta::assert_json_snapshot!("forge_notify_context", context);
}

/// forge with a second pool on the same host as a target (`host` unset),
/// next to a remote one.
const FORGE_WITH_USB: &str = r#"{
  networking.hostName = "forge";
  zpersist.pool = "tank";
  zpersist.datasets."services" = { replicateTo = [ "usb" "nas" ]; };
  zpersist.datasets."services/sonarr" = { };
  zpersist.datasets."media/tv" = { replicateTo = [ "usb" ]; };
  zpersist.replication.targets.usb = { dataset = "usbpool/backup/forge"; };
  zpersist.replication.targets.nas = {
    host = "nas-1"; user = "zfs-recv"; dataset = "backup/forge";
    sshKey = "/run/secrets/syncoid"; hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0st";
  };
}"#;

#[test]
fn a_local_target_receives_on_this_host_without_ssh_and_with_nixpkgs_delegation() {
    let v = view(FORGE_WITH_USB);
    assert_eq!(v["failed"], json!([]));
    assert_eq!(v["warnings"], json!([]));
    insta::assert_json_snapshot!("forge_usb_syncoid_argv", v["syncoidArgv"]);
    let argv = strings(v["syncoidArgv"]["services-sonarr-to-usb"].clone());
    assert_eq!(
        argv[1..],
        [
            "--identifier=usb",
            "--sendoptions",
            "",
            "--recvoptions",
            "u",
            "--no-privilege-elevation",
            "tank/services/sonarr",
            "usbpool/backup/forge/services/sonarr"
        ],
        "a bare dataset as target, no --sshkey/--sshport/--sshoption"
    );
    // The remote target beside it is unchanged.
    assert!(strings(v["syncoidArgv"]["services-sonarr-to-nas"].clone())
        .contains(&"zfs-recv@nas-1:backup/forge/services/sonarr".to_string()));

    // nixpkgs grants the syncoid user these on the received dataset (or its
    // parent before the first receive) around each run; remote targets
    // are delegated by hand and keep nixpkgs' default (unused there).
    assert_eq!(
        v["localTargetAllow"]["services-to-usb"],
        json!([
            "change-key",
            "compression",
            "create",
            "mount",
            "mountpoint",
            "receive",
            "rollback",
            "destroy",
            "canmount",
            "send"
        ])
    );
    assert_eq!(
        v["localTargetAllow"]["services-to-nas"],
        json!([
            "change-key",
            "compression",
            "create",
            "mount",
            "mountpoint",
            "receive",
            "rollback"
        ])
    );

    // The undeclared level `media` is created here, as root, with this
    // host's zfs; a replicated parent is received first, as for remote
    // targets.
    let units = v["units"].as_object().unwrap();
    let pre = strings(units["syncoid-media-tv-to-usb"]["serviceConfig"]["ExecStartPre"].clone());
    assert_eq!(
        pre[0],
        "-+/run/booted-system/sw/bin/zfs create -p -o 'canmount=off' usbpool/backup/forge/media"
    );
    assert_eq!(
        units["syncoid-services-sonarr-to-usb"]["after"],
        json!([
            "zfs.target",
            "zpersist-syncoid-allow.service",
            "syncoid-services-to-usb.service"
        ])
    );

    // No known_hosts and no target-allow file for it; replication.json says
    // `host: null` and nothing of ssh.
    let etc: Vec<&String> = v["etc"].as_object().unwrap().keys().collect();
    assert_eq!(
        etc,
        [
            "zpersist/known_hosts/nas",
            "zpersist/replication.json",
            "zpersist/replication/nas.target-allow"
        ]
    );
    let config: Value =
        serde_json::from_str(v["etc"]["zpersist/replication.json"].as_str().unwrap()).unwrap();
    assert_eq!(
        config["targets"]["usb"],
        json!({ "host": null, "dataset": "usbpool/backup/forge", "identifier": "usb" })
    );
    insta::assert_json_snapshot!("forge_usb_replication_json", config);
    assert_eq!(
        v["notifySummaries"]["syncoid-media-tv-to-usb.service"],
        "replication of tank/media/tv to usb (usbpool/backup/forge/media/tv on this host)"
    );
}

/// nixpkgs' syncoid unit (tests/nix/model-syncoid.nix) delegates on a
/// local target's received dataset, or on its parent before the first
/// receive, in its own ExecStartPre; the parent zpersist creates must exist
/// by then: zpersist's lines come first (mkBefore), whatever the order in
/// which NixOS collects the modules.
#[test]
fn a_local_targets_parent_is_created_before_nixpkgs_delegation_runs() {
    let pre = strings(eval_expr(
        r#"let
  lib = import ./tests/nix/lib.nix;
  e = import ./tests/nix/eval.nix { inherit lib; extraModule = {
    zpersist.pool = "tank";
    zpersist.datasets."media/tv".replicateTo = [ "usb" ];
    zpersist.replication.targets.usb.dataset = "usbpool/backup/forge";
  }; };
in e.config.systemd.services."syncoid-media-tv-to-usb".serviceConfig.ExecStartPre"#,
    ));
    assert_eq!(pre.len(), 3, "{pre:?}");
    assert!(
        pre[0].ends_with("zfs create -p -o 'canmount=off' usbpool/backup/forge/media"),
        "{pre:?}"
    );
    assert!(pre[1].ends_with("-zfs-allow-tank-media-tv"), "{pre:?}");
    assert!(
        pre[2].ends_with("-zfs-allow-usbpool-backup-forge-media-tv"),
        "{pre:?}"
    );
}

#[test]
fn without_a_delivery_no_unit_gets_a_hook() {
    let v = view(&FORGE.replace(
        r#"zpersist.notify.ntfy = { url = "https://ntfy.example.org"; topic = "forge"; tokenFile = "/run/secrets/ntfy"; };"#,
        "",
    ));
    let units = v["units"].as_object().unwrap();
    assert!(!units.contains_key("zpersist-notify@"));
    for (name, unit) in units {
        assert!(unit.get("onFailure").is_none(), "{name}: {unit}");
    }
    assert!(v["etc"].get("zpersist/notify-context.json").is_none());
}

#[test]
fn no_policy_and_no_target_leave_sanoid_and_syncoid_off() {
    let v = view(r#"{ zpersist.pool = "tank"; zpersist.datasets.media = { }; }"#);
    assert_eq!(v["sanoidEnabled"], false);
    assert_eq!(v["syncoidEnabled"], false);
    assert_eq!(v["units"], json!({}));
}

// ------------------------------------------------------------- one test per rule

zpersist_e2e::nix_cases! {
    "cases-replication.nix", every_case_in_cases_replication_nix_has_a_test;
    snapshots_unknown_template => "snapshots-unknown-template",
    snapshots_template_named_none => "snapshots-template-named-none",
    replication_unknown_target => "replication-unknown-target",
    replication_ssh_key_in_store => "replication-ssh-key-in-store",
    replication_ssh_key_relative => "replication-ssh-key-relative",
    replication_ssh_key_in_home => "replication-ssh-key-in-home",
    replication_host_key_garbled => "replication-host-key-garbled",
    replication_target_name_invalid => "replication-target-name-invalid",
    replication_command_names_clash => "replication-command-names-clash",
    replication_remote_target_incomplete => "replication-remote-target-incomplete",
    replication_local_target_with_ssh_options => "replication-local-target-with-ssh-options",
    replication_local_target_inside_replicated_dataset => "replication-local-target-inside-replicated-dataset",
    replication_local_target => "replication-local-target",
    replication_opt_out_everywhere => "replication-opt-out-everywhere",
    notify_unit_without_suffix => "notify-unit-without-suffix",
}
