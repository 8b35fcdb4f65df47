# Checks that fail the build with a message saying what to change, before a
# plan `ensure-datasets` would refuse (or misapply) reaches a machine. The
# ZFS rules (names, properties, values, shared mountpoints) are
# zpersist-core's, as data (nix/lib/rules.nix); the others need NixOS's
# context (declared users, other pools, ZFS enabled, tmpfiles).
{ config, lib, ... }:
let
  inherit (lib)
    attrNames
    concatMap
    concatStringsSep
    elem
    filter
    hasPrefix
    head
    intersectLists
    mapAttrsToList
    optional
    splitString
    subtractLists
    ;
  zlib = import ../lib { inherit lib; };
  inherit (zlib) rules;
  cfg = config.zpersist;

  opt = key: ''zpersist.datasets."${key}"'';
  quoteList = xs: concatStringsSep ", " (map (x: ''"${x}"'') xs);

  # Declared by NixOS itself on a real system; listed so that a module
  # evaluated without NixOS's users module accepts them too.
  builtinUsers = [
    "root"
    "nobody"
  ];
  builtinGroups = [
    "root"
    "nogroup"
    "wheel"
    "users"
  ];

  poolProblem = if cfg.pool == null then null else rules.poolNameProblem cfg.pool;
  # Other pools this host imports: a dataset named after one of them is
  # meant for that pool, not for zpersist.pool.
  otherPools = filter (p: p != cfg.pool) (config.boot.zfs.extraPools or [ ]);

  perDataset =
    key: d:
    let
      nameProblem = rules.relativeNameProblem key;
      fullProblem = if cfg.pool == null then null else rules.fullNameProblem "${cfg.pool}/${key}";
      firstComponent = head (splitString "/" key);
      repeatsPool = cfg.pool != null && (key == cfg.pool || hasPrefix "${cfg.pool}/" key);
      inOtherPool = elem firstComponent otherPools;
      createOnlySet = intersectLists rules.createOnly (attrNames d.properties);
      unacknowledged = subtractLists d.acknowledgeCreateOnly createOnlySet;
      ownFieldInProperties = intersectLists rules.planFields (attrNames d.properties);
      typedTwice = filter (p: d.${p} != null && d.properties ? ${p}) zlib.properties.typed;
      # Names ZFS refuses (mountpoint and canmount have their own check
      # above), then the values of the names it takes.
      badNames = lib.filterAttrs (p: _: !(elem p rules.planFields) && rules.propertyNameProblem p != null) d.properties;
      badValues = lib.filterAttrs (p: v: rules.propertyNameProblem p == null && rules.valueProblem p v != null) d.properties;
      badOwners = filter (x: x.value != null && rules.ownerProblem x.value != null) [
        { field = "owner"; value = d.owner; }
        { field = "group"; value = d.group; }
      ];
    in
    [
      {
        assertion = !(repeatsPool || inOtherPool || hasPrefix "/" key);
        message =
          if inOtherPool then
            ''${opt key} lies outside zpersist.pool ("${toString cfg.pool}"): "${firstComponent}" is another pool of this host. zpersist manages datasets of one pool; declare this one elsewhere or change zpersist.pool.''
          else
            ''${opt key} lies outside zpersist.pool ("${toString cfg.pool}"): names are relative to the pool, so this would be "${toString cfg.pool}/${key}". Write the name without the pool (or a leading '/'), like ${opt (lib.removePrefix "/" (lib.removePrefix "${toString cfg.pool}/" key))}.'';
      }
      {
        assertion = nameProblem == null;
        message = ''${opt key} is not a valid ZFS dataset name: it ${toString nameProblem}.'';
      }
      {
        assertion = fullProblem == null;
        message = ''${opt key} is not a valid ZFS dataset name: it ${toString fullProblem}.'';
      }
      {
        assertion = unacknowledged == [ ];
        message = ''${opt key}.properties sets ${quoteList unacknowledged}, which ZFS only accepts when a dataset is created: ensure-datasets applies it to a new dataset, but on an existing dataset with another value it reports the difference and fails instead of changing it. If that is what you want, add ${quoteList unacknowledged} to ${opt key}.acknowledgeCreateOnly.'';
      }
      {
        assertion = ownFieldInProperties == [ ];
        message = ''${opt key}.properties sets ${quoteList ownFieldInProperties}; use the option ${opt key}.${head (ownFieldInProperties ++ [ "" ])} instead (the plan keeps one place per value).'';
      }
      {
        # ensure-datasets rejects the plan otherwise: there is no directory
        # zpersist mounts to give an owner or mode to.
        assertion =
          !(lib.elem d.mountpoint [ "none" "legacy" ]) || (d.owner == null && d.group == null && d.mode == null);
        message = ''${opt key} has mountpoint = "${toString d.mountpoint}" and an owner, group or mode: they need a directory zpersist mounts. Set them on the datasets that mount, or drop them here.'';
      }
      {
        assertion = badNames == { };
        message = concatStringsSep "\n" (
          mapAttrsToList (p: _: ''${opt key}.properties."${p}" ${rules.propertyNameProblem p}.'') badNames
        );
      }
      {
        assertion = badValues == { };
        message = concatStringsSep "\n" (
          mapAttrsToList (p: v: ''${opt key}.properties."${p}": ${rules.valueProblem p v}.'') badValues
        );
      }
      {
        assertion = badOwners == [ ];
        message = concatStringsSep "\n" (
          map (x: ''${opt key}.${x.field} = "${x.value}" ${rules.ownerProblem x.value}.'') badOwners
        );
      }
      {
        assertion = typedTwice == [ ];
        message = ''${opt key} sets ${quoteList typedTwice} both as an option and in .properties; keep only ${opt key}.${head (typedTwice ++ [ "" ])}.'';
      }
    ];

  # boot.supportedFilesystems is an attribute set since NixOS 23.11 and a
  # list before; ZFS in the initrd (a root pool) counts too.
  fsEnabled =
    fs: name: if builtins.isList fs then elem name fs else fs.${name} or false;
  zfsEnabled =
    fsEnabled (config.boot.supportedFilesystems or { }) "zfs"
    || fsEnabled (config.boot.initrd.supportedFilesystems or { }) "zfs";

  duplicates = if cfg.pool == null then { } else zlib.plan.duplicateMountpoints cfg.internal.plan;

  # Modes systemd.tmpfiles.rules gives each path ("d"/"D"/"z"/"Z" lines),
  # zpersist's own rules and other modules' alike: two different modes for
  # one path are set back and forth at every boot.
  tmpfilesModes =
    let
      parse =
        line:
        let
          m = builtins.match "[dDzZ] +'?([^' ]+)'? +([0-7]{3,4}) .*" line;
        in
        if m == null then null else { path = builtins.elemAt m 0; mode = lib.removePrefix "0" (builtins.elemAt m 1); };
      parsed = lib.filter (r: r != null) (map parse (config.systemd.tmpfiles.rules or [ ]));
    in
    lib.foldl' (acc: r: acc // { ${r.path} = lib.unique ((acc.${r.path} or [ ]) ++ [ r.mode ]); }) { } parsed;
  fightingModes = lib.filterAttrs (_: modes: builtins.length modes > 1) tmpfilesModes;

  # owner/group that are neither declared nor built in.
  undeclared = concatMap (
    key:
    let
      d = cfg.datasets.${key};
    in
    optional (d.owner != null && !(config.users.users ? ${d.owner}) && !(elem d.owner builtinUsers)) {
      what = ''${opt key}.owner is "${d.owner}", which is not declared in users.users'';
      fix = ''users.users."${d.owner}"'';
    }
    ++ optional (
      d.group != null && !(config.users.groups ? ${d.group}) && !(elem d.group builtinGroups)
    ) {
      what = ''${opt key}.group is "${d.group}", which is not declared in users.groups'';
      fix = ''users.groups."${d.group}"'';
    }
  ) (attrNames cfg.datasets);
