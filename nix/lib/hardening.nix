# systemd sandboxing shared by zpersist's units (nix/lib/unit.nix applies
# it). Each unit takes the strictest profile it can run under and adds what
# is its own (capabilities, writable paths, ProtectSystem).
_: rec {
  # Nothing zpersist runs touches the clock, makes namespaces, or needs
  # realtime or an alternative personality. None of these gives the unit a
  # namespace of its own.
  noNamespace = {
    ProtectClock = true;
    RestrictNamespaces = true;
    RestrictRealtime = true;
    LockPersonality = true;
    SystemCallArchitectures = "native";
  };

  # Nothing zpersist runs touches kernel settings, modules, logs, cgroups or
  # the hostname. These give the unit its own mount (or UTS) namespace.
  kernel = {
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectHostname = true;
  };

  # For programs that are all zpersist's own (and ssh, zfs, a shell): no
  # privilege gain, no set-id files, no writable-and-executable memory,
  # only the system calls of an ordinary service.
  ownProgram = {
    NoNewPrivileges = true;
    RestrictSUIDSGID = true;
    MemoryDenyWriteExecute = true;
    SystemCallFilter = [ "@system-service" ];
    SystemCallErrorNumber = "EPERM";
  };

  # Units that may run other people's programs (zpersist-notify@ runs the
  # user's command and sendmail).
  common = noNamespace // kernel;

  # zpersist's own programs that need no host namespace.
  ownCode = common // ownProgram;

  # zpersist-datasets: what `zfs create`/`zfs mount` mounts must be visible
  # to the whole system, so no mount namespace (none of `kernel`, no
  # ProtectSystem, PrivateTmp, ...); mount(2) and umount2(2), which
  # @system-service lacks. No RestrictSUIDSGID: it forbids setting the
  # setgid bit, and a plan's `mode` may ask for one (2775, a directory
  # shared through its group; forge's media datasets do).
  hostMounts =
    noNamespace
    // removeAttrs ownProgram [ "RestrictSUIDSGID" ]
    // {
      SystemCallFilter = [
        "@system-service"
        "@mount"
      ];
    };
}
