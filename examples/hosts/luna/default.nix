# luna: a small machine with a single root pool "rpool" (imported in the
# initrd). The OS datasets are `legacy`, mounted by fileSystems; the state
# of services lives below a `none` parent and auto-mounts where it belongs.
#
# In a full configuration, `imports = [ zpersist.nixosModules.default ];`
# and the services that declare these users come with it.
{
  networking.hostName = "luna";
  # ZFS on the root pool; NixOS requires a host id with ZFS.
  boot.supportedFilesystems.zfs = true;
  boot.initrd.supportedFilesystems.zfs = true;
  networking.hostId = "6c756e61";

  zpersist.pool = "rpool";
  zpersist.datasets = {
    # Mounted by NixOS, not by ZFS: zpersist only keeps the properties.
    "local/nix" = {
      mountpoint = "legacy";
      properties.atime = "off";
    };

    "state" = {
      mountpoint = "none";
      canmount = "off";
      compression = "zstd";
    };
    "state/syncthing" = {
      mountpoint = "/var/lib/syncthing";
      owner = "syncthing";
      group = "syncthing";
      mode = "0700";
      properties."com.example:backup" = "daily";
      neededBy = [ "syncthing.service" ];
    };
  };

  # Home Assistant on rpool/state/home-assistant, mounted on its configDir.
  services.home-assistant.enable = true;
  zpersist.servicesParent = "state";
  zpersist.services.home-assistant = {
    enable = true;
    properties.quota = "10G";
  };

  fileSystems."/nix" = {
    device = "rpool/local/nix";
    fsType = "zfs";
  };

  users.groups.syncthing = { };
  users.groups.hass = { };
  users.users.syncthing = {
    isSystemUser = true;
    group = "syncthing";
  };
  users.users.hass = {
    isSystemUser = true;
    group = "hass";
  };
}
