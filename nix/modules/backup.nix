# Per-service file-level backups with restic, through nixpkgs'
# `services.restic.backups`: `zpersist.services.<name>.backup.restic`
# becomes the job `zpersist-<name>` (units restic-backups-zpersist-<name>
# .service and .timer), backing up the dataset's mountpoint to an entry of
# `zpersist.restic.repositories` (nix/modules/preseed.nix: the same
# repositories preseed restores from).
#
# From a consistent point, recorded at the mountpoint's path: before the
# job, `zpersist-<name>-backup-snapshot.service` (required by it) takes
# `<dataset>@zpersist-restic-<time>` and mounts a read-only clone of it on
# /run/zpersist/restic-view/<name>; the job binds that over the mountpoint
# in its own mount namespace (BindReadOnlyPaths=), so restic reads the
# snapshot and records the mountpoint, which preseed's restic source
# filters on (`--host`, `--path`). The snapshot unit stops when the job no
# longer needs it (StopWhenUnneeded=, after success, failure or kill -9)
# and destroys the clone and the snapshot; a stale pair of a crashed run is
# destroyed by the next run. docs/backup.md tells the whole story.
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
    filterAttrs
    mapAttrs'
    nameValuePair
    optional
    optionals
    hasPrefix
    ;
  zlib = import ../lib { inherit lib; };
  cfg = config.zpersist;
  pg = config.services.postgresql;

  resticModule = {
    options = {
      repository = mkOption {
        type = types.str;
        example = "b2";
        description = ''
          A `zpersist.restic.repositories` name: where the backups go (its
          repository, password and credentials). Preseed restores from the
          same entry.
        '';
      };
      timerConfig = mkOption {
        type = types.nullOr (types.attrsOf (types.oneOf [ types.str types.int types.bool ]));
        default = {
          OnCalendar = "daily";
          Persistent = true;
        };
        example = {
          OnCalendar = "03:15";
          RandomizedDelaySec = "30min";
          Persistent = true;
        };
        description = ''
          When the backup runs: the `[Timer]` section of
          `restic-backups-zpersist-<name>.timer` (nixpkgs'
          `services.restic.backups.<name>.timerConfig`). `null`: no timer,
          the backup runs only when started. The backup-age objective
          (`objectives.maxBackupAge`) defaults from it.
        '';
      };
      pruneOpts = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          "--keep-daily 7"
          "--keep-weekly 5"
          "--keep-monthly 12"
        ];
        description = ''
          Options of `restic forget --prune`, run after each backup; `[ ]`
          prunes nothing. zpersist adds `--host` and `--path`, so that a
          service's policy prunes only its own backups in a shared
          repository.
        '';
      };
      exclude = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          "/var/lib/sonarr/.config/NzbDrone/logs"
          "*.tmp"
        ];
        description = ''
          restic exclude patterns. Paths are as the service sees them
          (below the dataset's mountpoint), not as the snapshot's clone is
          mounted.
        '';
      };
      extraBackupArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "--compression max" ];
        description = "Further arguments of `restic backup` (nixpkgs' `extraBackupArgs`).";
      };
      initialize = mkOption {
        type = types.bool;
        default = false;
        description = "Create the repository when it does not exist yet (nixpkgs' `initialize`).";
      };
    };
  };

  backupModule = {
    options.backup.restic = mkOption {
      type = types.nullOr (types.submodule resticModule);
      default = null;
      example = literalExpression ''
        {
          repository = "b2";
          timerConfig = { OnCalendar = "03:15"; Persistent = true; };
          pruneOpts = [ "--keep-daily 7" "--keep-weekly 5" "--keep-monthly 12" ];
        }
      '';
      description = ''
        Back the service's dataset up with restic, from a fresh ZFS
        snapshot (never live files), recorded at the dataset's mountpoint:
        the backups preseed's `{ restic = "<repository>"; }` source restores.
        Becomes `services.restic.backups."zpersist-<name>"`. Not for
        PostgreSQL's data directory: its backup is PITR
        (`zpersist.postgresql.pitr`).
      '';
    };
  };

  viewDir = name: "/run/zpersist/restic-view/${name}";
  job = name: "zpersist-${name}";
  resticUnit = name: "restic-backups-${job name}";
  snapshotUnit = name: "zpersist-${name}-backup-snapshot";
  bin = "${cfg.package}/bin/zpersist-backup-snapshot";
  host = config.networking.hostName;

  # `enable = false` declares nothing at all for a service, backups
  # included (as for preseed).
  backedUp = filterAttrs (_: s: s.enable && s.backup.restic != null) cfg.services;

  mountpointOf = s: (cfg.datasets.${s.dataset} or { mountpoint = null; }).mountpoint;
  datasetOf = s: "${toString cfg.pool}/${s.dataset}";
  # nixpkgs puts paths and prune options into command lines unquoted, and
  # systemd expands `%` and `$` in them.
  safePath = p: builtins.match "/[A-Za-z0-9._/+@:=-]*" p != null;

  # Declared datasets below the service's: a snapshot's clone shows none of
  # their files (zpersist-backup-snapshot refuses the same at run time, for
  # children made by hand).
  childrenOf = s: lib.filter (d: hasPrefix "${s.dataset}/" d) (attrNames cfg.datasets);

  # PostgreSQL's data directory: the service itself, or any dataset whose
  # mountpoint holds it or lies inside it.
  holdsPostgres =
    name: s:
    let
      mp = mountpointOf s;
      dataDir = pg.dataDir or null;
    in
    name == "postgresql"
    || s.profile == "postgresql"
    || (
      (pg.enable or false)
      && dataDir != null
      && builtins.isString mp
      && (hasPrefix "${mp}/" "${toString dataDir}/" || hasPrefix "${toString dataDir}/" "${mp}/")
    );

  problemsOf =
    name: s:
    let
      opt = ''zpersist.services."${name}".backup.restic'';
      b = s.backup.restic;
      mp = mountpointOf s;
      repos = attrNames cfg.restic.repositories;
    in
    optional (
      !(cfg.restic.repositories ? ${b.repository})
    ) "${opt}.repository = \"${b.repository}\" names no entry of zpersist.restic.repositories (defined: ${if repos == [ ] then "none" else lib.concatStringsSep ", " repos}); declare it there (repository, passwordFile, environmentFile), once for backups and preseed alike."
    ++ optional (
      !(builtins.isString mp && hasPrefix "/" mp)
    ) "${opt} backs up the service's dataset where it mounts, and preseed restores it there; zpersist.datasets.\"${s.dataset}\" has mountpoint = ${builtins.toJSON mp}. Give the dataset a mountpoint."
    ++ optional (
      builtins.isString mp && hasPrefix "/" mp && !(safePath mp)
    ) "${opt}: the mountpoint ${mp} has characters nixpkgs' restic unit would split or systemd would expand (spaces, quotes, % or $); use a path of letters, digits and . _ - / + @ : = only."
    ++ optional (childrenOf s != [ ]) "${opt}: zpersist.datasets has child dataset(s) of \"${s.dataset}\": ${lib.concatMapStringsSep ", " (c: "\"${c}\"") (childrenOf s)}. The backup reads a clone of the dataset's own snapshot, which shows none of a child's files: they would be missing from every backup. Back each child up as a service of its own, or keep its data in the service's dataset."
    ++ optional (holdsPostgres name s) "${opt}: PostgreSQL's data directory is never backed up at file level: a copy of a running cluster's files is not a consistent backup, and a snapshot of them is only crash-consistent. Its backup is PITR (zpersist.postgresql.pitr: WAL archive and verified base backups, restored by preseed's { pitr = true; } source). Remove backup.restic here."
    ++ optional (
      b.timerConfig != null && zlib.systemd.timerPeriodSeconds b.timerConfig == null && s.objectives.maxBackupAge == null
    ) "${opt}.timerConfig = ${builtins.toJSON b.timerConfig}: zpersist cannot tell how often that runs, so `zpersist status` has no backup-age objective to judge by. Set zpersist.services.\"${name}\".objectives.maxBackupAge (seconds: the most the newest backup may be old), or use an OnCalendar like \"daily\", \"hourly\" or \"03:15\"."
    ++ optional (
      builtins.match "[A-Za-z0-9._-]+" host == null
    ) "${opt}: networking.hostName = \"${host}\" cannot be passed to restic's --host unquoted; use a host name of letters, digits, '.', '_' and '-'.";

  # zpersist-<name>-backup-snapshot.service, as arguments of
  # nix/lib/unit.nix's builder.
  snapshotUnitOf = name: s: {
    name = snapshotUnit name;
    description = "a fresh snapshot of ${name}'s data for its restic backup";
    command = [ bin "take" (datasetOf s) (viewDir name) ];
    # Active while the backup runs; stopped (ExecStop: release) as soon as
    # the backup unit no longer needs it.
    remainAfterExit = true;
    timeout = "5min";
    before = [ "${resticUnit name}.service" ];
    after = [ cfg.internal.unitName ];
    path = zlib.unit.bootedZfs config.boot.zfs.package;
    zfs = true;
    network = "none";
    # It mounts the clone in the host's namespace: no sandbox.
    hardening = { };
    serviceConfig.ExecStop = zlib.unit.commandLine [ bin "release" (datasetOf s) ];
    notify = {
      datasets = [ (datasetOf s) ];
      summary = "snapshot for ${name}'s restic backup";
    };
    extra = {
      unitConfig.StopWhenUnneeded = true;
      # A switch must not release the view under a running backup.
      restartIfChanged = false;
    };
  };

  valid = filterAttrs (name: s: problemsOf name s == [ ]) backedUp;
