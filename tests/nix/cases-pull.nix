# Pull replication (nix/modules/replication-pull.nix): configurations that
# each break one rule, with a fragment of the message they must produce
# (see cases.nix for the format). tests/e2e/tests/nix_pull.rs has one test
# per case.
let
  source = extra: {
    host = "forge";
    sshKey = "/run/secrets/pull-from-forge";
    hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIForge";
    services = [ "sonarr" ];
    into = "backup/forge";
  } // extra;
  backup = module: {
    imports = [ module ];
    zpersist.pool = "backup";
  };
in
{
  pull-nothing = {
    module = backup { zpersist.replication.pull.forge = source { services = [ ]; }; };
    expect = ''zpersist.replication.pull."forge" pulls nothing'';
  };
  pull-key-in-home = {
    module = backup { zpersist.replication.pull.forge = source { sshKey = "/root/.ssh/id_ed25519"; }; };
    expect = ''zpersist.replication.pull."forge".sshKey = "/root/.ssh/id_ed25519" must be an absolute path outside the Nix store and outside /root, /home and /run/user'';
  };
  pull-host-key-garbled = {
    module = backup { zpersist.replication.pull.forge = source { hostKey = "AAAAC3NzaC1lZDI1NTE5"; }; };
    expect = ''zpersist.replication.pull."forge".hostKey does not look like a public host key'';
  };
  pull-pool-alone = {
    module = backup { zpersist.replication.pull.forge = source { datasets = [ "tank" ]; }; };
    expect = ''zpersist.replication.pull."forge".datasets: give full dataset names with their pool'';
  };
  pull-name-invalid = {
    module = backup { zpersist.replication.pull."forge.lan" = source { }; };
    expect = ''zpersist.replication.pull/pullers: forge.lan: a name becomes a unit, user and file name'';
  };
  pull-twice-into-one = {
    module = backup {
      zpersist.replication.pull.forge = source { };
      zpersist.replication.pull.forge2 = source { };
    };
    expect = ''zpersist.replication.pull: backup/forge/services/sonarr would be received twice'';
  };
  puller-without-datasets = {
    module = {
      zpersist.pool = "tank";
      zpersist.replication.pullers.nas = { publicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINas syncoid@nas"; datasets = [ ]; };
    };
    expect = ''zpersist.replication.pullers."nas".datasets is empty'';
  };
  puller-key-with-options = {
    module = {
      zpersist.pool = "tank";
      zpersist.replication.pullers.nas = { publicKey = ''command="sh" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINas''; datasets = [ "tank/services" ]; };
    };
    expect = ''zpersist.replication.pullers."nas".publicKey does not look like one public key line'';
  };
}
