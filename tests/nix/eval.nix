# Evaluates the zpersist modules as NixOS would, with nixpkgs' lib only:
#
#   nix-instantiate --eval --strict --json \
#     --extra-experimental-features 'nix-command flakes' --option substituters '' \
#     tests/nix/eval.nix --argstr host forge -A plan
#
# host:        an example host under examples/hosts
# case:        an entry of tests/nix/cases.nix (a config breaking one rule)
# extraModule: any further module
# lib:         nixpkgs' lib; by default the one flake.lock pins (./lib.nix)
{
  host ? null,
  case ? null,
  extraModule ? { },
  lib ? import ./lib.nix,
}:
let
  root = ../..;
  zlib = import (root + "/nix/lib") { inherit lib; };
  # Each concern keeps its rule-breaking cases in its own file
  # (cases.nix for datasets, cases-<concern>.nix for the others); names are
  # unique across files.
  caseFiles = lib.filterAttrs (name: type: type == "regular" && lib.hasPrefix "cases" name && lib.hasSuffix ".nix" name) (builtins.readDir ./.);
  casesByFile = lib.mapAttrs (name: _: import (./. + "/${name}")) caseFiles;
  cases = lib.foldl' (acc: file: acc // file) { } (lib.attrValues casesByFile);

  evaluated = lib.evalModules {
    modules =
      [
        ./stubs.nix
        (root + "/nix/modules")
        { _module.args.pkgs = import ./pkgs.nix; }
        extraModule
      ]
      # A host made of a case or of a test's module alone gets what every
      # ZFS host has (the example hosts say it themselves, and are checked
      # without this).
      ++ lib.optional (host == null) {
        boot.supportedFilesystems.zfs = lib.mkDefault true;
        networking.hostId = lib.mkDefault "7a706572";
      }
      ++ lib.optional (host != null) (root + "/examples/hosts/${host}")
      ++ lib.optional (case != null) (cases.${case} or (throw "no tests/nix/cases*.nix has a case ${case}")).module;
  };
  inherit (evaluated) config options;
in
{
  inherit config options;

  # The plan as data, and the text of the plan file the unit runs with
  # (reading it needs --read-write-mode).
  plan = config.zpersist.internal.plan;
  planFile = config.zpersist.internal.planFile;
  planFileText = builtins.readFile config.zpersist.internal.planFile;

  # The unit as the module defines it (the stubs' empty list defaults left
  # out), or null when zpersist is disabled.
  unit =
    if config.systemd.services ? zpersist-datasets then
      lib.filterAttrs (_: v: v != [ ]) config.systemd.services.zpersist-datasets
    else
      null;

  # Everything a host evaluates to that a booted machine needs besides the
  # packages (tests/e2e/src/machine.rs installs it into a container): the
  # units, /etc, tmpfiles rules, users and groups, and the plan (reading
  # the plan file needs --read-write-mode).
  machine = {
    services = config.systemd.services;
    inherit (config.systemd) timers;
    etc = lib.mapAttrs (_: e: { text = e.text or null; source = if e ? source then toString e.source else null; }) config.environment.etc;
    tmpfiles = config.systemd.tmpfiles.rules;
    users = lib.mapAttrs (_: u: { group = u.group or null; extraGroups = u.extraGroups or [ ]; isSystemUser = u.isSystemUser or false; }) config.users.users;
    groups = lib.attrNames config.users.groups;
    # What /run/current-system/sw holds.
    systemPackages = map toString config.environment.systemPackages;
    plan = config.zpersist.internal.plan;
    failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
    inherit (config) warnings;
  };

  # What the case expects (`expect` / `expectWarning`), without its module.
  caseSpec = if case == null then null else removeAttrs cases.${case} [ "module" ];
  inherit cases;
  caseNames = builtins.attrNames cases;
  caseNamesByFile = lib.mapAttrs (_: builtins.attrNames) casesByFile;

  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
  inherit (config) warnings;

  optionsMarkdown = zlib.docs.optionsMarkdown {
    inherit options;
    root = toString root;
  };
}
