# `zpersist-datasets.service`: applies the plan at boot and on every switch
# that changes it.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkIf concatMap attrValues unique;
  cfg = config.zpersist;
  neededBy = unique (concatMap (d: d.neededBy) (attrValues cfg.datasets));
in
{
  config = mkIf cfg.enable {
    # A run that fails leaves datasets missing or out of shape: say so
    # (docs/notify.md).
    zpersist.notify.units."zpersist-datasets.service" = {
      datasets = map (d: d.name) cfg.internal.plan.datasets;
      summary = "ensure-datasets: the declared datasets of ${toString cfg.pool}, created and kept in shape";
    };

    systemd.services.zpersist-datasets = {
      description = "zpersist: create the declared ZFS datasets and set their properties";
      documentation = [ "man:zfsprops(7)" ];

      # Data pools are imported by zfs-import-<pool>.service, all of which
      # zfs-import.target requires; root pools are imported in the initrd.
      # zfs-mount.service mounts what already exists, so ensure-datasets
      # sees the pool as the system will use it.
      wants = [ "zfs-import.target" ];
      after = [
        "zfs-import.target"
        "zfs-mount.service"
      ];
      # Wanted (not required) by the services using the datasets, and ordered
      # before them: a service never starts before its dataset is ready, and
      # re-running this unit never restarts them.
      before = neededBy;
      wantedBy = [ "multi-user.target" ] ++ neededBy;

      # A changed plan changes ExecStart, so switch-to-configuration restarts
      # the unit and a newly declared dataset is created on the next switch.
      # restartTriggers says the same explicitly. stopIfChanged = false makes
      # that a restart after activation (which creates the users the plan
      # names) instead of a stop before it.
      restartTriggers = [ cfg.internal.planFile ];
      restartIfChanged = true;
      stopIfChanged = false;

      # getent: owners and groups that come from NSS (LDAP, sssd) rather
      # than /etc/passwd and /etc/group.
      # The booted system's zfs first, as nixpkgs' own ZFS units: after a
      # switch that updated ZFS, the new userland would talk to the old
      # kernel module until the next boot. The package is the fallback.
      path = [
        "/run/booted-system/sw"
        config.boot.zfs.package
        pkgs.getent
      ];

      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${cfg.package}/bin/ensure-datasets --plan ${cfg.internal.planFile}";
        # Bounded, so a hung zfs cannot hold `nixos-rebuild switch` for ever:
        # a run waits at most 120 s for another one's lock (--lock-timeout),
        # and creating hundreds of datasets takes seconds.
        TimeoutStartSec = "10min";

        # Hardening, as far as zfs allows.
        #
        # Nothing that gives the unit its own mount namespace: ProtectSystem,
        # ProtectHome, PrivateTmp, PrivateDevices, ReadWritePaths,
        # ProtectKernelTunables/Modules/Logs, ProtectControlGroups and
        # ProtectProc all do, and a dataset that `zfs create`/`zfs mount`
        # mounts inside that namespace is invisible to the rest of the system.
        # Mountpoints can be anywhere, so the file system must stay writable.
        #
        # Device access through the cgroup device filter instead (no
        # namespace): only /dev/zfs, besides the pseudo devices systemd
        # always allows (/dev/null, /dev/urandom, ...).
        DevicePolicy = "closed";
        DeviceAllow = [ "/dev/zfs rw" ];
        # zfs ioctls need CAP_SYS_ADMIN (also for mount); chown/chmod of the
        # mountpoint directories need CHOWN, FOWNER and DAC_*, and FSETID
        # for a setgid mode on a directory of another group (without it
        # the kernel silently drops the bit: 2775 became 775).
        CapabilityBoundingSet = [
          "CAP_SYS_ADMIN"
          "CAP_CHOWN"
          "CAP_FOWNER"
          "CAP_DAC_OVERRIDE"
          "CAP_DAC_READ_SEARCH"
          "CAP_FSETID"
        ];
        NoNewPrivileges = true;
        # NSS lookups of owner/group (nscd) use AF_UNIX; libzfs talks to
        # udev over netlink. No IP at all.
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_NETLINK"
        ];
        IPAddressDeny = "any";
        RestrictNamespaces = true;
        RestrictRealtime = true;
        # No RestrictSUIDSGID: it forbids setting the setgid bit, and a
        # plan's `mode` may ask for one (2775, a directory shared through
        # its group; forge's media datasets do).
        LockPersonality = true;
        MemoryDenyWriteExecute = true;
        ProtectClock = true;
        SystemCallArchitectures = "native";
        # @system-service lacks mount(2) and umount2(2), which zfs needs.
        SystemCallFilter = [
          "@system-service"
          "@mount"
        ];
        SystemCallErrorNumber = "EPERM";
      };
    };
  };
}
