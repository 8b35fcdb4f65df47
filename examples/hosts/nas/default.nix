# nas: the backup host. It pulls forge's service datasets (pull
# replication: forge holds no key nas obeys, so a compromised forge cannot
# erase or roll back what nas holds), keeps them read-only below
# backup/forge, prunes them on its own policy and clock, and lets a rebuilt
# forge read them back with a send-only restore key (docs/replication.md,
# "Pull mode").
{
  networking.hostName = "nas";
  boot.supportedFilesystems.zfs = true;
  networking.hostId = "6e617331";
  boot.zfs.extraPools = [ "backup" ];

  zpersist.pool = "backup";
  # The root of forge's replicas: never mounted, received datasets below it.
  zpersist.datasets."forge" = {
    mountpoint = "none";
    canmount = "off";
  };

  zpersist.replication.pull.forge = {
    host = "forge";
    # The puller's user on forge (zpersist.replication.pullers.nas there).
    user = "zpull-nas";
    # Its public half is forge's zpersist.replication.pullers.nas.publicKey.
    sshKey = "/run/secrets/pull-from-forge";
    # /etc/ssh/ssh_host_ed25519_key.pub of forge.
    hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIForgeHostKeyForTheExample000000000000000";
    services = [
      "sonarr"
      "radarr"
      "home-assistant"
    ];
    into = "backup/forge";
    interval = "hourly";
    # nas's own retention of what it pulled, whatever forge keeps.
    keep = {
      hourly = 48;
      daily = 60;
      monthly = 24;
      yearly = 5;
    };
    # A rebuilt forge reads its data back with this key (send only).
    restoreKeys = [ "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIForgeRestoreKeyForTheExample0000000000000 root@forge" ];
  };
}
