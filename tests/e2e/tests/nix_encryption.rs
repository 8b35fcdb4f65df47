//! Native ZFS encryption as the modules generate it (Nix 2.8, flake-locked
//! lib, the stubs of nixpkgs' options with their real types): the plan's
//! properties of `zpersist.datasets.<name>.encryption`, raw sends
//! (`--sendoptions=w`) of every encrypted dataset, roots and inheriting
//! children, to every target, a plain send of one refused at evaluation,
//! and which keys boot asks for (`boot.zfs.requestEncryptionCredentials`).
//! The behaviour runs on OpenZFS in tests/e2e/tests/openzfs_encryption.rs.

use serde_json::{json, Value};
use zpersist_e2e::nix::eval_expr;

const HOST: &str = r#"{
  networking.hostName = "forge";
  zpersist.pool = "tank";
  zpersist.datasets."secure" = {
    mountpoint = "/srv/secure";
    encryption = { keyformat = "raw"; keylocation = "file:///run/keys/secure.key"; };
    replicateTo = [ "nas" "usb" ];
  };
  zpersist.datasets."secure/app" = { mountpoint = "/var/lib/app"; };
  zpersist.datasets."vault" = {
    mountpoint = "/srv/vault";
    encryption = { keyformat = "passphrase"; keylocation = "prompt"; };
  };
  zpersist.datasets."optional" = {
    mountpoint = "/srv/optional";
    encryption = { algorithm = "aes-128-gcm"; keyformat = "hex"; keylocation = "prompt"; required = false; };
  };
  zpersist.datasets."media" = { mountpoint = "/srv/media"; replicateTo = [ "nas" ]; };
  zpersist.replication.targets.nas = {
    host = "nas-1"; user = "zfs-recv"; dataset = "backup/forge";
    sshKey = "/run/secrets/syncoid"; hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0st";
  };
  zpersist.replication.targets.usb = { dataset = "usb/forge"; sendOptions = "c"; };
}"#;

fn view(module: &str) -> Value {
    eval_expr(&format!(
        r#"let
  lib = import ./tests/nix/lib.nix;
  e = import ./tests/nix/eval.nix {{ inherit lib; extraModule = {module}; }};
  c = e.config;
in {{
  plan = map (d: {{ inherit (d) name properties; }}) c.zpersist.internal.plan.datasets;
  sendOptions = lib.mapAttrs (_: cmd: cmd.sendOptions) c.services.syncoid.commands;
  credentials = c.boot.zfs.requestEncryptionCredentials;
  encrypted = c.zpersist.internal.encryptedKeys;
  keyUnits = lib.listToAttrs (map (u: let n = lib.removeSuffix ".service" u; in lib.nameValuePair n (lib.filterAttrs (_: v: v != [ ] && v != {{ }}) c.systemd.services.${{n}})) c.zpersist.internal.keyUnits);
  notify = lib.filterAttrs (n: _: lib.hasPrefix "zpersist-load-key" n) c.zpersist.notify.units;
  failed = e.failedAssertions;
}}"#
    ))
}

#[test]
fn declared_encryption_reaches_the_plan_and_children_inherit_the_root() {
    let v = view(HOST);
    assert_eq!(v["failed"], json!([]));
    let plan: Vec<Value> = v["plan"].as_array().unwrap().clone();
    let of = |name: &str| {
        plan.iter()
            .find(|d| d["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {plan:?}"))["properties"]
            .clone()
    };
    assert_eq!(
        of("tank/secure"),
        json!({ "encryption": "aes-256-gcm", "keyformat": "raw", "keylocation": "file:///run/keys/secure.key" })
    );
    // The child declares nothing: ZFS gives it the parent's root.
    assert_eq!(of("tank/secure/app"), json!({}));
    assert_eq!(of("tank/optional")["encryption"], "aes-128-gcm");
    assert_eq!(
        v["encrypted"],
        json!(["optional", "secure", "secure/app", "vault"])
    );
}

