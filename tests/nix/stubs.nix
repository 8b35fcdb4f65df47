# The NixOS options the zpersist modules set or read, with the types NixOS
# declares for them where zpersist depends on them (nixos/lib/
# systemd-unit-options.nix, systemd-lib.nix, tasks/filesystems/zfs.nix,
# misc/nixpkgs.nix), so that a definition NixOS would refuse is refused here
# too; everything else is free-form. nixpkgs' services.syncoid is modelled
# with its units (model-syncoid.nix), not only its options.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types genAttrs;
  # nixos/lib/systemd-lib.nix's unitNameType: the same pattern.
  unitName = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";
  # nixos/lib/systemd-unit-options.nix's unitOption (./unit-option.nix).
  unitOption = import ./unit-option.nix { inherit lib; };
  serviceTypes = [
    "exec"
    "simple"
    "forking"
    "oneshot"
    "dbus"
    "notify"
    "notify-reload"
    "idle"
  ];
  unitConfigOption = mkOption {
    type = types.attrsOf unitOption;
    default = { };
  };
  freeform =
    options:
    types.submodule {
      freeformType = types.attrsOf types.anything;
      inherit options;
    };
  lists =
    type: names:
    genAttrs names (
      _:
      mkOption {
        type = types.listOf type;
        default = [ ];
      }
    );
  unitLists =
    lists unitName [
      "after"
      "before"
      "wants"
      "requires"
      "requisite"
      "wantedBy"
      "requiredBy"
      "upheldBy"
      "partOf"
      "bindsTo"
      "upholds"
      "conflicts"
      "onFailure"
      "onSuccess"
    ]
    // lists types.anything [
      "path"
      "restartTriggers"
      "reloadTriggers"
    ]
    // lists types.str [ "documentation" ]
    // {
      unitConfig = unitConfigOption;
    };
  serviceOptions = unitLists // {
    serviceConfig = mkOption {
      # As nixos/lib/systemd-lib.nix's checkUnitConfig: checked per
      # definition, with mkForce/mkIf wrappers of a value looked through.
      type = types.addCheck (types.attrsOf unitOption) (
        c:
        let
          type = c.Type or null;
          value = if builtins.elem (type._type or "") [ "override" "if" ] then type.content else type;
        in
        type == null || builtins.elem value serviceTypes
      );
      default = { };
    };
  };
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
  imports = [
    ./model-syncoid.nix
    ./model-nixos-checks.nix
    ./model-postgresql.nix
    ./model-restic.nix
  ];

  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    systemd.services = attrsOfFreeform serviceOptions;
    systemd.timers = attrsOfFreeform (unitLists // { timerConfig = unitConfigOption; });
    systemd.targets = attrsOfFreeform unitLists;
    systemd.tmpfiles.rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    systemd.tmpfiles.settings = anything;

    users.users = attrsOfFreeform (lists types.str [ "extraGroups" ]);
    users.groups = attrsOfFreeform (lists types.str [ "members" ]);

    environment.etc = attrsOfFreeform { };
    environment.systemPackages = mkOption {
      type = types.listOf types.anything;
      default = [ ];
    };

    fileSystems = attrsOfFreeform (lists types.str [ "options" ]);

    boot.zfs.package = mkOption {
      type = types.anything;
      default = pkgs.zfs;
    };
    # nixpkgs' type and default (nixos/modules/tasks/filesystems/zfs.nix).
    boot.zfs.requestEncryptionCredentials = mkOption {
      type = types.either types.bool (types.listOf types.str);
      default = true;
    };
    boot.zfs.extraPools = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    # An attribute set since NixOS 23.11; the list form is still accepted
    # and turned into one.
    boot.supportedFilesystems = mkOption {
      type = types.coercedTo (types.listOf types.str) (
        names: lib.genAttrs names (_: true)
      ) (types.attrsOf types.bool);
      default = { };
    };
    boot.initrd.supportedFilesystems = mkOption {
      type = types.coercedTo (types.listOf types.str) (
        names: lib.genAttrs names (_: true)
      ) (types.attrsOf types.bool);
      default = { };
    };

    nixpkgs.config = mkOption {
      type = freeform { };
      default = { };
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
    # nixpkgs' nixos/modules/tasks/filesystems/zfs.nix, as it declares
    # services.zfs.autoScrub (NixOS 24.05 and later).
    services.zfs.autoScrub = {
      enable = lib.mkEnableOption "periodic scrubbing of ZFS pools";
      interval = mkOption {
        type = types.str;
        default = "monthly";
      };
      randomizedDelaySec = mkOption {
        type = types.str;
        default = "6h";
      };
      pools = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
    };
    # services.syncoid: model-syncoid.nix (imported below).

    # nixpkgs services read by the zpersist.services profiles.
    services.sonarr = (import ./stubs-services.nix { inherit lib; }).sonarr;
    services.radarr = (import ./stubs-services.nix { inherit lib; }).radarr;
    services.plex = (import ./stubs-services.nix { inherit lib; }).plex;
    services.home-assistant = (import ./stubs-services.nix { inherit lib; }).home-assistant;
    # services.postgresql: model-postgresql.nix (imported above).
  };

  # What the nixpkgs services of stubs-services.nix do that zpersist's
  # settings meet: Sonarr's and Radarr's modules create dataDir with a
  # tmpfiles rule, mode 0700 (servarr/sonarr.nix, radarr.nix).
  config.systemd.tmpfiles.rules = lib.concatMap (
    name:
    let
      s = config.services.${name};
    in
    lib.optional s.enable "d '${s.dataDir}' 0700 ${s.user} ${s.group} - -"
  ) [ "sonarr" "radarr" ];
}
