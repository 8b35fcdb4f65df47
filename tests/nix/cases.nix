# Configurations that each break one rule of the module, with a fragment of
# the message they must produce. tests/e2e/tests/nix_modules.rs has one test
# per case; the flake's `checks` run them all (tests/nix/check.nix).
#
# expect:        a failed assertion containing this text
# expectWarning: a warning containing this text (and no failed assertion)
# neither:       must evaluate with no failed assertion and no warning
let
  tank = datasets: {
    zpersist.pool = "tank";
    zpersist.datasets = datasets;
  };
in
{
  pool-unset = {
    module.zpersist.datasets.media = { };
    expect = "zpersist.pool is not set";
  };

  pool-invalid = {
    module.zpersist = {
      pool = "tank/nixos";
      datasets.media = { };
    };
    expect = ''zpersist.pool = "tank/nixos" is not a valid pool name'';
  };

  outside-pool-repeated = {
    module = tank { "tank/media" = { }; };
    expect = ''zpersist.datasets."tank/media" lies outside zpersist.pool ("tank")'';
  };

  outside-pool-other-pool = {
    module = {
      imports = [ (tank { "backup/media" = { }; }) ];
      boot.zfs.extraPools = [ "backup" ];
    };
    expect = ''"backup" is another pool of this host'';
  };

  # A component may start with any character it may hold ("-sonarr" is a
  # valid name); "!" is not one of them.
  name-invalid-component = {
    module = tank { "services/sonarr!" = { }; };
    expect = ''zpersist.datasets."services/sonarr!" is not a valid ZFS dataset name: it has the component "sonarr!"'';
  };

  name-snapshot-syntax = {
    module = tank { "media@today" = { }; };
    expect = "contains '@' or '#'";
  };

  name-empty-component = {
    module = tank { "services//sonarr" = { }; };
    expect = "has an empty component";
  };

  name-too-long = {
    module = tank { ${"a" + builtins.substring 0 251 (builtins.concatStringsSep "" (builtins.genList (_: "abcdefghij") 26))} = { }; };
    expect = "ZFS allows at most 255";
  };

  mountpoint-duplicate = {
    module = tank {
      "services/sonarr".mountpoint = "/var/lib/sonarr";
      "services/sonarr-old".mountpoint = "/var/lib/sonarr";
    };
    expect = ''"tank/services/sonarr", "tank/services/sonarr-old" would all mount on /var/lib/sonarr'';
  };

  # A canmount=off parent is never mounted: its child may mount on its path.
  mountpoint-shared-by-canmount-off-parent = {
    module = tank {
      "base" = {
        mountpoint = "/var/lib";
        canmount = "off";
      };
      "base/sonarr".mountpoint = "/var/lib";
    };
  };

  property-unknown = {
    module = tank { "media".properties.backup = "daily"; };
    expect = ''zpersist.datasets."media".properties."backup" is not a settable ZFS property; a user property needs a colon (e.g. "com.example:backup")'';
  };

  property-value-invalid = {
    module = tank { "media".properties.atime = "OFF"; };
    expect = ''zpersist.datasets."media".properties."atime": "OFF" is not one of on, off'';
  };

  owner-numeric = {
    module = {
      imports = [ (tank { "media".owner = "1000"; }) ];
      zpersist.allowUndeclaredOwners = true;
    };
    expect = ''zpersist.datasets."media".owner = "1000" is not a user or group name'';
  };

  mountpoint-duplicate-inherited = {
    module = tank {
      "srv".mountpoint = "/srv";
      "srv/media" = { };
      "media".mountpoint = "/srv/media";
    };
    expect = ''"tank/media", "tank/srv/media" would all mount on /srv/media'';
  };

  create-only-unacknowledged = {
    module = tank {
      "share".properties = {
        casesensitivity = "insensitive";
        atime = "off";
      };
    };
    expect = ''zpersist.datasets."share".properties sets "casesensitivity", which ZFS only accepts when a dataset is created'';
  };

  create-only-acknowledged = {
    module = tank {
      "share" = {
        properties.casesensitivity = "insensitive";
        acknowledgeCreateOnly = [ "casesensitivity" ];
      };
    };
  };

  mountpoint-in-properties = {
    module = tank { "media".properties.mountpoint = "/srv/media"; };
    expect = ''zpersist.datasets."media".properties sets "mountpoint"; use the option zpersist.datasets."media".mountpoint instead'';
  };

  typed-property-twice = {
    module = tank {
      "media" = {
        recordsize = "1M";
        properties.recordsize = "128K";
      };
    };
    expect = ''zpersist.datasets."media" sets "recordsize" both as an option and in .properties'';
  };

  owner-undeclared = {
    module = tank { "services/sonarr".owner = "sonarr"; };
    expect = ''zpersist.datasets."services/sonarr".owner is "sonarr", which is not declared in users.users'';
  };

  group-undeclared = {
    module = tank {
      "services/sonarr" = {
        owner = "root";
        group = "media";
      };
    };
    expect = ''zpersist.datasets."services/sonarr".group is "media", which is not declared in users.groups'';
  };

  owner-undeclared-allowed = {
    module = {
      imports = [ (tank { "services/sonarr".owner = "sonarr"; }) ];
      zpersist.allowUndeclaredOwners = true;
    };
    expectWarning = ''zpersist.datasets."services/sonarr".owner is "sonarr", which is not declared in users.users; zpersist.allowUndeclaredOwners is set'';
  };

  owner-on-unmounted = {
    module = tank {
      "services" = {
        mountpoint = "none";
        mode = "0755";
      };
    };
    expect = ''zpersist.datasets."services" has mountpoint = "none" and an owner, group or mode'';
  };

  zfs-not-enabled = {
    module =
      { lib, ... }:
      tank { media = { }; }
      // {
        boot.supportedFilesystems.zfs = lib.mkForce false;
      };
    expect = "zpersist needs ZFS, but this host does not enable it";
  };
}
