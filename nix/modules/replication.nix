# Replication (syncoid): targets, and which targets each dataset is sent to.
# Children inherit their nearest ancestor's targets (nix/lib/inheritance.nix).
# zpersist configures nixpkgs' services.syncoid (one command per dataset and
# target); it does not replace it.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkIf
    types
    literalExpression
    attrNames
    concatMap
    filter
    filterAttrs
    listToAttrs
    nameValuePair
    escapeShellArgs
    hasPrefix
    ;
  zlib = import ../lib { inherit lib; };
  cfg = config.zpersist;
  rcfg = cfg.replication;

  knownHostsFile = target: "/etc/zpersist/known_hosts/${target}";
  configPath = "/etc/zpersist/replication.json";

  # nixpkgs names a command's unit "syncoid-<name>", with every run of
  # characters outside [A-Za-z0-9_.-] replaced by "-"; command names made
  # of those characters only are their own unit name.
  escape = name: lib.concatMapStrings (s: if lib.isList s then "-" else s) (builtins.split "[^a-zA-Z0-9_.-]+" name);

  # "a/b/c" -> [ "a" "a/b" ]
  ancestorsOf =
    key:
    let
      parts = lib.splitString "/" key;
    in
    lib.genList (i: lib.concatStringsSep "/" (lib.take (i + 1) parts)) (builtins.length parts - 1);

  # Every (dataset, target) pair, after inheritance.
  targetsOf = filterAttrs (_: ts: ts != null && ts != [ ]) (
    zlib.inheritance.resolve cfg.datasets "replicateTo"
  );
  pairs = concatMap (
    key:
    map (
      target:
      let
        t = rcfg.targets.${target} or null;
        command = "${escape key}-to-${target}";
        targetDataset = if t == null then "" else "${t.dataset}/${key}";
      in
      {
        inherit key target command;
        source = "${cfg.pool}/${key}";
        inherit targetDataset;
        unit = "syncoid-${command}.service";
        # The levels between the target root and the dataset, top down:
        # each must exist before `zfs receive` (syncoid does not create
        # parents). A level whose source is replicated to the same target
        # is received by that command, which runs first (`after`, `wants`);
        # the others are created empty.
        targetParents = map (ancestor: {
          targetDataset = "${t.dataset}/${ancestor}";
          replicatedBy =
            if builtins.elem target (targetsOf.${ancestor} or [ ]) then
              "syncoid-${escape ancestor}-to-${target}.service"
            else
              null;
        }) (ancestorsOf key);
      }
    ) targetsOf.${key}
  ) (attrNames targetsOf);
  knownPairs = filter (p: rcfg.targets ? ${p.target}) pairs;

  # A target without a host is a pool on this host (a backup pool, a USB
  # disk): syncoid receives locally, nothing goes over ssh.
  isLocal = t: t.host == null;
  portOf = t: if t.port == null then 22 else t.port;
  # The ssh-only options, which a local target must leave unset.
  sshOptionNames = [
    "user"
    "sshKey"
    "hostKey"
    "port"
  ];

  # Dead peers are dropped (nix/lib/ssh.nix). A run that hangs on a live
  # connection is ended by the target's `runTimeout` (the syncoid units are
  # oneshot, which have no start timeout of their own).
  inherit (zlib.ssh) deadPeerOptions;

  sshArgs =
    t:
    [
      "-o"
      "BatchMode=yes"
      "-o"
      "UserKnownHostsFile=${knownHostsFile t.name}"
      "-o"
      "StrictHostKeyChecking=yes"
    ]
    ++ concatMap (o: [
      "-o"
      o
    ]) deadPeerOptions
    ++ [
      "-i"
      t.sshKey
      "-p"
      (toString (portOf t))
    ];

  # What syncoid's ssh gets; passed as single argv elements because
  # nixpkgs quotes each extraArgs entry as one argument.
  syncoidArgs =
    t:
    [ "--identifier=${t.name}" ]
    ++ lib.optionals t.receiveOnly [
      "--no-rollback"
      "--no-sync-snap"
    ]
    ++ lib.optionals (!isLocal t) (
      zlib.ssh.syncoidArgs {
        port = portOf t;
        knownHosts = knownHostsFile t.name;
      }
    )
    ++ t.extraArgs;

  # syncoid's target: `user@host:dataset`, or the bare dataset for a local one.
  syncoidTarget = t: dataset: if isLocal t then dataset else "${t.user}@${t.host}:${dataset}";

  # The ExecStartPre line creating one empty level on the target, where the
  # target is: over ssh (as the syncoid user, with the target's key), or
  # with this host's zfs, as root ("+": the syncoid user holds no
  # permission on the target root; nixpkgs delegates on the received
  # dataset or its parent only). canmount=off: a delegated user cannot
  # mount. -p: a level that exists already is success. "-": a failure
  # (unreachable target, pool not imported) fails syncoid right after,
  # with syncoid's message.
  createLevel =
    t: dataset:
    let
      zfsCreate = [
        "zfs"
        "create"
        "-p"
        "-o"
        "canmount=off"
        dataset
      ];
    in
    if isLocal t then
      "-+" + escapeShellArgs ([ bootedZfs ] ++ lib.tail zfsCreate)
    else
      "-" + escapeShellArgs ([ "${pkgs.openssh}/bin/ssh" ] ++ sshArgs t ++ [ "${t.user}@${t.host}" ] ++ zfsCreate);

  # Permissions the syncoid user gets on a source dataset (nixpkgs grants
  # them in ExecStartPre and revokes them in ExecStopPost); destroy needs
  # mount on Linux.
  sourceAllow = [
    "bookmark"
    "hold"
    "send"
    "snapshot"
    "destroy"
    "mount"
  ];
  # What the receiving user needs below the target root by default:
  # nixpkgs' localTargetAllow default (receive into new datasets: create,
  # mount, receive; `receive -F`: rollback; raw and compressed sends:
  # change-key, compression; the received mountpoint: mountpoint), plus
  # pruning old sync snapshots (destroy), the canmount=off levels
  # zpersist creates (canmount), and reading a copy back (send: preseed's
  # replica source and a restore by hand run `zfs send` there as this
  # user). A target's `allow` replaces it.
  defaultTargetAllow = [
    "change-key"
    "compression"
    "create"
    "mount"
    "mountpoint"
    "receive"
    "rollback"
    "destroy"
    "canmount"
    "send"
  ];
  targetAllowCommand = t: escapeShellArgs [ "zfs" "allow" "-u" t.user (lib.concatStringsSep "," t.allow) t.dataset ];

  # nixpkgs runs zfs from the booted system, so that a switch never pairs a
  # new userland with the running kernel module; zpersist's root commands
  # do the same.
  bootedZfs = "/run/booted-system/sw/bin/zfs";

  # The syncoid user's group holds these permissions for good, on every
  # replicated source and every local target root, granted by
  # zpersist-syncoid-allow.service. nixpkgs grants the same to the *user*
  # around each run and revokes them in ExecStopPost, on the dataset and on
  # its parent: with one user for all of zpersist's commands, one command
  # ending would revoke what another, still running, needs. A group grant
  # is not touched by a user revoke (`zfs unallow <user>`), so a running
  # command keeps its permissions whatever the others do.
  syncoidGroup = config.services.syncoid.group;
  groupAllowLines =
    let
      grant = perms: dataset: escapeShellArgs [ bootedZfs "allow" "-g" syncoidGroup (lib.concatStringsSep "," perms) dataset ];
      sources = lib.unique (map (p: p.source) knownPairs);
      localRoots = lib.unique (map (name: rcfg.targets.${name}.dataset) (filter (name: isLocal rcfg.targets.${name}) (lib.unique (map (p: p.target) knownPairs))));
    in
    map (grant sourceAllow) sources
    # A local target may be a removable disk that is not there: its
    # commands fail with syncoid's own message then, not this unit.
    ++ map (root: "-" + grant (lib.concatMap (name: rcfg.targets.${name}.allow) (filter (name: isLocal rcfg.targets.${name} && rcfg.targets.${name}.dataset == root) (attrNames rcfg.targets))) root) localRoots;
  allowUnit = "zpersist-syncoid-allow.service";

  knownHostsLine = t: zlib.ssh.knownHostsLine t.host (portOf t) t.hostKey;

  # A hardened push target's receiving user (`receiveOnly`).
  receiveOnlyAllow = [
    "create"
    "mount"
    "receive"
    "canmount"
    "send"
  ];

  targetModule =
    { name, config, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
          readOnly = true;
          internal = true;
          description = "The target's name; also its syncoid `--identifier`.";
        };
        host = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "nas-1";
          description = ''
            Host name or address of the receiving host, reached over ssh.
            `null`: a local target, a pool on this host (a backup pool, a
            USB disk); syncoid receives locally and `user`, `sshKey`,
            `hostKey` and `port` must stay unset.
          '';
        };
        port = mkOption {
          type = types.nullOr types.port;
          default = null;
          description = "ssh port of the receiving host; `null` means 22. Remote targets only.";
        };
        user = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "zfs-recv";
          description = ''
            User on the receiving host; required for a remote target. It
            needs the `zfs allow` permissions listed in
            /etc/zpersist/replication/<target>.target-allow (see
            docs/replication.md), or to be root.
          '';
        };
        dataset = mkOption {
          type = types.str;
          example = "backup/forge";
          description = ''
            Dataset on the receiving host (or, for a local target, on this
            host) below which this host's datasets land, by their name
            relative to `zpersist.pool` (`tank/services/sonarr` goes to
            `<dataset>/services/sonarr`). It must exist on the target.
          '';
        };
        sshKey = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "/run/secrets/syncoid";
          description = ''
            Path of the ssh private key, as a string so that it never enters
            the Nix store; readable by `services.syncoid.user`. Required for
            a remote target. syncoid runs in a sandbox (nixpkgs' unit) that
            sees only the store, /etc, /run, /var/lib/syncoid and what
            zpersist binds into it: the key file is bound in wherever it
            is, except under /root, /home or /run/user, which the sandbox
            hides (`ProtectHome`). /run/secrets/... (sops-nix, agenix) or
            /var/lib/syncoid/... are good places.
          '';
        };
        hostKey = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...";
          description = ''
            The receiving host's public host key (`type base64`, as in
            `/etc/ssh/ssh_host_ed25519_key.pub`). It is pinned: it goes into
            /etc/zpersist/known_hosts/<target>, which only zpersist's ssh
            connections to this target read, with StrictHostKeyChecking=yes.
            Required for a remote target.
          '';
        };
        sendOptions = mkOption {
          type = types.str;
          default = "";
          example = "w";
          description = "syncoid `--sendoptions`: `zfs send` options without dashes (e.g. `w` for raw encrypted sends).";
        };
        recvOptions = mkOption {
          type = types.str;
          default = "u";
          description = ''
            syncoid `--recvoptions`: `zfs receive` options without dashes. The
            default `u` leaves received datasets unmounted on the target.
          '';
        };
        extraArgs = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "--compress=zstd-fast" ];
          description = "Further syncoid arguments for every command to this target, one argument per element.";
        };
        runTimeout = mkOption {
          type = types.str;
          default = "12h";
          example = "2d";
          description = ''
            Longest a syncoid run to this target may take (a systemd time
            span), its unit's `TimeoutStartSec`: a run stuck on a live but
            silent connection is killed then, fails and notifies. The
            syncoid units are oneshot (so that a child waits for its
            parent), and a oneshot has no start timeout of its own. Raise it
            for a first full send of many terabytes over a slow link.
          '';
        };
        receiveOnly = mkOption {
          type = types.bool;
          default = false;
          description = ''
            A hardened push target: the receiving user gets
            `create,mount,receive,canmount,send` only (no `rollback`, no
            `destroy`), and syncoid runs with `--no-rollback` (no
            `receive -F`) and `--no-sync-snap` (it could not prune its sync
            snapshots there). Prune on the target with a sanoid prune-only
            template of its own. A compromised source can then no longer
            destroy or roll back the replica through syncoid's key, but
            `receive` still permits `zfs receive -F` to that user (OpenZFS
            2.4 delegates no receive without it) and the user's shell runs
            anything its permissions allow: see docs/replication.md, "What
            a compromised source can do"; pull mode closes both.
          '';
        };
        allow = mkOption {
          type = types.listOf types.str;
          default = if config.receiveOnly then receiveOnlyAllow else defaultTargetAllow;
          defaultText = lib.literalExpression ''if receiveOnly then [ "create" "mount" "receive" "canmount" "send" ] else [ "change-key" "compression" "create" "mount" "mountpoint" "receive" "rollback" "destroy" "canmount" "send" ]'';
          example = [ "create" "mount" "receive" "rollback" "destroy" ];
          description = ''
            `zfs allow` permissions the receiving user gets below
            `dataset`. For a local target zpersist grants them (to the
            syncoid group, for good) and nixpkgs' `localTargetAllow` around
            each run; for a remote one they are the command written to
            /etc/zpersist/replication/<target>.target-allow for the
            receiving host's admin. The default is nixpkgs' own
            `localTargetAllow` (which raw and compressed sends need) plus
            `destroy` (syncoid prunes its old sync snapshots),
            `canmount` (the empty levels zpersist creates) and `send`
            (preseed and a restore by hand read the copy back).
          '';
        };
        interval = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "*-*-* *:15:00";
          description = ''
            When the commands to this target run (systemd calendar event).
            `null` uses `services.syncoid.interval` (hourly by default).
          '';
        };
      };
    };
