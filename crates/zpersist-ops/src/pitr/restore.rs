//! `pitr-restore`: a cluster at a chosen moment, from the newest base
//! backup before it and the archived WAL after it; optionally recovered
//! right away and checked.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use zpersist_core::pitr::recovery::{recovery_block, RecoveryLog, BLOCK_END, BLOCK_START};
use zpersist_core::pitr::target::{candidate_backups, format_micros, Target};
use zpersist_core::pitr::timeline::{newest_history, replay_end, History};
use zpersist_core::pitr::wal::{classify, segment_key, timeline_of, WalKind};
use zpersist_core::pitr::{provenance, BaseBackup, PitrContract};
use zpersist_postgres::cluster::Pg;
use zpersist_postgres::files::{
    copy_tree, empty_dir, inspect_target, owner, prepare_target, TargetDir,
};
use zpersist_postgres::run::is_root;
use zpersist_postgres::PgError;

use crate::pitr::{backend, cluster, now, Backend, Failure};

/// How to restore.
#[derive(Debug, Clone)]
pub struct Options {
    /// Run recovery now (a throwaway server on a private socket), check the
    /// target was reached, stop it cleanly.
    pub start: bool,
    /// Keep archiving on in the restored cluster: it replaces the host's
    /// cluster (preseed). Otherwise `archive_mode = off` is written, so a
    /// scratch copy never pushes a new timeline into the production archive.
    pub archive: bool,
    /// The throwaway server's port (`--start`).
    pub port: u16,
    /// The contract file, named in the restored cluster's restore_command.
    pub contract_path: PathBuf,
    /// `pitr-restore-wal`; by default beside the running binary.
    pub restore_wal: PathBuf,
}

impl Options {
    pub fn new(contract: &PitrContract, contract_path: &Path) -> Options {
        let restore_wal = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|d| d.join("pitr-restore-wal")))
            .unwrap_or_else(|| PathBuf::from("pitr-restore-wal"));
        Options {
            start: false,
            archive: false,
            port: contract.drill.port,
            contract_path: contract_path.to_path_buf(),
            restore_wal,
        }
    }

    /// What a person asked for (pitr-restore's and `zpersist pitr
    /// restore`'s flags): `--start`, `--archive`, `--port`.
    pub fn asked(
        contract: &PitrContract,
        contract_path: &Path,
        start: bool,
        archive: bool,
        port: Option<u16>,
    ) -> Options {
        let mut options = Options::new(contract, contract_path);
        options.start = start;
        options.archive = archive;
        if let Some(port) = port {
            options.port = port;
        }
        options
    }
}

/// What a restore did: what `preseed-restore` records as provenance.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreReport {
    pub into: String,
    pub target: Target,
    pub backup: BaseBackup,
    /// Whether recovery ran (`--start`).
    pub recovered: bool,
    /// The newest archived segment replayed (`--start` only).
    pub last_wal: Option<String>,
    /// The commit time of the last transaction replayed (PostgreSQL's words).
    pub last_transaction: Option<String>,
    /// Why recovery stopped where it did (a time target).
    pub stopped: Option<String>,
    /// `base backup X + last WAL replayed Y`.
    pub provenance: String,
    /// Newer base backups that fit the target but failed their
    /// verification, each with what pg_verifybackup said (the file): the
    /// restore used an older one and replayed more WAL.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<String>,
    pub seconds: f64,
}

/// A server that a restore left running (the drill reads from it).
pub struct Running {
    pub pg: Pg,
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    limit: Duration,
}

impl Running {
    /// Stops it and removes its socket directory.
    pub fn stop(self) -> Result<(), PgError> {
        let result = self.pg.stop(&self.data_dir, self.limit);
        let _ = fs::remove_dir_all(&self.socket_dir);
        result
    }
}

