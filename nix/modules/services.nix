# Per-service persistence: `zpersist.services.<name>`. Each enabled service
# becomes an ordinary entry of `zpersist.datasets` (its profile's properties
# under the user's), a check unit its systemd units require, a tmpfiles rule
# for its mountpoint, and an entry of /etc/zpersist/services.json, which
# `migrate-to-dataset` reads. docs/profiles.md explains the profiles.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    attrNames
    concatMap
    concatStringsSep
    filter
    filterAttrs
    groupBy
    hasPrefix
    hasSuffix
    head
    length
    literalExpression
    mapAttrs
    mapAttrsToList
    mkDefault
    mkIf
    mkMerge
    mkOption
    optional
    optionalAttrs
    removeSuffix
    types
    unique
    ;
  inherit (import ../lib/profiles.nix { inherit lib; }) profiles mediaProperties;
  profileNames = attrNames profiles;
  zlib = import ../lib { inherit lib; };
  cfg = config.zpersist;

  opt = name: ''zpersist.services."${name}"'';
  quoteList = xs: concatStringsSep ", " (map (x: ''"${x}"'') xs);
  absolutePath = types.strMatching "/|(/[^/]+)+";

  serviceModule =
    { name, config, ... }:
    let
      profile =
        if profiles ? ${config.profile} then
          profiles.${config.profile} cfgRoot name
        else
          profiles.generic cfgRoot name;
    in
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = false;
          example = true;
          description = ''
            Keep this service's data on a dataset of its own: declared in
            `zpersist.datasets` (created on the next switch), checked to be
            mounted before the service's units start, and listed in
            `/etc/zpersist/services.json` for `migrate-to-dataset`.
            `false` declares nothing at all for the service.
          '';
        };

        profile = mkOption {
          type = types.str;
          default = if profiles ? ${name} then name else "generic";
          defaultText = literalExpression ''if <name> is a profile then <name> else "generic"'';
          example = "generic";
          description = ''
            The defaults for the dataset: one of ${quoteList profileNames}
            (see docs/profiles.md). A service named like a profile gets that
            profile; any other gets `generic`.
          '';
        };

        dataset = mkOption {
          type = types.str;
          default = "${cfgRoot.zpersist.servicesParent}/${name}";
          defaultText = literalExpression ''"''${config.zpersist.servicesParent}/<name>"'';
          example = "apps/sonarr";
          description = ''
            The dataset, relative to `zpersist.pool` like every name in
            `zpersist.datasets`.
          '';
        };

        mountpoint = mkOption {
          type = absolutePath;
          default = profile.mountpoint;
          defaultText = literalExpression "the service's data directory, from the nixpkgs service's options (see docs/profiles.md)";
          example = "/var/lib/sonarr/.config/NzbDrone";
          description = ''
            Where the dataset mounts: by default the directory the nixpkgs
            module gives the service (`services.sonarr.dataDir`,
            `services.home-assistant.configDir`, ...; `/var/lib/postgresql`
            for PostgreSQL; `/var/lib/<name>` for `generic`).
          '';
        };

        properties = mkOption {
          type = types.attrsOf types.str;
          default = { };
          example = {
            recordsize = "64K";
            quota = "20G";
          };
          description = ''
            ZFS properties, merged over the profile's (yours win). Any
            property of `zpersist.datasets.<name>.properties`, and also
            `recordsize`, `compression` and `quota`.
          '';
        };

        user = mkOption {
          type = types.nullOr types.str;
          default = profile.user;
          defaultText = literalExpression "the nixpkgs service's user (services.<name>.user), or null for generic";
          description = "Owner of the dataset's root directory; `null` leaves it alone.";
        };

        group = mkOption {
          type = types.nullOr types.str;
          default = profile.group;
          defaultText = literalExpression "the nixpkgs service's group, or null for generic";
          description = "Group of the dataset's root directory; `null` leaves it alone.";
        };

        mode = mkOption {
          type = types.nullOr (types.strMatching zlib.rules.modePattern);
          default = profile.mode;
          defaultText = literalExpression "the profile's mode (docs/profiles.md)";
          example = "0750";
          description = "Octal mode of the dataset's root directory; `null` leaves it alone.";
        };

        units = mkOption {
          type = types.listOf (types.strMatching ".+\\.service");
          default = profile.units;
          defaultText = literalExpression ''the nixpkgs service's unit, "<name>.service" for generic'';
          example = [
            "sonarr.service"
          ];
          description = ''
            The systemd services that use the data. Each one requires, and
            is ordered after, `zpersist-<name>-mounted.service` (which checks
            that the dataset is mounted where it should be and is ordered
            after `zpersist-datasets.service`), and gets
            `RequiresMountsFor=` the mountpoint.
          '';
        };

        media = {
          enable = mkOption {
            type = types.bool;
            default = false;
            description = ''
              A second dataset for the service's large files (a media
              library, downloads), with 1M records. Its units also wait for
              it to be mounted.
            '';
          };
          dataset = mkOption {
            type = types.str;
            default = "media";
            description = "The media dataset, relative to `zpersist.pool`.";
          };
          mountpoint = mkOption {
            type = absolutePath;
            default = "/srv/media";
            description = "Where the media dataset mounts.";
          };
          properties = mkOption {
            type = types.attrsOf types.str;
            default = { };
            description = "ZFS properties, merged over the media defaults (`recordsize = \"1M\"`, lz4, `atime = \"off\"`).";
          };
        };

        # Hooks filled by other zpersist modules.
        snapshots = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "services";
          description = ''
            The snapshot template for the service's dataset: sets
            `zpersist.datasets.<dataset>.snapshots`. `null` sets nothing.
          '';
        };

        replicateTo = mkOption {
          type = types.nullOr (types.listOf types.str);
          default = null;
          example = [ "nas" ];
          description = ''
            Replication targets for the service's dataset: sets
            `zpersist.datasets.<dataset>.replicateTo`. `null` sets nothing.
          '';
        };
      };
    };

  cfgRoot = config;

  enabled = filterAttrs (_: s: s.enable) cfg.services;
  anyEnabled = enabled != { };

  # Properties with a typed option of their own go there, the rest into
  # `properties`: the dataset assertions refuse a property set both ways.
  datasetFields =
    properties:
    let
      typed = filterAttrs (n: _: lib.elem n zlib.properties.typed) properties;
      rest = removeAttrs properties zlib.properties.typed;
    in
    mapAttrs (_: mkDefault) typed // { properties = mapAttrs (_: mkDefault) rest; };

  # Everything is a default, so that `zpersist.datasets.<dataset>` set
  # directly still wins; what the units, tmpfiles and services.json use is
  # read back from the resulting dataset.
  serviceDatasets =
    name: s:
    let
      profile = (profiles.${s.profile} or profiles.generic) config name;
    in
    [
      {
        ${s.dataset} =
          datasetFields (profile.properties // s.properties)
          // {
            mountpoint = mkDefault s.mountpoint;
            neededBy = s.units;
          }
          // optionalAttrs (s.user != null) { owner = mkDefault s.user; }
          // optionalAttrs (s.group != null) { group = mkDefault s.group; }
          // optionalAttrs (s.mode != null) { mode = mkDefault s.mode; }
          // optionalAttrs (s.snapshots != null) { snapshots = mkDefault s.snapshots; }
          // optionalAttrs (s.replicateTo != null) { replicateTo = mkDefault s.replicateTo; };
      }
    ]
    ++ optional s.media.enable {
      ${s.media.dataset} = datasetFields (mediaProperties // s.media.properties) // {
        mountpoint = mkDefault s.media.mountpoint;
        neededBy = s.units;
      };
    };

  # The parent of the service datasets, unless a service is the parent.
  parent = cfg.servicesParent;
  parentUsed =
    lib.any (s: hasPrefix "${parent}/" s.dataset) (lib.attrValues enabled)
    && !(lib.any (s: s.dataset == parent) (lib.attrValues enabled));

  # A service's dataset as it ends up in zpersist.datasets.
  final = s: cfg.datasets.${s.dataset};
  effectiveProperties =
    d: d.properties // filterAttrs (_: v: v != null) { inherit (d) recordsize compression quota; };

  servicesPlan = {
    version = 1;
    pool = cfg.pool;
    services = mapAttrs (
      _: s:
      let
        d = final s;
      in
      {
        dataset = "${toString cfg.pool}/${s.dataset}";
        inherit (d) mountpoint;
        inherit (s) units;
        user = d.owner;
        inherit (d) group mode;
        properties = effectiveProperties d;
      }
    ) enabled;
  };

  checkUnit = name: "zpersist-${name}-mounted";

  # The check runs as the current system has it, not as a store path of
  # zpersist's package: the unit then changes (and, through Requires=,
  # restarts the service) only when the service's datasets or mountpoints
  # do, not on every zpersist upgrade. The package is in
  # environment.systemPackages whenever a service is enabled, and activation
  # points /run/current-system at the new system before a switch restarts
  # any unit.
  checkMounted = "/run/current-system/sw/bin/zpersist-check-mounted";

  mountsOf =
    s:
    [
      {
        inherit (s) dataset;
        mountpoint = (final s).mountpoint;
      }
    ]
    ++ optional s.media.enable {
      inherit (s.media) dataset;
      mountpoint = cfg.datasets.${s.media.dataset}.mountpoint;
    };

  # zpersist-<name>-mounted.service: succeeds only when each of the
  # service's datasets is mounted on its mountpoint (zpersist-check-mounted,
  # one bounded `zfs get`); the service's units require it. The arguments
  # of nix/lib/unit.nix's builder.
  checkUnitOf =
    name: s: {
      name = checkUnit name;
      description = "the datasets of ${name} are mounted";
      command = [
        checkMounted
        name
      ] ++ concatMap (m: [ "${toString cfg.pool}/${m.dataset}" m.mountpoint ]) (mountsOf s);
      remainAfterExit = true;
      # A few `zfs get`s: a minute is plenty, and a hung zfs fails the check
      # (and so keeps the service down) instead of hanging boot; the check
      # itself kills zfs after 30 s.
      timeout = "1min";
      # Wants, not Requires: a restart of zpersist-datasets.service (every
      # change of the plan) must not restart this unit and with it the
      # service. This unit only changes, and restarts the service, when the
      # service's own datasets or mountpoints do.
      wants = [ cfg.internal.unitName ];
      after = [ cfg.internal.unitName ];
      before = s.units;
      path = zlib.unit.bootedZfs config.boot.zfs.package;
      zfs = true;
      network = "none";
      # It only reads: no capabilities, nothing writable, no network.
      serviceConfig = {
        CapabilityBoundingSet = "";
        ProtectSystem = "strict";
        ProtectHome = "read-only";
        PrivateTmp = true;
        PrivateNetwork = true;
        UMask = "0077";
      };
      # A failed check keeps the service down: say so (docs/notify.md).
      notify = {
        datasets = map (m: "${toString cfg.pool}/${m.dataset}") (mountsOf s);
        summary = "mount check of ${name}'s datasets: ${concatStringsSep ", " s.units} ${
          if length s.units == 1 then "does" else "do"
        } not start until they are mounted";
      };
    };
  checkUnits = mapAttrsToList checkUnitOf enabled;

  # What each of the service's own units gets: it requires, and is ordered
  # after, its check unit.
  guardedUnits =
    name: s:
    lib.listToAttrs (
      map (unit: {
        name = removeSuffix ".service" unit;
        value = {
          requires = [ "${checkUnit name}.service" ];
          after = [
            "${checkUnit name}.service"
            cfg.internal.unitName
          ];
          unitConfig.RequiresMountsFor = map (m: m.mountpoint) (mountsOf s);
        };
      }) s.units
    );

  tmpfilesRule =
    s:
    let
      d = final s;
      dash = v: if v == null then "-" else v;
    in
    "d ${d.mountpoint} ${dash d.mode} ${dash d.owner} ${dash d.group} -";

  # ------------------------------------------------------------ checks
  enabledList = mapAttrsToList (name: s: s // { inherit name; }) enabled;
  sharedBy =
    field: filterAttrs (_: xs: length xs > 1) (mapAttrs (_: map (s: s.name)) (groupBy (s: s.${field}) enabledList));

  perService =
    name: s:
    let
      nixpkgsPath = ((profiles.${s.profile} or profiles.generic) config name).nixpkgsService;
      nixpkgsOn = nixpkgsPath == null || (lib.attrByPath nixpkgsPath { } config).enable or false;
      repeatsPool = cfg.pool != null && (s.dataset == cfg.pool || hasPrefix "${cfg.pool}/" s.dataset);
    in
    {
      assertions = [
        {
          assertion = lib.elem s.profile profileNames;
          message = ''${opt name}.profile = "${s.profile}" is not a profile. Use one of ${quoteList profileNames} ("generic" suits any service).'';
        }
        {
          assertion = !(repeatsPool || hasPrefix "/" s.dataset);
          message = ''${opt name}.dataset = "${s.dataset}" lies outside zpersist.pool ("${toString cfg.pool}"): dataset names are relative to the pool. Write it without the pool or a leading '/', like "${lib.removePrefix "/" (lib.removePrefix "${toString cfg.pool}/" s.dataset)}".'';
        }
        {
          assertion = s.dataset != parent || !(lib.any (o: hasPrefix "${parent}/" o.dataset) (lib.attrValues enabled));
          message = ''${opt name}.dataset = "${s.dataset}" is zpersist.servicesParent, the parent of other services' datasets; give it a dataset of its own, like "${parent}/${name}".'';
        }
      ];
      warnings =
        optional (!nixpkgsOn)
          "${opt name} is enabled but ${concatStringsSep "." nixpkgsPath}.enable is not: the dataset is declared, but ${concatStringsSep ", " s.units} ${
            if length s.units == 1 then "is" else "are"
          } not defined by NixOS, so the ordering zpersist adds goes to a unit without a command. Enable ${concatStringsSep "." nixpkgsPath}, or use profile = \"generic\" with the units you run.";
    };

  checks = map (s: perService s.name s) enabledList;
