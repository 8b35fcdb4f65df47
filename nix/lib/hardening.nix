# systemd sandboxing shared by zpersist's units that neither mount nor run
# the user's code freely (not zpersist-datasets: what it mounts must stay
# visible, see nix/modules/service.nix).
_: rec {
  # Nothing zpersist runs touches kernel settings, modules, logs, cgroups,
  # the clock or the hostname, makes namespaces, or needs realtime or an
  # alternative personality.
  common = {
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
    ProtectClock = true;
    ProtectHostname = true;
    RestrictNamespaces = true;
    RestrictRealtime = true;
    LockPersonality = true;
    SystemCallArchitectures = "native";
  };

  # Also for programs that are all zpersist's own (and ssh, zfs, a shell):
  # no privilege gain, no set-id files, no writable-and-executable memory,
  # only the system calls of an ordinary service.
  ownCode = common // {
    NoNewPrivileges = true;
    RestrictSUIDSGID = true;
    MemoryDenyWriteExecute = true;
    SystemCallFilter = [ "@system-service" ];
    SystemCallErrorNumber = "EPERM";
  };
}
