# The one builder of the systemd units zpersist owns (zpersist-datasets,
# each zpersist-<service>-mounted and zpersist-<service>-preseed,
# zpersist-replication-lag, zpersist-syncoid-allow, zpersist-notify@): a
# oneshot running one of zpersist's binaries (or zfs), with its contract
# file, ordering, path, timeout, hardening and, when asked, a notification
# on failure.
#
# `service { ... }` returns module config to merge (`config = service {...}`
# or inside `mkMerge`/`mkIf`): `systemd.services.<name>`, and the unit's
# entry in `zpersist.notify.units` when `notify` is given. Its attribute
# names depend on nothing but `name`, so the arguments may come from
# `config`. Units whose names come from `config` themselves (one per
# service) take `definition { ... }`, the value of
# `systemd.services.<name>`, inside `systemd.services = mkMerge [ ... ]`,
# and `notifications [ { ... } ]` for `zpersist.notify.units`.
{ lib }:
let
  inherit (lib)
    escapeShellArg
    optionalAttrs
    replaceStrings
    ;
  hardeningProfiles = import ./hardening.nix { inherit lib; };

  # One argument of ExecStart: quoted for systemd's shell-like splitting,
  # with `%` and `$` doubled so that systemd takes them literally (it
  # expands specifiers and variables). `specifier "%i"` is passed as it is.
  argument =
    a:
    if builtins.isAttrs a then
      a.specifier
    else
      replaceStrings [ "%" "$" ] [ "%%" "$$" ] (escapeShellArg a);
in
rec {
  profiles = hardeningProfiles;

  # A systemd specifier as an ExecStart argument (`specifier "%i"`).
  specifier = s: { specifier = s; };

  # An argv as an ExecStart line.
  commandLine = argv: lib.concatMapStringsSep " " argument argv;

  # `path` entries putting the booted system's zfs first, as nixpkgs' own
  # ZFS units do (after a switch that updated ZFS, the new userland would
  # talk to the old kernel module until the next boot); `zfs` (the package)
  # is the fallback.
  bootedZfs = zfs: [
    "/run/booted-system/sw"
    zfs
  ];

  # The value of `systemd.services.<name>` for a zpersist unit.
  definition =
    {
      # The unit's name, without ".service".
      name,
      # What it does, after "zpersist: ".
      description,
      # The program and its arguments (strings are data, see `argument`);
      # or `execStart`, finished ExecStart lines, for a unit that runs
      # several commands it renders itself.
      command ? null,
      execStart ? null,
      # The JSON file the program reads ({ flag; file; }), given as
      # `flag file` after `command`.
      contract ? null,
      # Values whose change restarts the unit on a switch.
      restartTriggers ? [ ],
      # TimeoutStartSec: every zpersist unit is bounded.
      timeout,
      remainAfterExit ? false,
      after ? [ ],
      wants ? [ ],
      requires ? [ ],
      before ? [ ],
      wantedBy ? [ ],
      requiredBy ? [ ],
      path ? [ ],
      # Whether it runs zfs: the ZFS control device through the cgroup
      # device filter (no namespace), and nothing else of /dev.
      zfs ? false,
      # "none": local sockets and netlink only (NSS, libzfs and udev), no
      # IP; "ip": also IPv4 and IPv6 (ssh, ntfy, webhooks, mail); "any": no
      # restriction.
      network,
      # A profile of ./hardening.nix (or any settings).
      hardening ? hardeningProfiles.ownCode,
      # The unit's own settings (capabilities, ProtectSystem, paths, ...).
      serviceConfig ? { },
      # { datasets; summary; }: OnFailure=zpersist-notify@%n.service and the
      # unit's entry in the notification context (nix/modules/notify.nix).
      notify ? null,
      # Other attributes of systemd.services.<name> (documentation,
      # startAt, ...).
      extra ? { },
    }:
    let
      argv =
        command
        ++ lib.optionals (contract != null) [
          contract.flag
          (toString contract.file)
        ];
    in
    {
      description = "zpersist: ${description}";
      inherit
        after
        wants
        requires
        before
        wantedBy
        requiredBy
        path
        restartTriggers
        ;
      serviceConfig =
        {
          Type = "oneshot";
          ExecStart =
            if (command == null) == (execStart == null) then
              throw "zpersist unit ${name}: give either command or execStart"
            else if execStart != null then
              execStart
            else
              commandLine argv;
          TimeoutStartSec = timeout;
        }
        // optionalAttrs remainAfterExit { RemainAfterExit = true; }
        // optionalAttrs zfs {
          DevicePolicy = "closed";
          DeviceAllow = [ "/dev/zfs rw" ];
        }
        // {
          none = {
            RestrictAddressFamilies = [
              "AF_UNIX"
              "AF_NETLINK"
            ];
            IPAddressDeny = "any";
          };
          ip.RestrictAddressFamilies = [
            "AF_UNIX"
            "AF_INET"
            "AF_INET6"
            "AF_NETLINK"
          ];
          any = { };
        }
        .${network}
        // hardening
        // serviceConfig;
    }
    // extra;

  # The `zpersist.notify.units` entries of units (their `definition`
  # arguments) that give `notify`.
  notifications =
    units:
    lib.listToAttrs (
      map (u: lib.nameValuePair "${u.name}.service" u.notify) (
        lib.filter (u: (u.notify or null) != null) units
      )
    );

  # Units whose names come from `config` (one per service, their
  # `definition` arguments), as module config: `systemd.services` and
  # their notification entries.
  perService = units: {
    systemd.services = lib.mkMerge (map (u: { ${u.name} = definition u; }) units);
    zpersist.notify.units = notifications units;
  };

  # `definition`, as module config, with the unit's notification entry.
  service = args: {
    systemd.services.${args.name} = definition args;
    zpersist.notify.units = notifications [ args ];
  };
}
