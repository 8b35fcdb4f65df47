# The NixOS options the zpersist modules set or read, declared loosely so that
# the modules evaluate with nixpkgs' lib alone (no nixpkgs, no NixOS).
# List-valued unit fields are real lists (NixOS concatenates them across
# modules); everything else is free-form.
{ lib, pkgs, ... }:
let
  inherit (lib) mkOption types genAttrs;
  freeform =
    options:
    types.submodule {
      freeformType = types.attrsOf types.anything;
      inherit options;
    };
  lists =
    names:
    genAttrs names (
      _:
      mkOption {
        type = types.listOf types.anything;
        default = [ ];
      }
    );
  unitLists = lists [
    "after"
    "before"
    "wants"
    "requires"
    "wantedBy"
    "requiredBy"
    "partOf"
    "bindsTo"
    "upholds"
    "path"
    "restartTriggers"
    "reloadTriggers"
    "documentation"
    "onFailure"
  ];
  attrsOfFreeform =
    options:
    mkOption {
      type = types.attrsOf (freeform options);
      default = { };
    };
  anything = mkOption {
    type = freeform { };
    default = { };
  };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    systemd.services = attrsOfFreeform unitLists;
    systemd.timers = attrsOfFreeform unitLists;
    systemd.targets = attrsOfFreeform unitLists;
    systemd.tmpfiles.rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    systemd.tmpfiles.settings = anything;

    users.users = attrsOfFreeform (lists [ "extraGroups" ]);
    users.groups = attrsOfFreeform (lists [ "members" ]);

    environment.etc = attrsOfFreeform { };
    environment.systemPackages = mkOption {
      type = types.listOf types.anything;
      default = [ ];
    };

    fileSystems = attrsOfFreeform (lists [ "options" ]);

    boot.zfs.package = mkOption {
      type = types.anything;
      default = pkgs.zfs;
    };
    boot.zfs.extraPools = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    boot.supportedFilesystems = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    networking.hostName = mkOption {
      type = types.str;
      default = "nixos";
    };
    networking.hostId = mkOption {
      type = types.nullOr types.str;
      default = null;
    };

    # nixpkgs' services.sanoid and services.syncoid, typed as far as the
    # zpersist modules and the test-only renderers (sanoid-ini.nix,
    # syncoid-argv.nix) need: the same option names, defaults and list
    # types as nixpkgs (nixos/modules/services/backup/{sanoid,syncoid}.nix),
    # so that definitions merge as they do on NixOS. nixpkgs aliases
    # useTemplate to use_template; here both are kept and the renderer joins
    # them.
    services.sanoid = import ./stubs-sanoid.nix { inherit lib; };
    services.syncoid = import ./stubs-syncoid.nix { inherit lib; };

    # nixpkgs services read by the zpersist.services profiles.
    services.sonarr = (import ./stubs-services.nix { inherit lib; }).sonarr;
    services.radarr = (import ./stubs-services.nix { inherit lib; }).radarr;
    services.plex = (import ./stubs-services.nix { inherit lib; }).plex;
    services.home-assistant = (import ./stubs-services.nix { inherit lib; }).home-assistant;
    services.postgresql = (import ./stubs-services.nix { inherit lib; }).postgresql;
  };
}
