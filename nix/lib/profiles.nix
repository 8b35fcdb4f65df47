# Service profiles: what a service's dataset looks like by default.
# docs/profiles.md explains every value, with sources.
#
# Each profile is a function of the NixOS `config` (to read the nixpkgs
# service's own options) and the service's name, returning:
#
#   nixpkgsService  attribute path of the nixpkgs service (null: none)
#   mountpoint      where the data lives, as the nixpkgs module configures it
#   user, group     who owns it (null: leave alone)
#   mode            octal mode of the dataset's root directory
#   units           the systemd units that use the data
#   properties      ZFS properties (recordsize, compression, ...)
#   sqlite          the application's SQLite databases, relative to the
#                   dataset's root: the restore drill runs
#                   `PRAGMA integrity_check` on each restored copy
#   drill           "pitr" where the restore drill is pitr-drill's
#                   (PostgreSQL), else "copy"
{ lib }:
let
  # Options of a nixpkgs service are read only when that service is enabled:
  # some (postgresql's dataDir) are only defined then. Otherwise, and where
  # the option does not exist in the nixpkgs at hand, nixpkgs' default.
  fromService =
    config: path: option: fallback:
    let
      svc = lib.attrByPath path { } config;
    in
    if svc.enable or false then svc.${option} or fallback else fallback;

  # Every dataset: lz4 is cheap enough to leave on for incompressible data,
  # and no service here reads access times.
  common = {
    compression = "lz4";
    atime = "off";
  };

  # SQLite with its default 4 KiB pages (Sonarr, Radarr, Home Assistant's
  # recorder, Plex's library): 16K records bound the read-modify-write of a
  # page update to 4x instead of 32x with the default 128K.
  sqliteProperties = common // {
    recordsize = "16K";
  };

  # An application keeping a SQLite database in `services.<service>.dataDir`,
  # run as `services.<service>.user`/`.group` (nixpkgs' defaults: the
  # service's name): Sonarr, Radarr, Plex.
  sqliteApp =
    {
      service,
      dataDir,
      mode,
      sqlite,
    }:
    config: _name:
    let
      get = fromService config [ "services" service ];
    in
    {
      nixpkgsService = [ "services" service ];
      mountpoint = get "dataDir" dataDir;
      user = get "user" service;
      group = get "group" service;
      inherit mode;
      units = [ "${service}.service" ];
      properties = sqliteProperties;
      inherit sqlite;
      drill = "copy";
    };
in
{
  # nixpkgs' tmpfiles rule for dataDir says 0700 (sonarr and radarr alike);
  # the same here, or the two would set the mode back and forth on every
  # boot.
  profiles.sonarr = sqliteApp {
    service = "sonarr";
    dataDir = "/var/lib/sonarr/.config/NzbDrone";
    mode = "0700";
    sqlite = [ "sonarr.db" ];
  };

  profiles.radarr = sqliteApp {
    service = "radarr";
    dataDir = "/var/lib/radarr/.config/Radarr";
    mode = "0700";
    sqlite = [ "radarr.db" ];
  };

  # Metadata only (library database, artwork, preview thumbnails); media
  # belongs on a dataset with 1M records: zpersist.services.plex.media.
  profiles.plex = sqliteApp {
    service = "plex";
    dataDir = "/var/lib/plex";
    mode = "0750";
    sqlite = [ "Plex Media Server/Plug-in Support/Databases/com.plexapp.plugins.library.db" ];
  };

  profiles.home-assistant =
    config: _name:
    let
      get = fromService config [ "services" "home-assistant" ];
    in
    {
      nixpkgsService = [ "services" "home-assistant" ];
      mountpoint = get "configDir" "/var/lib/hass";
      # Fixed in nixpkgs (User = "hass"); configDir is hass's home with
      # createHome, which activation chmods to homeMode (700) every time.
      user = "hass";
      group = "hass";
      mode = "0700";
      units = [ "home-assistant.service" ];
      properties = sqliteProperties;
      sqlite = [ "home-assistant_v2.db" ];
      drill = "copy";
    };

  profiles.postgresql =
    config: _name:
    let
      dataDir = fromService config [ "services" "postgresql" ] "dataDir" "/var/lib/postgresql";
    in
    {
      nixpkgsService = [ "services" "postgresql" ];
      # nixpkgs' dataDir is /var/lib/postgresql/<major version>: the dataset
      # mounts on the parent, so the next major version's directory lands on
      # it too and pg_upgrade --link can hard-link between the two.
      mountpoint =
        if lib.hasPrefix "/var/lib/postgresql/" dataDir then "/var/lib/postgresql" else dataDir;
      # Fixed in nixpkgs (User = "postgres").
      user = "postgres";
      group = "postgres";
      # StateDirectoryMode of nixpkgs for PostgreSQL >= 11.
      mode = "0750";
      units = [ "postgresql.service" ];
      properties = common // {
        recordsize = "8K";
        logbias = "latency";
      };
      sqlite = [ ];
      # A copy of a running cluster's files proves nothing: pitr-drill
      # restores the archive and replays it in a throwaway server.
      drill = "pitr";
    };

  profiles.generic = _config: name: {
    nixpkgsService = null;
    # systemd's StateDirectory=<name>.
    mountpoint = "/var/lib/${name}";
    user = null;
    group = null;
    mode = null;
    units = [ "${name}.service" ];
    properties = common;
    sqlite = [ ];
    drill = "copy";
  };

  # The dataset for a service's large files (zpersist.services.<name>.media).
  mediaProperties = common // {
    recordsize = "1M";
  };
}
