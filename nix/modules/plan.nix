# Renders `zpersist.datasets` into the plan file `ensure-datasets` reads.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  zlib = import ../lib { inherit lib; };
  cfg = config.zpersist;
  plan = zlib.plan.render {
    inherit (cfg) pool datasets;
  };
in
{
  config.zpersist.internal = {
    inherit plan;
    # The file's store path changes whenever the plan does; the unit names it
    # in ExecStart, so a changed plan is a changed unit, which
    # switch-to-configuration restarts.
    planFile = pkgs.writeText "zpersist-datasets-plan.json" (builtins.toJSON plan);
  };
}
