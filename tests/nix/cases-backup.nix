# zpersist.services.<name>.backup.restic configurations that each break one
# rule, with a fragment of the message they must produce (format: see
# cases.nix). tests/e2e/tests/nix_backup.rs has one test per case.
let
  host = services: extra: {
    imports = [
      {
        zpersist.pool = "tank";
        zpersist.allowUndeclaredOwners = true;
        networking.hostName = "forge";
        zpersist.restic.repositories.b2 = {
          repository = "/srv/restic";
          passwordFile = "/run/secrets/restic";
        };
        zpersist.services = services;
      }
      extra
    ];
  };
in
{
  backup-repository-undeclared = {
    module = host {
      wiki = {
        enable = true;
        backup.restic.repository = "s3";
      };
    } { };
    expect = ''zpersist.services."wiki".backup.restic.repository = "s3" names no entry of zpersist.restic.repositories (defined: b2)'';
  };
  # A service whose dataset does not mount on a path.
  backup-dataset-not-mounted = {
    module = host {
      wiki = {
        enable = true;
        backup.restic.repository = "b2";
      };
    } { zpersist.datasets."services/wiki".mountpoint = "legacy"; };
    expect = ''zpersist.datasets."services/wiki" has mountpoint = "legacy". Give the dataset a mountpoint'';
  };
  # PostgreSQL refused without PITR too: a file copy is never its backup.
  backup-postgresql-refused = {
    module = host {
      postgresql = {
        enable = true;
        backup.restic.repository = "b2";
      };
    } { services.postgresql.enable = true; };
    expect = "PostgreSQL's data directory is never backed up at file level";
  };
  # Any service whose dataset holds the data directory, whatever its name.
  backup-postgresql-by-another-name = {
    module = host {
      db = {
        enable = true;
        mountpoint = "/var/lib/postgresql";
        backup.restic.repository = "b2";
      };
    } { services.postgresql.enable = true; };
    expect = ''zpersist.services."db".backup.restic: PostgreSQL's data directory is never backed up at file level'';
  };
  backup-calendar-unreadable = {
    module = host {
      wiki = {
        enable = true;
        backup.restic = {
          repository = "b2";
          timerConfig.OnCalendar = "Mon,Thu 03:00";
        };
      };
    } { };
    expect = ''zpersist cannot tell how often that runs'';
  };
  backup-mountpoint-unsafe = {
    module = host {
      wiki = {
        enable = true;
        mountpoint = "/srv/my wiki";
        backup.restic.repository = "b2";
      };
    } { };
    expect = "the mountpoint /srv/my wiki has characters nixpkgs' restic unit would split";
  };
  # A child dataset: the service sees its files, the snapshot's clone
  # restic reads would not.
  backup-dataset-with-child = {
    module = host {
      wiki = {
        enable = true;
        backup.restic.repository = "b2";
      };
    } { zpersist.datasets."services/wiki/media".mountpoint = "/var/lib/wiki/media"; };
    expect = ''zpersist.services."wiki".backup.restic: zpersist.datasets has child dataset(s) of "services/wiki": "services/wiki/media". The backup reads a clone of the dataset's own snapshot, which shows none of a child's files'';
  };
}
