# `zpersist.datasets.<name>`: the datasets, their properties and the owner of
# their mountpoint directory.
{ config, lib, ... }:
let
  inherit (lib) mkOption types literalExpression;
  zlib = import ../lib { inherit lib; };
  cfg = config.zpersist;

  nullOr = t: types.nullOr t;
  inherit (zlib) rules;

  # What ensure-datasets accepts, from zpersist-core's rules (nix/lib/rules.nix).
  mountpointType =
    types.addCheck types.str (mp: rules.mountpointProblem mp == null)
    // {
      description = "absolute path, \"none\" or \"legacy\" (without \".\" or \"..\" components or control characters)";
    };

  datasetModule =
    { name, ... }:
    {
      options = {
        fullName = mkOption {
          type = types.str;
          readOnly = true;
          default = if cfg.pool == null then name else "${cfg.pool}/${name}";
          defaultText = literalExpression ''"''${config.zpersist.pool}/<name>"'';
          description = "The dataset's full ZFS name, the pool followed by `<name>`.";
        };

        mountpoint = mkOption {
          type = nullOr mountpointType;
          default = null;
          example = "/var/lib/sonarr";
          description = ''
            Where the dataset mounts: an absolute path, `none` (never mounted;
            a container for children that mount themselves) or `legacy`
            (mounted by `fileSystems`, not by ZFS). `null` inherits from the
            parent dataset. An existing dataset that holds data is only moved
            when `zpersist.datasets.<name>.allowMountpointChange` is set.
          '';
        };

        canmount = mkOption {
          type = nullOr (types.enum rules.canmountValues);
          default = null;
          example = "off";
          description = ''
            ZFS `canmount`. `off` keeps a dataset unmounted while its
            children still inherit its mountpoint (the usual parent of
            service datasets); `null` leaves ZFS's default, `on`.
          '';
        };

        recordsize = mkOption {
          type = nullOr (rules.propertyType "recordsize");
          default = null;
          example = "16K";
          description = ''
            ZFS `recordsize`: a power of two from 512 bytes to 16M. Small
            records suit databases, `1M` suits large media files. `null`
            inherits.
          '';
        };

        compression = mkOption {
          type = nullOr (types.enum rules.compression);
          default = null;
          example = "zstd";
          description = "ZFS `compression`. `null` inherits.";
        };

        quota = mkOption {
          type = nullOr (rules.propertyType "quota");
          default = null;
          example = "20G";
          description = ''
            ZFS `quota`: the most the dataset and its descendants may use,
            like `20G`, or `none`. `null` leaves it alone.
          '';
        };

        properties = mkOption {
          type = types.attrsOf types.str;
          default = { };
          example = literalExpression ''
            {
              atime = "off";
              logbias = "throughput";
              "com.example:backup" = "daily";
            }
          '';
          description = ''
            Any other ZFS property, native (`atime`, `xattr`, `logbias`, ...)
            or user property (`module:name`, with a colon). `mountpoint` and
            `canmount` have options of their own and are refused here.
            Properties ZFS only takes at creation (`encryption`,
            `casesensitivity`, `normalization`, `utf8only`, ...) must be
            listed in `zpersist.datasets.<name>.acknowledgeCreateOnly`.
          '';
        };

        acknowledgeCreateOnly = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "casesensitivity" ];
          description = ''
            Create-only properties set in
            `zpersist.datasets.<name>.properties` that you know are
            applied only when the dataset is created: on an existing dataset
            whose value differs, `ensure-datasets` reports the difference and
            fails rather than changing it (ZFS cannot). An assertion fails for
            any create-only property not listed here.
          '';
        };

        owner = mkOption {
          type = nullOr types.str;
          default = null;
          example = "sonarr";
          description = ''
            User name that owns the dataset's root directory. Must be declared
            in `users.users` (or `root`/`nobody`), unless
            `zpersist.allowUndeclaredOwners` is set. `null` leaves the
            owner alone.
          '';
        };

        group = mkOption {
          type = nullOr types.str;
          default = null;
          example = "sonarr";
          description = ''
            Group name of the dataset's root directory, checked like
            `zpersist.datasets.<name>.owner`. `null` leaves it alone.
          '';
        };

        mode = mkOption {
          type = nullOr (types.strMatching rules.modePattern);
          default = null;
          example = "0750";
          description = "Octal permissions of the dataset's root directory. `null` leaves them alone.";
        };

        allowMountpointChange = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Let `ensure-datasets` move an existing dataset that already holds
            data to a new `zpersist.datasets.<name>.mountpoint`.
            Without it such a change is refused and the unit fails, so that a
            typo cannot make a service start on an empty directory.
          '';
        };

        neededBy = mkOption {
          type = types.listOf zlib.systemd.unitName;
          default = [ ];
          example = [ "sonarr.service" ];
          description = ''
            systemd units that use this dataset. `zpersist-datasets.service`
            is ordered before them and pulled in by them (`Wants=`, not
            `Requires=`: with `Requires=` every change of the plan would
            restart them).
          '';
        };
      };
    };
in
{
  options.zpersist.datasets = mkOption {
    type = types.attrsOf (types.submodule datasetModule);
    default = { };
    example = literalExpression ''
      {
        # Parent: never mounted, children mount where services expect them.
        "services" = { mountpoint = "none"; canmount = "off"; compression = "zstd"; };
        "services/sonarr" = {
          mountpoint = "/var/lib/sonarr";
          recordsize = "16K";
          owner = "sonarr";
          neededBy = [ "sonarr.service" ];
        };
      }
    '';
    description = ''
      Datasets that must exist in `zpersist.pool`, by name relative
      to the pool (`"services/sonarr"` is `tank/services/sonarr`). Missing
      ones are created with all their properties, existing ones get the
      declared properties set; nothing is ever destroyed, renamed or rolled
      back, and properties that are not declared are left alone.
    '';
  };
}