in
{
  options.zpersist = {
    services = mkOption {
      type = types.attrsOf (types.submodule serviceModule);
      default = { };
      example = literalExpression ''
        {
          sonarr.enable = true;
          postgresql = {
            enable = true;
            properties.quota = "100G";
          };
          # Any other service: the generic profile.
          paperless = {
            enable = true;
            mountpoint = "/var/lib/paperless";
            user = "paperless";
            group = "paperless";
          };
        }
      '';
      description = ''
        Services whose data lives on a dataset of their own, with
        properties from a profile (docs/profiles.md), the right owner, and
        units that do not start before the dataset is mounted. Each becomes
        an entry of `zpersist.datasets`; setting that entry directly
        overrides what the service derives.
      '';
    };

    servicesParent = mkOption {
      type = types.str;
      default = "services";
      example = "state";
      description = ''
        The dataset (relative to `zpersist.pool`) below which service
        datasets live by default: `zpersist.services.sonarr` is
        `<servicesParent>/sonarr`. While a service uses it, zpersist
        declares it with `mountpoint = "none"` and `canmount = "off"`
        unless you declare those yourself: a container for settings its
        children inherit, never mounted.
      '';
    };

    internal.servicesPlan = mkOption {
      type = types.attrsOf types.anything;
      readOnly = true;
      internal = true;
      description = "What /etc/zpersist/services.json holds, as data.";
    };
  };

  config = mkMerge [
    {
      zpersist.internal.servicesPlan = servicesPlan;

      # Not under `mkIf cfg.enable`: zpersist.enable defaults to whether any
      # dataset is declared, so that would be circular.
      zpersist.datasets = mkMerge (
        # One service per dataset: when several claim one, an assertion
        # says so instead of a conflict between their definitions.
        concatMap (s: serviceDatasets s.name s) (
          lib.attrValues (mapAttrs (_: head) (groupBy (s: s.dataset) enabledList))
        )
        ++ optional parentUsed {
          ${parent} = {
            mountpoint = mkDefault "none";
            canmount = mkDefault "off";
          };
        }
      );
    }

    (mkIf (cfg.enable && anyEnabled) {
      systemd.services = mkMerge (
        map (u: { ${u.name} = zlib.unit.definition u; }) checkUnits
        ++ mapAttrsToList guardedUnits enabled
      );
      zpersist.notify.units = zlib.unit.notifications checkUnits;
      systemd.tmpfiles.rules = map tmpfilesRule (lib.attrValues enabled);
      environment.etc."zpersist/services.json".text = builtins.toJSON servicesPlan;
      # rsync, which migrate-to-dataset (`zpersist migrate`) copies with;
      # zpersist itself is on PATH whenever it is enabled (service.nix).
      environment.systemPackages = [ pkgs.rsync ];
    })

    (mkIf anyEnabled {
      assertions =
        concatMap (c: c.assertions) checks
        ++ mapAttrsToList (dataset: names: {
          assertion = false;
          message = "${quoteList (map (n: "zpersist.services.${n}") names)} all use the dataset \"${dataset}\"; each service needs its own. Set zpersist.services.<name>.dataset.";
        }) (sharedBy "dataset")
        ++ mapAttrsToList (path: names: {
          assertion = false;
          message = "${quoteList (map (n: "zpersist.services.${n}") names)} all mount on ${path}; one would hide the other's files. Set zpersist.services.<name>.mountpoint.";
        }) (sharedBy "mountpoint");
      warnings = concatMap (c: c.warnings) checks;
    })
  ];
}
