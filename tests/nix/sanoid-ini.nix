# TEST-ONLY: renders services.sanoid into sanoid.conf the way nixpkgs'
# sanoid module does (nixos/modules/services/backup/sanoid.nix), so that the
# tests can run the real sanoid on the configuration zpersist generates.
# Written from that module's behaviour, not its code:
#   - settings = templates as [template_<name>] sections, plus the datasets;
#   - one `key=value` per setting; null settings and the camelCase aliases
#     (useTemplate, processChildrenOnly) are left out, lists are joined with
#     ",", booleans are true/false (sanoid normalises true/false/yes/no);
#   - sections in name order.
{ lib, sanoid }:
let
  inherit (lib) concatStringsSep mapAttrsToList filterAttrs;
  value =
    v:
    if builtins.isList v then
      concatStringsSep "," v
    else if builtins.isBool v then
      (if v then "true" else "false")
    else
      toString v;
  # The stub keeps nixpkgs' alias as a separate option; join them here.
  dataset =
    d:
    removeAttrs d [
      "useTemplate"
      "processChildrenOnly"
    ]
    // {
      use_template = d.use_template ++ d.useTemplate;
    };
  settings =
    lib.mapAttrs' (name: t: lib.nameValuePair "template_${name}" t) sanoid.templates
    // lib.mapAttrs (_: dataset) sanoid.datasets;
  section =
    name: keys:
    concatStringsSep "\n" (
      [ "[${name}]" ]
      ++ mapAttrsToList (k: v: "${k}=${value v}") (filterAttrs (_: v: v != null) keys)
    );
in
concatStringsSep "\n\n" (mapAttrsToList section settings) + "\n"