#[test]
fn encrypted_datasets_are_sent_raw_to_every_target_and_the_others_as_declared() {
    let v = view(HOST);
    assert_eq!(
        v["sendOptions"],
        json!({
            "secure-to-nas": "w",
            "secure-to-usb": "wc",
            // The child inherits both targets and the root: raw too.
            "secure-app-to-nas": "w",
            "secure-app-to-usb": "wc",
            "media-to-nas": "",
        })
    );
}

#[test]
fn a_plain_send_of_an_encrypted_dataset_is_refused_at_evaluation() {
    let v = view(&HOST.replace(
        "sendOptions = \"c\"; };",
        "sendOptions = \"c\"; raw = false; };",
    ));
    let failed = v["failed"].as_array().unwrap();
    // One per encrypted dataset sent there: the root and its child.
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed[1].as_str().unwrap().contains(
            "zpersist.datasets.\"secure/app\" is encrypted (encryption root tank/secure)"
        ),
        "{failed:?}"
    );
    let message = failed[0].as_str().unwrap();
    assert!(
        message.starts_with("zpersist.replication.targets.\"usb\".raw is false, but zpersist.datasets.\"secure\" is encrypted (encryption root tank/secure): a plain send decrypts it on the way"),
        "{message}"
    );
    // Declaring the key twice is refused too.
    let v = view(&HOST.replace(
        "zpersist.datasets.\"secure/app\" = { mountpoint = \"/var/lib/app\"; };",
        "zpersist.datasets.\"secure/app\" = { mountpoint = \"/var/lib/app\"; }; zpersist.datasets.\"secure\".properties.keylocation = \"prompt\";",
    ));
    let failed = v["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]
            .as_str()
            .unwrap()
            .contains("declare the key in one place"),
        "{failed:?}"
    );
}

#[test]
fn boot_asks_only_for_essential_passphrases_never_for_replicas_received_here() {
    let v = view(HOST);
    // Not `true` (nixpkgs' default: every encrypted dataset of every pool
    // imported at boot, received raw replicas included): the essential
    // passphrase root only; file keys are zpersist's, the optional one is
    // never asked for.
    assert_eq!(v["credentials"], json!(["tank/vault"]));
    // A host without encryption keeps nixpkgs' default.
    let v = view(
        r#"{ zpersist.pool = "tank"; zpersist.datasets."media" = { mountpoint = "/srv/media"; }; }"#,
    );
    assert_eq!(v["credentials"], json!(true));
}

#[test]
fn a_file_key_is_loaded_by_a_unit_of_its_own_before_the_datasets_and_never_holds_up_the_boot() {
    let v = view(&HOST.replace(
        "zpersist.datasets.\"media\" = {",
        "zpersist.datasets.\"spare\" = { mountpoint = \"/srv/spare\"; encryption = { keyformat = \"raw\"; keylocation = \"file:///media/usb/spare.key\"; required = false; }; };\n  zpersist.datasets.\"media\" = {",
    ));
    assert_eq!(v["failed"], json!([]));
    // One unit per file-keyed root (not the passphrase roots), nothing
    // requires it: only zpersist-datasets wants it.
    let units = v["keyUnits"].as_object().unwrap();
    assert_eq!(
        units.keys().collect::<Vec<_>>(),
        [
            "zpersist-load-key-tank-secure",
            "zpersist-load-key-tank-spare"
        ]
    );
    for unit in units.values() {
        assert_eq!(unit["wantedBy"], json!(["zpersist-datasets.service"]));
        assert!(unit.get("requiredBy").is_none(), "{unit}");
        assert_eq!(unit["before"], json!(["zpersist-datasets.service"]));
    }
    insta::assert_json_snapshot!("encryption_key_units", v["keyUnits"]);
    insta::assert_json_snapshot!("encryption_key_notifications", v["notify"]);
}
