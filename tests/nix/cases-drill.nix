# zpersist.services.<name>.drill configurations that each break one rule,
# with a fragment of the message they must produce (format: see cases.nix).
# tests/e2e/tests/nix_drill.rs has one test per case.
let
  jellyfin = sources: {
    zpersist.pool = "tank";
    zpersist.services.jellyfin = {
      enable = true;
      preseed.sources = sources;
      drill.enable = true;
    };
  };
in
{
  drill-no-sources = {
    module = jellyfin [ ];
    expect = ''zpersist.services."jellyfin".drill restores from preseed.sources: zpersist.services."jellyfin".preseed.sources is empty'';
  };

  drill-replica-undeclared = {
    module = jellyfin [ { replica = "nas"; } ];
    expect = ''zpersist.services."jellyfin".drill restores from preseed.sources: zpersist.services."jellyfin".preseed.sources names the replica "nas", which zpersist.replication.targets does not define'';
  };

  drill-postgresql-refused = {
    module = {
      zpersist.pool = "tank";
      services.postgresql.enable = true;
      users.users.postgres = {
        isSystemUser = true;
        group = "postgres";
      };
      users.groups.postgres = { };
      zpersist.services.postgresql = {
        enable = true;
        preseed.sources = [ { local = true; } ];
        drill.enable = true;
      };
    };
    expect = ''zpersist.services."postgresql".drill: the postgresql profile is drilled by pitr-drill'';
  };
}
