# The zpersist NixOS module: one file per concern. `nixosModules.default` of
# the flake is this file.
{
  _file = ./default.nix;
  imports = [
    ./core.nix
    ./datasets.nix
    ./plan.nix
    ./service.nix
    ./assertions.nix
    ./services.nix
    ./snapshots.nix
    ./replication.nix
    ./replication-pull.nix
    ./notify.nix
    ./preseed.nix
    ./drill.nix
    ./backup.nix
    ./pitr.nix
    ./status.nix
    ./encryption.nix
  ];
}
