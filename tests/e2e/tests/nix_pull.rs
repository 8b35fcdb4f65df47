//! Pull replication as the modules generate it (nix/modules/replication-pull.nix;
//! Nix 2.8, flake-locked lib, the model of nixpkgs' syncoid and sanoid):
//! the backup host's syncoid commands (no `-F`, no rollback, read-only
//! receives, receive-only delegation), its prune-only sanoid template, the
//! source's puller (a key forced to zpersist-pull-gate, a send-only
//! delegation), the restore key; one test per case of
//! tests/nix/cases-pull.nix. The real tools run on these arguments in
//! tests/e2e/tests/openzfs_pull.rs.

use serde_json::{json, Value};
use zpersist_e2e::nix::eval_expr;

/// What the modules make of example host `host`.
fn view(host: &str) -> Value {
    eval_expr(&format!(
        r#"let
  lib = import ./tests/nix/lib.nix;
  e = import ./tests/nix/eval.nix {{ inherit lib; host = "{host}"; }};
  c = e.config;
  ours = n: lib.hasPrefix "syncoid-pull-" n || lib.hasPrefix "zpersist-pull" n;
in {{
  syncoidArgv = import ./tests/nix/syncoid-argv.nix {{ inherit lib; syncoid = c.services.syncoid; }};
  sanoidConf = if c.services.sanoid.enable then import ./tests/nix/sanoid-ini.nix {{ inherit lib; sanoid = c.services.sanoid; }} else null;
  localTargetAllow = lib.mapAttrs (_: cmd: cmd.localTargetAllow) c.services.syncoid.commands;
  units = lib.mapAttrs (_: u: {{
    inherit (u) after wants;
    startAt = u.startAt or null;
    ExecStart = u.serviceConfig.ExecStart;
    ExecStartPre = u.serviceConfig.ExecStartPre or [ ];
    ExecStartPost = u.serviceConfig.ExecStartPost or [ ];
    Type = u.serviceConfig.Type or null;
  }}) (lib.filterAttrs (n: _: ours n) c.systemd.services);
  users = lib.mapAttrs (_: u: {{
    inherit (u) isSystemUser group shell;
    keys = u.openssh.authorizedKeys.keys;
  }}) (lib.filterAttrs (n: _: lib.hasPrefix "zpull-" n || lib.hasPrefix "zrestore-" n) c.users.users);
  knownHosts = lib.mapAttrs (_: v: v.text) (lib.filterAttrs (n: _: lib.hasPrefix "zpersist/known_hosts/pull-" n) c.environment.etc);
  notify = lib.mapAttrs (_: u: u.summary) (lib.filterAttrs (n: _: lib.hasPrefix "syncoid-pull-" n) c.zpersist.notify.units);
  failed = e.failedAssertions;
  warnings = e.warnings;
}}"#
    ))
}

fn clean(host: &str) -> Value {
    let v = view(host);
    assert_eq!(v["failed"], json!([]), "{host}");
    assert_eq!(v["warnings"], json!([]), "{host}");
    v
}

