# TEST-ONLY: the argv of each syncoid command's ExecStart as nixpkgs'
# syncoid module builds it (nixos/modules/services/backup/syncoid.nix),
# written from that module's behaviour: syncoid, the common arguments
# (unless useCommonArgs is off), -r when recursive, --sshkey KEY, the
# command's extraArgs, then --sendoptions S --recvoptions R
# --no-privilege-elevation SOURCE TARGET. `syncoid` is the program to put
# first (the tests use the one on PATH).
{
  lib,
  syncoid,
  program ? "syncoid",
}:
lib.mapAttrs (
  _: c:
  [ program ]
  ++ lib.optionals c.useCommonArgs syncoid.commonArgs
  ++ lib.optional c.recursive "-r"
  ++ lib.optionals (c.sshKey != null) [
    "--sshkey"
    c.sshKey
  ]
  ++ c.extraArgs
  ++ [
    "--sendoptions"
    c.sendOptions
    "--recvoptions"
    c.recvOptions
    "--no-privilege-elevation"
    c.source
    c.target
  ]
) syncoid.commands
