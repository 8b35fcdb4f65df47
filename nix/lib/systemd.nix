# systemd facts the modules share with NixOS.
{ lib }:
{
  # A unit name as NixOS types `after`, `before`, `wantedBy`, ...
  # (nixos/lib/systemd-lib.nix: unitNameType): zpersist's options that end
  # up in those lists check the same, so a bare "syncthing" is refused at
  # zpersist's option, not as a type error inside systemd.services.
  unitName =
    lib.types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)"
    // {
      description = "systemd unit name with its suffix (like \"sonarr.service\")";
    };
}
