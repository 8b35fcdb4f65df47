# TEST-ONLY: the options of nixpkgs' services.syncoid (see stubs.nix).
{ lib }:
let
  inherit (lib) mkOption types;
  defaultSourceAllow = [
    "bookmark"
    "hold"
    "send"
    "snapshot"
    "destroy"
  ];
  defaultTargetAllow = [
    "change-key"
    "compression"
    "create"
    "mount"
    "mountpoint"
    "receive"
    "rollback"
  ];
  str = default: mkOption {
    type = types.str;
    inherit default;
  };
in
{
  enable = mkOption {
    type = types.bool;
    default = false;
  };
  interval = str "hourly";
  user = str "syncoid";
  group = str "syncoid";
  sshKey = mkOption {
    type = types.nullOr types.str;
    default = null;
  };
  localSourceAllow = mkOption {
    type = types.listOf types.str;
    default = defaultSourceAllow;
  };
  localTargetAllow = mkOption {
    type = types.listOf types.str;
    default = defaultTargetAllow;
  };
  commonArgs = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };
  service = mkOption {
    type = types.attrs;
    default = { };
  };
  commands = mkOption {
    type = types.attrsOf (
      types.submodule (
        { name, ... }:
        {
          options = {
            source = mkOption {
              type = types.str;
              default = name;
            };
            target = mkOption { type = types.str; };
            recursive = mkOption {
              type = types.bool;
              default = false;
            };
            sshKey = mkOption {
              type = types.nullOr types.str;
              default = null;
            };
            localSourceAllow = mkOption {
              type = types.listOf types.str;
              default = defaultSourceAllow;
            };
            localTargetAllow = mkOption {
              type = types.listOf types.str;
              default = defaultTargetAllow;
            };
            sendOptions = mkOption {
              type = types.separatedString " ";
              default = "";
            };
            recvOptions = mkOption {
              type = types.separatedString " ";
              default = "";
            };
            useCommonArgs = mkOption {
              type = types.bool;
              default = true;
            };
            service = mkOption {
              type = types.attrs;
              default = { };
            };
            extraArgs = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
          };
        }
      )
    );
    default = { };
  };
}