/// Restores, and with `options.start` leaves the recovered server running
/// for the caller (who must [`Running::stop`] it).
pub fn restore_running(
    contract: &PitrContract,
    target: &Target,
    into: &Path,
    options: &Options,
) -> Result<(RestoreReport, Option<Running>), Failure> {
    let started = Instant::now();
    // Refusals first: nothing is touched until the backup is chosen.
    match inspect_target(into)? {
        TargetDir::Missing | TargetDir::Empty => {}
        TargetDir::NotEmpty { postmaster: true } => {
            return Err(Failure::bad_input(PgError::new(
                "restoring",
                into.display().to_string(),
                "it is a cluster's data directory (postmaster.pid is there)",
                "restore into an empty directory; never over a cluster, running or not",
            )));
        }
        TargetDir::NotEmpty { postmaster: false } => {
            return Err(Failure::bad_input(PgError::new(
                "restoring",
                into.display().to_string(),
                "the directory is not empty",
                "restore into an empty or new directory (move the old one aside first)",
            )));
        }
    }
    let pg = cluster(contract);
    if same_path(into, Path::new(&contract.cluster.data_dir)) && pg.running(into).unwrap_or(true) {
        return Err(Failure::bad_input(PgError::new(
            "restoring",
            into.display().to_string(),
            "it is the data directory of the configured cluster, which may be running",
            "stop PostgreSQL and move its directory aside, or restore elsewhere",
        )));
    }
    let backend = backend(contract);
    let (backups, history) = match &backend {
        Backend::Local(repo) => {
            repo.check_reachable().map_err(Failure::bad_input)?;
            (repo.list_backups()?, local_history(repo)?)
        }
        Backend::S3(barman) => (barman.list()?, None),
    };
    let candidates =
        candidate_backups(&backups, target, now(), history.as_ref()).map_err(|no| {
            Failure::bad_input(PgError::new(
                "choosing a base backup",
                contract.repository_label(),
                no.error,
                no.help,
            ))
        })?;

    // Fill the directory from the best candidate whose files match its
    // manifest; a corrupt one gives way to the next (older, more WAL).
    let limit = Duration::from_secs(contract.timeouts.restore_seconds);
    let mut rejected: Vec<PgError> = Vec::new();
    let mut chosen = None;
    for candidate in &candidates {
        eprintln!(
            "restoring base backup {} into {}",
            candidate.id,
            into.display()
        );
        match fill(contract, &backend, &pg, candidate, into, limit) {
            Ok(()) => {
                chosen = Some(candidate.clone());
                break;
            }
            Err(e) => {
                eprintln!(
                    "base backup {} is not restorable: {}",
                    candidate.id, e.message
                );
                // Only what this restore put there: the target was empty.
                empty_dir(into)?;
                rejected.push(e);
            }
        }
    }
    let Some(backup) = chosen else {
        let mut first = rejected.remove(0);
        if !rejected.is_empty() || candidates.len() > 1 {
            first.message = format!(
                "{} (and every older base backup that fits the target failed too: {})",
                first.message,
                rejected
                    .iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        return Err(Failure::failed(first));
    };
    let (uid, gid) = owner(into)?;
    for stale in [
        "postmaster.pid",
        "postmaster.opts",
        "recovery.signal",
        "standby.signal",
    ] {
        let _ = fs::remove_file(into.join(stale));
    }
    configuration_file(contract, into, uid, gid)?;
    let pg_wal = into.join("pg_wal");
    if !pg_wal.exists() {
        prepare_target(&pg_wal, Some((uid, gid)))?;
    }
    let restore_command = format!(
        "{} --contract {} %f %p",
        shell_quote(&options.restore_wal.display().to_string()),
        shell_quote(&options.contract_path.display().to_string())
    );
    append_owned(
        &into.join("postgresql.auto.conf"),
        &recovery_block(target, &restore_command, options.archive),
        uid,
        gid,
    )?;
    append_owned(&into.join("recovery.signal"), "", uid, gid)?;

    let mut report = RestoreReport {
        into: into.display().to_string(),
        target: target.clone(),
        backup: backup.clone(),
        recovered: false,
        last_wal: None,
        last_transaction: None,
        stopped: None,
        provenance: provenance(&backup.id, None),
        rejected: rejected.iter().map(ToString::to_string).collect(),
        seconds: 0.0,
    };
    if !options.start {
        report.provenance = format!(
            "base backup {} + the archived WAL PostgreSQL replays when it starts",
            backup.id
        );
        report.seconds = started.elapsed().as_secs_f64();
        return Ok((report, None));
    }

    // Recover now, on a private socket.
    let socket_dir = std::env::temp_dir().join(format!("zpersist-pitr-{}", std::process::id()));
    let _ = fs::remove_dir_all(&socket_dir);
    prepare_target(&socket_dir, Some((uid, gid)))?;
    let private = Pg {
        socket_dir: socket_dir.display().to_string(),
        port: options.port,
        ..pg.clone()
    };
    let log = socket_dir.join("recovery.log");
    let running = Running {
        pg: private.clone(),
        data_dir: into.to_path_buf(),
        socket_dir: socket_dir.clone(),
        limit: Duration::from_secs(contract.timeouts.command_seconds),
    };
    let started_ok = private.start_private(into, &log, limit);
    let promoted = match started_ok {
        Ok(()) => private.wait_promoted(into, limit),
        Err(e) => Err(e),
    };
    let log_text = fs::read_to_string(&log).unwrap_or_default();
    let parsed = RecoveryLog::parse(&log_text);
    let failure = match promoted {
        Ok(true) => None,
        Ok(false) | Err(_) if parsed.target_not_reached => {
            Some(not_reached(target, &parsed, &backup, into))
        }
        Ok(false) => Some(PgError::new(
            "recovering",
            into.display().to_string(),
            parsed
                .fatal
                .clone()
                .unwrap_or_else(|| "the server ended during recovery".into()),
            format!("its log {} says why", log.display()),
        )),
        Err(e) => Some(e),
    };
    if let Some(e) = failure {
        let _ = running.stop();
        eprintln!("{}", tail(&log_text, 15));
        return Err(Failure::failed(e));
    }
    report.recovered = true;
    report.last_wal = parsed.last_segment().map(str::to_string);
    report.last_transaction = parsed.last_transaction.clone();
    report.stopped = parsed.stopped_at.clone();
    report.provenance = provenance(&backup.id, report.last_wal.as_deref());

    // `latest` must mean everything the archive holds: a segment archived
    // beyond the last one replayed (on that timeline) means a gap.
    if let (Target::Latest, Backend::Local(repo)) = (target, &backend) {
        if let Some(last) = &report.last_wal {
            let names = repo.list_wal()?;
            let beyond = names
                .iter()
                .filter(|n| {
                    classify(n) == Some(WalKind::Segment)
                        && timeline_of(n) == timeline_of(last)
                        && segment_key(n) > segment_key(last)
                })
                .max();
            if let Some(beyond) = beyond {
                let _ = running.stop();
                return Err(Failure::failed(PgError::new("recovering to latest", into.display().to_string(), format!("recovery stopped after {last}, but the archive holds {beyond}: a segment in between is missing or unreadable"), "check the archive; restore to a time before the gap, or repair the archive and restore again")));
            }
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok((report, Some(running)))
}

/// Copies (or downloads) `backup` into the empty `into` and checks every
/// file against the backup's manifest (`pg_verifybackup`, the checksums):
/// a backup altered or damaged since it was verified is never restored.
/// A local backup always has its manifest; one from barman-cloud is
/// checked when it has one.
fn fill(
    contract: &PitrContract,
    backend: &Backend,
    pg: &Pg,
    backup: &BaseBackup,
    into: &Path,
    limit: Duration,
) -> Result<(), PgError> {
    match backend {
        Backend::Local(repo) => {
            let data = repo.backup_data(&backup.id);
            prepare_target(into, Some(owner(&data)?))?;
            copy_tree(&data, into)?;
        }
        Backend::S3(barman) => {
            let ids = user_ids(&contract.cluster.user)?;
            prepare_target(into, ids)?;
            barman.restore(&backup.id, into, limit)?;
            if !into.join("backup_manifest").exists() {
                return Ok(());
            }
        }
    }
    pg.verify_backup_files(into, limit).map_err(|mut e| {
        e.what = format!("verifying base backup {} before restoring it", backup.id);
        e.help = "the backup was changed or damaged after it was taken: pg_verifybackup names the file. An older backup is used when one fits the target; otherwise take a new base backup (pitr-base-backup) and restore to a time after it".into();
        e
    })
}

/// The history of the archive's newest timeline, which recovery follows
/// (`recovery_target_timeline = 'latest'`); `None` when the archive has no
/// history file (no timeline switch).
pub fn local_history(
    repo: &zpersist_postgres::local::LocalRepository,
) -> Result<Option<History>, PgError> {
    let names = repo.list_wal()?;
    let Some((timeline, name)) = newest_history(&names) else {
        return Ok(None);
    };
    let path = repo.wal_dir().join(name);
    let text = fs::read_to_string(&path).map_err(|e| {
        PgError::io(
            "reading a timeline history",
            &path,
            &e,
            "check the repository's permissions",
        )
    })?;
    History::parse(timeline, &text)
        .map(Some)
        .map_err(|e| {
            PgError::new(
                "reading a timeline history",
                path.display().to_string(),
                e,
                "PostgreSQL wrote it when a restored cluster was promoted; restore it from a copy of the repository",
            )
        })
}

/// What a restore to `latest` would give, found without restoring: the
/// base backup it starts from and how fresh its data is.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewestPoint {
    pub backup: BaseBackup,
    /// The last segment replayed before the archive's first gap (local).
    pub last_wal: Option<String>,
    /// The commit time (microseconds) of the last transaction those
    /// segments hold (local), which is what the archive can replay to.
    pub last_transaction: Option<i64>,
    /// How fresh the restored data is, in seconds: the last transaction
    /// the archive replays to, or the backup's end when no transaction
    /// after it was archived (barman-cloud: the newest backup's end, as its
    /// WAL is not listed).
    pub dated: i64,
}

/// The archive's newest restore point (`None`: the repository is empty).
/// A repository that cannot be reached (unmounted, unreadable) is an
/// error, and so is one holding archived WAL but no base backup: neither
/// is "nothing to restore".
pub fn newest_point(contract: &PitrContract) -> Result<Option<NewestPoint>, PgError> {
    let no_backup = |wal: bool| -> Result<Option<NewestPoint>, PgError> {
        if !wal {
            return Ok(None);
        }
        Err(PgError::new(
            "finding the archive's newest restore point",
            contract.repository_label(),
            "the repository holds archived WAL but no base backup: the cluster's data exists, and nothing here can restore it",
            "take a base backup (pitr-base-backup) once the cluster runs, or restore from another source; if the backups were removed by hand, bring them back from a copy of the repository",
        ))
    };
    match backend(contract) {
        Backend::S3(barman) => {
            let backups = barman.list()?;
            let Some(newest) = backups.iter().max_by_key(|b| b.end_time) else {
                return no_backup(!barman.wal_archive_is_empty()?);
            };
            Ok(Some(NewestPoint {
                backup: newest.clone(),
                last_wal: None,
                last_transaction: None,
                dated: newest.end_time,
            }))
        }
        Backend::Local(repo) => {
            repo.check_reachable()?;
            let backups = repo.list_backups()?;
            let names = repo.list_wal()?;
            if backups.is_empty() {
                return no_backup(names.iter().any(|n| classify(n) == Some(WalKind::Segment)));
            }
            let history = local_history(&repo)?;
            let best = candidate_backups(&backups, &Target::Latest, now(), history.as_ref())
                .map_err(|no| {
                    PgError::new(
                        "choosing a base backup",
                        contract.repository_label(),
                        no.error,
                        no.help,
                    )
                })?
                .remove(0);
            let history = history.unwrap_or(History {
                timeline: best.timeline,
                branches: Vec::new(),
            });
            let last_wal = replay_end(&best, &history, &names);
            let pg = cluster(contract);
            let mut last_transaction = None;
            // From the last segment back: the first commit found is the
            // last one replayed (the heartbeat commits every minute).
            let (mut at, start) = (
                last_wal.clone(),
                zpersist_core::pitr::timeline::segno_of(&best.start_wal, best.segment_size),
            );
            while let Some(segment) = at {
                last_transaction = pg.last_commit_in(&repo.wal_dir(), &segment, pg.timeout)?;
                if last_transaction.is_some() {
                    break;
                }
                let segno = zpersist_core::pitr::timeline::segno_of(&segment, best.segment_size);
                at = match (segno, start) {
                    (Some(n), Some(first)) if n > first => {
                        Some(zpersist_core::pitr::wal::segment_name(
                            history.timeline_of_segment(n - 1, best.segment_size),
                            (n - 1) * best.segment_size,
                            best.segment_size,
                        ))
                    }
                    _ => None,
                };
            }
            let dated = last_transaction
                .map(|micros| micros.div_euclid(1_000_000))
                .unwrap_or(best.end_time)
                .max(best.end_time);
            Ok(Some(NewestPoint {
                backup: best,
                last_wal,
                last_transaction,
                dated,
            }))
        }
    }
}

/// Restores; with `options.start` the recovered server is stopped again
/// and the recovery settings are removed (`archive_mode = off` stays
/// unless `options.archive`). What `preseed-restore` calls:
/// `restore(contract, &Target::Latest, sibling_data_dir, &Options { start: true, archive: true, .. })`.
pub fn restore(
    contract: &PitrContract,
    target: &Target,
    into: &Path,
    options: &Options,
) -> Result<RestoreReport, Failure> {
    let (report, running) = restore_running(contract, target, into, options)?;
    if let Some(running) = running {
        running.stop()?;
        finish_settings(into, options.archive)?;
    }
    Ok(report)
}

/// After recovery: the recovery settings go, `archive_mode = off` stays for
/// a copy that must never archive.
pub fn finish_settings(data_dir: &Path, archive: bool) -> Result<(), PgError> {
    let path = data_dir.join("postgresql.auto.conf");
    let text = fs::read_to_string(&path).map_err(|e| {
        PgError::io(
            "removing the recovery settings",
            &path,
            &e,
            "edit the file by hand: remove zpersist's block",
        )
    })?;
    let (before, rest) = text.split_once(BLOCK_START).unwrap_or((&text, ""));
    let after = rest
        .split_once(BLOCK_END)
        .map(|(_, after)| after.trim_start_matches('\n'))
        .unwrap_or("");
    let mut out = format!("{before}{after}");
    if !archive {
        out.push_str("# zpersist pitr-restore: a restored copy never archives into the production repository\narchive_mode = off\n");
    }
    fs::write(&path, out).map_err(|e| {
        PgError::io(
            "removing the recovery settings",
            &path,
            &e,
            "edit the file by hand",
        )
    })
}

fn not_reached(target: &Target, log: &RecoveryLog, backup: &BaseBackup, into: &Path) -> PgError {
    let what = match target {
        Target::Time(micros) => format!("the target {}", format_micros(*micros)),
        Target::Backup(id) => format!("the end of backup {id}"),
        Target::Latest => "the end of the archive".into(),
    };
    let (last, missing) = match log.last_segment() {
        Some(last) => (
            last.to_string(),
            zpersist_core::pitr::wal::next_segment(last, backup.segment_size).unwrap_or_default(),
        ),
        None => ("none".to_string(), backup.start_wal.clone()),
    };
    PgError::new(
        "recovering",
        into.display().to_string(),
        format!("recovery target not reached: {what} lies beyond the archived WAL; the last segment replayed is {last}, and the next one, {missing}, is not in the archive"),
        "the archive has a gap, or the target is later than anything archived yet: restore to an earlier time, `--to latest`, or find the missing segment",
    )
}

/// A restored directory without `postgresql.conf` gets one. NixOS links
/// the cluster's postgresql.conf from the store (nixpkgs' preStart:
/// `ln -sfn`), and pg_basebackup skips symlinks ("skipping special file"),
/// so no base backup of a NixOS cluster holds it, and PostgreSQL does not
/// start without it. Restored beside the cluster (a drill, a restore by
/// hand), the copy is of the cluster's configuration as it is now;
/// restored into the cluster's own directory (preseed), a placeholder:
/// the unit's preStart links the configuration again before it starts.
/// What the restore writes to postgresql.auto.conf wins over both.
fn configuration_file(
    contract: &PitrContract,
    into: &Path,
    uid: u32,
    gid: u32,
) -> Result<(), PgError> {
    let path = into.join("postgresql.conf");
    if fs::symlink_metadata(&path).is_ok() {
        return Ok(());
    }
    let live = Path::new(&contract.cluster.data_dir).join("postgresql.conf");
    let text = match fs::read_to_string(&live) {
        Ok(text) if !same_path(into, Path::new(&contract.cluster.data_dir)) => format!(
            "# zpersist pitr-restore: the base backup has no postgresql.conf (a symlink, which\n\
             # pg_basebackup skips); this is a copy of {} as it was at restore time.\n{text}",
            live.display()
        ),
        _ => "# zpersist pitr-restore: the base backup has no postgresql.conf (a symlink, which\n\
              # pg_basebackup skips). NixOS's postgresql.service links its own before it starts.\n"
            .to_owned(),
    };
    append_owned(&path, &text, uid, gid)
}

fn same_path(a: &Path, b: &Path) -> bool {
    let canon = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    canon(a) == canon(b)
}

fn append_owned(path: &Path, text: &str, uid: u32, gid: u32) -> Result<(), PgError> {
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| {
            PgError::io(
                "writing the recovery settings",
                path,
                &e,
                "check the restore target",
            )
        })?;
    file.write_all(text.as_bytes()).map_err(|e| {
        PgError::io(
            "writing the recovery settings",
            path,
            &e,
            "check the restore target",
        )
    })?;
    file.sync_all().map_err(|e| {
        PgError::io(
            "writing the recovery settings",
            path,
            &e,
            "check the restore target",
        )
    })?;
    if is_root() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| {
            PgError::io(
                "writing the recovery settings",
                path,
                &e,
                "check the restore target",
            )
        })?;
    }
    Ok(())
}

