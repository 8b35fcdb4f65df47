# forge: the storage server. Data pool "tank" (imported by NixOS through
# boot.zfs.extraPools), one dataset per service, media on large records.
#
# In a full configuration, `imports = [ zpersist.nixosModules.default ];`
# and `services.<name>.enable = true;` (which declares the service users)
# come with it; the users are declared here so the example evaluates alone.
{
  networking.hostName = "forge";
  boot.zfs.extraPools = [ "tank" ];

  zpersist.pool = "tank";
  zpersist.datasets = {
    # Parent of the service datasets: never mounted itself (mountpoint none,
    # canmount off); its children mount where each service keeps its state
    # and inherit compression and atime from it.
    "services" = {
      mountpoint = "none";
      canmount = "off";
      compression = "zstd";
      properties.atime = "off";
    };
    "services/sonarr" = {
      mountpoint = "/var/lib/sonarr";
      recordsize = "16K";
      quota = "20G";
      owner = "sonarr";
      group = "sonarr";
      mode = "0750";
      neededBy = [ "sonarr.service" ];
    };
    "services/radarr" = {
      mountpoint = "/var/lib/radarr";
      recordsize = "16K";
      quota = "20G";
      owner = "radarr";
      group = "radarr";
      mode = "0750";
      neededBy = [ "radarr.service" ];
    };
    "services/postgresql" = {
      mountpoint = "/var/lib/postgresql";
      recordsize = "16K";
      owner = "postgres";
      group = "postgres";
      mode = "0700";
      properties = {
        logbias = "latency";
        "com.example:backup" = "hourly";
      };
      neededBy = [ "postgresql.service" ];
    };

    # Media: mounted, with children inheriting its path
    # (tank/media/tv mounts on /srv/media/tv).
    "media" = {
      mountpoint = "/srv/media";
      recordsize = "1M";
      compression = "lz4";
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

  users.groups.media = { };
  users.groups.sonarr = { };
  users.groups.radarr = { };
  users.groups.postgres = { };
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
  users.users.postgres = {
    isSystemUser = true;
    group = "postgres";
  };
}
