# `zpersist-status`'s objectives: /etc/zpersist/status.json, one entry per
# enabled service (services.json names them), read with services.json and
# replication.json. The snapshot-age objective defaults from the sanoid
# template the service's dataset follows: the most frequent period with a
# count above 0, times 2 (hourly = 1 → 7200 s); no template, no default.
{ config, lib, ... }:
let
  inherit (lib)
    mkOption
    mkIf
    types
    mapAttrs
    findFirst
    ;
  cfg = config.zpersist;
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

  statusFile = {
    version = 1;
    services = mapAttrs (name: entry: {
      maxSnapshotAgeSeconds =
        let
          own = cfg.services.${name}.objectives.maxSnapshotAge or null;
        in
        if own != null then own else defaultSnapshotAge entry.dataset;
      maxReplicationLagSeconds = cfg.services.${name}.objectives.maxReplicationLag or null;
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
        };
      }
    );
  };

  options.zpersist.status.internal.file = mkOption {
    type = types.attrsOf types.anything;
    readOnly = true;
    internal = true;
    description = "What /etc/zpersist/status.json holds, as data.";
  };

  config = lib.mkMerge [
    { zpersist.status.internal.file = statusFile; }
    (mkIf (cfg.enable && (plan.services or { }) != { }) {
      environment.etc."zpersist/status.json".text = builtins.toJSON statusFile;
    })
  ];
}
