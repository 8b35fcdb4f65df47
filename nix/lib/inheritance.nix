# The one place where per-dataset settings are inherited down the dataset
# tree: a snapshot policy or a list of replication targets set on a dataset
# applies to every declared dataset below it, unless a nearer ancestor (or
# the dataset itself) says otherwise.
#
# Names are relative to the pool ("services/sonarr"). Ancestors that are not
# declared are walked through: "a/b/c" inherits from "a" when "a/b" is not
# declared. `null` means "not set here, ask the parent"; any other value,
# including `[ ]`, decides (so `replicateTo = [ ]` opts a subtree out).
{ lib }:
let
  names = import ./names.nix { inherit lib; };
in
rec {
  # The value of `field` that applies to `key`: its own when not null,
  # otherwise its nearest declared ancestor's; null when none sets it.
  nearest =
    datasets: field: key:
    let
      own = if datasets ? ${key} then datasets.${key}.${field} or null else null;
      parent = names.parentOf key;
    in
    if own != null then
      own
    else if parent == null then
      null
    else
      nearest datasets field parent;

  # `{ <key> = value; }` for every declared dataset: the effective value of
  # `field` after inheritance (null when nothing applies).
  resolve = datasets: field: lib.mapAttrs (key: _: nearest datasets field key) datasets;
}