fn user_ids(user: &str) -> Result<Option<(u32, u32)>, PgError> {
    use zpersist_core::observed::HostFacts;
    let host = zpersist_host::RealHost::new();
    let uid = host.user_id(user).ok_or_else(|| {
        PgError::new(
            "looking up the cluster's user",
            user,
            "no such user",
            "fix cluster.user in the contract",
        )
    })?;
    let gid = host.group_id(user).unwrap_or(uid);
    Ok(Some((uid, gid)))
}

/// A word for `sh -c`.
fn shell_quote(text: &str) -> String {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+=:@".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl RestoreReport {
    /// The report as a person reads it (pitr-restore's and `zpersist pitr
    /// restore`'s text).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = vec![format!("restored into {}: {}", self.into, self.provenance)];
        lines.extend(
            self.rejected
                .iter()
                .map(|r| format!("skipped a newer base backup that failed its verification: {r}")),
        );
        if let Some(t) = &self.last_transaction {
            lines.push(format!("last transaction replayed: {t}"));
        }
        if let Some(stopped) = &self.stopped {
            lines.push(format!("recovery stopped {stopped}"));
        }
        if !self.recovered {
            lines.push(format!(
                "start PostgreSQL on {} to replay the archive (recovery.signal is in place)",
                self.into
            ));
        }
        lines
    }
}
