# ZFS's naming and property rules, applied to the module's options exactly as
# `ensure-datasets` applies them to the plan (Plan::parse in zpersist-core).
# The rules themselves are data: ./rules.json, generated from zpersist-core
# (crates/zpersist-core/src/rules.rs). tests/e2e/tests/nix_rules.rs fails
# when that file is stale and checks, value by value, that these functions
# and the Rust checks accept and refuse the same things.
#
# Each `...Problem` function returns why a value is refused, as the end of a
# sentence ("is empty"), or null when it is accepted.
{ lib }:
let
  inherit (lib)
    all
    any
    concatMapStringsSep
    concatStringsSep
    elem
    elemAt
    findFirst
    hasPrefix
    head
    length
    splitString
    stringLength
    ;

  data = builtins.fromJSON (builtins.readFile ./rules.json);
  inherit (data) names mountpoints properties sizes;

  quoted = xs: concatMapStringsSep ", " (x: "'${x}'") xs;

  # Whether `s` holds any of `chars` (strings of one character each, UTF-8).
  # builtins.split searches, so no `.*` is needed around the pattern.
  holdsAny =
    chars: s: any (c: builtins.length (builtins.split (lib.escapeRegex c) s) > 1) chars;

  # `digits` (decimal, leading zeros allowed) is at most `max` (decimal,
  # no leading zeros), compared as strings: both may exceed Nix's integers.
  stripZeros = digits: head (builtins.match "0*([0-9]+)" digits);
  digitsAtMost =
    max: digits:
    let
      d = stripZeros digits;
    in
    if stringLength d != stringLength max then stringLength d < stringLength max else d <= max;
  isDigits = s: builtins.match "[0-9]+" s != null;
  # A small decimal (no leading zeros after stripZeros) as an integer.
  toInt = digits: builtins.fromJSON (stripZeros digits);

  pow2 = n: lib.foldl' (acc: _: acc * 2) 1 (lib.range 1 n);
  # 2^64 as a float: the bound a fractional size stays below.
  twoTo64 = 4294967296.0 * 4294967296.0;

  # ------------------------------------------------------------- names

  reservedPoolPrefix = pool: findFirst (p: hasPrefix p pool) null names.reservedPoolPrefixes;
  characterList = "letters, digits, '_', '-', '.', ':' and spaces";

  componentProblem =
    c:
    if c == "" then
      "has an empty component (a leading, trailing or doubled '/')"
    else if elem c names.reservedComponents then
      "has the component \"${c}\", which ZFS reserves"
    else if builtins.match "${names.character}*" c == null then
      "has the component \"${c}\"; a component holds only ${characterList}"
    else
      null;

  # Problems of a name that are not about its pool, in Rust's order.
  componentsProblem =
    name:
    if name == "" then
      "is empty"
    else if holdsAny names.snapshotSeparators name then
      "contains ${
        concatStringsSep " or " (map (c: "'${c}'") names.snapshotSeparators)
      }, which ZFS reserves for snapshots and bookmarks"
    else
      findFirst (p: p != null) null (map componentProblem (splitString "/" name));

  lengthProblem =
    fullName:
    if stringLength fullName > names.maxLength then
      "is ${toString (stringLength fullName)} bytes long as the full name \"${fullName}\"; ZFS allows at most ${toString names.maxLength}"
    else
      null;

  # ------------------------------------------------------------- sizes

  # What crates/zpersist-core's parse_size makes of `value`: null when it
  # refuses it, else the parts, with `bytesUpTo max` giving the size in
  # bytes when it is at most `max` (a Nix integer) and null when larger.
  parseSize =
    value:
    let
      m = builtins.match "([0-9.]*)(.*)" value;
      number = elemAt m 0;
      suffix = lib.toUpper (elemAt m 1);
      unitSuffix = if lib.hasSuffix sizes.byteSuffix suffix then lib.removeSuffix sizes.byteSuffix suffix else suffix;
      unit = findFirst (u: u.suffix == unitSuffix) null sizes.units;
      parts = splitString "." number;
      whole = head parts;
      fraction = if length parts == 2 then elemAt parts 1 else null;
      # The fraction as a float; a trailing 0 keeps "1." valid JSON.
      fractionValue = builtins.fromJSON "0.${fraction}0";
      scale = pow2 unit.shift;
      shapeOk =
        number != ""
        && !(hasPrefix "." number)
        && length parts <= 2
        && unit != null
        && !(unit.suffix == "" && fraction != null);
      # The whole part times 2^shift fits in 64 bits; with a fraction, the
      # float sum stays below 2^64 (as Rust computes it).
      fits =
        digitsAtMost unit.maxWhole whole
        && (
          fraction == null
          || builtins.fromJSON "${stripZeros whole}.0" * scale + fractionValue * scale < twoTo64
        );
    in
    if !(shapeOk && fits) then
      null
    else
      {
        bytesUpTo =
          max:
          if !(digitsAtMost (toString (max / scale)) whole) then
            null
          else
            toInt whole * scale + (if fraction == null then 0 else builtins.floor (fractionValue * scale));
      };

  isPowerOfTwo = n: n > 0 && (n == 1 || (lib.mod n 2 == 0 && isPowerOfTwo (n / 2)));
  blockInRange =
    shape: value:
    let
      p = parseSize value;
      bytes = if p == null then null else p.bytesUpTo shape.max;
    in
    bytes != null && isPowerOfTwo bytes && bytes >= shape.min && bytes <= shape.max;

  isCount = value: isDigits value && digitsAtMost data.counts.max value;

  shapeAccepts =
    shape: value:
    {
      oneOf = elem value (shape.values or [ ]);
      sizeOrNone = value == "none" || parseSize value != null;
      blockSize = blockInRange shape value;
      blockSizeOrZero =
        let
          p = parseSize value;
        in
        (p != null && p.bytesUpTo 0 == 0) || blockInRange shape value;
      countOrNone = value == "none" || isCount value;
      count = isCount value;
      compression = elem value properties.compression;
      text = value != "";
    }
    .${shape.shape};

  shapeMessage =
    shape: value:
    {
      oneOf = "\"${value}\" is not one of ${concatStringsSep ", " (shape.values or [ ])}";
      sizeOrNone = "\"${value}\" is not a size like 512M, 20G or none (digits and a unit, no spaces or signs, within 64 bits)";
      blockSize = "\"${value}\" is not ${shape.description or ""}";
      blockSizeOrZero = "\"${value}\" is not ${shape.description or ""}";
      countOrNone = "\"${value}\" is not a whole number or none";
      count = "\"${value}\" is not a whole number";
      compression = "\"${value}\" is not a compression ZFS knows (on, off, lz4, zstd, zstd-1..19, zstd-fast, zstd-fast-N, gzip, gzip-1..9, zle, lzjb)";
      text = "the value is empty";
    }
    .${shape.shape};

  isUserProperty = lib.hasInfix ":";

  # A number as Rust's u32 parser takes one: an optional '+', digits.
  isNumericId =
    s:
    let
      m = builtins.match "[+]?([0-9]+)" s;
    in
    m != null && digitsAtMost data.owners.numericIdMax (head m);

  # ------------------------------------------------------------ exported

  poolNameProblem =
    pool:
    let
      prefix = reservedPoolPrefix pool;
    in
    if pool == "" then
      "is empty"
    else if lengthProblem pool != null then
      lengthProblem pool
    else if lib.hasInfix "/" pool then
      "contains '/': it must be the name of a pool, not of a dataset"
    else if componentsProblem pool != null then
      componentsProblem pool
    else if builtins.match "${names.poolFirstCharacter}.*" pool == null then
      "must start with a letter"
    else if prefix != null then
      "starts with \"${prefix}\", which ZFS reserves (${quoted names.reservedPoolPrefixes} start vdev keywords)"
    else
      null;

  mountpointProblem =
    mp:
    if holdsAny mountpoints.controlCharacters mp then
      "holds a control character (a newline or tab); ZFS prints mountpoints one per line"
    else if !(elem mp mountpoints.keywords || hasPrefix "/" mp) then
      "is not an absolute path, ${concatStringsSep " or " mountpoints.keywords}"
    else if any (c: elem c mountpoints.reservedComponents) (splitString "/" mp) then
      "has a '.' or '..' component; write the path it means, without them"
    else if stringLength mp > mountpoints.maxLength then
      "is ${toString (stringLength mp)} bytes long; paths are at most ${toString mountpoints.maxLength}"
    else
      null;

  ownerProblem =
    name:
    if name == "" || isNumericId name then
      "is not a user or group name but a number (or empty)"
    else if holdsAny (data.owners.forbiddenCharacters ++ mountpoints.controlCharacters) name then
      "is not a user or group name: it holds ${quoted data.owners.forbiddenCharacters} or a control character"
    else
      null;

  propertyNameProblem =
    property:
    if elem property properties.planFields then
      "has an option of its own"
    else if elem property properties.readOnly then
      "is read-only: ZFS computes it"
    else if isUserProperty property then
      if stringLength property > properties.user.maxNameLength then
        "is longer than ${toString properties.user.maxNameLength} bytes, the most a user property name may be"
      else if hasPrefix ":" property then
        "needs a module before its colon (e.g. \"com.example${property}\")"
      else if builtins.match "${properties.user.nameCharacter}*" property == null then
        "holds characters ZFS refuses in a user property name (only lowercase letters, digits and ':', '-', '.', '_')"
      else
        null
    else if !(properties.native ? ${property}) then
      "is not a settable ZFS property; a user property needs a colon (e.g. \"com.example:${property}\")"
    else
      null;

  valueProblem =
    property: value:
    let
      shape = properties.native.${property} or null;
    in
    if holdsAny properties.forbiddenValueCharacters value then
      "holds a tab or a line break, which no ZFS value may"
    else if isUserProperty property then
      if stringLength value > properties.user.maxValueLength then
        "is longer than ${toString properties.user.maxValueLength} bytes, the most a user property value may be"
      else
        null
    else if shape == null || shapeAccepts shape value then
      null
    else
      shapeMessage shape value;

  describe =
    property:
    let
      shape = properties.native.${property};
    in
    {
      oneOf = "one of ${concatStringsSep ", " (shape.values or [ ])}";
      sizeOrNone = "a size like 20G, or none";
      blockSize = shape.description or "";
      blockSizeOrZero = shape.description or "";
      countOrNone = "a whole number or none";
      count = "a whole number";
      compression = "a compression ZFS knows";
      text = "any text";
    }
    .${shape.shape};