#[test]
fn the_backup_host_pulls_without_rollback_into_read_only_datasets() {
    let v = clean("nas");
    insta::assert_json_snapshot!("nas_pull_syncoid_argv", v["syncoidArgv"]);
    for (command, argv) in v["syncoidArgv"].as_object().unwrap() {
        let argv: Vec<&str> = argv
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        for flag in ["--no-rollback", "--no-sync-snap", "--create-bookmark"] {
            assert!(argv.contains(&flag), "{command}: {flag} missing: {argv:?}");
        }
        assert!(!argv.contains(&"--force-delete"), "{command}: {argv:?}");
        assert!(
            !argv.iter().any(|a| a.contains("delete-target-snapshots")),
            "{command}: {argv:?}"
        );
        let recv = argv.iter().position(|a| *a == "--recvoptions").unwrap();
        assert_eq!(argv[recv + 1], "u o readonly=on", "{command}");
        assert!(
            argv[argv.len() - 2].starts_with("zpull-nas@forge:tank/services/"),
            "{argv:?}"
        );
        assert!(
            argv[argv.len() - 1].starts_with("backup/forge/services/"),
            "{argv:?}"
        );
    }
    // The receiving user may receive and mark read-only; never roll back
    // or destroy.
    for (command, allow) in v["localTargetAllow"].as_object().unwrap() {
        assert_eq!(
            allow,
            &json!(["create", "mount", "receive", "readonly"]),
            "{command}"
        );
    }
    insta::assert_json_snapshot!("nas_pull_units", v["units"]);
    let sonarr = &v["units"]["syncoid-pull-forge-services-sonarr"];
    assert_eq!(sonarr["Type"], "oneshot");
    assert_eq!(sonarr["startAt"], "hourly");
    assert_eq!(
        sonarr["ExecStartPre"][0],
        "-+/run/booted-system/sw/bin/zfs create -p -o 'canmount=off' backup/forge/services"
    );
    assert_eq!(
        sonarr["ExecStartPost"],
        json!(["+/nix/store/00000000000000000000000000000000-zpersist/bin/zpersist-pull-base --source forge backup/forge/services/sonarr"])
    );
    assert_eq!(
        v["knownHosts"]["zpersist/known_hosts/pull-forge"],
        "forge ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIForgeHostKeyForTheExample000000000000000\n"
    );
    assert_eq!(
        v["notify"]["syncoid-pull-forge-services-sonarr.service"],
        "pull of tank/services/sonarr from forge (forge) into backup/forge/services/sonarr"
    );
}

#[test]
fn the_backup_host_prunes_on_its_own_template_and_never_snapshots_the_replicas() {
    let v = clean("nas");
    let conf = v["sanoidConf"].as_str().unwrap();
    insta::assert_snapshot!("nas_pull_sanoid_conf", conf);
    assert!(
        conf.contains("[template_pull-forge]\nautoprune=true\nautosnap=false\n"),
        "{conf}"
    );
    assert!(conf.contains("[backup/forge/services/sonarr]\n"), "{conf}");
}

#[test]
fn the_source_gives_its_puller_a_forced_send_only_key_and_the_backup_host_a_send_only_restore_key()
{
    let forge = clean("forge");
    insta::assert_json_snapshot!("forge_puller_users", forge["users"]);
    let key = forge["users"]["zpull-nas"]["keys"][0].as_str().unwrap();
    assert!(
        key.starts_with("restrict,command=\"/nix/store/00000000000000000000000000000000-zpersist/bin/zpersist-pull-gate --dataset tank/services --bookmark\" ssh-ed25519 "),
        "{key}"
    );
    let allow = &forge["units"]["zpersist-pull-allow"]["ExecStart"];
    assert_eq!(
        allow,
        &json!([
            "-/run/booted-system/sw/bin/zfs allow -u zpull-nas send,hold,bookmark tank/services"
        ])
    );
    let nas = clean("nas");
    let restore = nas["users"]["zrestore-forge"]["keys"][0].as_str().unwrap();
    assert!(
        restore.starts_with("restrict,command=\"/nix/store/00000000000000000000000000000000-zpersist/bin/zpersist-pull-gate --dataset backup/forge\" ssh-ed25519 "),
        "{restore}"
    );
    assert_eq!(
        nas["units"]["zpersist-pull-allow"]["ExecStart"],
        json!([
            "-/run/booted-system/sw/bin/zfs allow -u zrestore-forge send backup/forge",
            "-/run/booted-system/sw/bin/zfs allow -g syncoid create,mount,receive,readonly backup/forge"
        ])
    );
    for line in nas["units"]["zpersist-pull-allow"]["ExecStart"]
        .as_array()
        .unwrap()
        .iter()
        .chain(allow.as_array().unwrap())
    {
        for never in ["destroy", "rollback", "snapshot"] {
            assert!(!line.as_str().unwrap().contains(never), "{line}");
        }
    }
}

