# Snapshot policies (sanoid): templates, and which template each dataset
# follows. Children inherit their nearest ancestor's policy
# (nix/lib/inheritance.nix). zpersist configures nixpkgs' services.sanoid;
# it does not replace it.
#
# Every declared dataset with a policy gets its own sanoid entry
# (`use_template`, not sanoid's `recursive`): the entries say exactly which
# datasets are covered, a child can follow another template or opt out with
# "none", and undeclared datasets are left alone.
{ config, lib, ... }:
let
  inherit (lib)
    mkOption
    mkIf
    types
    literalExpression
    filterAttrs
    nameValuePair
    attrNames
    attrValues
    unique
    ;
  zlib = import ../lib { inherit lib; };
  cfg = config.zpersist;

  # The reserved policy name that opts a dataset (and its children) out.
  none = "none";

  # The effective template of every declared dataset, by full name; datasets
  # without one (or with "none") are left out.
  policies = lib.mapAttrs' (key: template: nameValuePair "${cfg.pool}/${key}" template) (
    filterAttrs (_: t: t != null && t != none) (zlib.inheritance.resolve cfg.datasets "snapshots")
  );

  settingType = types.oneOf [
    types.str
    types.int
    types.bool
    (types.listOf types.str)
  ];
  count =
    what:
    mkOption {
      type = types.ints.unsigned;
      # Written into every template: left out, sanoid would fall back to
      # its sanoid.defaults.conf (48 hourly, 90 daily, 6 monthly), not 0.
      default = 0;
      description = "How many ${what} snapshots to keep; 0 takes none. Always written into the template, so sanoid's own defaults (48 hourly, 90 daily, 6 monthly in sanoid.defaults.conf) never apply unseen.";
    };
  flag =
    what:
    mkOption {
      type = types.nullOr types.bool;
      default = null;
      description = "Whether sanoid ${what}; `null` keeps sanoid's default (yes).";
    };
  templateModule = {
    freeformType = types.attrsOf settingType;
    options = {
      hourly = count "hourly";
      daily = count "daily";
      weekly = count "weekly";
      monthly = count "monthly";
      yearly = count "yearly";
      autosnap = flag "takes snapshots of the datasets following this template";
      autoprune = flag "prunes snapshots beyond the counts";
    };
  };

  unknownTemplates = unique (
    lib.filter (t: !(cfg.snapshots.templates ? ${t})) (attrValues policies)
  );
  usedBy = t: attrNames (filterAttrs (_: p: p == t) policies);
in
{
  options.zpersist.datasets = mkOption {
    type = types.attrsOf (
      types.submodule {
        options.snapshots = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "services";
          description = ''
            The snapshot template (a name in `zpersist.snapshots.templates`)
            this dataset follows. `null` inherits the nearest declared
            ancestor's template, if any; `"none"` takes no snapshots of this
            dataset and of the children that inherit from it.
          '';
        };
      }
    );
  };

  options.zpersist.snapshots = {
    templates = mkOption {
      type = types.attrsOf (types.submodule templateModule);
      default = { };
      example = literalExpression ''
        {
          services = { hourly = 36; daily = 30; monthly = 3; };
          media = { daily = 7; autoprune = true; };
        }
      '';
      description = ''
        sanoid templates by name. Besides the counts, any other sanoid
        template setting (`hourly_warn`, `prune_defer`, `pre_snapshot_script`,
        ...) may be given and is passed through. Rendered into
        `services.sanoid.templates`.
      '';
    };

    internal.policies = mkOption {
      type = types.attrsOf types.str;
      readOnly = true;
      internal = true;
      description = "The template each dataset follows after inheritance, by full name.";
    };
  };

  config = lib.mkMerge [
    { zpersist.snapshots.internal.policies = policies; }
    (mkIf (cfg.enable && cfg.pool != null && policies != { }) {
      services.sanoid = {
        enable = true;
        templates = lib.mapAttrs (_: t: filterAttrs (_: v: v != null) t) cfg.snapshots.templates;
        datasets = lib.mapAttrs (_: template: { useTemplate = [ template ]; }) policies;
      };

      zpersist.notify.units."sanoid.service" = {
        datasets = attrNames policies;
        summary = "sanoid snapshots on ${config.networking.hostName}";
      };

      assertions = [
        {
          assertion = unknownTemplates == [ ];
          message = lib.concatMapStringsSep "\n" (
            t:
            ''zpersist.datasets: ${lib.concatMapStringsSep ", " (n: ''"${n}"'') (usedBy t)} follow${lib.optionalString (builtins.length (usedBy t) == 1) "s"} the snapshot template "${t}", which zpersist.snapshots.templates does not define. Define zpersist.snapshots.templates."${t}" (e.g. { hourly = 24; daily = 7; }), fix the name (defined: ${
              if cfg.snapshots.templates == { } then "none" else lib.concatStringsSep ", " (attrNames cfg.snapshots.templates)
            }), or set snapshots = "none" to take no snapshots.''
          ) unknownTemplates;
        }
        {
          assertion = !(cfg.snapshots.templates ? ${none});
          message = ''zpersist.snapshots.templates."none": "none" is reserved (snapshots = "none" opts a dataset out); give the template another name.'';
        }
      ];
    })
  ];
}
