# Top-level switches: whether zpersist runs, on which pool, with which build.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types literalExpression;
  cfg = config.zpersist;
in
{
  options.zpersist = {
    enable = mkOption {
      type = types.bool;
      default = cfg.datasets != { };
      defaultText = literalExpression ''config.zpersist.datasets != { }'';
      example = false;
      description = ''
        Whether to make the declared datasets exist on every boot and every
        `nixos-rebuild switch` (the `zpersist-datasets.service` unit).
        On as soon as a dataset is declared; set it to `false` to keep the
        declarations but run nothing.
      '';
    };

    pool = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "tank";
      description = ''
        The ZFS pool every dataset of `zpersist.datasets` lives in.
        Dataset names are relative to it. The pool itself is imported by
        NixOS (`boot.zfs.extraPools`, or the root pool in the initrd);
        zpersist never creates or imports pools.
      '';
    };

    package = mkOption {
      type = types.package;
      default = pkgs.zpersist or (pkgs.callPackage ../package.nix { });
      defaultText = literalExpression ''pkgs.zpersist or (pkgs.callPackage "''${zpersist}/nix/package.nix" { })'';
      description = ''
        The zpersist build providing `bin/ensure-datasets`. Defaults to
        `pkgs.zpersist` when the flake's overlay is applied, and otherwise
        builds this checkout with the system's nixpkgs.
      '';
    };

    allowUndeclaredOwners = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Accept an `owner` or `group` that is not declared in `users.users` /
        `users.groups` (for users that come from LDAP, `systemd-sysusers` or
        an image built elsewhere): each one becomes a warning instead of a
        failed assertion. `ensure-datasets` still looks the name up when it
        runs and fails if it does not exist.
      '';
    };

    # Read by tests and by later zpersist modules (per-service persistence
    # orders its units after this one and reads the plan), never set by users.
    internal = {
      unitName = mkOption {
        type = types.str;
        default = "zpersist-datasets.service";
        readOnly = true;
        internal = true;
        description = "The systemd unit that applies the datasets plan.";
      };
      plan = mkOption {
        type = types.attrsOf types.anything;
        readOnly = true;
        internal = true;
        description = "The datasets plan as data, exactly as it is rendered to JSON.";
      };
      planFile = mkOption {
        type = types.path;
        readOnly = true;
        internal = true;
        description = "The rendered plan file the unit passes to `ensure-datasets --plan`.";
      };
    };
  };
}