in
{
  options.zpersist.services = mkOption {
    type = types.attrsOf (types.submodule backupModule);
  };

  options.zpersist.internal.resticBackups = mkOption {
    type = types.attrsOf types.anything;
    readOnly = true;
    internal = true;
    description = "Per service with backup.restic: the repository entry, host and path its backups are recorded under (status.json and preseed use the same).";
  };

  config = mkMerge [
    {
      zpersist.internal.resticBackups = lib.mapAttrs (
        name: s:
        let
          r = cfg.restic.repositories.${s.backup.restic.repository};
        in
        {
          name = s.backup.restic.repository;
          inherit (r) repository passwordFile environmentFile;
          inherit host;
          path = mountpointOf s;
        }
      ) valid;
    }
    (mkIf (cfg.enable && cfg.pool != null && backedUp != { }) {
      services.restic.backups = mapAttrs' (
        name: s:
        let
          b = s.backup.restic;
          r = cfg.restic.repositories.${b.repository};
          mp = mountpointOf s;
        in
        nameValuePair (job name) {
          inherit (r) repository passwordFile environmentFile;
          paths = [ mp ];
          inherit (b) exclude timerConfig initialize;
          # The host preseed filters on, whatever the machine's hostname
          # says at backup time.
          extraBackupArgs = [ "--host ${host}" ] ++ b.extraBackupArgs;
          pruneOpts = optionals (b.pruneOpts != [ ]) (b.pruneOpts ++ [ "--host ${host}" "--path ${mp}" ]);
        }
      ) valid;

      systemd.services = mkMerge (
        lib.mapAttrsToList (
          name: s:
          let
            mp = mountpointOf s;
          in
          {
            ${snapshotUnit name} = zlib.unit.definition (snapshotUnitOf name s);
            ${resticUnit name} = {
              requires = [ "${snapshotUnit name}.service" ];
              after = [ "${snapshotUnit name}.service" ];
              unitConfig.RequiresMountsFor = [ mp ];
              # The snapshot's clone where restic looks: the mountpoint,
              # in this unit's mount namespace only.
              serviceConfig.BindReadOnlyPaths = [ "${viewDir name}:${mp}" ];
            };
          }
        ) valid
      );

      zpersist.notify.units =
        zlib.unit.notifications (lib.mapAttrsToList snapshotUnitOf valid)
        // lib.mapAttrs' (
          name: s:
          nameValuePair "${resticUnit name}.service" {
            datasets = [ (datasetOf s) ];
            summary = "restic backup of ${name}'s data to ${s.backup.restic.repository}";
          }
        ) valid;
    })
    (mkIf (backedUp != { }) {
      assertions = zlib.serviceAssertions problemsOf backedUp;
    })
  ];
}
