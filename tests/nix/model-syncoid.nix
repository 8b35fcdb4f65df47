# TEST-ONLY: a model of nixpkgs' services.syncoid
# (nixos/modules/services/backup/syncoid.nix), written from what that module
# does: the same options, types and defaults, and the same units. For each
# command, `syncoid-<name>.service` (name escaped as nixpkgs escapes it) with
# - no Type= (so: simple), After=zfs.target, a timer on `interval`, PATH
#   with /run/booted-system/sw/bin;
# - ExecStartPre: for the source and the target when they are local
#   datasets, a root script ("-+") running
#   `/run/booted-system/sw/bin/zfs allow <user> <perms> <dataset>`, or on
#   its parent when the dataset does not exist yet;
# - ExecStopPost: root scripts running `zfs unallow <user> <perms>` on the
#   same datasets *and on their parents*, whatever the run did;
# - ExecStart: syncoid's argv (tests/nix/syncoid-argv.nix), shell-quoted;
# - User/Group, and a sandbox whose file system is a RootDirectory under
#   /run/syncoid/<name> holding only the store, /etc, /run, /bin/sh and
#   /dev/zfs (read-only but /dev/zfs), with ProtectHome=true and the
#   StateDirectory syncoid: a key file elsewhere is invisible to syncoid.
# The scripts' names have '/' replaced by '-' (builtins.toFile refuses
# '/'); their text is what nixpkgs' scripts run.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.services.syncoid;
  # Runs of characters outside [a-zA-Z0-9_.-] become one "-".
  escapeUnitName = name: lib.concatMapStrings (s: if lib.isList s then "-" else s) (builtins.split "[^a-zA-Z0-9_.-]+" name);
  # A local dataset is a target or source without "@" (user@host:...).
  localDatasets = d: lib.optional (d != null && builtins.match "[^/@]+[^@]*" d != null) d;
  zfs = "/run/booted-system/sw/bin/zfs";
  parentOf = d: builtins.dirOf d;
  hasParent = d: parentOf d != ".";
  script = name: text: pkgs.writeShellScript (builtins.replaceStrings [ "/" ] [ "-" ] name) text;
  allowScript = perms: dataset:
    "-+" + script "zfs-allow-${dataset}" (
      let
        allowOn = d: lib.escapeShellArgs [ zfs "allow" cfg.user (lib.concatStringsSep "," perms) d ];
      in
      "if ${lib.escapeShellArgs [ zfs "list" dataset ]} 2> /dev/null; then\n  ${allowOn dataset}\n"
      + lib.optionalString (hasParent dataset) "else\n  ${allowOn (parentOf dataset)}\n"
      + "fi\n"
    );
  unallowScript = perms: dataset:
    "-+" + script "zfs-unallow-${dataset}" (
      let
        unallowOn = d: lib.escapeShellArgs [ zfs "unallow" cfg.user (lib.concatStringsSep "," perms) d ];
      in
      unallowOn dataset + "\n" + lib.optionalString (hasParent dataset) (unallowOn (parentOf dataset) + "\n")
    );
  argv = import ./syncoid-argv.nix {
    inherit lib;
    syncoid = cfg;
    program = "${pkgs.sanoid}/bin/syncoid";
  };
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
  optionsOf = {
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
  };
in
{
  options.services.syncoid = optionsOf;

  config = lib.mkIf cfg.enable {
    users.users = lib.mkIf (cfg.user == "syncoid") {
      syncoid = {
        group = cfg.group;
        isSystemUser = true;
        home = "/var/lib/syncoid";
        createHome = false;
      };
    };
    users.groups = lib.mkIf (cfg.group == "syncoid") { syncoid = { }; };

    systemd.services = lib.mapAttrs' (
      name: c:
      lib.nameValuePair "syncoid-${escapeUnitName name}" (
        lib.mkMerge [
          {
            description = "Syncoid ZFS synchronization from ${c.source} to ${c.target}";
            after = [ "zfs.target" ];
            startAt = cfg.interval;
            path = [ "/run/booted-system/sw/bin/" ];
            serviceConfig = {
              ExecStartPre =
                map (allowScript c.localSourceAllow) (localDatasets c.source)
                ++ map (allowScript c.localTargetAllow) (localDatasets c.target);
              ExecStopPost =
                map (unallowScript c.localSourceAllow) (localDatasets c.source)
                ++ map (unallowScript c.localTargetAllow) (localDatasets c.target);
              ExecStart = lib.escapeShellArgs argv.${name};
              User = cfg.user;
              Group = cfg.group;
              StateDirectory = [ "syncoid" ];
              StateDirectoryMode = "700";
              PrivateTmp = true;
              ProcSubset = "all";
              ProtectProc = "default";
              AmbientCapabilities = "";
              CapabilityBoundingSet = "";
              DeviceAllow = [ "/dev/zfs" ];
              LockPersonality = true;
              MemoryDenyWriteExecute = true;
              NoNewPrivileges = true;
              PrivateDevices = true;
              PrivateMounts = true;
              PrivateNetwork = lib.mkDefault false;
              # As nixpkgs sets it: "Enabling this breaks on zfs-2.2.0" (in a
              # user namespace of its own, OpenZFS 2.2+ shows a process only
              # the datasets delegated to that namespace: none; PR 245333).
              PrivateUsers = false;
              ProtectClock = true;
              ProtectControlGroups = true;
              ProtectHome = true;
              ProtectHostname = true;
              ProtectKernelLogs = true;
              ProtectKernelModules = true;
              ProtectKernelTunables = true;
              ProtectSystem = "strict";
              RemoveIPC = true;
              RestrictAddressFamilies = [ "AF_UNIX" "AF_INET" "AF_INET6" ];
              RestrictNamespaces = true;
              RestrictRealtime = true;
              RestrictSUIDSGID = true;
              RootDirectory = "/run/syncoid/${escapeUnitName name}";
              RootDirectoryStartOnly = true;
              BindPaths = [ "/dev/zfs" ];
              BindReadOnlyPaths = [ builtins.storeDir "/etc" "/run" "/bin/sh" ];
              InaccessiblePaths = [ "-+/run/syncoid/${escapeUnitName name}" ];
              MountAPIVFS = true;
              RuntimeDirectory = [ "syncoid/${escapeUnitName name}" ];
              RuntimeDirectoryMode = "700";
              SystemCallFilter = [
                "@system-service"
                "~@aio"
                "~@chown"
                "~@keyring"
                "~@memlock"
                "~@privileged"
                "~@resources"
                "~@setuid"
                "~@timer"
              ];
              SystemCallArchitectures = "native";
              UMask = "0066";
            };
          }
          cfg.service
          c.service
        ]
      )
    ) cfg.commands;
  };
}
