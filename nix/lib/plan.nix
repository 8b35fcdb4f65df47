# Rendering `zpersist.datasets` into the plan `ensure-datasets --plan` reads
# (docs/plan-format.md, version 1).
{ lib }:
let
  inherit (lib)
    filterAttrs
    mapAttrsToList
    optionalAttrs
    sort
    groupBy
    attrValues
    filter
    ;
  names = import ./names.nix { inherit lib; };
  rules = import ./rules.nix { inherit lib; };
  encryption = import ./encryption.nix { inherit lib; };
in
rec {
  # One dataset of the plan. `key` is the name relative to the pool, `d` the
  # evaluated `zpersist.datasets.<key>`. Null options are left out: absent in
  # the plan means "inherit", which is what null means in the module.
  datasetEntry =
    pool: key: d:
    let
      typedProperties = filterAttrs (_: v: v != null) {
        inherit (d) recordsize compression quota;
      };
    in
    {
      name = "${pool}/${key}";
      properties = d.properties // typedProperties // encryption.properties (d.encryption or null);
    }
    // optionalAttrs (d.mountpoint != null) { inherit (d) mountpoint; }
    // optionalAttrs (d.canmount != null) { inherit (d) canmount; }
    // optionalAttrs (d.owner != null) { inherit (d) owner; }
    // optionalAttrs (d.group != null) { inherit (d) group; }
    // optionalAttrs (d.mode != null) { inherit (d) mode; }
    // optionalAttrs d.allowMountpointChange { allowMountpointChange = true; };

  # The whole plan, datasets sorted by name so that the rendered file (and
  # therefore the unit) only changes when the declaration does.
  render =
    { pool, datasets }:
    {
      version = 1;
      inherit pool;
      datasets = sort (a: b: a.name < b.name) (mapAttrsToList (datasetEntry pool) datasets);
    };

  # The mountpoint ZFS gives `name` from the plan's datasets: its own, or
  # inherited from the nearest declared ancestor (`none` and `legacy` are
  # inherited as they are, a path gets the remaining components appended;
  # paths are normalized, `/srv//a/` is `/srv/a`). Null when no declared
  # dataset decides it. Plan::declared_mountpoint in zpersist-core.
  effectiveMountpoint =
    byName: name:
    let
      go =
        n: suffix:
        if byName ? ${n} && byName.${n} ? mountpoint then
          let
            mp = byName.${n}.mountpoint;
          in
          if !(lib.hasPrefix "/" mp) then mp else rules.normalizePath (mp + suffix)
        else
          let
            parent = names.parentOf n;
          in
          if parent == null then null else go parent ("/" + names.baseNameOf n + suffix);
    in
    go name "";

  # Groups of datasets (full names) that would mount on one path, as
  # `{ path = [ names ]; }`. One would hide the other's files. A dataset
  # whose canmount is off is never mounted, so it hides nothing: a parent
  # may share its path with the child that mounts there.
  duplicateMountpoints =
    plan:
    let
      byName = lib.listToAttrs (map (d: lib.nameValuePair d.name d) plan.datasets);
      mounting = filter (d: (d.canmount or null) != rules.canmountSharesMountpoint) plan.datasets;
      withPaths = filter (x: x.path != null && lib.hasPrefix "/" x.path) (
        map (d: {
          inherit (d) name;
          path = effectiveMountpoint byName d.name;
        }) mounting
      );
      grouped = groupBy (x: x.path) withPaths;
    in
    lib.mapAttrs (_: xs: map (x: x.name) xs) (filterAttrs (_: xs: builtins.length xs > 1) grouped);
}
