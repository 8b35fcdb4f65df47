# `zpersist-status`'s objectives: /etc/zpersist/status.json, one entry per
# enabled service (services.json names them), read with services.json and
# replication.json. The snapshot-age objective defaults from the sanoid
# template the service's dataset follows: the most frequent period with a
# count above 0, times 2 (hourly = 1 → 7200 s); no template, no default.
# Only the policy's snapshots count (snapshotPeriods: the template's
# periods with a count above 0, sanoid's autosnap_*_<period>).
#
# Pools: zpersist.pool and services.zfs.autoScrub.pools, each with a scrub
# objective of twice autoScrub's interval plus its randomizedDelaySec when
# autoScrub scrubs it; the module turns autoScrub on (mkDefault) unless the
# host says otherwise. PostgreSQL (zpersist.postgresql.pitr): base backups
# and drills within twice their schedule's period, an RPO within the
# archive-age limit. Each service whose restore drill is enabled
# (zpersist.services.<name>.drill): where its result is, and a drill
# within twice its interval plus the timer's hour of randomized delay.
#
# zpersist-status.service (on zpersist.status.interval) writes the report
# as a Prometheus textfile; a missed objective fails the unit, which
# zpersist.notify hears about.
{ config, lib, pkgs, ... }:
let
  inherit (lib)
    mkOption
    mkIf
    types
    mapAttrs
    findFirst
    ;
  cfg = config.zpersist;
  scfg = cfg.status;
  zlib = import ../lib { inherit lib; };
  plan = cfg.internal.servicesPlan;
  policies = cfg.snapshots.internal.policies;

  # sanoid's periods, most frequent first, in seconds (monthly and yearly
  # as their longest: 31 and 366 days, so a long month never alerts).
  periods = template: [
    {
      count = template.frequently or 0;
      seconds = (template.frequent_period or 15) * 60;
    }
    {
      count = template.hourly;
      seconds = 3600;
    }
    {
      count = template.daily;
      seconds = 86400;
    }
    {
      count = template.weekly;
      seconds = 604800;
    }
    {
      count = template.monthly;
      seconds = 2678400;
    }
    {
      count = template.yearly;
      seconds = 31622400;
    }
  ];
  defaultSnapshotAge =
    dataset:
    let
      name = policies.${dataset} or null;
      template = if name == null then null else cfg.snapshots.templates.${name} or null;
      first =
        if template == null then
          null
        else
          findFirst (p: builtins.isInt p.count && p.count > 0) null (periods template);
    in
    if first == null then null else first.seconds * 2;

  # Services with backup.restic (nix/modules/backup.nix): where their
  # backups are, as preseed reads them.
  backups = cfg.internal.resticBackups;
  # Twice the timer's period plus its randomized delay (daily → 2 days);
  # null when the period cannot be told (backup.nix then asks for an
  # explicit objective) or there is no timer.
  defaultBackupAge =
    timerConfig:
    let
      period = if timerConfig == null then null else zlib.systemd.timerPeriodSeconds timerConfig;
      delay = if timerConfig == null then null else zlib.systemd.spanSeconds (timerConfig.RandomizedDelaySec or 0);
    in
    if period == null then null else period * 2 + (if delay == null then 0 else delay);

  # The template's periods with a count above 0, as sanoid names its
  # snapshots (autosnap_<date>_<period>); null: no template, any period.
  snapshotPeriods =
    dataset:
    let
      name = policies.${dataset} or null;
      template = if name == null then null else cfg.snapshots.templates.${name} or null;
      count = p: template.${p} or 0;
    in
    if template == null then
      null
    else
      lib.filter (p: builtins.isInt (count p) && count p > 0) [
        "frequently"
        "hourly"
        "daily"
        "weekly"
        "monthly"
        "yearly"
      ];

  scrub = config.services.zfs.autoScrub;
  # Twice autoScrub's interval plus its randomized delay, for the pools it
  # scrubs (all when its list is empty); null when it is off or its
  # calendar cannot be read.
  defaultScrubAge =
    pool:
    let
      period = zlib.systemd.timerPeriodSeconds { OnCalendar = scrub.interval; };
      delay = zlib.systemd.spanSeconds (scrub.randomizedDelaySec or 0);
      scrubbed = scrub.enable && (scrub.pools == [ ] || lib.elem pool scrub.pools);
    in
    if !scrubbed || period == null then null else period * 2 + (if delay == null then 0 else delay);
  poolNames = lib.unique (lib.optional ((cfg.pool or null) != null) (toString cfg.pool) ++ scrub.pools);

  pitr = cfg.postgresql.pitr or { enable = false; };
  twice =
    calendar:
    let
      period = zlib.systemd.timerPeriodSeconds { OnCalendar = calendar; };
    in
    if period == null then null else period * 2;
  orDefault = own: default: if own != null then own else default;

  # Services whose restore drill is enabled (nix/modules/drill.nix): their
  # result file and objectives go into status.json, no one else's.
  drillPlans = cfg.internal.drillPlans;
  # Twice the drill's interval plus the timer's randomized delay (1 h):
  # weekly → 1213200; null when the calendar cannot be read.
  defaultDrillAge =
    calendar:
    let
      period = twice calendar;
    in
    if period == null then null else period + 3600;

  statusFile = {
    version = 1;
    pools = lib.genAttrs poolNames (pool: {
      maxScrubAgeSeconds = orDefault scfg.maxScrubAge (defaultScrubAge pool);
    });
  }
  // lib.optionalAttrs pitr.enable {
    postgresql = {
      maxBaseBackupAgeSeconds = orDefault scfg.postgresql.maxBaseBackupAge (twice pitr.baseBackup.schedule);
      maxDrillAgeSeconds = orDefault scfg.postgresql.maxDrillAge (twice pitr.drill.schedule);
      maxRpoSeconds = orDefault scfg.postgresql.maxRpo pitr.maxArchiveAgeSeconds;
    };
  }
  // {
    services = mapAttrs (name: entry: {
      maxSnapshotAgeSeconds =
        let
          own = cfg.services.${name}.objectives.maxSnapshotAge or null;
        in
        if own != null then own else defaultSnapshotAge entry.dataset;
      snapshotPeriods = snapshotPeriods entry.dataset;
      maxReplicationLagSeconds = cfg.services.${name}.objectives.maxReplicationLag or null;
    }
    // lib.optionalAttrs (drillPlans ? ${name}) {
      drill = {
        resultFile = "${drillPlans.${name}.stateDir}/${name}.json";
        unit = "zpersist-${name}-drill.service";
        maxAgeSeconds = orDefault cfg.services.${name}.objectives.maxDrillAge (
          defaultDrillAge cfg.services.${name}.drill.interval
        );
        maxRpoSeconds = cfg.services.${name}.objectives.maxDrillRpo;
      };
    }
    // lib.optionalAttrs (backups ? ${name}) {
      maxBackupAgeSeconds =
        let
          own = cfg.services.${name}.objectives.maxBackupAge;
        in
        if own != null then own else defaultBackupAge cfg.services.${name}.backup.restic.timerConfig;
      resticBackup = backups.${name};
    }) (plan.services or { });
  };
