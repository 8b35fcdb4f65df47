# zpersist.services.<name>.preseed configurations that each break one rule,
# with a fragment of the message they must produce (format: see cases.nix).
# tests/e2e/tests/nix_preseed.rs has one test per case.
let
  jellyfin = preseed: extra: {
    imports = [
      {
        zpersist.pool = "tank";
        zpersist.services.jellyfin = {
          enable = true;
          inherit preseed;
        };
      }
      extra
    ];
  };
in
{
  preseed-no-sources = {
    module = jellyfin { enable = true; } { };
    expect = ''zpersist.services."jellyfin".preseed.sources is empty'';
  };

  preseed-replica-undeclared = {
    module = jellyfin {
      enable = true;
      sources = [ { replica = "nas"; } ];
    } { };
    expect = ''zpersist.services."jellyfin".preseed.sources names the replica "nas", which zpersist.replication.targets does not define (defined: none)'';
  };

  preseed-restic-undeclared = {
    module = jellyfin {
      enable = true;
      sources = [ { restic = "b2"; } ];
    } { };
    expect = ''names the restic repository "b2", which zpersist.restic.repositories does not define'';
  };

  preseed-source-ambiguous = {
    module = jellyfin {
      enable = true;
      sources = [
        {
          local = true;
          restic = "b2";
        }
      ];
    } { zpersist.restic.repositories.b2 = { repository = "/srv/restic"; passwordFile = "/run/secrets/restic"; }; };
    expect = "each entry sets exactly one of replica, local, restic, pitr; one sets 2";
  };

  preseed-no-mountpoint = {
    module = jellyfin {
      enable = true;
      sources = [ { local = true; } ];
    } ({ lib, ... }: { zpersist.datasets."services/jellyfin".mountpoint = lib.mkForce "legacy"; });
    expect = ''preseed needs a dataset that mounts on a path'';
  };

  preseed-with-children = {
    module = jellyfin {
      enable = true;
      sources = [ { local = true; } ];
    } { zpersist.datasets."services/jellyfin/cache" = { }; };
    expect = "would take its child datasets (services/jellyfin/cache) along";
  };

  preseed-name-too-long = {
    module = jellyfin {
      enable = true;
      sources = [ { local = true; } ];
    } { zpersist.services.jellyfin.dataset = "services/${builtins.concatStringsSep "" (builtins.genList (_: "j") 160)}"; };
    expect = "a preseeded dataset's name is at most 165 bytes";
  };

  preseed-pitr-without-pitr = {
    module = jellyfin {
      enable = true;
      sources = [ { pitr = true; } ];
    } { };
    expect = "only zpersist.services.postgresql can use it, with zpersist.postgresql.pitr.enable = true";
  };
}
