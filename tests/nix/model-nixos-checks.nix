# TEST-ONLY: checks NixOS itself makes on a host that zpersist's examples
# and users' hosts must pass, written from nixpkgs' behaviour:
# - nixos/modules/tasks/filesystems/zfs.nix: with ZFS enabled
#   (boot.supportedFilesystems.zfs or boot.initrd.supportedFilesystems.zfs),
#   networking.hostId must be set;
# - nixpkgs refuses to evaluate an unfree package (Plex) unless
#   nixpkgs.config.allowUnfree is true or allowUnfreePredicate accepts it:
#   on NixOS an evaluation error, here a failed assertion with its message.
{ config, lib, ... }:
let
  zfsEnabled =
    (config.boot.supportedFilesystems.zfs or false) || (config.boot.initrd.supportedFilesystems.zfs or false);
  unfreeAllowed =
    name:
    (config.nixpkgs.config.allowUnfree or false)
    || (config.nixpkgs.config ? allowUnfreePredicate && config.nixpkgs.config.allowUnfreePredicate {
      pname = name;
      name = "${name}-1.0";
    });
in
{
  assertions = [
    {
      assertion = !zfsEnabled || config.networking.hostId != null;
      message = "ZFS requires networking.hostId to be set";
    }
    {
      assertion = !config.services.plex.enable || unfreeAllowed "plexmediaserver";
      message = "Package 'plexmediaserver' has an unfree license ('unfree'), refusing to evaluate (nixpkgs.config.allowUnfree or allowUnfreePredicate).";
    }
  ];
}
