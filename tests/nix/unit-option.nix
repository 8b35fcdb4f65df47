# nixos/lib/systemd-unit-options.nix's unitOption: definitions that are
# lists are concatenated (repeatable keys such as ExecStartPre), any other
# value must be defined once or identically (two modules giving
# TimeoutStartSec different values is an error, as on NixOS).
{ lib }:
lib.mkOptionType {
  name = "systemd option";
  merge =
    loc: defs:
    let
      defs' = lib.filterOverrides defs;
    in
    if builtins.isList (builtins.head defs').value then
      lib.concatMap (
        def:
        if builtins.isList def.value then
          def.value
        else
          throw "The definitions for systemd unit options should be either all lists or all non-lists, but for ${lib.showOption loc} they are mixed"
      ) defs'
    else
      lib.mergeEqualOption loc defs';
}
