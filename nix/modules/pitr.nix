# PostgreSQL point-in-time recovery: `zpersist.postgresql.pitr`. PostgreSQL
# archives every WAL segment through `pitr-archive-wal` (a local repository
# on a dataset of its own, or S3 through barman-cloud); a timer takes
# verified base backups and prunes by retention; a short timer writes a
# heartbeat row and checks archiving; a drill restores the newest state for
# real and reports the recovery point. Every binary reads one contract
# (/etc/zpersist/pitr.json). docs/postgresql-pitr.md explains it.
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
    mkDefault
    types
    literalExpression
    optional
    optionalAttrs
    ;
  zlib = import ../lib { inherit lib; };
  cfg = config.zpersist.postgresql.pitr;
  pg = config.services.postgresql;
  local = cfg.repository.local;
  s3 = cfg.repository.s3;
  isLocal = local.dataset != null;
  isS3 = s3.destination != null;
  contractPath = "/etc/zpersist/pitr.json";
  metricsDir = "/var/lib/zpersist/pitr";
  bin = name: "${config.zpersist.package}/bin/${name}";

  # "14d", "36h", "2w", "90m" -> seconds; null when it does not parse.
  durationSeconds =
    text:
    let
      m = builtins.match "([0-9]+)([mhdw])" text;
      unit = {
        m = 60;
        h = 3600;
        d = 86400;
        w = 604800;
      };
    in
    if m == null then null else lib.toInt (builtins.elemAt m 0) * unit.${builtins.elemAt m 1};
  windowSeconds = if cfg.retention.recoveryWindow == null then null else durationSeconds cfg.retention.recoveryWindow;

  # Where declared datasets mount: the drill's scratch directory is none
  # of them, nor inside or above one (a dataset declared for the scratch
  # directory itself excepted: the drill removes only what it made there).
  datasetPaths = lib.unique (
    lib.filter (p: lib.hasPrefix "/" p && normalize p != normalize cfg.drill.scratchDir) (
      lib.mapAttrsToList (_: d: toString d.mountpoint) (config.zpersist.datasets or { })
    )
  );
  normalize = p: "/" + lib.concatStringsSep "/" (lib.filter (c: c != "") (lib.splitString "/" p));
  # One is, holds or lies inside the other.
  overlap =
    a: b:
    let
      x = normalize a;
      y = normalize b;
      inside = u: v: u == v || v == "/" || lib.hasPrefix "${v}/" u;
    in
    inside x y || inside y x;
  scratchClashes =
    lib.optional (pg.enable && overlap cfg.drill.scratchDir pg.dataDir) "PostgreSQL's dataDir (${pg.dataDir})"
    ++ lib.optional (isLocal && overlap cfg.drill.scratchDir local.mountpoint) "the repository (${local.mountpoint})"
    ++ map (p: "the declared dataset path ${p}") (lib.filter (overlap cfg.drill.scratchDir) datasetPaths);

  contract = {
    version = 1;
    cluster = {
      pgBin = "${pg.package}/bin";
      inherit (pg) dataDir;
      socketDir = "/run/postgresql";
      port = pg.settings.port;
      user = "postgres";
    };
    repository =
      if isLocal then
        {
          # The dataset too: every pitr-* command checks that the directory
          # shows it, mounted, before reading or writing the archive.
          local = {
            dir = local.mountpoint;
            dataset = "${toString config.zpersist.pool}/${local.dataset}";
          };
        }
      else
        {
          s3 = {
            inherit (s3) destination endpointUrl environmentFile;
            serverName = s3.serverName;
            barmanBin = "${cfg.barmanPackage}/bin";
          };
        };
    retention =
      if cfg.retention.count != null then
        { inherit (cfg.retention) count; }
      else
        { recoveryWindowSeconds = windowSeconds; };
    timeouts = {
      commandSeconds = cfg.commandTimeoutSeconds;
      baseBackupSeconds = cfg.baseBackup.timeoutSeconds;
      restoreSeconds = cfg.drill.timeoutSeconds;
    };
    heartbeat.table = "zpersist_pitr_heartbeat";
    drill = {
      inherit (cfg.drill) scratchDir port;
      protectedPaths = datasetPaths;
    };
    inherit metricsDir;
    maxArchiveAgeSeconds = cfg.maxArchiveAgeSeconds;
  };
  contractFile = pkgs.writeText "zpersist-pitr.json" (builtins.toJSON contract);

  # The sandbox of the pitr units: they run as postgres, talk to the
  # cluster over its socket (and to S3), write the repository, the drill's
  # scratch directory and the metrics.
  sandbox =
    writable: jit:
    {
      User = "postgres";
      Group = "postgres";
      ProtectSystem = "strict";
      ProtectHome = true;
      PrivateTmp = true;
      PrivateDevices = true;
      CapabilityBoundingSet = "";
      # The textfiles are read by an exporter of another user; PostgreSQL's
      # programs set their own modes (0600 files, 0700 directories).
      UMask = "0022";
      ReadWritePaths = writable;
      RestrictAddressFamilies = [ "AF_UNIX" ] ++ lib.optionals isS3 [ "AF_INET" "AF_INET6" ];
    }
    // lib.optionalAttrs (!isS3) { IPAddressDeny = "any"; }
    # barman-cloud is Python, and the drill's throwaway postgres may JIT:
    # no MemoryDenyWriteExecute for them.
    // (if isS3 || jit then zlib.hardening.common // { NoNewPrivileges = true; } else zlib.hardening.ownCode);

  repoWritable = optional isLocal local.mountpoint;
  # A base backup locks its repository: the local one in itself, an S3 one
  # (whose bucket has no lock) in the metrics directory.
  # A local repository: the resource lock every mover takes on its dataset
  # (zpersist_host::resource_lock; made by service.nix's tmpfiles rule).
  baseBackupWritable = repoWritable ++ (if isS3 then [ metricsDir ] else [ "-/run/zpersist/locks" ]);

  unit = description: exec: writable: jit: timeout: {
    inherit description;
    after = [ "postgresql.service" ];
    serviceConfig = sandbox writable jit // {
      Type = "oneshot";
      ExecStart = "${exec} --contract ${contractFile}";
      TimeoutStartSec = timeout;
    };
  };
