# Pull replication: the backup host pulls (zpersist.replication.pull), the
# source lets it read and nothing more (zpersist.replication.pullers). A
# source that is compromised holds no key the backup host obeys: the backup
# host receives without -F (a rolled-back or rewritten source is reported,
# never replayed), its received datasets are read-only, and it prunes them
# on its own policy and clock (a prune-only sanoid template). See
# docs/replication.md, "Pull mode" and "What a compromised source can do".
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
    attrNames
    attrValues
    concatMap
    filter
    listToAttrs
    nameValuePair
    escapeShellArgs
    hasPrefix
    ;
  zlib = import ../lib { inherit lib; };
  cfg = config.zpersist;
  pcfg = cfg.replication;
  bootedZfs = "/run/booted-system/sw/bin/zfs";
  bootedZpool = "/run/booted-system/sw/bin/zpool";
  gate = "${cfg.package}/bin/zpersist-pull-gate";

  escape = name: lib.concatMapStrings (s: if lib.isList s then "-" else s) (builtins.split "[^a-zA-Z0-9_.-]+" name);
  knownHostsFile = source: "/etc/zpersist/known_hosts/pull-${source}";
  templateName = source: "pull-${source}";
  portOf = s: if s.port == null then 22 else s.port;
  # "tank/services/sonarr" -> "services/sonarr": where it lands below `into`.
  relative = dataset: lib.concatStringsSep "/" (lib.tail (lib.splitString "/" dataset));

  # What the backup host's syncoid user needs on what it receives: receive
  # into new datasets (create, mount, receive) and set readonly=on; never
  # rollback (no -F) or destroy (pruning is sanoid's, as root).
  pullTargetAllow = [
    "create"
    "mount"
    "receive"
    "readonly"
  ];
  # What a puller holds on the source: send (and the temporary holds a
  # send takes), bookmarks of what it pulled. Never snapshot, destroy,
  # rollback or receive.
  pullerAllow = [
    "send"
    "hold"
    "bookmark"
  ];

  # syncoid's arguments for a pull. --no-sync-snap: it sends the source's
  # own policy snapshots (the puller cannot snapshot there);
  # --no-rollback: no `zfs receive -F` and no rollback of the target;
  # --create-bookmark: the newest pulled snapshot is bookmarked on the
  # source, so an incremental survives its pruning; --compress=none: the
  # source runs a bare `zfs send` (the gate runs no pipes).
  pullArgs =
    name: s:
    [
      "--no-sync-snap"
      "--no-rollback"
      "--create-bookmark"
      "--compress=none"
    ]
    ++ zlib.ssh.syncoidArgs {
      port = portOf s;
      knownHosts = knownHostsFile name;
    }
    ++ s.extraArgs;

  datasetsOf = s: s.datasets ++ map (svc: "${s.sourcePool}/services/${svc}") s.services;

  pulls = concatMap (
    name:
    let
      s = pcfg.pull.${name};
    in
    map (dataset: rec {
      source = name;
      inherit dataset;
      target = "${s.into}/${relative dataset}";
      command = "pull-${name}-${escape (relative dataset)}";
      unit = "syncoid-${command}.service";
      parent = builtins.dirOf target;
    }) (datasetsOf s)
  ) (attrNames pcfg.pull);

  sourceModule =
    { name, ... }:
    {
      options = {
        host = mkOption {
          type = types.str;
          example = "forge";
          description = "Host name or address of the source, reached over ssh.";
        };
        port = mkOption {
          type = types.nullOr types.port;
          default = null;
          description = "ssh port of the source; `null` means 22.";
        };
        user = mkOption {
          type = types.str;
          default = "zpull-${config.networking.hostName}";
          defaultText = lib.literalExpression ''"zpull-''${config.networking.hostName}"'';
          description = ''
            The puller's user on the source: the user
            `zpersist.replication.pullers.<this host>` creates there.
          '';
        };
        sshKey = mkOption {
          type = types.str;
          example = "/run/secrets/pull-from-forge";
          description = ''
            Path of the private key the source's puller entry authorizes,
            as a string (never copied to the store), readable by
            `services.syncoid.user`, outside /root, /home and /run/user
            (syncoid's sandbox hides them).
          '';
        };
        hostKey = mkOption {
          type = types.str;
          example = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA...";
          description = "The source's public host key (/etc/ssh/ssh_host_ed25519_key.pub there), pinned.";
        };
        datasets = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "tank/services/sonarr" ];
          description = "Full names of the source's datasets to pull (each lands at `into/<name without the pool>`).";
        };
        services = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [ "sonarr" "radarr" ];
          description = "Services of the source whose datasets to pull: `<sourcePool>/services/<name>`, where zpersist.services puts them.";
        };
        sourcePool = mkOption {
          type = types.str;
          default = "tank";
          description = "The source's `zpersist.pool`, for `services`.";
        };
        into = mkOption {
          type = types.str;
          example = "backup/forge";
          description = "Dataset on this host below which the source's datasets land (created, canmount=off, when missing).";
        };
        interval = mkOption {
          type = types.str;
          default = "hourly";
          description = "When to pull (a systemd calendar event).";
        };
        keep = mkOption {
          type = types.attrsOf (types.either types.ints.unsigned types.str);
          default = {
            hourly = 48;
            daily = 30;
            monthly = 12;
            yearly = 0;
          };
          description = ''
            The backup host's own retention of what it pulled: a prune-only
            sanoid template (`autosnap = false; autoprune = true;` plus
            these counts) on every received dataset, run by sanoid on this
            host, on this host's clock. What the source prunes or keeps
            does not change it.
          '';
        };
        restoreKeys = mkOption {
          type = types.listOf types.str;
          default = [ ];
          description = ''
            Public keys that may read this source's replicas back (preseed
            or a restore by hand on a rebuilt source): a user
            `zrestore-<source>` whose key is forced to zpersist-pull-gate
            on `into` (zfs send, get and list only) and who holds `send`
            there.
          '';
        };
        extraArgs = mkOption {
          type = types.listOf types.str;
          default = [ ];
          description = "More syncoid arguments for this source's commands.";
        };
      };
    };

  pullerModule =
    { name, ... }:
    {
      options = {
        publicKey = mkOption {
          type = types.str;
          example = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA... syncoid@nas";
          description = "The backup host's public key (its `pull.<source>.sshKey`'s).";
        };
        user = mkOption {
          type = types.str;
          default = "zpull-${name}";
          description = "The puller's user on this host.";
        };
        datasets = mkOption {
          type = types.listOf types.str;
          example = [ "tank/services" ];
          description = "Full names of the datasets the puller may send (and those below them).";
        };
        from = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "192.168.1.20";
          description = "Where the key may connect from (the authorized key's `from=`); `null`: anywhere.";
        };
      };
    };

  pullerCommand =
    p:
    escapeShellArgs (
      [ gate ]
      ++ concatMap (d: [
        "--dataset"
        d
      ]) p.datasets
      ++ [ "--bookmark" ]
    );
  restoreCommand =
    s:
    escapeShellArgs [
      gate
      "--dataset"
      s.into
    ];
  # `restrict` turns off forwarding, pty, X11 and user rc; the command is
  # forced whatever the client asks (it reaches the gate as
  # SSH_ORIGINAL_COMMAND).
  authorizedKey =
    command: from: key:
    "restrict,"
    + lib.optionalString (from != null) "from=\"${from}\","
    + "command=\"${command}\" ${key}";

  restoreUser = source: "zrestore-${source}";
  pullersList = attrValues (lib.mapAttrs (name: p: p // { inherit name; }) pcfg.pullers);
  restoring = filter (name: pcfg.pull.${name}.restoreKeys != [ ]) (attrNames pcfg.pull);

  grant = who: perms: dataset: escapeShellArgs [ bootedZfs "allow" "-u" who (lib.concatStringsSep "," perms) dataset ];
  allowLines =
    concatMap (p: map (grant p.user pullerAllow) p.datasets) pullersList
    ++ map (name: grant (restoreUser name) [ "send" ] pcfg.pull.${name}.into) restoring
    # The received tree, for the syncoid group for good (nixpkgs grants its
    # user around each run and revokes on the dataset *and its parent*: one
    # command's revoke must not take what a sibling still receiving needs).
    ++ map (into: grant' (lib.concatStringsSep "," pullTargetAllow) into) (lib.unique (map (n: pcfg.pull.${n}.into) (attrNames pcfg.pull)));
  grant' = perms: dataset: escapeShellArgs [ bootedZfs "allow" "-g" config.services.syncoid.group perms dataset ];
  allowUnit = "zpersist-pull-allow";

  badNames = filter (n: builtins.match "[A-Za-z0-9][A-Za-z0-9_-]*" n == null) (attrNames pcfg.pull ++ attrNames pcfg.pullers);
  sources = attrValues (lib.mapAttrs (name: s: s // { inherit name; }) pcfg.pull);
  empty = filter (s: datasetsOf s == [ ]) sources;
  keyProblems = filter (
    s:
    !(hasPrefix "/" s.sshKey)
    || hasPrefix builtins.storeDir s.sshKey
    || lib.any (dir: hasPrefix dir s.sshKey) zlib.ssh.hiddenFromSyncoid
  ) sources;
  badHostKeys = filter (s: !zlib.ssh.isHostKey s.hostKey) sources;
  # A pulled dataset whose name has no pool part, or outside the source's
  # pool for `services`.
  badDatasets = filter (s: lib.any (d: builtins.length (lib.splitString "/" d) < 2) (datasetsOf s)) sources;
  emptyPullers = filter (p: p.datasets == [ ]) pullersList;
  badPublicKeys = filter (p: builtins.match "[A-Za-z0-9@.-]+ [A-Za-z0-9+/]+=*( [^\"\n]*)?" p.publicKey == null) pullersList;
  # The same target from two sources or twice from one.
  targets = map (p: p.target) pulls;
  clashing = lib.unique (filter (t: lib.count (x: x == t) targets > 1) targets);
in
{
  options.zpersist.replication = {
    pull = mkOption {
      type = types.attrsOf (types.submodule sourceModule);
      default = { };
      description = ''
        Sources this host pulls from, by name (the backup host's side of
        pull replication): nixpkgs' syncoid pulls each dataset with a
        send-only key, receives without `-F` into read-only datasets below
        `into`, and this host's sanoid prunes them on `keep`
        (docs/replication.md, "Pull mode").
      '';
    };
    pullers = mkOption {
      type = types.attrsOf (types.submodule pullerModule);
      default = { };
      description = ''
        Backup hosts that pull from this host, by name (the source's side):
        a user whose only key is forced to zpersist-pull-gate (zfs send,
        get, list and bookmark of `datasets`, nothing else, no shell) and
        the delegation `send,hold,bookmark` on `datasets`, never destroy,
        rollback, snapshot or receive.
      '';
    };
  };

  # Its own switch: a backup host may declare no dataset of its own.
  config = mkIf (pcfg.pull != { } || pcfg.pullers != { }) (
    lib.mkMerge [
      (mkIf (pulls != [ ]) {
        services.syncoid = {
          enable = true;
          commands = listToAttrs (
            map (
              p:
              let
                s = pcfg.pull.${p.source};
              in
              nameValuePair p.command {
                source = "${s.user}@${s.host}:${p.dataset}";
                inherit (p) target;
                inherit (s) sshKey;
                sendOptions = "";
                # -u: not mounted; readonly=on: nothing here writes to it,
                # so the next receive (without -F) always applies.
                recvOptions = "u o readonly=on";
                extraArgs = pullArgs p.source s;
                localTargetAllow = pullTargetAllow;
              }
            ) pulls
          );
        };

        services.sanoid = {
          enable = true;
          templates = listToAttrs (
            map (
              name:
              nameValuePair (templateName name) (
                pcfg.pull.${name}.keep
                // {
                  autosnap = false;
                  autoprune = true;
                }
              )
            ) (attrNames pcfg.pull)
          );
          datasets = listToAttrs (map (p: nameValuePair p.target { useTemplate = [ (templateName p.source) ]; }) pulls);
        };

        systemd.services = listToAttrs (
          map (
            p:
            let
              s = pcfg.pull.${p.source};
            in
            nameValuePair (lib.removeSuffix ".service" p.unit) {
              serviceConfig = {
                Type = "oneshot";
                BindReadOnlyPaths = [ s.sshKey ];
                # The levels above the received dataset, empty and
                # unmountable, as root, before nixpkgs' delegation.
                # After a pull that succeeded: the newest received snapshot
                # held as zpersist-base-<source>, the tag released elsewhere
                # (as root: holds are not delegated to the syncoid user).
                ExecStartPost = [
                  ("+" + escapeShellArgs [ "${cfg.package}/bin/zpersist-pull-base" "--source" p.source p.target ])
                ];
                ExecStartPre = lib.mkBefore [
                  ("-+" + escapeShellArgs [ bootedZfs "create" "-p" "-o" "canmount=off" p.parent ])
                ];
              };
              after = [ "${allowUnit}.service" ];
              wants = [ "${allowUnit}.service" ];
              startAt = lib.mkForce s.interval;
            }
          ) pulls
        );

        environment.etc = listToAttrs (
          map (
            name:
            let
              s = pcfg.pull.${name};
            in
            nameValuePair "zpersist/known_hosts/pull-${name}" { text = zlib.ssh.knownHostsLine s.host (portOf s) s.hostKey + "\n"; }
          ) (attrNames pcfg.pull)
        );

        zpersist.notify.units = listToAttrs (
          map (p: nameValuePair p.unit {
            datasets = [ p.target ];
            summary = "pull of ${p.dataset} from ${p.source} (${pcfg.pull.${p.source}.host}) into ${p.target}";
          }) pulls
        );
      })

      (mkIf (pcfg.pullers != { } || restoring != [ ]) {
        users.users = listToAttrs (
          map (p: nameValuePair p.user {
            isSystemUser = true;
            group = p.user;
            # sshd runs the forced command with the user's shell.
            shell = "/run/current-system/sw/bin/bash";
            openssh.authorizedKeys.keys = [ (authorizedKey (pullerCommand p) p.from p.publicKey) ];
          }) pullersList
          ++ map (name: nameValuePair (restoreUser name) {
            isSystemUser = true;
            group = restoreUser name;
            shell = "/run/current-system/sw/bin/bash";
            openssh.authorizedKeys.keys = map (authorizedKey (restoreCommand pcfg.pull.${name}) null) pcfg.pull.${name}.restoreKeys;
          }) restoring
        );
        users.groups = listToAttrs (map (p: nameValuePair p.user { }) pullersList ++ map (name: nameValuePair (restoreUser name) { }) restoring);
      })

      (mkIf (allowLines != [ ]) (
        zlib.unit.service {
          name = allowUnit;
          description = "send-only delegations of pullers and restore keys, receive-only of pulled trees";
          execStart = map (line: "-" + line) allowLines;
          remainAfterExit = true;
          timeout = "5min";
          after = [ "zfs.target" ] ++ lib.optional cfg.enable cfg.internal.unitName;
          wants = lib.optional cfg.enable cfg.internal.unitName;
          wantedBy = [ "multi-user.target" ];
          zfs = true;
          network = "none";
          serviceConfig = {
            CapabilityBoundingSet = [ "CAP_SYS_ADMIN" ];
            ProtectSystem = "strict";
            ProtectHome = true;
            PrivateTmp = true;
            PrivateNetwork = true;
          };
          restartTriggers = [ (builtins.toJSON allowLines) ];
        }
      ))

      {
        assertions = [
          {
            assertion = badNames == [ ];
            message = ''zpersist.replication.pull/pullers: ${lib.concatStringsSep ", " badNames}: a name becomes a unit, user and file name; use letters, digits, '_' and '-' only, starting with a letter or digit.'';
          }
          {
            assertion = empty == [ ];
            message = lib.concatMapStringsSep "\n" (s: ''zpersist.replication.pull."${s.name}" pulls nothing: set datasets (e.g. [ "tank/services/sonarr" ]) or services (e.g. [ "sonarr" ]).'') empty;
          }
          {
            assertion = keyProblems == [ ];
            message = lib.concatMapStringsSep "\n" (s: ''zpersist.replication.pull."${s.name}".sshKey = "${s.sshKey}" must be an absolute path outside the Nix store and outside /root, /home and /run/user (nixpkgs' syncoid sandbox hides those); e.g. "/run/secrets/pull-from-${s.name}", readable by ${config.services.syncoid.user}.'') keyProblems;
          }
          {
            assertion = badHostKeys == [ ];
            message = lib.concatMapStringsSep "\n" (s: ''zpersist.replication.pull."${s.name}".hostKey does not look like a public host key ("TYPE BASE64", e.g. the contents of /etc/ssh/ssh_host_ed25519_key.pub on ${s.host}); got "${s.hostKey}".'') badHostKeys;
          }
          {
            assertion = badDatasets == [ ];
            message = lib.concatMapStringsSep "\n" (s: ''zpersist.replication.pull."${s.name}".datasets: give full dataset names with their pool ("tank/services/sonarr"), not a pool alone.'') badDatasets;
          }
          {
            assertion = clashing == [ ];
            message = ''zpersist.replication.pull: ${lib.concatStringsSep ", " clashing} would be received twice (two sources or two datasets land there); give each source its own `into`.'';
          }
          {
            assertion = emptyPullers == [ ];
            message = lib.concatMapStringsSep "\n" (p: ''zpersist.replication.pullers."${p.name}".datasets is empty: list the datasets ${p.name} may pull (e.g. [ "${if cfg.pool == null then "tank" else cfg.pool}/services" ]).'') emptyPullers;
          }
          {
            assertion = badPublicKeys == [ ];
            message = lib.concatMapStringsSep "\n" (p: ''zpersist.replication.pullers."${p.name}".publicKey does not look like one public key line ("TYPE BASE64 [comment]", no options: zpersist writes restrict,command=... itself).'') badPublicKeys;
          }
        ];
      }
    ]
  );
}
