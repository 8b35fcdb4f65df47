# forge: the storage server. Data pool "tank" (imported by NixOS through
# boot.zfs.extraPools), one dataset per service, media on large records.
#
# In a full configuration, `imports = [ zpersist.nixosModules.default ];`
# comes with it, and `services.<name>.enable = true;` declares the service
# users; they are declared here too so the example evaluates alone.
{ lib, ... }:
{
  networking.hostName = "forge";
  # ZFS, with the data pool imported at boot. NixOS requires a host id with
  # ZFS (`head -c4 /dev/urandom | od -A none -t x4` makes one).
  boot.supportedFilesystems.zfs = true;
  networking.hostId = "8425e349";
  boot.zfs.extraPools = [ "tank" ];
  # Plex is unfree: nixpkgs evaluates it only when allowed.
  nixpkgs.config.allowUnfreePredicate = pkg: builtins.elem (lib.getName pkg) [ "plexmediaserver" ];

  services.sonarr.enable = true;
  services.radarr.enable = true;
  services.plex.enable = true;
  services.home-assistant.enable = true;
  services.postgresql.enable = true;

  zpersist.pool = "tank";

  # Each service on tank/services/<name>, mounted on its data directory,
  # with its profile's properties (docs/profiles.md) and the service's
  # user; its units wait until the dataset is mounted.
  zpersist.services = {
    sonarr = {
      enable = true;
      properties.quota = "20G";
      # An empty dataset (a new disk, a reinstalled host) gets its data back
      # before Sonarr starts: from the NAS, the USB pool, a local snapshot
      # or the restic backup, whichever holds the freshest data
      # (docs/preseed.md).
      preseed = {
        enable = true;
        sources = [
          { replica = "nas"; }
          { replica = "usb"; }
          { local = true; }
          { restic = "b2"; }
        ];
      };
      # Every night, off-site with restic, from a fresh snapshot (never the
      # live files), recorded at Sonarr's data directory: the backups the
      # `restic = "b2"` source above restores (docs/backup.md).
      backup.restic = {
        repository = "b2";
        timerConfig = {
          OnCalendar = "03:15";
          RandomizedDelaySec = "30min";
          Persistent = true;
        };
        pruneOpts = [
          "--keep-daily 7"
          "--keep-weekly 5"
          "--keep-monthly 12"
        ];
      };
    };
    radarr = {
      enable = true;
      properties.quota = "20G";
    };
    # Metadata on tank/services/plex; the library on tank/media (1M records).
    plex = {
      enable = true;
      media.enable = true;
    };
    home-assistant.enable = true;
    postgresql = {
      enable = true;
      properties."com.example:backup" = "hourly";
    };
    # Any other service: the generic profile, data in /var/lib/<name>.
    jellyfin = {
      enable = true;
      user = "jellyfin";
      group = "jellyfin";
      mode = "0750";
    };
  };

  zpersist.datasets = {
    # Parent of the service datasets: never mounted itself (zpersist.services
    # declares it with mountpoint none and canmount off); its children
    # inherit atime, the snapshot policy and the replication targets from
    # it and mount where each service keeps its state.
    "services" = {
      properties.atime = "off";
      snapshots = "services";
      replicateTo = [
        "nas"
        "usb"
      ];
    };

    # Media (plex's media dataset): children inherit its path
    # (tank/media/tv mounts on /srv/media/tv) and its 1M records.
    "media" = {
      owner = "root";
      group = "media";
      mode = "2775";
    };
    "media/tv" = {
      group = "media";
      mode = "2775";
    };
    "media/movies" = {
      group = "media";
      mode = "2775";
    };
  };

  # Snapshots by sanoid, sent by syncoid to a NAS over ssh and to a USB
  # pool on this host (docs/replication.md: where the key goes, and the
  # permissions each side gets).
  zpersist.snapshots.templates.services = {
    hourly = 36;
    daily = 30;
    monthly = 3;
  };
  zpersist.replication.targets = {
    nas = {
      host = "nas-1";
      user = "zfs-recv";
      dataset = "backup/forge";
      # Readable by the syncoid user; /run/secrets is inside syncoid's sandbox.
      sshKey = "/run/secrets/syncoid";
      hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0stKeyOfNas1ForTheExample0000000000000";
    };
    usb.dataset = "usbpool/backup/forge";
  };
  # nas (examples/hosts/nas) also pulls the services from here, with a key
  # forced to zpersist-pull-gate: zfs send, get, list and bookmark of
  # tank/services, nothing else (docs/replication.md, "Pull mode").
  zpersist.replication.pullers.nas = {
    publicKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINasPullKeyForTheExample00000000000000000 syncoid@nas";
    datasets = [ "tank/services" ];
  };
  # The restic repository: backups go there, preseed restores from it.
  zpersist.restic.repositories.b2 = {
    repository = "b2:forge-backups:/";
    passwordFile = "/run/secrets/restic";
    environmentFile = "/run/secrets/restic-b2";
  };
  zpersist.notify.ntfy = {
    url = "https://ntfy.sh";
    topic = "forge-alerts";
  };

  users.groups.media = { };
  users.groups.sonarr = { };
  users.groups.radarr = { };
  users.groups.plex = { };
  users.groups.hass = { };
  users.groups.postgres = { };
  users.groups.jellyfin = { };
  users.users.sonarr = {
    isSystemUser = true;
    group = "sonarr";
    extraGroups = [ "media" ];
  };
  users.users.radarr = {
    isSystemUser = true;
    group = "radarr";
    extraGroups = [ "media" ];
  };
  users.users.plex = {
    isSystemUser = true;
    group = "plex";
    extraGroups = [ "media" ];
  };
  users.users.hass = {
    isSystemUser = true;
    group = "hass";
  };
  users.users.postgres = {
    isSystemUser = true;
    group = "postgres";
  };
  users.users.jellyfin = {
    isSystemUser = true;
    group = "jellyfin";
    extraGroups = [ "media" ];
  };
}