in
{
  config = lib.mkIf cfg.enable {
    assertions =
      [
        {
          assertion = cfg.pool != null;
          message = ''zpersist.pool is not set: set it to the pool the datasets of zpersist.datasets live in, e.g. zpersist.pool = "tank";'';
        }
        {
          # Without it NixOS builds no ZFS support: no module, no zfs command,
          # no zfs-import/zfs-mount units for zpersist's to follow.
          assertion = zfsEnabled;
          message = ''zpersist needs ZFS, but this host does not enable it: set boot.supportedFilesystems.zfs = true; (and networking.hostId, which NixOS requires with ZFS; e.g. the output of `head -c4 /dev/urandom | od -A none -t x4`).'';
        }
        {
          assertion = poolProblem == null;
          message = ''zpersist.pool = "${toString cfg.pool}" is not a valid pool name: it ${toString poolProblem}.'';
        }
      ]
      ++ concatMap (key: perDataset key cfg.datasets.${key}) (attrNames cfg.datasets)
      ++ mapAttrsToList (path: names: {
        assertion = false;
        message = ''zpersist.datasets: ${quoteList names} would all mount on ${path}; one would hide the other's files. Give each its own mountpoint (a dataset without one inherits its parent's path plus its own name).'';
      }) duplicates
      ++ mapAttrsToList (path: modes: {
        assertion = false;
        message = ''systemd.tmpfiles.rules give ${path} the modes ${concatStringsSep " and " (map (m: "0" + m) modes)} (one from zpersist's mode for the dataset mounted there, one from another module, such as the service's own): every boot one would undo the other. Set the zpersist mode to the service's (zpersist.services.<name>.mode or zpersist.datasets.<name>.mode).'';
      }) fightingModes
      ++ map (u: {
        assertion = cfg.allowUndeclaredOwners;
        message = "${u.what}. Declare ${u.fix} (or enable the service module that declares it), fix the name, or set zpersist.allowUndeclaredOwners = true if it comes from elsewhere (LDAP, systemd-sysusers).";
      }) undeclared;

    warnings = lib.optionals cfg.allowUndeclaredOwners (
      map (
        u: "${u.what}; zpersist.allowUndeclaredOwners is set, so ensure-datasets will look it up when it runs and fail if it does not exist."
      ) undeclared
    );
  };
}
