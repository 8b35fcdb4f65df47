# Snapshot policies, replication targets and notifications: configurations
# that each break one rule, with a fragment of the message they must produce
# (see cases.nix for the format). tests/e2e/tests/nix_replication.rs has one
# test per case.
let
  target = extra: {
    host = "nas-1";
    user = "zfs-recv";
    dataset = "backup/forge";
    sshKey = "/run/secrets/syncoid";
    hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0st";
  } // extra;
  tank = module: {
    imports = [ module ];
    zpersist.pool = "tank";
  };
in
{
  snapshots-unknown-template = {
    module = tank {
      zpersist.snapshots.templates.services.daily = 7;
      zpersist.datasets."services".snapshots = "servces";
      zpersist.datasets."services/sonarr" = { };
    };
    expect = ''zpersist.datasets: "tank/services", "tank/services/sonarr" follow the snapshot template "servces", which zpersist.snapshots.templates does not define'';
  };

  snapshots-template-named-none = {
    module = tank {
      zpersist.snapshots.templates.none.daily = 7;
      zpersist.snapshots.templates.services.daily = 7;
      zpersist.datasets."services".snapshots = "services";
    };
    expect = ''zpersist.snapshots.templates."none": "none" is reserved'';
  };

  replication-unknown-target = {
    module = tank {
      zpersist.replication.targets.nas = target { };
      zpersist.datasets."services".replicateTo = [ "nass" ];
      zpersist.datasets."services/sonarr" = { };
    };
    expect = ''zpersist.datasets."services/sonarr" replicates to "nass" (inherited from an ancestor's replicateTo), which zpersist.replication.targets does not define'';
  };

  replication-ssh-key-in-store = {
    module = tank {
      zpersist.replication.targets.nas = target { sshKey = "/nix/store/00000000000000000000000000000000-syncoid-key"; };
      zpersist.datasets."services".replicateTo = [ "nas" ];
    };
    expect = ''zpersist.replication.targets."nas".sshKey is in the Nix store'';
  };

  replication-ssh-key-relative = {
    module = tank {
      zpersist.replication.targets.nas = target { sshKey = "secrets/syncoid"; };
      zpersist.datasets."services".replicateTo = [ "nas" ];
    };
    expect = ''zpersist.replication.targets."nas".sshKey = "secrets/syncoid" is not an absolute path'';
  };

  replication-ssh-key-in-home = {
    module = tank {
      zpersist.replication.targets.nas = target { sshKey = "/root/.ssh/id_ed25519"; };
      zpersist.datasets."services".replicateTo = [ "nas" ];
    };
    expect = ''zpersist.replication.targets."nas".sshKey = "/root/.ssh/id_ed25519" is where syncoid cannot read it'';
  };

  replication-host-key-garbled = {
    module = tank {
      zpersist.replication.targets.nas = target { hostKey = "AAAAC3NzaC1lZDI1NTE5AAAAIH0st"; };
      zpersist.datasets."services".replicateTo = [ "nas" ];
    };
    expect = ''zpersist.replication.targets."nas".hostKey does not look like a public host key'';
  };

  replication-target-name-invalid = {
    module = tank {
      zpersist.replication.targets."nas.home" = target { };
      zpersist.datasets."services".replicateTo = [ "nas.home" ];
    };
    expect = ''zpersist.replication.targets: nas.home: a target name becomes a syncoid --identifier'';
  };

  replication-command-names-clash = {
    module = tank {
      zpersist.replication.targets.nas = target { };
      zpersist.datasets."a-b/c".replicateTo = [ "nas" ];
      zpersist.datasets."a/b-c".replicateTo = [ "nas" ];
    };
    expect = ''the syncoid commands a-b-c-to-nas would be defined twice'';
  };

  replication-remote-target-incomplete = {
    module = tank {
      zpersist.replication.targets.nas = {
        host = "nas-1";
        dataset = "backup/forge";
        hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0st";
      };
      zpersist.datasets."services".replicateTo = [ "nas" ];
    };
    expect = ''zpersist.replication.targets."nas" sends over ssh to "nas-1", so it needs user, sshKey and hostKey; set user, sshKey'';
  };

  replication-local-target-with-ssh-options = {
    module = tank {
      zpersist.replication.targets.usb = {
        dataset = "usbpool/backup/forge";
        sshKey = "/run/secrets/syncoid";
        hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0st";
      };
      zpersist.datasets."services".replicateTo = [ "usb" ];
    };
    expect = ''zpersist.replication.targets."usb" is a local target (host is null: a pool on this host), where sshKey, hostKey would be ignored'';
  };

  replication-local-target-inside-replicated-dataset = {
    module = tank {
      zpersist.replication.targets.usb.dataset = "tank/services/backup";
      zpersist.datasets."services".replicateTo = [ "usb" ];
    };
    expect = ''zpersist.replication.targets."usb".dataset = "tank/services/backup" lies inside tank/services, which is replicated to it'';
  };

  replication-local-target = {
    module = tank {
      zpersist.replication.targets.usb.dataset = "usbpool/backup/forge";
      zpersist.datasets."services".replicateTo = [ "usb" ];
    };
  };

  replication-opt-out-everywhere = {
    module = tank {
      zpersist.replication.targets.nas = target { };
      zpersist.datasets."services".replicateTo = [ ];
    };
  };

  notify-unit-without-suffix = {
    module = tank {
      zpersist.datasets.media = { };
      zpersist.notify.command = "/run/current-system/sw/bin/true";
      zpersist.notify.units.backup = {
        summary = "backup";
      };
    };
    expect = ''zpersist.notify.units: backup must be full unit names ending in ".service"'';
  };
}
