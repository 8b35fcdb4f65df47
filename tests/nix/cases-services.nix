# zpersist.services configurations that each break one rule, with a fragment
# of the message they must produce (format: see cases.nix).
# tests/e2e/tests/nix_services.rs has one test per case.
let
  tank = services: {
    zpersist.pool = "tank";
    zpersist.services = services;
  };
in
{
  services-profile-unknown = {
    module = tank {
      sonarr-old = {
        enable = true;
        profile = "sonar";
      };
    };
    expect = ''zpersist.services."sonarr-old".profile = "sonar" is not a profile. Use one of "generic", "home-assistant", "plex", "postgresql", "radarr", "sonarr"'';
  };

  services-dataset-shared = {
    module = tank {
      jellyfin.enable = true;
      emby = {
        enable = true;
        dataset = "services/jellyfin";
        mountpoint = "/var/lib/emby";
      };
    };
    expect = ''"zpersist.services.emby", "zpersist.services.jellyfin" all use the dataset "services/jellyfin"'';
  };

  services-mountpoint-shared = {
    module = tank {
      jellyfin.enable = true;
      emby = {
        enable = true;
        mountpoint = "/var/lib/jellyfin";
      };
    };
    expect = ''"zpersist.services.emby", "zpersist.services.jellyfin" all mount on /var/lib/jellyfin'';
  };

  services-dataset-outside-pool = {
    module = tank {
      jellyfin = {
        enable = true;
        dataset = "tank/services/jellyfin";
      };
    };
    expect = ''zpersist.services."jellyfin".dataset = "tank/services/jellyfin" lies outside zpersist.pool ("tank")'';
  };

  services-dataset-is-parent = {
    module = tank {
      jellyfin.enable = true;
      emby = {
        enable = true;
        dataset = "services";
      };
    };
    expect = ''zpersist.services."emby".dataset = "services" is zpersist.servicesParent'';
  };

  services-nixpkgs-service-disabled = {
    module = tank { sonarr.enable = true; } // {
      users.users.sonarr.group = "sonarr";
      users.groups.sonarr = { };
    };
    expectWarning = ''zpersist.services."sonarr" is enabled but services.sonarr.enable is not'';
  };

  services-mode-fights-tmpfiles = {
    module = tank {
      sonarr = {
        enable = true;
        mode = "0750";
      };
    } // {
      services.sonarr.enable = true;
      users.users.sonarr.group = "sonarr";
      users.groups.sonarr = { };
    };
    expect = "systemd.tmpfiles.rules give /var/lib/sonarr/.config/NzbDrone the modes";
  };

  services-user-undeclared = {
    module = tank {
      jellyfin = {
        enable = true;
        user = "jellyfin";
      };
    };
    expect = ''zpersist.datasets."services/jellyfin".owner is "jellyfin", which is not declared in users.users'';
  };

  # The nixpkgs service on, its users declared: nothing to say.
  services-sonarr-clean = {
    module = tank { sonarr.enable = true; } // {
      services.sonarr.enable = true;
      users.users.sonarr.group = "sonarr";
      users.groups.sonarr = { };
    };
  };
}
