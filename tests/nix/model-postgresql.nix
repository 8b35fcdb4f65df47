# nixpkgs' services.postgresql as far as zpersist depends on it
# (nixos/modules/services/databases/postgresql.nix, NixOS 24.05 and later):
# the options with nixpkgs' names, types and defaults, and the unit's
# sandbox, so that the archive directory zpersist adds to ReadWritePaths is
# checked against ProtectSystem = "strict" as on NixOS. "16" stands in for
# the package's psqlSchema. services.restic.backups, whose jobs zpersist
# makes skip the PostgreSQL data directory: model-restic.nix.
{ config, lib, ... }:
let
  inherit (lib) mkOption types mkIf;
  cfg = config.services.postgresql;
  package = {
    type = "derivation";
    name = "postgresql-16.4";
    outPath = "/nix/store/00000000000000000000000000000000-postgresql-16.4";
    psqlSchema = "16";
  };
  defaultDataDir = "/var/lib/postgresql/${cfg.package.psqlSchema}";
in
{
  options.services.postgresql = {
    enable = mkOption {
      type = types.bool;
      default = false;
    };
    # Both are only defined while the service is enabled (nixpkgs sets
    # them with mkDefault under `mkIf cfg.enable`).
    package = mkOption {
      type = types.anything;
    };
    dataDir = mkOption {
      type = types.path;
    };
    # nixpkgs: a submodule with a freeform type of bool, float, int or
    # string values, and a typed port.
    settings = mkOption {
      type = types.submodule {
        freeformType = types.attrsOf (types.oneOf [ types.bool types.float types.int types.str ]);
        options.port = mkOption {
          type = types.port;
          default = 5432;
        };
      };
      default = { };
    };
  };

  config = mkIf cfg.enable {
    services.postgresql.package = lib.mkDefault package;
    services.postgresql.dataDir = lib.mkDefault defaultDataDir;
    systemd.services.postgresql = {
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      serviceConfig = lib.mkMerge [
        {
          User = "postgres";
          Group = "postgres";
          RuntimeDirectory = "postgresql";
          Type = "notify";
          KillSignal = "SIGINT";
          KillMode = "mixed";
          TimeoutSec = 120;
          ExecStart = "${cfg.package}/bin/postgres";
          # The sandbox nixpkgs gives it.
          CapabilityBoundingSet = [ "" ];
          DevicePolicy = "closed";
          PrivateTmp = true;
          ProtectHome = true;
          ProtectSystem = "strict";
          NoNewPrivileges = true;
          PrivateDevices = true;
          PrivateMounts = true;
          ProcSubset = "pid";
          ProtectProc = "invisible";
          RemoveIPC = true;
          RestrictAddressFamilies = [ "AF_INET" "AF_INET6" "AF_NETLINK" "AF_UNIX" ];
          SystemCallFilter = [ "@system-service" "~@privileged @resources" ];
          UMask = "0027";
        }
        (mkIf (cfg.dataDir != defaultDataDir) { ReadWritePaths = [ cfg.dataDir ]; })
        (mkIf (cfg.dataDir == defaultDataDir) {
          StateDirectory = "postgresql postgresql/${cfg.package.psqlSchema}";
          StateDirectoryMode = "0750";
        })
      ];
      unitConfig.RequiresMountsFor = [ cfg.dataDir ];
    };
  };
}
