//! TEST-ONLY: the part of the units that nixpkgs' modules define, for the
//! units zpersist adds to: a daemon per service (Sonarr & co.) and sanoid.
//! syncoid's units come whole from the model of nixpkgs' module in the
//! stubs (tests/nix/model-syncoid.nix). Added to an evaluation as a module, it is
//! merged by the module system with zpersist's additions exactly as on
//! NixOS. It defines only units zpersist also touches.

/// A service's daemon: what its nixpkgs module would run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    /// The unit name without `.service`.
    pub name: String,
    pub exec_start: String,
    /// `User=`/`Group=`; `None` runs it as root.
    pub user: Option<String>,
    pub group: Option<String>,
}

impl Daemon {
    /// A daemon that only sleeps, as root (enough for `systemd-analyze`).
    pub fn sleeping(name: &str) -> Daemon {
        Daemon {
            name: name.to_owned(),
            exec_start: "/bin/sleep infinity".to_owned(),
            user: None,
            group: None,
        }
    }
}

/// A Nix string literal (`"..."`) holding `text`.
pub fn nix_string(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "\\${");
    format!("\"{escaped}\"")
}

const MODULE: &str = r#"{ config, lib, ... }:
let
  daemon = d: {
    description = lib.mkForce "stand-in for the ${d.name} service nixpkgs defines";
    after = [ "network.target" ];
    wantedBy = [ "multi-user.target" ];
    # Over what a model of the nixpkgs module (tests/nix/model-*.nix)
    # defines for the same unit: the stand-in's program runs instead, and
    # nothing of the real service's (postgresql's initdb in preStart, its
    # wait in postStart, its package on the path).
    path = lib.mkForce [ ];
    preStart = lib.mkForce "";
    postStart = lib.mkForce "";
    serviceConfig = { ExecStart = lib.mkForce d.exec; Type = lib.mkForce "simple"; }
      // lib.optionalAttrs (d.user != null) { User = lib.mkForce d.user; }
      // lib.optionalAttrs (d.group != null) { Group = lib.mkForce d.group; };
  };
  daemons = builtins.fromJSON @DAEMONS@;
in
{
  systemd.services =
    lib.listToAttrs (map (d: lib.nameValuePair d.name (daemon d)) daemons)
    // lib.optionalAttrs config.services.sanoid.enable {
      sanoid = {
        description = "Sanoid snapshot service";
        after = [ "zfs.target" ];
        startAt = config.services.sanoid.interval;
        serviceConfig = { Type = "oneshot"; ExecStart = "/usr/sbin/sanoid --cron"; };
      };
    };
}"#;

/// The module: `daemons`, plus sanoid's unit when the configuration
/// enables it (Debian's /usr/sbin/sanoid).
pub fn nixpkgs_module(daemons: &[Daemon]) -> String {
    let json = serde_json::Value::Array(
        daemons
            .iter()
            .map(|d| {
                serde_json::json!({
                    "name": d.name, "exec": d.exec_start, "user": d.user, "group": d.group,
                })
            })
            .collect(),
    );
    MODULE.replace("@DAEMONS@", &nix_string(&json.to_string()))
}
