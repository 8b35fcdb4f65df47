# Preseed: before a service starts, an empty dataset gets its data back from
# the freshest good source (a replica, a local snapshot, a restic backup);
# data that is there is never touched. One oneshot per service,
# `zpersist-<name>-preseed.service`, between the service's mounted check and
# its units (docs/preseed.md says why a unit and not an ExecStartPre).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkIf
    mkMerge
    types
    literalExpression
    attrNames
    concatMap
    filter
    filterAttrs
    optional
    hasPrefix
    ;
  zlib = import ../lib { inherit lib; };
  cfg = config.zpersist;

  sourceType = types.submodule {
    options = {
      replica = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "nas";
        description = "A `zpersist.replication.targets` name: restore from that target's copy of the dataset (over the pinned ssh, or a local pool).";
      };
      pitr = mkOption {
        type = types.bool;
        default = false;
        description = "PostgreSQL only, with `zpersist.postgresql.pitr.enable`: restore from the PITR archive, the newest base backup rolled forward through every archived WAL segment (the last archived transaction).";
      };
      local = mkOption {
        type = types.bool;
        default = false;
        description = "Restore from this dataset's own snapshots (sanoid's, syncoid's, manual ones; never a child's).";
      };
      restic = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "b2";
        description = "A `zpersist.restic.repositories` name: restore from its newest backup of the service's data directory.";
      };
      host = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "restic only: the host whose backups count (`--host`); `null` means this host's `networking.hostName`.";
      };
      path = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "restic only: the backed-up path whose contents become the dataset's root; `null` means the dataset's mountpoint.";
      };
    };
  };

  preseedModule = {
    options.preseed = {
      enable = mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = ''
          Before the service starts, restore its dataset when it holds no
          data, from the freshest of `sources`. Data that is there is never
          touched; if data is missing and cannot be restored, the service
          does not start and `zpersist.notify` hears about it.
        '';
      };
      sources = mkOption {
        type = types.listOf sourceType;
        default = [ ];
        example = literalExpression ''[ { replica = "nas"; } { local = true; } { restic = "b2"; } ]'';
        description = ''
          Where data may come from, each entry exactly one of `replica`,
          `local`, `restic`. The freshest restore point that holds data
          wins; on a tie, the source listed first.
        '';
      };
      allowStaleOnSourceError = mkOption {
        type = types.bool;
        default = false;
        description = ''
          When a source cannot be asked (unreachable, timed out), restore
          from the others anyway. By default the run fails instead: the
          missing source may hold newer data than the ones that answered.
        '';
      };
      timeoutSeconds = mkOption {
        type = types.ints.positive;
        default = 60;
        description = "Bound for each listing and remote call of the preseed check.";
      };
      restoreTimeout = mkOption {
        type = types.str;
        default = "6h";
        description = "Longest a whole preseed run (a restore included) may take, the unit's `TimeoutStartSec`.";
      };
    };
  };

  repositoryModule =
    { name, ... }:
    {
      options = {
        repository = mkOption {
          type = types.str;
          example = "s3:https://s3.example.org/forge-backups";
          description = "The restic repository (`-r`).";
        };
        passwordFile = mkOption {
          type = types.str;
          example = "/run/secrets/restic-password";
          description = "File holding the repository's password (a path string: never copied to the store).";
        };
        environmentFile = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/run/secrets/restic-b2";
          description = "File of `NAME=value` lines with the repository's credentials (AWS_ACCESS_KEY_ID, B2_ACCOUNT_KEY, ...).";
        };
      };
    };

  stateDir = "/var/lib/zpersist/preseed";
  unitName = name: "zpersist-${name}-preseed";
  checkUnit = name: "zpersist-${name}-mounted.service";

  preseeded = filterAttrs (_: s: s.enable && s.preseed.enable) cfg.services;

  sourceSpec =
    name: s: src:
    let
      d = cfg.datasets.${s.dataset};
      t = cfg.replication.targets.${src.replica};
    in
    if src.replica != null then
      {
        replica =
          {
            target = src.replica;
            host = t.host;
            dataset = "${t.dataset}/${s.dataset}";
          }
          // lib.optionalAttrs (t.host != null) {
            port = if t.port == null then 22 else t.port;
            inherit (t) user sshKey;
            knownHosts = "/etc/zpersist/known_hosts/${src.replica}";
          };
      }
    else if src.pitr then
      {
        pitr = {
          contract = "/etc/zpersist/pitr.json";
          # services.postgresql.dataDir below the dataset's mountpoint.
          dataDir = lib.removePrefix "/" (lib.removePrefix d.mountpoint (config.services.postgresql.dataDir or d.mountpoint));
        };
      }
    else if src.local then
      { local = { }; }
    else
      {
        restic =
          let
            r = cfg.restic.repositories.${src.restic};
          in
          {
            name = src.restic;
            inherit (r) repository passwordFile environmentFile;
            host = if src.host != null then src.host else config.networking.hostName;
            path = if src.path != null then src.path else d.mountpoint;
          };
      };

  planOf =
    name: s:
    let
      d = cfg.datasets.${s.dataset};
    in
    {
      version = 1;
      service = name;
      dataset = "${toString cfg.pool}/${s.dataset}";
      inherit (d) mountpoint;
      owner = d.owner;
      inherit (d) group mode;
      properties = d.properties // filterAttrs (_: v: v != null) { inherit (d) recordsize compression quota; };
      sources = map (sourceSpec name s) s.preseed.sources;
      inherit (s.preseed) allowStaleOnSourceError timeoutSeconds;
      inherit stateDir;
    };
  planFile = name: s: pkgs.writeText "zpersist-preseed-${name}.json" (builtins.toJSON (planOf name s));

  # The local PITR repository a `{ pitr = true; }` source restores from:
  # the preseed unit requires its mount (an unmounted repository's empty
  # mountpoint is no archive) and runs after the datasets are in place.
  pitrCfg = config.zpersist.postgresql.pitr;
  pitrMounts =
    s:
    optional (
      lib.any (src: src.pitr) s.preseed.sources && (pitrCfg.enable or false) && pitrCfg.repository.local.dataset != null
    ) pitrCfg.repository.local.mountpoint;

  # zpersist-<name>-preseed.service, as arguments of nix/lib/unit.nix's
  # builder.
  preseedUnitOf = name: s: {
    name = unitName name;
    description = "restore ${name}'s data if its dataset is empty";
    command = [ "${cfg.package}/bin/preseed-restore" ];
    contract = {
      flag = "--plan";
      file = planFile name s;
    };
    # Not RemainAfterExit: every start of the service checks again (two
    # zfs calls when the data is there), and a failed run is retried by
    # the next start, not by a restart loop.
    timeout = s.preseed.restoreTimeout;
    # After the dataset is known to be mounted where the service reads it;
    # before every unit of the service, which cannot start if this fails
    # (Requires=): never on silently empty data.
    requires = [ (checkUnit name) ];
    after = [
      (checkUnit name)
      "network-online.target"
    ] ++ lib.optional (pitrMounts s != [ ]) "zpersist-datasets.service";
    wants = [ "network-online.target" ] ++ lib.optional (pitrMounts s != [ ]) "zpersist-datasets.service";
    before = s.units;
    requiredBy = s.units;
    path = zlib.unit.bootedZfs config.boot.zfs.package ++ [
      pkgs.openssh
      pkgs.restic
    ];
    # Not sandboxed yet: it runs zfs (send/receive, mount), ssh and restic,
    # as root; what it may be denied is preseed's own question.
    network = "any";
    hardening = { };
    serviceConfig = {
      StateDirectory = "zpersist/preseed";
      StateDirectoryMode = "0700";
    };
    # It runs at every start of the service (two zfs calls when the data
    # is there): systemd's default start limit (5 in 10 s) would make a
    # quickly restarting service fail here instead.
    extra.unitConfig = {
      StartLimitIntervalSec = 0;
    } // lib.optionalAttrs (pitrMounts s != [ ]) { RequiresMountsFor = pitrMounts s; };
    notify = {
      datasets = [ "${toString cfg.pool}/${s.dataset}" ];
      summary = "restoring ${name}'s data before it starts";
    };
  };
  preseedUnits = lib.mapAttrsToList preseedUnitOf preseeded;

  # What is wrong with a service's preseed.sources (the drill restores from
  # them too, nix/modules/drill.nix).
  sourceProblemsOf =
    name: s:
    let
      opt = ''zpersist.services."${name}".preseed'';
      kinds = src: lib.count (x: x) [ (src.replica != null) src.local (src.restic != null) src.pitr ];
    in
    optional (s.preseed.sources == [ ]) "${opt}.sources is empty: list where data may come from, e.g. [ { replica = \"nas\"; } { local = true; } ]."
    ++ concatMap (
      src:
      optional (kinds src != 1) "${opt}.sources: each entry sets exactly one of replica, local, restic, pitr; one sets ${toString (kinds src)}."
      ++ optional (
        src.pitr && !(config.zpersist.postgresql.pitr.enable or false && name == "postgresql")
      ) "${opt}.sources has { pitr = true; }, which restores PostgreSQL from zpersist.postgresql.pitr's archive: only zpersist.services.postgresql can use it, with zpersist.postgresql.pitr.enable = true."
      ++ optional (
        src.replica != null && !(cfg.replication.targets ? ${src.replica})
      ) "${opt}.sources names the replica \"${src.replica}\", which zpersist.replication.targets does not define (defined: ${if cfg.replication.targets == { } then "none" else lib.concatStringsSep ", " (attrNames cfg.replication.targets)})."
      ++ optional (
        src.restic != null && !(cfg.restic.repositories ? ${src.restic})
      ) "${opt}.sources names the restic repository \"${src.restic}\", which zpersist.restic.repositories does not define."
      ++ optional (
        src.restic == null && (src.host != null || src.path != null)
      ) "${opt}.sources: host and path filter restic backups; they mean nothing for a ${if src.local then "local" else if src.pitr then "pitr" else "replica"} source."
    ) s.preseed.sources;

  # Checks, per service.
  problemsOf =
    name: s:
    let
      opt = ''zpersist.services."${name}".preseed'';
      d = cfg.datasets.${s.dataset} or { mountpoint = null; };
      children = filter (k: hasPrefix "${s.dataset}/" k) (attrNames cfg.datasets);
      fullName = "${toString cfg.pool}/${s.dataset}";
    in
    sourceProblemsOf name s
    ++ optional (
      d.mountpoint == null || !(hasPrefix "/" d.mountpoint)
    ) "${opt} needs a dataset that mounts on a path (it checks the data where the service reads it); zpersist.datasets.\"${s.dataset}\" has mountpoint = ${builtins.toJSON d.mountpoint}."
    ++ optional (children != [ ]) "${opt}: the restored dataset is swapped in whole, which would take its child datasets (${lib.concatStringsSep ", " children}) along; preseed a dataset without children."
    ++ optional (
      lib.stringLength fullName > zlib.rules.preseedMaxDatasetLength
    ) "${opt}: the dataset ${fullName} is ${toString (lib.stringLength fullName)} bytes long; preseed names its emptied original ${fullName}.zpersist-empty-<unix time> and its restore ${fullName}.zpersist-preseed, which with their snapshots must fit ZFS's 255 bytes: a preseeded dataset's name is at most ${toString zlib.rules.preseedMaxDatasetLength} bytes. Give it a shorter name.";