in
{
  options.zpersist.services = mkOption {
    type = types.attrsOf (
      types.submodule {
        options.objectives = {
          maxSnapshotAge = mkOption {
            type = types.nullOr types.ints.positive;
            default = null;
            example = 7200;
            description = ''
              Seconds the newest snapshot of the service's dataset may be
              old before `zpersist-status` reports it (exit 1). `null`: twice
              the most frequent period with a count above 0 in the sanoid
              template the dataset follows (none when it follows none).
            '';
          };
          maxReplicationLag = mkOption {
            type = types.nullOr types.ints.positive;
            default = null;
            example = 86400;
            description = ''
              Seconds each replication target may be behind the newest
              local snapshot before `zpersist-status` reports it. `null`:
              `zpersist.replication`'s lag limit, when set.
            '';
          };
          maxDrillAge = mkOption {
            type = types.nullOr types.ints.positive;
            default = null;
            example = 1213200;
            description = ''
              Seconds the last restore drill of the service (`drill`) may
              be old before `zpersist-status` reports it. `null`: twice the
              period of `drill.interval` plus the timer's randomized delay
              of 1 h (weekly → 1213200). Only for a service whose drill is
              enabled.
            '';
          };
          maxDrillRpo = mkOption {
            type = types.nullOr types.ints.positive;
            default = null;
            example = 86400;
            description = ''
              Seconds of data each source of the service's restore drill
              may lose (the age of the point it restored when the drill
              started) before `zpersist-status` reports it. `null`: shown,
              never judged.
            '';
          };
          maxBackupAge = mkOption {
            type = types.nullOr types.ints.positive;
            default = null;
            example = 172800;
            description = ''
              Seconds the newest restic backup of the service
              (`backup.restic`) may be old before `zpersist-status`
              reports it. `null`: twice the period of
              `backup.restic.timerConfig` plus its `RandomizedDelaySec`
              (daily → 172800); a calendar zpersist cannot read needs an
              explicit value.
            '';
          };
        };
      }
    );
  };

  options.zpersist.status = {
    enable = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether `zpersist-status.service` checks every service's objectives
        on a timer and writes them to `zpersist.status.textfile`. A missed
        objective fails the unit (so `zpersist.notify` hears of it).
      '';
    };
    interval = mkOption {
      type = types.str;
      default = "*:0/15";
      description = "When the objectives are checked (systemd calendar event).";
    };
    textfile = mkOption {
      type = types.str;
      default = "/var/lib/zpersist/status.prom";
      description = "Prometheus textfile the report is written to (atomically), for node_exporter's textfile collector.";
    };
    maxScrubAge = mkOption {
      type = types.nullOr types.ints.positive;
      default = null;
      example = 5356800;
      description = ''
        Seconds the last completed scrub of each checked pool
        (`zpersist.pool` and `services.zfs.autoScrub.pools`) may be old
        before `zpersist-status` reports it. `null`: twice
        `services.zfs.autoScrub.interval` plus its `randomizedDelaySec`
        (monthly → 5378400) for the pools autoScrub scrubs; none when
        autoScrub is off.
      '';
    };
    postgresql = {
      maxBaseBackupAge = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = "Seconds the newest PostgreSQL base backup may be old (`zpersist.postgresql.pitr`). `null`: twice the period of `baseBackup.schedule` (daily → 172800).";
      };
      maxDrillAge = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = "Seconds the last restore drill may be old. `null`: twice the period of `drill.schedule` (weekly → 1209600).";
      };
      maxRpo = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = "Seconds of data the last drill may have lost (its recovery point). `null`: `maxArchiveAgeSeconds`.";
      };
    };
  };

  options.zpersist.status.internal.file = mkOption {
    type = types.attrsOf types.anything;
    readOnly = true;
    internal = true;
    description = "What /etc/zpersist/status.json holds, as data.";
  };

  config = lib.mkMerge [
    { zpersist.status.internal.file = statusFile; }
    # Scrubs find the damage snapshots and replicas would copy: on by
    # default for a zpersist host (every pool, nixpkgs' default list),
    # unless the host says otherwise.
    (mkIf cfg.enable { services.zfs.autoScrub.enable = lib.mkDefault true; })
    (mkIf (cfg.enable && (plan.services or { }) != { }) {
      environment.etc."zpersist/status.json".text = builtins.toJSON statusFile;
    })
    (mkIf (cfg.enable && (plan.services or { }) != { } && scfg.enable) (
      zlib.unit.service {
        name = "zpersist-status";
        description = "whether each service keeps its persistence objectives";
        command = [
          "${cfg.package}/bin/zpersist-status"
          "--config"
          "/etc/zpersist"
          "--textfile"
          scfg.textfile
        ];
        # Each zfs and ssh call is bounded by replication.json's
        # timeoutSeconds (60 s by default); this bounds the whole run.
        timeout = 900;
        after = [
          "network-online.target"
          "zfs.target"
        ];
        wants = [ "network-online.target" ];
        path = [
          pkgs.openssh
          pkgs.restic
        ]
        # runuser: pg_stat_archiver is read with psql as the cluster's user.
        ++ lib.optional pitr.enable pkgs.util-linux
        ++ zlib.unit.bootedZfs config.boot.zfs.package;
        zfs = true;
        network = "ip";
        serviceConfig = {
          ProtectSystem = "strict";
          ReadWritePaths = [ (builtins.dirOf scfg.textfile) ];
          StateDirectory = mkIf (lib.hasPrefix "/var/lib/" scfg.textfile) (
            lib.removePrefix "/var/lib/" (builtins.dirOf scfg.textfile)
          );
          ProtectHome = "read-only";
          PrivateTmp = true;
          CapabilityBoundingSet = [
            "CAP_DAC_READ_SEARCH"
          ]
          # runuser -u postgres for psql (pg_stat_archiver).
          ++ lib.optionals pitr.enable [
            "CAP_SETUID"
            "CAP_SETGID"
          ];
          UMask = "0022";
          # restic's cache for the repository listings (backup.restic).
          CacheDirectory = "zpersist-status";
          CacheDirectoryMode = "0700";
          Environment = [ "RESTIC_CACHE_DIR=/var/cache/zpersist-status" ];
        };
        notify = {
          datasets = lib.mapAttrsToList (_: e: e.dataset) (plan.services or { });
          summary = "persistence objectives on ${config.networking.hostName}";
        };
        extra.startAt = scfg.interval;
      }
    ))
  ];
}
