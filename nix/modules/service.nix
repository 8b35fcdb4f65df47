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
  zlib = import ../lib { inherit lib; };
  cfg = config.zpersist;
  neededBy = unique (concatMap (d: d.neededBy) (attrValues cfg.datasets));
in
{
  config = mkIf cfg.enable (lib.mkMerge [
    {
      # The operator's front (`zpersist status`, `zpersist restore`, ...:
      # docs/cli.md), and the plan it applies with `zpersist datasets
      # apply`: the very file this unit names.
      environment.systemPackages = [ cfg.package ];
      # The resource locks every mover takes (zpersist_host::resource_lock):
      # sticky and open to every user, as movers run as root and postgres.
      systemd.tmpfiles.rules = [
        "d /run/zpersist 0755 root root -"
        "d /run/zpersist/locks 1777 root root -"
      ];
      environment.etc."zpersist/datasets.json".source = cfg.internal.planFile;
    }
    (zlib.unit.service {
      name = "zpersist-datasets";
      description = "create the declared ZFS datasets and set their properties";
      command = [ "${cfg.package}/bin/ensure-datasets" ];
      # A changed plan changes ExecStart, so switch-to-configuration
      # restarts the unit and a newly declared dataset is created on the
      # next switch; restartTriggers says the same explicitly.
      contract = {
        flag = "--plan";
        file = cfg.internal.planFile;
      };
      restartTriggers = [ cfg.internal.planFile ];
      remainAfterExit = true;
      # Bounded, so a hung zfs cannot hold `nixos-rebuild switch` for ever:
      # a run waits at most 120 s for another one's lock (--lock-timeout),
      # and creating hundreds of datasets takes seconds.
      timeout = "10min";

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

      # The booted system's zfs first (see nix/lib/unit.nix); getent:
      # owners and groups that come from NSS (LDAP, sssd) rather than
      # /etc/passwd and /etc/group.
      path = zlib.unit.bootedZfs config.boot.zfs.package ++ [ pkgs.getent ];

      # Hardened as far as zfs allows: no mount namespace (a dataset that
      # `zfs create`/`zfs mount` mounts inside one would be invisible to
      # the rest of the system), so nothing of ProtectSystem, ProtectHome,
      # PrivateTmp, PrivateDevices, ReadWritePaths, ProtectKernel*,
      # ProtectControlGroups, ProtectProc; mountpoints can be anywhere, so
      # the file system stays writable. /dev/zfs through the cgroup device
      # filter instead.
      zfs = true;
      # NSS lookups of owner/group (nscd) use AF_UNIX; libzfs talks to udev
      # over netlink. No IP at all.
      network = "none";
      hardening = zlib.unit.profiles.hostMounts;
      serviceConfig = {
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
      };

      # A run that fails leaves datasets missing or out of shape: say so
      # (docs/notify.md).
      notify = {
        datasets = map (d: d.name) cfg.internal.plan.datasets;
        summary = "ensure-datasets: the declared datasets of ${toString cfg.pool}, created and kept in shape";
      };

      extra = {
        documentation = [ "man:zfsprops(7)" ];
        # stopIfChanged = false makes the switch's restart come after
        # activation (which creates the users the plan names) instead of a
        # stop before it.
        restartIfChanged = true;
        stopIfChanged = false;
      };
    })
  ]);
}