in
{
  inherit data parseSize digitsAtMost;

  # Why `name`, a dataset name relative to the pool, is not a valid ZFS
  # name (besides its pool's rules and its length), or null.
  relativeNameProblem = componentsProblem;

  # Why the full name `pool/name` is not valid (its length), or null.
  fullNameProblem = lengthProblem;

  # Why `pool` is not a valid pool name, or null.
  inherit poolNameProblem;

  # Why `mountpoint` is not an absolute path, `none` or `legacy` ZFS takes.
  inherit mountpointProblem;

  # `/srv//a/` and `/srv/a` are one mountpoint.
  normalizePath = path: "/" + concatStringsSep "/" (lib.filter (c: c != "") (splitString "/" path));

  # The canmount values, and the one whose dataset may share its path with
  # another (it is never mounted).
  canmountValues = data.canmount.values;
  canmountSharesMountpoint = data.canmount.mayShareMountpoint;

  # A mode: 3 or 4 octal digits.
  modePattern = "[0-7]{${toString data.modes.minDigits},${toString data.modes.maxDigits}}";

  # Why `name` cannot be an owner or group, or null.
  inherit ownerProblem;

  # The longest full dataset name preseed takes (the names it derives from
  # it, with their snapshots, fit ZFS's limit).
  preseedMaxDatasetLength = data.preseed.maxDatasetLength;

  inherit (properties)
    createOnly
    readOnly
    planFields
    compression
    ;

  # Why `property` cannot be declared, or null.
  inherit propertyNameProblem;

  # Why `value` does not fit `property`, or null.
  inherit valueProblem;

  # An option type taking exactly the values `ensure-datasets` accepts for
  # the native `property`.
  propertyType =
    property:
    lib.types.addCheck lib.types.str (v: valueProblem property v == null)
    // {
      description = "ZFS ${property} (${describe property})";
    };
}