in
{
  options.zpersist.services = mkOption {
    type = types.attrsOf (types.submodule preseedModule);
  };

  options.zpersist.restic.repositories = mkOption {
    type = types.attrsOf (types.submodule repositoryModule);
    default = { };
    example = literalExpression ''
      { b2 = { repository = "b2:forge-backups:/"; passwordFile = "/run/secrets/restic"; environmentFile = "/run/secrets/restic-b2"; }; }
    '';
    description = "restic repositories zpersist restores from (and backs up to).";
  };

  options.zpersist.internal.preseedPlans = mkOption {
    type = types.attrsOf types.anything;
    readOnly = true;
    internal = true;
    description = "Each preseeded service's plan, as preseed-restore reads it.";
  };

  options.zpersist.internal.sourcePlans = mkOption {
    type = types.attrsOf types.anything;
    readOnly = true;
    internal = true;
    description = "Each enabled service's preseed plan (its dataset and preseed.sources), preseeded or not: what the restore drill embeds.";
  };

  options.zpersist.internal.sourceProblems = mkOption {
    type = types.attrsOf (types.listOf types.str);
    readOnly = true;
    internal = true;
    description = "What is wrong with each enabled service's preseed.sources.";
  };

  config = lib.mkMerge [
    {
      zpersist.internal.preseedPlans = lib.mapAttrs planOf preseeded;
      zpersist.internal.sourcePlans = lib.mapAttrs planOf (filterAttrs (_: s: s.enable) cfg.services);
      zpersist.internal.sourceProblems = lib.mapAttrs sourceProblemsOf (filterAttrs (_: s: s.enable) cfg.services);
    }
    (mkIf (cfg.enable && cfg.pool != null && preseeded != { }) (mkMerge [
      (zlib.unit.perService preseedUnits)
      {
        assertions = zlib.serviceAssertions problemsOf preseeded;
        # The plan each unit names, where `zpersist restore SERVICE` finds it.
        environment.etc = lib.mapAttrs' (
          name: s: lib.nameValuePair "zpersist/preseed/${name}.json" { source = planFile name s; }
        ) preseeded;
      }
    ]))
  ];
}
