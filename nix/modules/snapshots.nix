# Snapshot policies (sanoid): templates, and which template each dataset
# follows. Children inherit their nearest ancestor's policy.
{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.zpersist.datasets = mkOption {
    type = types.attrsOf (
      types.submodule {
        options.snapshots = mkOption {
          type = types.nullOr types.str;
          default = null;
          example = "services";
          description = ''
            The snapshot template (a name in `zpersist.snapshots.templates`)
            this dataset follows. `null` inherits the nearest declared
            ancestor's template, if any.
          '';
        };
      }
    );
  };
}