// ------------------------------------------------------------- one test per rule

zpersist_e2e::nix_cases! {
    "cases-pull.nix", every_case_in_cases_pull_nix_has_a_test;
    pull_nothing => "pull-nothing",
    pull_key_in_home => "pull-key-in-home",
    pull_host_key_garbled => "pull-host-key-garbled",
    pull_pool_alone => "pull-pool-alone",
    pull_name_invalid => "pull-name-invalid",
    pull_twice_into_one => "pull-twice-into-one",
    puller_without_datasets => "puller-without-datasets",
    puller_key_with_options => "puller-key-with-options",
}

/// A hardened push target (`receiveOnly`): the receiving user may not roll
/// back or destroy, syncoid does not force its receives and takes no sync
/// snapshot it could not prune; the default target stays what it was.
#[test]
fn a_receive_only_push_target_grants_no_rollback_or_destroy_and_syncoid_never_forces() {
    let v = eval_expr(
        r#"let
  lib = import ./tests/nix/lib.nix;
  eval = extra: import ./tests/nix/eval.nix { inherit lib; host = "forge"; extraModule = extra; };
  view = e: {
    argv = (import ./tests/nix/syncoid-argv.nix { inherit lib; syncoid = e.config.services.syncoid; })."services-sonarr-to-nas";
    allow = e.config.environment.etc."zpersist/replication/nas.target-allow".text;
    failed = e.failedAssertions;
  };
in {
  hardened = view (eval { zpersist.replication.targets.nas.receiveOnly = true; });
  default = view (eval { });
}"#,
    );
    let hardened = &v["hardened"];
    assert_eq!(hardened["failed"], json!([]));
    assert!(
        hardened["allow"]
            .as_str()
            .unwrap()
            .ends_with("zfs allow -u zfs-recv create,mount,receive,canmount,send backup/forge\n"),
        "{}",
        hardened["allow"]
    );
    let argv: Vec<&str> = hardened["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        argv.contains(&"--no-rollback") && argv.contains(&"--no-sync-snap"),
        "{argv:?}"
    );
    let default = &v["default"];
    assert!(
        default["allow"]
            .as_str()
            .unwrap()
            .contains("receive,rollback,destroy"),
        "the default target is unchanged: {}",
        default["allow"]
    );
    assert!(!default["argv"]
        .as_array()
        .unwrap()
        .contains(&json!("--no-rollback")));
}

/// A rebuilt source restores from the backup host that pulls: a target
/// that nothing is pushed to (the restore key's user on nas) still gets its
/// pinned host key, which preseed's `replica` source reads, and no syncoid
/// command.
#[test]
fn a_restore_only_target_gets_its_pinned_host_key_and_no_push() {
    let v = eval_expr(
        r#"let
  lib = import ./tests/nix/lib.nix;
  e = import ./tests/nix/eval.nix { inherit lib; host = "forge"; extraModule = {
    zpersist.replication.targets.nas-pulls = {
      host = "nas"; user = "zrestore-forge"; dataset = "backup/forge";
      sshKey = "/run/secrets/restore-from-nas";
      hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINasHostKey";
    };
    zpersist.services.radarr.preseed = { enable = true; sources = [ { replica = "nas-pulls"; } ]; };
  }; };
in {
  knownHosts = e.config.environment.etc."zpersist/known_hosts/nas-pulls".text or null;
  commands = builtins.filter (lib.hasInfix "nas-pulls") (builtins.attrNames e.config.services.syncoid.commands);
  failed = e.failedAssertions;
}"#,
    );
    assert_eq!(v["failed"], json!([]));
    assert_eq!(
        v["knownHosts"],
        "nas ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINasHostKey\n"
    );
    assert_eq!(v["commands"], json!([]));
}
