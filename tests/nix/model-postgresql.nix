# nixpkgs' services.postgresql as far as zpersist depends on it
# (nixos/modules/services/databases/postgresql.nix, NixOS 24.05 and later):
# the options with nixpkgs' names, types and defaults, the settings nixpkgs
# adds (hba_file, ident_file, log_destination, listen_addresses) rendered
# into postgresql.conf as nixpkgs renders them, and the unit as nixpkgs
# writes it: PGDATA, the package on its path, a preStart that runs initdb
# on an empty data directory and links the configuration in, `postgres`
# as ExecStart with Type=notify, a postStart that waits until it answers,
# and its sandbox, so that the archive directory zpersist adds to
# ReadWritePaths is checked against ProtectSystem = "strict" as on NixOS
# (and, in the container tests, PostgreSQL really runs inside it). "16"
# stands in for the package's psqlSchema. One difference: nixpkgs writes
# the configuration with writeTextDir and links DIR/postgresql.conf; the
# stub pkgs have writeText only, so the file itself is linked.
# services.restic.backups, whose jobs zpersist makes skip the PostgreSQL
# data directory: model-restic.nix.
{ config, lib, pkgs, ... }:
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
  # nixpkgs' toStr: booleans as yes/no, strings quoted ('' escapes ').
  toStr =
    value:
    if true == value then
      "yes"
    else if false == value then
      "no"
    else if builtins.isString value then
      "'${lib.replaceStrings [ "'" ] [ "''" ] value}'"
    else
      builtins.toString value;
  configFile = pkgs.writeText "postgresql.conf" (
    lib.concatStringsSep "\n" (lib.mapAttrsToList (n: v: "${n} = ${toStr v}") cfg.settings) + "\n"
  );
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
    # nixpkgs: lines; the module appends (mkAfter) its defaults, which
    # have no `replication` line (`all` does not match replication
    # connections), and writes them to the hba_file.
    authentication = mkOption {
      type = types.lines;
      default = "";
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
    services.postgresql.authentication = lib.mkMerge [
      (lib.mkBefore "# Generated file; do not edit!")
      (lib.mkAfter ''
        # default value of services.postgresql.authentication
        local all all              peer
        host  all all 127.0.0.1/32 md5
        host  all all ::1/128      md5
      '')
    ];
    services.postgresql.settings = {
      hba_file = "${pkgs.writeText "pg_hba.conf" cfg.authentication}";
      ident_file = "${pkgs.writeText "pg_ident.conf" ""}";
      log_destination = "stderr";
      listen_addresses = "localhost";
    };
    systemd.services.postgresql = {
      description = "PostgreSQL Server";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      environment.PGDATA = cfg.dataDir;
      path = [ cfg.package ];
      preStart = ''
        if ! test -e ${cfg.dataDir}/PG_VERSION; then
          # Cleanup the data directory.
          rm -f ${cfg.dataDir}/*.conf

          # Initialise the database.
          initdb -U postgres

          # See postStart!
          touch "${cfg.dataDir}/.first_startup"
        fi

        ln -sfn "${configFile}" "${cfg.dataDir}/postgresql.conf"
      '';
      # Wait for PostgreSQL to be ready to accept connections.
      postStart = ''
        PSQL="psql --port=${toString cfg.settings.port}"

        while ! $PSQL -d postgres -c "" 2> /dev/null; do
            if ! kill -0 "$MAINPID"; then exit 1; fi
            sleep 0.1
        done

        if test -e "${cfg.dataDir}/.first_startup"; then
          rm -f "${cfg.dataDir}/.first_startup"
        fi
      '';
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
