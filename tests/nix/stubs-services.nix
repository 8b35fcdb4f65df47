# The nixpkgs services whose options the zpersist.services profiles read
# (nix/lib/profiles.nix), with nixpkgs' option names and defaults
# (nixos/modules/services/misc/servarr/{sonarr,radarr}.nix,
# misc/plex.nix, home-automation/home-assistant.nix,
# databases/postgresql.nix). PostgreSQL's dataDir is
# /var/lib/postgresql/<psqlSchema> in nixpkgs and only defined while the
# service is enabled; "16" stands in for the schema.
{ lib }:
let
  inherit (lib) mkOption types;
  service =
    defaults:
    {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
    }
    // lib.mapAttrs (
      _: default:
      mkOption {
        type = types.str;
        inherit default;
      }
    ) defaults;
in
{
  sonarr = service {
    dataDir = "/var/lib/sonarr/.config/NzbDrone";
    user = "sonarr";
    group = "sonarr";
  };
  radarr = service {
    dataDir = "/var/lib/radarr/.config/Radarr";
    user = "radarr";
    group = "radarr";
  };
  plex = service {
    dataDir = "/var/lib/plex";
    user = "plex";
    group = "plex";
  };
  home-assistant = service { configDir = "/var/lib/hass"; };
  # postgresql: model-postgresql.nix, with its unit.
}
