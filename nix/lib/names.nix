# Walking dataset names. The naming rules themselves (what ZFS accepts) are
# in ./rules.nix, from zpersist-core's data.
{ lib }:
let
  inherit (lib) splitString;
in
{
  # The parent of a full dataset name, or null for a pool's root dataset.
  parentOf =
    name:
    let
      parts = splitString "/" name;
    in
    if builtins.length parts < 2 then null else lib.concatStringsSep "/" (lib.init parts);

  baseNameOf = name: lib.last (splitString "/" name);
}
