# The restore drill: on a timer, each source of a service's
# `preseed.sources` restores its freshest point into a scratch dataset no
# service sees, the copy is checked (it holds data, matches a local
# snapshot's tree, the profile's SQLite databases pass their integrity
# check, the declared check exits 0), RPO and RTO are measured, and the
# copy is destroyed. One oneshot and timer per service,
# `zpersist-<name>-drill`; a failed drill notifies (docs/drill.md).
# PostgreSQL is drilled by pitr-drill (zpersist.postgresql.pitr.drill).
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
    filterAttrs
    optional
    ;
  zlib = import ../lib { inherit lib; };
  inherit (import ../lib/profiles.nix { inherit lib; }) profiles;
  cfg = config.zpersist;

  drillModule = {
    options.drill = {
      enable = mkOption {
        type = types.bool;
        default = false;
        example = true;
        description = ''
          Prove on a timer that the service's data restores: each source of
          `preseed.sources` (a replica, local snapshots, restic) restores
          its freshest point into a scratch dataset no service sees, which
          is checked, measured (RPO, RTO) and destroyed. The live dataset
          is never touched; a failed drill notifies `zpersist.notify`.
          PostgreSQL's drill is `zpersist.postgresql.pitr.drill`.
        '';
      };
      interval = mkOption {
        type = types.str;
        default = "weekly";
        example = "Sun 04:00";
        description = "When the drill runs (systemd calendar event; a missed run runs at the next boot).";
      };
      check = mkOption {
        type = types.nullOr (types.listOf types.str);
        default = null;
        example = literalExpression ''[ "''${pkgs.jq}/bin/jq" "-e" ".version" "config.json" ]'';
        description = ''
          A command (argv, no shell) run in the restored copy's root (its
          working directory; `ZPERSIST_DRILL_COPY` names it too), which
          must exit 0. Besides it, the profile's SQLite databases get
          `PRAGMA integrity_check` (docs/profiles.md).
        '';
      };
      timeout = mkOption {
        type = types.str;
        default = "6h";
        description = "Longest a whole drill (every source restored and checked) may take, the unit's `TimeoutStartSec`.";
      };
    };
  };

  stateDir = "/var/lib/zpersist/drill";
  unitName = name: "zpersist-${name}-drill";

  drilled = filterAttrs (_: s: s.enable && s.drill.enable) cfg.services;

  profileOf = name: s: (profiles.${s.profile} or profiles.generic) config name;

  planOf = name: s: {
    version = 1;
    service = name;
    inherit (s) profile;
    preseed = cfg.internal.sourcePlans.${name};
    inherit ((profileOf name s)) sqlite;
    inherit (s.drill) check;
    checkTimeoutSeconds = 600;
    inherit stateDir;
    textfile = "${stateDir}/${name}.prom";
  };
  planFile = name: s: pkgs.writeText "zpersist-drill-${name}.json" (builtins.toJSON (planOf name s));

  drillUnitOf = name: s: {
    name = unitName name;
    description = "restore ${name}'s data from each source into a scratch dataset and check it";
    command = [ "${cfg.package}/bin/zpersist-drill" ];
    contract = {
      flag = "--plan";
      file = planFile name s;
    };
    timeout = s.drill.timeout;
    after = [
      "network-online.target"
      "zfs.target"
    ];
    wants = [ "network-online.target" ];
    path = zlib.unit.bootedZfs config.boot.zfs.package ++ [
      pkgs.openssh
      pkgs.restic
      pkgs.sqlite
    ];
    zfs = true;
    # ssh to a replica, restic to its repository.
    network = "ip";
    # Not sandboxed yet: like preseed, it receives, clones, mounts and
    # destroys (below its scratch dataset only) as root.
    hardening = { };
    serviceConfig = {
      StateDirectory = "zpersist/drill";
      # The textfile beside the results is read by an exporter of another user.
      StateDirectoryMode = "0755";
      UMask = "0022";
    };
    notify = {
      datasets = [ "${toString cfg.pool}/${s.dataset}" ];
      summary = "restore drill of ${name}'s data";
    };
  };
  drillUnits = lib.mapAttrsToList drillUnitOf drilled;

  problemsOf =
    name: s:
    let
      opt = ''zpersist.services."${name}".drill'';
    in
    optional ((profileOf name s).drill == "pitr") "${opt}: the ${s.profile} profile is drilled by pitr-drill, not by copying its files (a copy of a running cluster proves nothing): set zpersist.postgresql.pitr.enable and its drill (docs/postgresql-pitr.md) instead of ${opt}.enable."
    ++ optional (lib.any (src: src.pitr) s.preseed.sources) "${opt}: preseed.sources has { pitr = true; }, which pitr-drill drills (zpersist.postgresql.pitr.drill, docs/postgresql-pitr.md); the restore drill does not."
    # The sources' own problems, unless preseed already reports them.
    ++ lib.optionals (!s.preseed.enable) (map (p: "${opt} restores from preseed.sources: ${p}") cfg.internal.sourceProblems.${name});
in
{
  options.zpersist.services = mkOption {
    type = types.attrsOf (types.submodule drillModule);
  };

  options.zpersist.internal.drillPlans = mkOption {
    type = types.attrsOf types.anything;
    readOnly = true;
    internal = true;
    description = "Each drilled service's plan, as zpersist-drill reads it.";
  };

  config = mkMerge [
    { zpersist.internal.drillPlans = lib.mapAttrs planOf drilled; }
    (mkIf (cfg.enable && cfg.pool != null && drilled != { }) (mkMerge [
      (zlib.unit.perService drillUnits)
      {
        systemd.timers = lib.mapAttrs' (
          name: s:
          lib.nameValuePair (unitName name) {
            wantedBy = [ "timers.target" ];
            timerConfig = {
              OnCalendar = s.drill.interval;
              Persistent = true;
              RandomizedDelaySec = "1h";
            };
          }
        ) drilled;
        assertions = zlib.serviceAssertions problemsOf drilled;
        # The plan each unit names, where `zpersist drill [SERVICE]` finds it.
        environment.etc = lib.mapAttrs' (
          name: s: lib.nameValuePair "zpersist/drill/${name}.json" { source = planFile name s; }
        ) drilled;
      }
    ]))
  ];
}
