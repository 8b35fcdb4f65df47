# zpersist.postgresql.pitr configurations that each break one rule, with a
# fragment of the message they must produce (format: see cases.nix).
# tests/e2e/tests/nix_pitr.rs has one test per case.
let
  host = pitr: extra: {
    imports = [
      {
        zpersist.pool = "tank";
        services.postgresql.enable = true;
        zpersist.postgresql.pitr = { enable = true; } // pitr;
      }
      extra
    ];
  };
in
{
  pitr-no-repository = {
    module = host { } { };
    expect = "set exactly one repository, repository.local.dataset (a dataset on zpersist.pool) or repository.s3.destination (barman-cloud); neither is set";
  };
  pitr-two-repositories = {
    module = host {
      repository.local.dataset = "backup/pitr";
      repository.s3.destination = "s3://b/p";
    } { };
    expect = "set exactly one repository";
  };
  pitr-postgresql-off = {
    module = {
      zpersist.pool = "tank";
      zpersist.postgresql.pitr = {
        enable = true;
        repository.local.dataset = "backup/pitr";
      };
    };
    expect = "zpersist.postgresql.pitr.enable needs services.postgresql.enable = true";
  };
  pitr-retention-both = {
    module = host {
      repository.local.dataset = "backup/pitr";
      retention.count = 3;
    } { };
    expect = "set either recoveryWindow";
  };
  pitr-retention-window-garbled = {
    module = host {
      repository.local.dataset = "backup/pitr";
      retention.recoveryWindow = "two weeks";
    } { };
    expect = ''recoveryWindow = "two weeks" is not a duration like 90m, 36h, 14d or 2w'';
  };
  pitr-drill-port-clash = {
    module = host {
      repository.local.dataset = "backup/pitr";
      drill.port = 5432;
    } { };
    expect = "the drill's throwaway server needs another";
  };
  pitr-repository-inside-data = {
    module = host {
      repository.local.dataset = "backup/pitr";
      repository.local.mountpoint = "/var/lib/postgresql/16/archive";
    } { };
    expect = "the archive must survive the loss of the data directory";
  };
  pitr-file-level-backup = {
    module = host { repository.local.dataset = "backup/pitr"; } {
      zpersist.restic.repositories.b2 = {
        repository = "/srv/restic";
        passwordFile = "/run/secrets/restic";
      };
      zpersist.services.postgresql = {
        enable = true;
        backup.restic.repository = "b2";
      };
    };
    expect = "PostgreSQL's data directory is never backed up at file level";
  };
  pitr-drill-scratch-is-the-repository = {
    module = host {
      repository.local.dataset = "backup/pitr";
      drill.scratchDir = "/var/lib/zpersist-pitr";
    } { };
    expect = "drill.scratchDir (/var/lib/zpersist-pitr) is, holds or lies inside the repository (/var/lib/zpersist-pitr)";
  };
  pitr-drill-scratch-holds-the-data = {
    module = host {
      repository.local.dataset = "backup/pitr";
      drill.scratchDir = "/var/lib/postgresql";
    } { };
    expect = "drill.scratchDir (/var/lib/postgresql) is, holds or lies inside PostgreSQL's dataDir";
  };
  pitr-drill-scratch-inside-a-dataset = {
    module = host {
      repository.local.dataset = "backup/pitr";
      drill.scratchDir = "/srv/media/drill";
    } { zpersist.datasets.media.mountpoint = "/srv/media"; };
    expect = "the declared dataset path /srv/media";
  };
}
