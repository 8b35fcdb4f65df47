//! TEST-ONLY: the part of the units that nixpkgs' modules define, for the
//! units zpersist adds to: a daemon per service (Sonarr & co.), sanoid,
//! and one syncoid unit per command with the argv of
//! tests/nix/syncoid-argv.nix. Added to an evaluation as a module, it is
//! merged by the module system with zpersist's additions exactly as on
//! NixOS. It defines only units zpersist also touches.

use crate::repo_root;

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
    description = "stand-in for the ${d.name} service nixpkgs defines";
    after = [ "network.target" ];
    wantedBy = [ "multi-user.target" ];
    serviceConfig = { ExecStart = d.exec; }
      // lib.optionalAttrs (d.user != null) { User = d.user; }
      // lib.optionalAttrs (d.group != null) { Group = d.group; };
  };
  daemons = builtins.fromJSON @DAEMONS@;
  syncoid = config.services.syncoid;
  argv = import (/. + @SYNCOID_ARGV@) { inherit lib syncoid; program = "/usr/sbin/syncoid"; };
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
    }
    // lib.mapAttrs' (name: args: lib.nameValuePair "syncoid-${name}" {
      description = "Syncoid ZFS synchronization from ${syncoid.commands.${name}.source}";
      after = [ "zfs.target" ];
      startAt = syncoid.interval;
      serviceConfig = { Type = "oneshot"; ExecStart = lib.escapeShellArgs args; };
    }) (if syncoid.enable then argv else { });
}"#;

/// The module: `daemons`, plus sanoid and syncoid's units when the
/// configuration enables them (Debian's /usr/sbin/sanoid and syncoid).
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
    MODULE
        .replace("@DAEMONS@", &nix_string(&json.to_string()))
        .replace(
            "@SYNCOID_ARGV@",
            &nix_string(repo_root().join("tests/nix/syncoid-argv.nix").as_str()),
        )
}
