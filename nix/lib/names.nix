# ZFS naming rules, mirrored from what `zfs create` accepts (and what
# `ensure-datasets` checks again before running anything).
{ lib }:
let
  inherit (lib)
    filter
    hasInfix
    hasPrefix
    hasSuffix
    head
    splitString
    stringLength
    elem
    ;

  # A component starts with a letter or digit and holds only letters, digits
  # and `_ - . :` or spaces.
  componentRegex = "[A-Za-z0-9][A-Za-z0-9_.: -]*";
  poolRegex = "[A-Za-z][A-Za-z0-9_.: -]*";

  # Names `zpool create` refuses because they are vdev keywords.
  reservedPoolNames = [
    "mirror"
    "raidz"
    "raidz1"
    "raidz2"
    "raidz3"
    "draid"
    "spare"
    "log"
    "cache"
    "special"
    "dedup"
  ];
in
rec {
  # Longest dataset name ZFS accepts (ZFS_MAX_DATASET_NAME_LEN minus the NUL).
  maxNameLength = 255;

  # Why `name` (a dataset name relative to the pool) is not a valid ZFS
  # name, or null when it is.
  relativeNameProblem =
    name:
    if name == "" then
      "is empty"
    else if hasInfix "@" name || hasInfix "#" name then
      "contains '@' or '#', which ZFS reserves for snapshots and bookmarks"
    else if hasPrefix "/" name then
      "starts with '/'"
    else if hasSuffix "/" name then
      "ends with '/'"
    else if hasInfix "//" name then
      "has an empty component ('//')"
    else
      let
        bad = filter (c: builtins.match componentRegex c == null) (splitString "/" name);
      in
      if bad != [ ] then
        "has the component \"${head bad}\"; a component must start with a letter or digit and hold only letters, digits, '_', '-', '.', ':' and spaces"
      else
        null;

  # Why the full name `pool/name` is not valid, or null.
  fullNameProblem =
    fullName:
    if stringLength fullName > maxNameLength then
      "is ${toString (stringLength fullName)} bytes long as the full name \"${fullName}\"; ZFS allows at most ${toString maxNameLength}"
    else
      null;

  # Why `pool` is not a valid pool name, or null.
  poolNameProblem =
    pool:
    if pool == "" then
      "is empty"
    else if hasInfix "/" pool then
      "contains '/': it must be the name of a pool, not of a dataset"
    else if builtins.match poolRegex pool == null then
      "must start with a letter and hold only letters, digits, '_', '-', '.', ':' and spaces"
    else if elem pool reservedPoolNames || builtins.match "c[0-9].*" pool != null then
      "is reserved by ZFS"
    else
      null;

  # The parent of a full dataset name, or null for a pool's root dataset.
  parentOf =
    name:
    let
      parts = splitString "/" name;
    in
    if builtins.length parts < 2 then null else lib.concatStringsSep "/" (lib.init parts);

  baseNameOf = name: lib.last (splitString "/" name);
}
