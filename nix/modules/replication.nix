# Replication (syncoid): targets, and which targets each dataset is sent to.
# Children inherit their nearest ancestor's targets.
{ lib, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.zpersist.datasets = mkOption {
    type = types.attrsOf (
      types.submodule {
        options.replicateTo = mkOption {
          type = types.nullOr (types.listOf types.str);
          default = null;
          example = [ "nas" ];
          description = ''
            Names of `zpersist.replication.targets` this dataset is sent to.
            `null` inherits the nearest declared ancestor's targets; `[ ]`
            replicates nothing, whatever the ancestors say.
          '';
        };
      }
    );
  };
}
