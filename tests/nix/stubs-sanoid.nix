# TEST-ONLY: the options of nixpkgs' services.sanoid (see stubs.nix).
{ lib }:
let
  inherit (lib) mkOption types;
  settingType = types.attrsOf (
    types.nullOr (
      types.oneOf [
        types.str
        types.int
        types.bool
        (types.listOf types.str)
      ]
    )
  );
  nullCount = mkOption {
    type = types.nullOr types.ints.unsigned;
    default = null;
  };
  nullBool = mkOption {
    type = types.nullOr types.bool;
    default = null;
  };
  common = {
    hourly = nullCount;
    daily = nullCount;
    monthly = nullCount;
    yearly = nullCount;
    autoprune = nullBool;
    autosnap = nullBool;
  };
in
{
  enable = mkOption {
    type = types.bool;
    default = false;
  };
  interval = mkOption {
    type = types.str;
    default = "hourly";
  };
  extraArgs = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };
  templates = mkOption {
    type = types.attrsOf (
      types.submodule {
        freeformType = settingType;
        options = common;
      }
    );
    default = { };
  };
  datasets = mkOption {
    type = types.attrsOf (
      types.submodule {
        freeformType = settingType;
        options = common // {
          use_template = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
          useTemplate = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
          recursive = mkOption {
            type = types.either types.bool (types.enum [ "zfs" ]);
            default = false;
          };
          process_children_only = mkOption {
            type = types.bool;
            default = false;
          };
        };
      }
    );
    default = { };
  };
}