in
{
  options.zpersist.datasets = mkOption {
    type = types.attrsOf (
      types.submodule {
        options.replicateTo = mkOption {
          type = types.nullOr (types.listOf types.str);
          default = null;
          example = [ "nas" ];
          description = ''
            Names of `zpersist.replication.targets` this dataset is sent to.
            `null` inherits the nearest declared ancestor's targets; `[ ]`
            replicates nothing, whatever the ancestors say.
          '';
        };
      }
    );
  };

  options.zpersist.replication = {
    targets = mkOption {
      type = types.attrsOf (types.submodule targetModule);
      default = { };
      example = literalExpression ''
        {
          nas = {
            host = "nas-1";
            user = "zfs-recv";
            dataset = "backup/forge";
            sshKey = "/run/secrets/syncoid";
            hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI...";
          };
          usb = { dataset = "usbpool/backup/forge"; };
        }
      '';
      description = ''
        Where syncoid sends this host's datasets: other hosts, pushed over
        ssh, or (`host = null`) another pool on this host. Each target is
        its own syncoid `--identifier`, so several targets never delete each
        other's base snapshots.
      '';
    };

    lag = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether `zpersist-replication-lag.service` measures, on a timer,
          how far each target is behind: the newest snapshot the target holds
          (over ssh, or here for a local target) against the newest local one.
        '';
      };
      interval = mkOption {
        type = types.str;
        default = "hourly";
        description = "When the lag is measured (systemd calendar event).";
      };
      textfile = mkOption {
        type = types.str;
        default = "/var/lib/zpersist/replication-lag.prom";
        description = "Prometheus textfile the measurements are written to (atomically), for node_exporter's textfile collector.";
      };
      timeoutSeconds = mkOption {
        type = types.ints.positive;
        default = 60;
        description = ''
          How long each call of the lag check (a local `zfs get`, or ssh to
          a target) may take before it is killed and the check fails. A
          target that timed out is not asked again in the same run. The
          unit's `TimeoutStartSec` follows from it.
        '';
      };
      maxLagSeconds = mkOption {
        type = types.nullOr types.ints.positive;
        default = null;
        example = 2 * 86400;
        description = ''
          When set, a lag above this many seconds fails the unit, which
          notifies (`zpersist.notify`). A target holding none of this
          host's snapshots of a dataset fails it whether this is set or not.
        '';
      };
    };

    internal = {
      pairs = mkOption {
        type = types.listOf types.anything;
        readOnly = true;
        internal = true;
        description = "Every (dataset, target) pair after inheritance, with its syncoid command and unit.";
      };
      config = mkOption {
        type = types.attrsOf types.anything;
        readOnly = true;
        internal = true;
        description = "The replication config `replication-lag` reads, as written to ${configPath}.";
      };
      targetAllow = mkOption {
        type = types.attrsOf types.str;
        readOnly = true;
        internal = true;
        description = "Per remote target, the `zfs allow` command to run on the receiving host (local targets are delegated by nixpkgs' localTargetAllow).";
      };
    };
  };

  config =
    let
      targetsUsed = lib.unique (map (p: p.target) knownPairs);
      remoteTargetsUsed = filter (name: !isLocal rcfg.targets.${name}) targetsUsed;
      pinnedTargets = filter (t: !isLocal t && t.hostKey != null) (lib.attrValues rcfg.targets);
      replicationConfig = {
        version = 1;
        host = config.networking.hostName;
        # A local target is `host = null` and nothing of ssh.
        targets = lib.mapAttrs (
          _: t:
          {
            inherit (t) host dataset;
            identifier = t.name;
          }
          // lib.optionalAttrs (!isLocal t) {
            port = portOf t;
            inherit (t) user sshKey;
            knownHosts = knownHostsFile t.name;
          }
        ) rcfg.targets;
        datasets = map (p: {
          inherit (p) source target targetDataset;
        }) (lib.sort (a: b: a.command < b.command) knownPairs);
        inherit (rcfg.lag) textfile maxLagSeconds timeoutSeconds;
      };
      # The lag check's own worst case: three bounded calls per check (the
      # local listing, the target's, the target root), each killed at
      # timeoutSeconds and reaped within 2 s, plus a minute. systemd ends
      # only what the binary cannot (a zfs stuck in the kernel).
      lagTimeoutStartSec = 3 * builtins.length knownPairs * (rcfg.lag.timeoutSeconds + 2) + 60;
      unknownTargets = filter (p: !(rcfg.targets ? ${p.target})) pairs;
      badTargetNames = filter (n: builtins.match "[A-Za-z0-9][A-Za-z0-9_-]*" n == null) (attrNames rcfg.targets);
      remoteTargets = filter (t: !isLocal t) (lib.attrValues rcfg.targets);
      localTargets = filter isLocal (lib.attrValues rcfg.targets);
      missingSshOptions = t: filter (o: t.${o} == null) [ "user" "sshKey" "hostKey" ];
      incompleteRemotes = filter (t: missingSshOptions t != [ ]) remoteTargets;
      setSshOptions = t: filter (o: t.${o} != null) sshOptionNames;
      localsWithSsh = filter (t: setSshOptions t != [ ]) localTargets;
      # A local target inside a dataset replicated to it would receive
      # itself on every run.
      selfReceiving = filter (
        p:
        let
          t = rcfg.targets.${p.target};
        in
        isLocal t && (t.dataset == p.source || hasPrefix "${p.source}/" t.dataset)
      ) knownPairs;
      keyProblems = filter (
        t: t.sshKey != null && (!(hasPrefix "/" t.sshKey) || hasPrefix builtins.storeDir t.sshKey)
      ) remoteTargets;
      inherit (zlib.ssh) hiddenFromSyncoid;
      hiddenKeys = filter (
        t: t.sshKey != null && lib.any (dir: hasPrefix dir t.sshKey) hiddenFromSyncoid
      ) remoteTargets;
      badHostKeys = filter (
        t:
        t.hostKey != null
        && !zlib.ssh.isHostKey t.hostKey
      ) remoteTargets;
      commandNames = map (p: p.command) knownPairs;
      clashing = lib.unique (filter (c: lib.count (x: x == c) commandNames > 1) commandNames);
    in
    lib.mkMerge [
      {
        zpersist.replication.internal = {
          pairs = knownPairs;
          config = replicationConfig;
          targetAllow = lib.mapAttrs (_: targetAllowCommand) (filterAttrs (_: t: !isLocal t) rcfg.targets);
        };
      }
      (mkIf (cfg.enable && cfg.pool != null && knownPairs != [ ]) {
        services.syncoid = {
          enable = true;
          commands = listToAttrs (
            map (
              p:
              let
                t = rcfg.targets.${p.target};
              in
              nameValuePair p.command (
                {
                  inherit (p) source;
                  target = syncoidTarget t p.targetDataset;
                  # null for a local target, over services.syncoid.sshKey.
                  inherit (t) sshKey recvOptions;
                  # Raw for an encrypted dataset (nix/modules/encryption.nix).
                  sendOptions = zlib.encryption.sendOptions (
                    (t.raw or null) == true || builtins.elem p.key cfg.internal.encryptedKeys
                  ) t.sendOptions;
                  extraArgs = syncoidArgs t;
                  localSourceAllow = sourceAllow;
                }
                # nixpkgs grants these on the received dataset (or its
                # parent, before the first receive) around each run.
                // lib.optionalAttrs (isLocal t) { localTargetAllow = t.allow; }
              )
            ) knownPairs
          );
        };

        systemd.services = listToAttrs (
          map (
            p:
            let
              t = rcfg.targets.${p.target};
            in
            nameValuePair (lib.removeSuffix ".service" p.unit) (
              let
                created = filter (level: level.replicatedBy == null) p.targetParents;
                receivedFirst = lib.unique (
                  lib.concatMap (level: lib.optional (level.replicatedBy != null) level.replicatedBy) p.targetParents
                );
              in
              lib.mkMerge [
                {
                  # oneshot: a unit ordered after this one waits until it has
                  # finished, not only started (nixpkgs sets no Type=, so
                  # `after` alone would let a child be received before its
                  # parent exists on the target).
                  serviceConfig.Type = "oneshot";
                  serviceConfig.TimeoutStartSec = t.runTimeout;
                  # The group's standing permissions come first.
                  after = [ allowUnit ] ++ receivedFirst;
                  wants = [ allowUnit ] ++ receivedFirst;
                }
                (mkIf (!isLocal t) {
                  # The key, wherever it is, inside nixpkgs' sandbox (its
                  # RootDirectory holds only the store, /etc, /run, /bin/sh).
                  serviceConfig.BindReadOnlyPaths = [ t.sshKey ];
                })
                (mkIf (created != [ ]) {
                  # Before nixpkgs' own ExecStartPre: for a local target its
                  # delegation lands on the received dataset's parent, which
                  # must exist by then.
                  serviceConfig.ExecStartPre = lib.mkBefore (map (level: createLevel t level.targetDataset) created);
                })
                (mkIf (t.interval != null) { startAt = lib.mkForce t.interval; })
              ]
            )
          ) knownPairs
        );

        environment.etc =
          listToAttrs (
            map (
              name:
              nameValuePair "zpersist/replication/${name}.target-allow" {
                text = ''
                  # Run once on ${rcfg.targets.${name}.host}, as root, so that ${rcfg.targets.${name}.user} can receive
                  # ${config.networking.hostName}'s replication below ${rcfg.targets.${name}.dataset} (see zpersist's docs/replication.md):
                  ${targetAllowCommand rcfg.targets.${name}}
                '';
              }
            ) remoteTargetsUsed
          )
          // {
            "zpersist/replication.json".text = builtins.toJSON replicationConfig;
          };

        zpersist.notify.units = listToAttrs (
          map (
            p:
            nameValuePair p.unit {
              datasets = [ p.source ];
              summary =
                let
                  t = rcfg.targets.${p.target};
                in
                "replication of ${p.source} to ${p.target} (${
                  if isLocal t then "${p.targetDataset} on this host" else "${t.host}:${p.targetDataset}"
                })";
            }
          ) knownPairs
        );
      })
      # Every remote target's pinned host key, whether datasets are pushed
      # to it or only read back from it (a preseed `replica` source: the
      # restore key of a backup host that pulls, docs/replication.md).
      (mkIf (cfg.enable && pinnedTargets != [ ]) {
        environment.etc = listToAttrs (
          map (t: nameValuePair "zpersist/known_hosts/${t.name}" { text = knownHostsLine t + "\n"; }) pinnedTargets
        );
      })
      (mkIf (cfg.enable && cfg.pool != null && knownPairs != [ ]) (
        zlib.unit.service {
          name = "zpersist-syncoid-allow";
          description = "standing zfs permissions of the syncoid group";
          # One `zfs allow` per line (as root: "-" lines may fail).
          execStart = groupAllowLines;
          remainAfterExit = true;
          timeout = "5min";
          after = [
            "zfs.target"
            cfg.internal.unitName
          ];
          wants = [ cfg.internal.unitName ];
          zfs = true;
          network = "none";
          serviceConfig = {
            CapabilityBoundingSet = [ "CAP_SYS_ADMIN" ];
            ProtectSystem = "strict";
            ProtectHome = true;
            PrivateTmp = true;
            PrivateNetwork = true;
          };
          # Re-run on a switch that changes what is granted.
          restartTriggers = [ (builtins.toJSON groupAllowLines) ];
        }
      ))
      (mkIf (cfg.enable && cfg.pool != null && knownPairs != [ ] && rcfg.lag.enable) (
        zlib.unit.service {
          name = "zpersist-replication-lag";
          description = "how far each replication target is behind";
          command = [ "${cfg.package}/bin/replication-lag" ];
          contract = {
            flag = "--config";
            file = configPath;
          };
          # A oneshot has no start timeout by default.
          timeout = lagTimeoutStartSec;
          after = [
            "network-online.target"
            "zfs.target"
          ];
          wants = [ "network-online.target" ];
          path = [ pkgs.openssh ] ++ zlib.unit.bootedZfs config.boot.zfs.package;
          zfs = true;
          network = "ip";
          serviceConfig = {
            # Reads the ssh key, runs `zfs get`; writes only the textfile.
            ProtectSystem = "strict";
            ReadWritePaths = [ (builtins.dirOf rcfg.lag.textfile) ];
            StateDirectory = lib.mkIf (hasPrefix "/var/lib/" rcfg.lag.textfile) (
              lib.removePrefix "/var/lib/" (builtins.dirOf rcfg.lag.textfile)
            );
            # read-only, not hidden: the ssh key may live under /root.
            ProtectHome = "read-only";
            PrivateTmp = true;
            # Reading a key file another user owns is all root needs here.
            CapabilityBoundingSet = [ "CAP_DAC_READ_SEARCH" ];
            # The textfile is read by a metrics exporter running as another user.
            UMask = "0022";
          };
          notify = {
            datasets = lib.unique (map (p: p.source) knownPairs);
            summary = "replication lag check on ${config.networking.hostName}";
          };
          extra.startAt = rcfg.lag.interval;
        }
      ))
      (mkIf cfg.enable {
        assertions = [
          {
            assertion = unknownTargets == [ ];
            message = lib.concatMapStringsSep "\n" (
              p:
              ''zpersist.datasets."${p.key}" replicates to "${p.target}" (${
                if (cfg.datasets.${p.key}.replicateTo or null) != null then "its replicateTo" else "inherited from an ancestor's replicateTo"
              }), which zpersist.replication.targets does not define. Define zpersist.replication.targets."${p.target}" or fix the name (defined: ${
                if rcfg.targets == { } then "none" else lib.concatStringsSep ", " (attrNames rcfg.targets)
              }).''
            ) unknownTargets;
          }
          {
            assertion = badTargetNames == [ ];
            message = ''zpersist.replication.targets: ${lib.concatStringsSep ", " badTargetNames}: a target name becomes a syncoid --identifier, a unit name and a file name; use letters, digits, '_' and '-' only, starting with a letter or digit.'';
          }
          {
            assertion = incompleteRemotes == [ ];
            message = lib.concatMapStringsSep "\n" (
              t:
              ''zpersist.replication.targets."${t.name}" sends over ssh to "${t.host}", so it needs user, sshKey and hostKey; set ${lib.concatStringsSep ", " (missingSshOptions t)} (see docs/replication.md), or leave host unset for a pool on this host.''
            ) incompleteRemotes;
          }
          {
            assertion = localsWithSsh == [ ];
            message = lib.concatMapStringsSep "\n" (
              t:
              ''zpersist.replication.targets."${t.name}" is a local target (host is null: a pool on this host), where ${lib.concatStringsSep ", " (setSshOptions t)} would be ignored: no ssh connection is made, syncoid receives as services.syncoid.user with nixpkgs' localTargetAllow. Remove ${lib.concatStringsSep ", " (setSshOptions t)}, or set host to send over ssh.''
            ) localsWithSsh;
          }
          {
            assertion = selfReceiving == [ ];
            message = lib.concatMapStringsSep "\n" (
              p:
              ''zpersist.replication.targets."${p.target}".dataset = "${rcfg.targets.${p.target}.dataset}" lies inside ${p.source}, which is replicated to it: every run would send the backup into itself. Put the local target on another pool or outside the replicated datasets.''
            ) selfReceiving;
          }
          {
            assertion = keyProblems == [ ];
            message = lib.concatMapStringsSep "\n" (
              t:
              if hasPrefix builtins.storeDir t.sshKey then
                ''zpersist.replication.targets."${t.name}".sshKey is in the Nix store (${t.sshKey}), where every user can read it. Give the path of a file outside the store as a string, e.g. sshKey = "/run/secrets/syncoid"; (not sshKey = ./key;).''
              else
                ''zpersist.replication.targets."${t.name}".sshKey = "${t.sshKey}" is not an absolute path; give the absolute path of the private key, e.g. "/run/secrets/syncoid".''
            ) keyProblems;
          }
          {
            assertion = hiddenKeys == [ ];
            message = lib.concatMapStringsSep "\n" (
              t:
              ''zpersist.replication.targets."${t.name}".sshKey = "${t.sshKey}" is where syncoid cannot read it: nixpkgs runs syncoid with ProtectHome=true, which hides /root, /home and /run/user from it (replication-lag, running as root, would still work, so the failure would show only at the first sync). Move the key, readable by ${config.services.syncoid.user}, to e.g. /run/secrets/ or /var/lib/syncoid/ (see docs/replication.md).''
            ) hiddenKeys;
          }
          {
            assertion = badHostKeys == [ ];
            message = lib.concatMapStringsSep "\n" (
              t: ''zpersist.replication.targets."${t.name}".hostKey does not look like a public host key ("TYPE BASE64", e.g. the contents of /etc/ssh/ssh_host_ed25519_key.pub on ${t.host}); got "${t.hostKey}".''
            ) badHostKeys;
          }
          {
            assertion = clashing == [ ];
            message = ''zpersist.replication: the syncoid commands ${lib.concatStringsSep ", " clashing} would be defined twice: two dataset names differ only in '/' versus '-'. Rename one of the datasets.'';
          }
        ];
      })
    ];
}
