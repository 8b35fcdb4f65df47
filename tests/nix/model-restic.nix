# TEST-ONLY: a model of nixpkgs' services.restic.backups
# (nixos/modules/services/backup/restic.nix, NixOS 25.05), written from
# what that module does: the same options, types and defaults (no
# free-form attributes: an option nixpkgs lacks is refused, as on NixOS),
# its assertions, and its units. For each job `<name>`:
# - restic-backups-<name>.service: Type=oneshot, restartIfChanged = false,
#   after/wants network-online.target, environment RESTIC_PASSWORD_FILE,
#   RESTIC_REPOSITORY (or _FILE), RESTIC_CACHE_DIR; ExecStart lines
#   `restic backup <extraBackupArgs> --exclude-file=<file>
#   --files-from=/run/restic-backups-<name>/includes` (the includes are
#   written by preStart from `paths`), then, with pruneOpts, `restic unlock`
#   and `restic forget --prune <pruneOpts>`, then `restic check` when
#   runCheck; preStart also runs backupPrepareCommand and `init` when
#   initialize; postStop runs backupCleanupCommand and removes the
#   includes; User=, RuntimeDirectory, CacheDirectory (0700), PrivateTmp,
#   EnvironmentFile= from environmentFile.
# - restic-backups-<name>.timer: wantedBy timers.target, the job's
#   timerConfig; no timer when timerConfig is null.
# nixpkgs joins the list options into command lines unquoted; so does the
# model (the zpersist module refuses paths that would split).
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  unitOption = import ./unit-option.nix { inherit lib; };
  restic = "${pkgs.restic}/bin/restic";
