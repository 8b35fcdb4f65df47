# Native ZFS encryption as the modules see it (docs/encryption.md): the
# properties a declared `zpersist.datasets.<name>.encryption` puts in the
# plan, which datasets are encrypted (their own encryption root, or
# inherited from the nearest declared ancestor that has one), and the
# syncoid send options that keep them encrypted on every target.
{ lib }:
let
  names = import ./names.nix { inherit lib; };
in
rec {
  # The plan's properties of a declared encryption (null: none).
  properties =
    e:
    lib.optionalAttrs (e != null) {
      encryption = e.algorithm;
      inherit (e) keyformat keylocation;
    };

  # The key (relative to the pool) of the encryption root `key` is under
  # by declaration: itself or its nearest declared ancestor with
  # `encryption` set; null when none is.
  rootOf =
    datasets: key:
    if datasets ? ${key} && (datasets.${key}.encryption or null) != null then
      key
    else
      let
        parent = names.parentOf key;
      in
      if parent == null then null else rootOf datasets parent;

  # The declared keys that are encrypted, roots and inheriting children.
  encryptedKeys = datasets: lib.filter (key: rootOf datasets key != null) (lib.attrNames datasets);

  # syncoid `--sendoptions` for a dataset: raw (`w`) whenever it is
  # encrypted, whatever else the target asks for.
  sendOptions =
    encrypted: options:
    if encrypted && !(lib.hasInfix "w" options) then "w${options}" else options;
}
