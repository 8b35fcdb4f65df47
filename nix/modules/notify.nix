# Notifications, one mechanism for all of zpersist: a unit listed in
# `zpersist.notify.units` gets `OnFailure=zpersist-notify@%n.service`; that
# template unit runs `zpersist-notify`, which builds a JSON event (host, unit,
# datasets, time, journal tail) and hands it to the configured command and
# adapters (ntfy, webhook, email).
#
# The context (host name, unit -> datasets, delivery settings) reaches the
# handler through a file the unit names (/etc/zpersist/notify-context.json),
# never through an environment exported before `systemctl start`.
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
    mapAttrs'
    nameValuePair
    removeSuffix
    filterAttrs
    ;
  cfg = config.zpersist.notify;
  zlib = import ../lib { inherit lib; };
  contextPath = "/etc/zpersist/notify-context.json";
  hookUnit = "zpersist-notify@%n.service";

  # What a unit's failure is about, as the event will say it.
  unitModule = {
    options = {
      datasets = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "tank/services/sonarr" ];
        description = "Full names of the datasets the unit works on; every event about it lists them.";
      };
      summary = mkOption {
        type = types.str;
        example = "replication of tank/services/sonarr to nas";
        description = "One line saying what the unit does, used as the event's title.";
      };
    };
  };

  context = {
    version = 1;
    host = config.networking.hostName;
    inherit (cfg) journalLines timeoutSeconds;
    units = cfg.units;
    delivery = {
      command =
        if cfg.command == null then
          null
        else
          {
            argv = [ (toString cfg.command) ] ++ cfg.commandArgs;
          };
      ntfy =
        if cfg.ntfy.url == null then
          null
        else
          {
            inherit (cfg.ntfy) url topic priority;
            tokenFile = cfg.ntfy.tokenFile;
            curl = "${pkgs.curl}/bin/curl";
          };
      webhook =
        if cfg.webhook.url == null then
          null
        else
          {
            inherit (cfg.webhook) url;
            curl = "${pkgs.curl}/bin/curl";
          };
      email =
        if cfg.email.to == [ ] then
          null
        else
          {
            inherit (cfg.email) to from sendmail;
          };
    };
  };