in
{
  options.zpersist.postgresql.pitr = {
    enable = mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = ''
        Point-in-time recovery for `services.postgresql`: every WAL segment
        archived durably, verified base backups on a schedule, retention
        that never breaks the chain, a heartbeat, and drills that restore
        for real (docs/postgresql-pitr.md).
      '';
    };

    repository.local = {
      dataset = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "backup/pitr";
        description = ''
          A dataset (relative to `zpersist.pool`) holding the WAL archive
          and base backups, declared by zpersist (owned by postgres, mode
          0700, 1M records). sanoid and syncoid carry it off-host like any
          other dataset.
        '';
      };
      mountpoint = mkOption {
        type = types.str;
        default = "/var/lib/zpersist-pitr";
        description = "Where the repository's dataset mounts (writable from the postgresql unit's sandbox).";
      };
    };

    repository.s3 = {
      destination = mkOption {
        type = types.nullOr (types.strMatching "s3://[^/]+(/.*)?");
        default = null;
        example = "s3://forge-backups/postgresql";
        description = "An S3 bucket and prefix, written to by barman-cloud.";
      };
      endpointUrl = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "https://s3.eu-central-003.backblazeb2.com";
        description = "A non-AWS S3 endpoint (barman-cloud's `--endpoint-url`).";
      };
      serverName = mkOption {
        type = types.str;
        default = config.networking.hostName;
        defaultText = literalExpression "config.networking.hostName";
        description = "barman-cloud's server name: the folder below the prefix.";
      };
      environmentFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/secrets/pitr-s3";
        description = ''
          `NAME=value` lines with the credentials (AWS_ACCESS_KEY_ID,
          AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION), readable by postgres.
          A path string: never copied to the store.
        '';
      };
    };

    barmanPackage = mkOption {
      type = types.anything;
      default = pkgs.barman;
      defaultText = literalExpression "pkgs.barman";
      description = "The package providing barman-cloud-* (S3 repositories).";
    };

    archiveTimeout = mkOption {
      type = types.str;
      default = "60s";
      description = ''
        PostgreSQL's `archive_timeout`: a segment holding any transaction is
        archived at most this long after it was written, which bounds how
        much a lost host loses.
      '';
    };

    baseBackup = {
      schedule = mkOption {
        type = types.str;
        default = "daily";
        description = "When base backups are taken (systemd calendar event).";
      };
      timeoutSeconds = mkOption {
        type = types.ints.positive;
        default = 6 * 3600;
        description = "Longest a base backup (with its verification) may take.";
      };
    };

    retention = {
      recoveryWindow = mkOption {
        type = types.nullOr types.str;
        default = "14d";
        example = "30d";
        description = ''
          Every moment of this window stays restorable (`90m`, `36h`, `14d`,
          `2w`): base backups within it, the newest one before it, and all
          WAL from the oldest kept backup on.
        '';
      };
      count = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        description = "Keep this many base backups instead of a window (set `recoveryWindow = null`).";
      };
    };

    drill = {
      schedule = mkOption {
        type = types.str;
        default = "weekly";
        description = "When the drill restores the newest state for real (systemd calendar event).";
      };
      scratchDir = mkOption {
        type = types.str;
        default = "/var/lib/zpersist-pitr-drill";
        description = "Where each drill restores (into `data/`, which it makes and removes; nothing else there is touched): it needs room for a copy of the cluster, and must not be, hold or lie inside the repository, PostgreSQL's dataDir or any declared dataset's mountpoint.";
      };
      port = mkOption {
        type = types.port;
        default = 5499;
        description = "The throwaway server's port (on a private socket, no TCP).";
      };
      timeoutSeconds = mkOption {
        type = types.ints.positive;
        default = 6 * 3600;
        description = "Longest a restore with its replay may take.";
      };
    };

    heartbeatInterval = mkOption {
      type = types.str;
      default = "1min";
      description = "How often the heartbeat row is written and archiving checked (systemd time span).";
    };

    maxArchiveAgeSeconds = mkOption {
      type = types.ints.positive;
      default = 3600;
      description = "Nothing archived for longer than this fails the heartbeat unit (and notifies).";
    };

    commandTimeoutSeconds = mkOption {
      type = types.ints.positive;
      default = 120;
      description = "Bound of each query, listing, and each WAL file archived or fetched.";
    };

    internal.contract = mkOption {
      type = types.attrsOf types.anything;
      readOnly = true;
      internal = true;
      description = "The PITR contract, as written to ${contractPath}.";
    };
  };

  # Every restic job of the host skips the data directory: a file-level
  # copy of a running cluster is not a backup; the archive is.
  options.services.restic.backups = mkOption {
    type = types.attrsOf (types.submodule { config.exclude = mkIf cfg.enable [ pg.dataDir ]; });
  };

  config = lib.mkMerge [
    { zpersist.postgresql.pitr.internal.contract = contract; }

    (mkIf cfg.enable {
      environment.etc."zpersist/pitr.json".source = contractFile;
      environment.systemPackages = [ config.zpersist.package ];
      # The metrics are read by an exporter running as another user; the
      # drill's scratch directory holds a copy of the cluster.
      systemd.tmpfiles.rules = [
        "d ${metricsDir} 0755 postgres postgres -"
        "d ${cfg.drill.scratchDir} 0700 postgres postgres -"
      ];

      services.postgresql.settings = {
        wal_level = mkDefault "replica";
        archive_mode = "on";
        # The contract by its /etc path, read at every call: the contract
        # names the cluster's port, which comes from these very settings.
        archive_command = "${bin "pitr-archive-wal"} --contract ${contractPath} %p %f";
        archive_timeout = cfg.archiveTimeout;
      };
      # pg_basebackup connects for replication over the socket, as the
      # cluster's user. nixpkgs' default authentication (`local all all
      # peer`) does not let it: `all` does not match replication
      # connections, and nixpkgs replaces initdb's pg_hba.conf, which had a
      # replication line.
      services.postgresql.authentication = ''
        local replication postgres peer
      '';
      # The archive is written from inside nixpkgs' sandbox (ProtectSystem = "strict").
      systemd.services.postgresql = lib.mkMerge [
        (mkIf isLocal {
          serviceConfig.ReadWritePaths = [ local.mountpoint ];
          unitConfig.RequiresMountsFor = [ local.mountpoint ];
        })
      ];

      zpersist.datasets = mkIf isLocal {
        ${local.dataset} = {
          mountpoint = mkDefault local.mountpoint;
          owner = mkDefault "postgres";
          group = mkDefault "postgres";
          mode = mkDefault "0700";
          recordsize = mkDefault "1M";
          compression = mkDefault "lz4";
          properties.atime = mkDefault "off";
          neededBy = [ "postgresql.service" ];
        };
      };

      systemd.services.zpersist-pitr-base-backup =
        unit "zpersist: a verified PostgreSQL base backup, then retention" (bin "pitr-base-backup") baseBackupWritable false
          (cfg.baseBackup.timeoutSeconds + 60);
      systemd.timers.zpersist-pitr-base-backup = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = cfg.baseBackup.schedule;
          Persistent = true;
        };
      };

      systemd.services.zpersist-pitr-drill =
        unit "zpersist: restore PostgreSQL's newest state for real and measure the recovery point" (bin "pitr-drill") [
          cfg.drill.scratchDir
          metricsDir
        ] true (cfg.drill.timeoutSeconds + 60);
      systemd.timers.zpersist-pitr-drill = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnCalendar = cfg.drill.schedule;
          Persistent = true;
        };
      };

      systemd.services.zpersist-pitr-heartbeat =
        unit "zpersist: PostgreSQL heartbeat row and archive health" (bin "pitr-heartbeat") [ metricsDir ] false
          (cfg.commandTimeoutSeconds * 2 + 30);
      systemd.timers.zpersist-pitr-heartbeat = {
        wantedBy = [ "timers.target" ];
        timerConfig = {
          OnActiveSec = cfg.heartbeatInterval;
          OnUnitActiveSec = cfg.heartbeatInterval;
        };
      };

      zpersist.notify.units = lib.mapAttrs (_: summary: {
        inherit summary;
        datasets = optional isLocal "${toString config.zpersist.pool}/${toString local.dataset}";
      }) {
        "zpersist-pitr-base-backup.service" = "PostgreSQL base backup";
        "zpersist-pitr-drill.service" = "PostgreSQL restore drill";
        "zpersist-pitr-heartbeat.service" = "PostgreSQL WAL archiving health";
      };

      assertions = [
        {
          assertion = pg.enable;
          message = "zpersist.postgresql.pitr.enable needs services.postgresql.enable = true: it archives that cluster's WAL.";
        }
        {
          assertion = lib.count (x: x) [ isLocal isS3 ] == 1;
          message = "zpersist.postgresql.pitr: set exactly one repository, repository.local.dataset (a dataset on zpersist.pool) or repository.s3.destination (barman-cloud); ${if isLocal then "both are set" else "neither is set"}.";
        }
        {
          assertion = !isLocal || config.zpersist.pool != null;
          message = "zpersist.postgresql.pitr.repository.local.dataset needs zpersist.pool: the repository is a dataset of that pool.";
        }
        {
          assertion = (cfg.retention.count == null) != (cfg.retention.recoveryWindow == null);
          message = "zpersist.postgresql.pitr.retention: set either recoveryWindow (like \"14d\") or count, not ${if cfg.retention.count == null then "neither" else "both (set recoveryWindow = null to keep a count)"}.";
        }
        {
          assertion = cfg.retention.recoveryWindow == null || windowSeconds != null;
          message = "zpersist.postgresql.pitr.retention.recoveryWindow = \"${toString cfg.retention.recoveryWindow}\" is not a duration like 90m, 36h, 14d or 2w.";
        }
        {
          assertion = scratchClashes == [ ];
          message = "zpersist.postgresql.pitr.drill.scratchDir (${cfg.drill.scratchDir}) is, holds or lies inside ${lib.concatStringsSep ", " scratchClashes}: each drill restores a throwaway copy there; give it a directory of its own, apart from any data.";
        }
        {
          assertion = !pg.enable || cfg.drill.port != pg.settings.port;
          message = "zpersist.postgresql.pitr.drill.port is PostgreSQL's own port (${toString pg.settings.port}); the drill's throwaway server needs another.";
        }
        {
          assertion = !isLocal || !pg.enable || !(lib.hasPrefix "${pg.dataDir}/" "${local.mountpoint}/" || lib.hasPrefix "${local.mountpoint}/" "${pg.dataDir}/");
          message = "zpersist.postgresql.pitr.repository.local.mountpoint (${local.mountpoint}) and PostgreSQL's dataDir overlap: the archive must survive the loss of the data directory.";
        }
      ];
    })
  ];
}