in
{
  options.services.restic.backups = mkOption {
    type = types.attrsOf (
      types.submodule (
        { name, config, ... }:
        {
          options = {
            passwordFile = mkOption { type = types.str; };
            environmentFile = mkOption {
              type = types.nullOr types.str;
              default = null;
            };
            repository = mkOption {
              type = types.nullOr types.str;
              default = null;
            };
            repositoryFile = mkOption {
              type = types.nullOr types.path;
              default = null;
            };
            inhibitsSleep = mkOption {
              type = types.bool;
              default = false;
            };
            paths = mkOption {
              type = types.nullOr (types.listOf types.str);
              default = [ ];
            };
            command = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            exclude = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            timerConfig = mkOption {
              type = types.nullOr (types.attrsOf unitOption);
              default = {
                OnCalendar = "daily";
                Persistent = true;
              };
            };
            user = mkOption {
              type = types.str;
              default = "root";
            };
            extraBackupArgs = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            extraOptions = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            initialize = mkOption {
              type = types.bool;
              default = false;
            };
            pruneOpts = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            runCheck = mkOption {
              type = types.bool;
              default = builtins.length config.checkOpts > 0;
            };
            checkOpts = mkOption {
              type = types.listOf types.str;
              default = [ ];
            };
            dynamicFilesFrom = mkOption {
              type = types.nullOr types.str;
              default = null;
            };
            backupPrepareCommand = mkOption {
              type = types.nullOr types.str;
              default = null;
            };
            backupCleanupCommand = mkOption {
              type = types.nullOr types.str;
              default = null;
            };
            createWrapper = mkOption {
              type = types.bool;
              default = true;
            };
            progressFps = mkOption {
              type = types.nullOr types.number;
              default = null;
            };
          };
        }
      )
    );
    default = { };
  };

  config = {
    assertions = lib.concatLists (
      lib.mapAttrsToList (n: v: [
        {
          assertion = (v.repository == null) != (v.repositoryFile == null);
          message = "services.restic.backups.${n}: exactly one of repository or repositoryFile should be set";
        }
        {
          assertion = !(((v.paths != null && v.paths != [ ]) || v.dynamicFilesFrom != null) && v.command != [ ]);
          message = "services.restic.backups.${n}: cannot do both a command backup and a file backup at the same time.";
        }
      ]) config.services.restic.backups
    );

    systemd.services = lib.mapAttrs' (
      name: backup:
      let
        extraOptions = lib.concatMapStrings (arg: " -o ${arg}") backup.extraOptions;
        resticCmd = restic + extraOptions;
        excludeFlags = lib.optional (backup.exclude != [ ]) "--exclude-file=${pkgs.writeText "exclude-patterns" (lib.concatStringsSep "\n" backup.exclude)}";
        filesFromTmpFile = "/run/restic-backups-${name}/includes";
        fileBackup = backup.dynamicFilesFrom != null || (backup.paths != null && backup.paths != [ ]);
        commandBackup = backup.command != [ ];
        doBackup = fileBackup || commandBackup;
        pruneCmd = lib.optionals (backup.pruneOpts != [ ]) [
          "${resticCmd} unlock"
          "${resticCmd} forget --prune ${lib.concatStringsSep " " backup.pruneOpts}"
        ];
        checkCmd = lib.optional backup.runCheck "${resticCmd} check ${lib.concatStringsSep " " backup.checkOpts}";
        script = n: text: pkgs.writeShellScript n text;
      in
      lib.nameValuePair "restic-backups-${name}" (
        {
          environment = {
            RESTIC_CACHE_DIR = "/var/cache/restic-backups-${name}";
            RESTIC_PASSWORD_FILE = backup.passwordFile;
            RESTIC_REPOSITORY = backup.repository;
            RESTIC_REPOSITORY_FILE = backup.repositoryFile;
          };
          path = [ pkgs.openssh ];
          restartIfChanged = false;
          wants = [ "network-online.target" ];
          after = [ "network-online.target" ];
          serviceConfig =
            {
              Type = "oneshot";
              ExecStart =
                lib.optional doBackup "${resticCmd} backup ${
                  lib.concatStringsSep " " (
                    backup.extraBackupArgs
                    ++ lib.optionals fileBackup (excludeFlags ++ [ "--files-from=${filesFromTmpFile}" ])
                    ++ lib.optionals commandBackup ([ "--stdin-from-command=true --" ] ++ backup.command)
                  )
                }"
                ++ pruneCmd
                ++ checkCmd;
              User = backup.user;
              RuntimeDirectory = "restic-backups-${name}";
              CacheDirectory = "restic-backups-${name}";
              CacheDirectoryMode = "0700";
              PrivateTmp = true;
            }
            // lib.optionalAttrs (backup.environmentFile != null) {
              EnvironmentFile = backup.environmentFile;
            };
        }
        // lib.optionalAttrs (backup.initialize || doBackup || backup.backupPrepareCommand != null) {
          preStart = lib.concatStrings [
            (lib.optionalString (backup.backupPrepareCommand != null) "${script "backupPrepareCommand" backup.backupPrepareCommand}\n")
            (lib.optionalString backup.initialize "${resticCmd} cat config > /dev/null || ${resticCmd} init\n")
            (lib.optionalString (backup.paths != null && backup.paths != [ ]) "cat ${pkgs.writeText "staticPaths" (lib.concatLines backup.paths)} >> ${filesFromTmpFile}\n")
            (lib.optionalString (backup.dynamicFilesFrom != null) "${script "dynamicFilesFromScript" backup.dynamicFilesFrom} >> ${filesFromTmpFile}\n")
          ];
        }
        // lib.optionalAttrs (doBackup || backup.backupCleanupCommand != null) {
          postStop = lib.concatStrings [
            (lib.optionalString (backup.backupCleanupCommand != null) "${script "backupCleanupCommand" backup.backupCleanupCommand}\n")
            (lib.optionalString fileBackup "rm ${filesFromTmpFile}\n")
          ];
        }
      )
    ) config.services.restic.backups;

    systemd.timers = lib.mapAttrs' (
      name: backup:
      lib.nameValuePair "restic-backups-${name}" {
        wantedBy = [ "timers.target" ];
        inherit (backup) timerConfig;
      }
    ) (lib.filterAttrs (_: backup: backup.timerConfig != null) config.services.restic.backups);
  };
}