in
{
  options.zpersist.notify = {
    enable = mkOption {
      type = types.bool;
      default =
        cfg.command != null || cfg.ntfy.url != null || cfg.webhook.url != null || cfg.email.to != [ ];
      defaultText = literalExpression "true when a command, ntfy, webhook or email is configured";
      description = ''
        Whether failures of zpersist's units (sanoid, every syncoid command,
        the replication lag check, ...) are delivered. Without any delivery
        configured they are only in the journal.
      '';
    };

    command = mkOption {
      type = types.nullOr (types.either types.path types.str);
      default = null;
      example = literalExpression ''pkgs.writeShellScript "page-me" "exec my-pager --stdin"'';
      description = ''
        An executable that receives each event as one JSON object on stdin
        (see docs/notify.md for the fields). Run directly, without a shell,
        with `zpersist.notify.commandArgs` as its arguments; a non-zero exit
        makes the notification unit fail.
      '';
    };

    commandArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Arguments for `zpersist.notify.command`.";
    };

    ntfy = {
      url = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "https://ntfy.sh";
        description = "Base URL of an ntfy server; each event is published to `<url>/<topic>`.";
      };
      topic = mkOption {
        type = types.str;
        default = "zpersist";
        description = "The ntfy topic.";
      };
      priority = mkOption {
        type = types.enum [
          "min"
          "low"
          "default"
          "high"
          "max"
        ];
        default = "high";
        description = "ntfy priority of failure events.";
      };
      tokenFile = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/run/secrets/ntfy-token";
        description = ''
          File holding an ntfy access token (sent as a bearer token). A path
          string, read when an event is sent, so the token never enters the
          Nix store.
        '';
      };
    };

    webhook.url = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "https://hooks.example.org/zpersist";
      description = "URL that receives each event as a JSON `POST`.";
    };

    email = {
      to = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "admin@example.org" ];
        description = "Recipients of an email per event (sent with `sendmail -t`).";
      };
      from = mkOption {
        type = types.str;
        default = "zpersist@${config.networking.hostName}";
        defaultText = literalExpression ''"zpersist@''${config.networking.hostName}"'';
        description = "Sender address of the emails.";
      };
      sendmail = mkOption {
        type = types.str;
        default = "/run/wrappers/bin/sendmail";
        description = "The sendmail-compatible program (postfix, msmtp, opensmtpd, ...).";
      };
    };

    journalLines = mkOption {
      type = types.ints.positive;
      default = 50;
      description = "How many lines of the failed unit's journal each event carries.";
    };

    timeoutSeconds = mkOption {
      type = types.ints.positive;
      default = 30;
      description = ''
        How long each delivery (the command, ntfy, the webhook, email) and
        reading the journal may take. The deliveries run at once, each
        killed at this limit (curl gets it as `--max-time`), so one that
        hangs or fails never keeps the event from the others; a delivery
        that timed out fails the notification unit, naming it. The unit's
        `TimeoutStartSec` follows from it.
      '';
    };

    units = mkOption {
      type = types.attrsOf (types.submodule unitModule);
      default = { };
      example = literalExpression ''
        {
          "my-backup.service" = {
            datasets = [ "tank/services/sonarr" ];
            summary = "nightly export of sonarr";
          };
        }
      '';
      description = ''
        Units (full names, `.service`) whose failure is notified: each gets
        `OnFailure=zpersist-notify@%n.service` and its entry in the
        notification context. zpersist adds sanoid, every syncoid command,
        the replication lag check, `zpersist-datasets.service` and each
        service's mount check itself; other modules and users add theirs
        here.
      '';
    };

    internal = {
      context = mkOption {
        type = types.attrsOf types.anything;
        readOnly = true;
        internal = true;
        description = "The notification context, exactly as written to ${contextPath}.";
      };
      contextPath = mkOption {
        type = types.str;
        readOnly = true;
        internal = true;
        default = contextPath;
        description = "Where the context file is installed.";
      };
    };
  };

  config = lib.mkMerge [
    { zpersist.notify.internal.context = context; }
    (mkIf cfg.enable (
      zlib.unit.service {
        name = "zpersist-notify@";
        description = "report the failure of %i";
        command = [
          "${config.zpersist.package}/bin/zpersist-notify"
          "--failed-unit"
          (zlib.unit.specifier "%i")
        ];
        contract = {
          flag = "--context";
          file = contextPath;
        };
        # Reading the journal, then every delivery at once, each bounded by
        # timeoutSeconds (curl and the kill 2 s apart), plus a minute: 2min
        # with the default.
        timeout = 2 * cfg.timeoutSeconds + 60;
        # journald's socket, and the network for ntfy, webhooks and an MTA;
        # the user's command gets the same.
        network = "ip";
        # Not ownCode: the user's command may be an interpreter that needs
        # writable-executable memory, and sendmail may be set-id.
        hardening = zlib.unit.profiles.common;
        serviceConfig = {
          # Runs as root: it reads the failed unit's journal and the ntfy
          # token file, and may run a setgid sendmail wrapper. It only needs
          # /tmp (a private one) to write to, except that a local MTA's
          # sendmail queues the mail under /var (postfix's maildrop, exim's
          # spool, ...): with email configured, /var stays writable
          # (ProtectSystem=full keeps /usr, /boot and /etc read-only).
          PrivateTmp = true;
          ProtectSystem = if cfg.email.to == [ ] then "strict" else "full";
          ProtectHome = true;
        };
      }
    ))
    (mkIf cfg.enable {
      environment.etc."zpersist/notify-context.json".text = builtins.toJSON context;

      # The hook on every unit that asked for it.
      systemd.services = mapAttrs' (
        unit: _: nameValuePair (removeSuffix ".service" unit) { onFailure = [ hookUnit ]; }
      ) (filterAttrs (unit: _: lib.hasSuffix ".service" unit) cfg.units);

      assertions = [
        {
          assertion = lib.all (lib.hasSuffix ".service") (lib.attrNames cfg.units);
          message = ''zpersist.notify.units: ${lib.concatStringsSep ", " (lib.filter (u: !lib.hasSuffix ".service" u) (lib.attrNames cfg.units))} must be full unit names ending in ".service".'';
        }
      ];
    })
  ];
}
