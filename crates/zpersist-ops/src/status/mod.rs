//! `zpersist status [SERVICE] [--json] [--config DIR]`: per service, what
//! /etc/zpersist declares against what ZFS and the replication targets
//! hold; then every pool's health and last scrub, and PostgreSQL's
//! recovery when pitr.json is there. Wires the contracts (services.json,
//! replication.json, status.json, pitr.json) to the facts (one recursive
//! `zfs get` of the properties, one recursive snapshot listing, one
//! listing per replication target, two zpool calls, pg_stat_archiver and
//! the PITR repository) and zpersist-core's `status` verdicts. Exit 0:
//! every objective met; 1: one is missed; 2: bad arguments or contracts
//! (nothing read from ZFS).

mod health;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::replication::config::{Config as Replication, TargetLocation, DEFAULT_TIMEOUT_SECONDS};
use crate::replication::{listing, report};
use zpersist_core::contract::Contract;
use zpersist_core::drill::DrillResult;
use zpersist_core::error::Error;
use zpersist_core::migration::ServicesFile;
use zpersist_core::mounted::{confirm_shown, mount_state, MountState, Observed};
use zpersist_core::pitr::PitrContract;
use zpersist_core::preseed::{PROP_AT, PROP_PRESEED, PROP_SOURCE};
use zpersist_core::replication::{self, SnapshotRef};
use zpersist_core::status::drill::{DrillFacts, DrillObjectives, DrillStatus};
use zpersist_core::status::pitr::PitrStatus;
use zpersist_core::status::pools::{PoolObjectives, PoolStatus, Scan};
use zpersist_core::status::{
    evaluate, is_policy_snapshot, BackupFacts, BackupRef, DatasetFacts, Inputs, Objectives,
    ServiceStatus, StatusFile, TargetFacts,
};
use zpersist_core::time::{in_future, newest_by_clock};
use zpersist_core::ObservedPool;
use zpersist_host::inuse::mount_showing;
use zpersist_zfs::{all_snapshots_argv, parse_all_snapshots, Zfs};

/// Where the module's files are read from by default.
pub const DEFAULT_CONFIG: &str = "/etc/zpersist";

/// What one status run looks at.
#[derive(Debug, Clone)]
pub struct Options {
    /// Only this service (a name in services.json).
    pub service: Option<String>,
    /// Where services.json, replication.json, status.json and pitr.json are.
    pub config: std::path::PathBuf,
    /// Kill a zfs or ssh call that takes longer than this many seconds
    /// (default: replication.json's timeoutSeconds, else 60).
    pub timeout: Option<u64>,
}

/// One status run's report: each selected service's verdict, every
/// pool's health, PostgreSQL's recovery (when pitr.json is there). The
/// `--json` document as it serialises.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub now: i64,
    pub services: Vec<ServiceStatus>,
    pub pools: Vec<PoolStatus>,
    pub postgresql: Option<PitrStatus>,
}

impl Report {
    /// Whether every objective is met (exit 0); else exit 1.
    pub fn in_shape(&self) -> bool {
        self.services.iter().all(ServiceStatus::in_shape)
            && self.pools.iter().all(PoolStatus::in_shape)
            && self.postgresql.as_ref().is_none_or(PitrStatus::in_shape)
    }

    /// The report for people: one block per service, pool, PostgreSQL
    /// (`colour`: marks in colour, for a terminal).
    pub fn text(&self, colour: bool) -> String {
        let mut out = String::new();
        for s in &self.services {
            out.push_str(&describe(s, colour));
        }
        for p in &self.pools {
            out.push_str(&describe_pool(p, colour));
        }
        if let Some(p) = &self.postgresql {
            out.push_str(&describe_postgresql(p, colour));
        }
        out
    }

    /// The report as a Prometheus textfile.
    pub fn textfile(&self) -> String {
        let mut text = zpersist_core::status::textfile(&self.services);
        zpersist_core::status::pools::textfile(&self.pools, &mut text);
        if let Some(p) = &self.postgresql {
            zpersist_core::status::pitr::textfile(p, &mut text);
        }
        text
    }

    /// Writes [`Report::textfile`] to `path`, atomically.
    pub fn write_textfile(&self, path: &str) -> Result<(), Error> {
        zpersist_host::write_atomically(std::path::Path::new(path), self.textfile().as_bytes())
            .map_err(|e| {
                Error::failed(format!("cannot write the textfile: {e}"))
                    .in_file(path)
                    .with_help(
                        "its directory must exist and be writable (zpersist.status.textfile)",
                    )
            })
    }

    /// Shows the report through the binary's reporter (the JSON document,
    /// or the text, coloured on a terminal), writes the textfile if asked,
    /// and gives the exit code: 1 when a promise is broken or the textfile
    /// cannot be written. zpersist-status and `zpersist status` both end so.
    pub fn print(
        &self,
        reporter: &mut zpersist_report::Reporter,
        textfile: Option<&str>,
    ) -> std::process::ExitCode {
        use std::io::IsTerminal;
        if reporter.json() {
            reporter.document(self);
        } else {
            print!("{}", self.text(std::io::stdout().is_terminal()));
        }
        if let Some(path) = textfile {
            // The report is out already: the error goes beside it, on stderr.
            if let Err(e) = self.write_textfile(path) {
                for d in e.diagnostics() {
                    reporter.error(&d);
                }
                return reporter.exit_code();
            }
        }
        if !self.in_shape() {
            reporter.mark_failed();
        }
        reporter.exit_code()
    }
}

/// Bad arguments or contracts: the error and its help; nothing was read
/// from ZFS.
fn bad_input(error: String, help: &str) -> Error {
    Error::bad_input(error).with_help(help)
}

const REBUILD: &str =
    "the zpersist NixOS module writes it; rebuild the system, or pass --config DIR";

/// One of the module's files in the configuration directory, read by the
/// one contract loader (strict JSON, the version first, unknown fields
/// refused); `None` when the host has no such file (no replication, no
/// objectives declared).
fn load<C: Contract>(dir: &std::path::Path, name: &str) -> Result<Option<C>, String> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    zpersist_core::contract::parse::<C>(&text)
        .map(Some)
        .map_err(|problems| {
            let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
            format!("{} is not valid: {}", path.display(), problems.join("; "))
        })
}

/// One status run: reads the module's files in `options.config`, gathers
/// the facts (two zfs calls for the pool, one listing per replication
/// target, the restic repositories, the pools' health, PostgreSQL's
/// recovery) and judges them. Bad input (a missing or invalid file, an
/// unknown service) is an [`Error`] of kind bad input, before ZFS is read;
/// a failed zfs call a failure. A missed objective is no error: see
/// [`Report::in_shape`].
pub fn run(options: &Options) -> Result<Report, Error> {
    let dir = options.config.as_path();
    let services = match load::<ServicesFile>(dir, "services.json") {
        Ok(Some(services)) => services,
        Ok(None) => {
            return Err(bad_input(
                format!(
                    "cannot read {}: no such file",
                    dir.join("services.json").display()
                ),
                REBUILD,
            ))
        }
        Err(e) => return Err(bad_input(e, REBUILD)),
    };
    let replication =
        load::<Replication>(dir, "replication.json").map_err(|e| bad_input(e, REBUILD))?;
    let objectives = load::<StatusFile>(dir, "status.json")
        .map_err(|e| bad_input(e, REBUILD))?
        .unwrap_or_default();
    // PostgreSQL's recovery, when the host archives WAL (pitr.json).
    let pitr = load::<PitrContract>(dir, "pitr.json").map_err(|e| bad_input(e, REBUILD))?;
    if pitr.is_none() && objectives.postgresql.is_some() {
        return Err(bad_input(
            format!(
                "{} declares PostgreSQL objectives but there is no {}",
                dir.join("status.json").display(),
                dir.join("pitr.json").display()
            ),
            REBUILD,
        ));
    }
    let selected: Vec<(&String, _)> = match &options.service {
        Some(name) => match services.services.get_key_value(name) {
            Some(entry) => vec![entry],
            None => {
                return Err(bad_input(
                    format!(
                        "no service \"{name}\" in {}",
                        dir.join("services.json").display()
                    ),
                    &format!(
                        "the declared services are: {}",
                        services
                            .services
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        },
        None => services.services.iter().collect(),
    };

    let timeout = Duration::from_secs(
        options
            .timeout
            .or(replication.as_ref().and_then(|r| r.timeout_seconds))
            .unwrap_or(DEFAULT_TIMEOUT_SECONDS),
    );
    let zfs = Zfs::from_path().map(|z| z.with_timeout(timeout));
    let now = zpersist_host::clock::now();

    // Call 1: every property of every dataset in the pool.
    let properties: Vec<String> = [
        "mounted",
        "mountpoint",
        "used",
        "quota",
        PROP_PRESEED,
        PROP_SOURCE,
        PROP_AT,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let pool = &services.pool;
    let observed = match zfs
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|z| z.observe(pool, &properties))
    {
        Ok(o) => o,
        Err(e) => {
            let help = format!(
                "run `{}` and see what zfs says; `zpool status {pool}`",
                e.argv.join(" ")
            );
            return Err(Error::failed(format!(
                "reading the properties of {pool} failed: {}",
                e.message()
            ))
            .with_help(help)
            .caused_by(e));
        }
    };
    // Call 2: every snapshot in the pool.
    let argv = all_snapshots_argv(pool);
    let snapshots = match zfs
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|z| z.run(&argv[1..]))
        .map_err(|e| (e.message(), e.argv.join(" ")))
        .and_then(|out| parse_all_snapshots(&out).map_err(|e| (e, argv.join(" "))))
    {
        Ok(s) => s,
        Err((message, command)) => {
            return Err(Error::failed(format!(
                "listing the snapshots of {pool} failed: {message}"
            ))
            .with_help(format!("run `{command}` and see what zfs says")));
        }
    };

    let mut targets_of = replication
        .as_ref()
        .map(|r| Targets::new(r, &zfs, timeout, now));
    let mut backups = Backups::new(timeout, now);
    // Call 3, only when a service's dataset exists unmounted: its key
    // (locked or not; zfs-fuse answers "not encrypted").
    let unmounted: Vec<String> = selected
        .iter()
        .map(|(_, entry)| entry.dataset.clone())
        .filter(|d| observed.exists(d) && observed.value(d, "mounted") != Some("yes"))
        .collect();
    let keys = match (&zfs, unmounted.is_empty()) {
        (Ok(z), false) => zpersist_zfs::encryption::key_facts(z, &unmounted).unwrap_or_default(),
        _ => Default::default(),
    };
    let mut statuses = Vec::new();
    for (name, entry) in selected {
        let local = snapshots.get(&entry.dataset).cloned().unwrap_or_default();
        let mut declared = objectives
            .services
            .get(name)
            .cloned()
            .unwrap_or(Objectives::default());
        // What a target should hold is the policy's snapshots: one holding
        // only syncoid's fresh sync snapshots is no fresh policy copy. A
        // snapshot dated in the future never counts either: lag is judged
        // from the newest that is not (evaluate reports the future one).
        let periods = declared.snapshot_periods.clone();
        let present: Vec<replication::Snapshot> = local
            .iter()
            .filter(|s| !in_future(s.creation, now))
            .filter(|s| is_policy_snapshot(&s.name, periods.as_deref()))
            .cloned()
            .collect();
        let mut targets = BTreeMap::new();
        if let (Some(r), Some(t)) = (&replication, targets_of.as_mut()) {
            if declared.max_replication_lag_seconds.is_none() {
                declared.max_replication_lag_seconds = r.max_lag_seconds;
            }
            targets = t.facts(&entry.dataset, &present);
        }
        // All of them: evaluate counts only the policy's (never syncoid's
        // sync snapshots, nor the backups' transient zpersist-restic-*).
        let own: Vec<SnapshotRef> = local.iter().map(SnapshotRef::from).collect();
        let backup = declared.restic_backup.as_ref().map(|r| backups.facts(r));
        let drill = declared.drill.as_ref().map(|d| drill_facts(name, d));
        statuses.push(evaluate(Inputs {
            service: name,
            dataset: &entry.dataset,
            declared_mountpoint: &entry.mountpoint,
            facts: dataset_facts(&observed, &entry.dataset, &entry.mountpoint).map(|mut f| {
                f.key = keys.get(&entry.dataset).map(|k| k.state(&entry.dataset));
                f
            }),
            snapshots: own,
            objectives: declared,
            targets,
            backup,
            drill,
            now,
        }));
    }

    // Every pool: status.json's, else the services' pool (unjudged).
    let mut pool_objectives = objectives.pools.clone();
    if pool_objectives.is_empty() {
        pool_objectives.insert(pool.clone(), PoolObjectives::default());
    }
    let pools = health::pools(&pool_objectives, timeout, now);
    let postgresql = pitr
        .as_ref()
        .map(|c| health::postgresql(c, objectives.postgresql.as_ref(), timeout, now));

    Ok(Report {
        now,
        services: statuses,
        pools,
        postgresql,
    })
}

/// What the targets hold, gathered once per target: a local target's whole
/// tree in one recursive snapshot listing (one zfs call per target however
/// many datasets it receives); a remote target's datasets over the pinned
/// ssh (replication-lag's listing, bounded by `timeout`), where the first
/// failure stands for the rest of that target's datasets (an unreachable
/// target costs one timeout per run, not one per dataset).
struct Targets<'a> {
    r: &'a Replication,
    zfs: &'a Result<Zfs, zpersist_zfs::ZfsError>,
    timeout: Duration,
    now: i64,
    identifiers: Vec<String>,
    /// Per local target: its tree (dataset names and their snapshots), or
    /// why it could not be read.
    local: BTreeMap<String, Result<LocalTree, listing::Failure>>,
    /// Per remote target: the failure that stands for its other datasets.
    failed: BTreeMap<String, listing::Failure>,
}

struct LocalTree {
    datasets: std::collections::BTreeSet<String>,
    snapshots: BTreeMap<String, Vec<replication::Snapshot>>,
}

impl<'a> Targets<'a> {
    fn new(
        r: &'a Replication,
        zfs: &'a Result<Zfs, zpersist_zfs::ZfsError>,
        timeout: Duration,
        now: i64,
    ) -> Self {
        Targets {
            r,
            zfs,
            timeout,
            now,
            identifiers: r.targets.values().map(|t| t.identifier.clone()).collect(),
            local: BTreeMap::new(),
            failed: BTreeMap::new(),
        }
    }

    fn local_tree(
        &mut self,
        name: &str,
        root: &str,
        target_dataset: &str,
    ) -> Result<&LocalTree, listing::Failure> {
        if !self.local.contains_key(name) {
            let argv = all_snapshots_argv(root);
            let tree = match self
                .zfs
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|z| z.run(&argv[1..]))
            {
                Ok(out) => {
                    let datasets = out
                        .lines()
                        .filter_map(|l| l.split('\t').next())
                        .filter(|n| !n.contains('@'))
                        .map(str::to_string)
                        .collect();
                    parse_all_snapshots(&out)
                        .map(|snapshots| LocalTree {
                            datasets,
                            snapshots,
                        })
                        .map_err(|e| listing::Failure {
                            error: format!("reading the snapshots under {root} on this host: {e}"),
                            help: format!("run `{}` and see what zfs prints", argv.join(" ")),
                            timed_out: false,
                        })
                }
                // The listing's own wording: a missing root (pool not
                // imported), a timeout, zfs missing.
                Err(_) => Err(listing::on_target(
                    self.zfs,
                    &zpersist_process::Location::Local,
                    root,
                    target_dataset,
                )
                .err()
                .unwrap_or_else(|| listing::Failure {
                    error: format!("listing the snapshots under {root} on this host failed"),
                    help: format!("run `{}` and see what zfs says", argv.join(" ")),
                    timed_out: false,
                })),
            };
            self.local.insert(name.to_string(), tree);
        }
        self.local[name].as_ref().map_err(Clone::clone)
    }

    /// What each target of `dataset` holds, by guid (`replication::measure`).
    fn facts(
        &mut self,
        dataset: &str,
        local: &[replication::Snapshot],
    ) -> BTreeMap<String, TargetFacts> {
        let r = self.r;
        let mut out = BTreeMap::new();
        for pair in r.datasets.iter().filter(|p| p.source == dataset) {
            let target = &r.targets[&pair.target];
            let location = target
                .location(self.timeout)
                .expect("Config::parse refuses a target that is neither local nor remote");
            let held: Result<Option<Vec<replication::Snapshot>>, listing::Failure> = match &location
            {
                zpersist_process::Location::Local => self
                    .local_tree(&pair.target, &target.dataset, &pair.target_dataset)
                    .map(|tree| {
                        tree.datasets.contains(&pair.target_dataset).then(|| {
                            tree.snapshots
                                .get(&pair.target_dataset)
                                .cloned()
                                .unwrap_or_default()
                        })
                    }),
                zpersist_process::Location::Ssh(_) => match self.failed.get(&pair.target) {
                    Some(failure) => Err(failure.clone()),
                    None => listing::on_target(
                        self.zfs,
                        &location,
                        &target.dataset,
                        &pair.target_dataset,
                    )
                    .inspect_err(|f| {
                        self.failed.insert(pair.target.clone(), f.clone());
                    }),
                },
            };
            let facts = match held {
                Ok(held) => {
                    let (_, newest_held, lag) = replication::measure(
                        &target.identifier,
                        &self.identifiers,
                        local,
                        held.as_deref().unwrap_or_default(),
                    );
                    let (why_none, help) = if newest_held.is_none() {
                        let (why, help) = report::no_common_snapshot(
                            dataset,
                            &pair.target,
                            &pair.target_dataset,
                            &location.to_string(),
                            local,
                            held.as_deref(),
                        );
                        (Some(why), Some(help))
                    } else {
                        (None, None)
                    };
                    let (_, future_snapshot) = newest_by_clock(
                        held.as_deref().unwrap_or_default(),
                        |s| s.creation,
                        self.now,
                    );
                    TargetFacts::Reached {
                        newest_held,
                        lag_seconds: lag,
                        future_snapshot: future_snapshot.map(SnapshotRef::from),
                        why_none,
                        help,
                    }
                }
                Err(failure) => TargetFacts::Unreachable {
                    error: failure.error,
                    help: failure.help,
                },
            };
            out.insert(pair.target.clone(), facts);
        }
        out
    }
}

/// What the restic repositories hold, read once per repository and host
/// (`restic snapshots --json --host H`, bounded by the timeout): every
/// service backed up there is answered from that one listing, and a
/// repository that cannot be read is unreachable for each of them.
struct Backups {
    timeout: Duration,
    now: i64,
    listings: BTreeMap<(String, Option<String>), Result<Vec<zpersist_restic::Snapshot>, String>>,
}

impl Backups {
    fn new(timeout: Duration, now: i64) -> Self {
        Backups {
            timeout,
            now,
            listings: BTreeMap::new(),
        }
    }

    fn facts(&mut self, source: &zpersist_core::preseed::ResticSource) -> BackupFacts {
        let key = (source.repository.clone(), source.host.clone());
        let timeout = self.timeout;
        let listing = self.listings.entry(key).or_insert_with(|| {
            zpersist_restic::Repository {
                source,
                timeout,
                restore_timeout: timeout,
            }
            .host_snapshots()
            .map_err(|e| e.to_string())
        });
        match listing {
            Ok(snapshots) => {
                let (newest, in_future) = newest_by_clock(
                    snapshots
                        .iter()
                        .filter(|s| s.paths.iter().any(|p| p == &source.path))
                        .map(|s| BackupRef {
                            id: s.short_id.clone(),
                            time: s.time,
                        }),
                    |b| b.time,
                    self.now,
                );
                BackupFacts::Reached {
                    repository: source.name.clone(),
                    newest,
                    in_future,
                }
            }
            Err(error) => BackupFacts::Unreachable {
                repository: source.name.clone(),
                error: error.clone(),
                help: format!(
                    "check the repository by hand: `restic -r {} --password-file {} snapshots`{}; until it answers, nothing says the backups exist",
                    source.repository,
                    source.password_file,
                    source
                        .environment_file
                        .as_ref()
                        .map(|f| format!(" with the credentials of {f}"))
                        .unwrap_or_default()
                ),
            },
        }
    }
}

/// The service's last drill: zpersist-drill's result file, read by the
/// one contract loader (strict JSON, its version first, unknown fields
/// refused); no file: no drill has run.
fn drill_facts(service: &str, objectives: &DrillObjectives) -> DrillFacts {
    let path = std::path::Path::new(&objectives.result_file);
    let unit = &objectives.unit;
    let help = format!("zpersist-drill writes it at the end of each run: `systemctl start {unit}` runs one, `journalctl -u {unit}` shows the last");
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return DrillFacts::Never,
        _ => {}
    }
    match zpersist_host::read_contract::<DrillResult>(path) {
        Ok(result) if result.service == service => DrillFacts::Ran { result },
        Ok(result) => DrillFacts::Unreadable {
            error: format!(
                "{} is the drill result of `{}`, not of {service}",
                path.display(),
                zpersist_core::shown(&result.service)
            ),
            help,
        },
        Err(problems) => DrillFacts::Unreadable {
            error: problems
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
            help,
        },
    }
}

fn dataset_facts(observed: &ObservedPool, dataset: &str, declared: &str) -> Option<DatasetFacts> {
    if !observed.exists(dataset) {
        return None;
    }
    let value = |p: &str| observed.value(dataset, p).map(str::to_string);
    let number = |p: &str| value(p).and_then(|v| v.parse::<u64>().ok());
    // zfs's word, then the mount table's: only a dataset zfs says is
    // mounted on the declared path is looked at.
    let zfs_says = mount_state(
        declared,
        Some(&Observed {
            mounted: value("mounted"),
            mountpoint: value("mountpoint"),
        }),
    );
    let path_state = (zfs_says == MountState::Mounted).then(|| {
        confirm_shown(
            zfs_says,
            dataset,
            declared,
            mount_showing(std::path::Path::new(declared))
                .as_ref()
                .map_err(|e| e.to_string()),
        )
    });
    Some(DatasetFacts {
        path_state,
        mounted: value("mounted").as_deref() == Some("yes"),
        mountpoint: value("mountpoint"),
        used: number("used"),
        quota: number("quota").filter(|q| *q > 0),
        preseed: value(PROP_PRESEED),
        preseed_source: value(PROP_SOURCE),
        preseed_at: value(PROP_AT),
        key: None,
    })
}

fn describe(s: &ServiceStatus, colour: bool) -> String {
    let (bad, good, reset) = if colour {
        ("\x1b[31mFAIL\x1b[0m", "\x1b[32mok\x1b[0m", "")
    } else {
        ("FAIL", "ok", "")
    };
    let mut out = format!(
        "{} {} ({}){reset}\n",
        if s.in_shape() { good } else { bad },
        s.service,
        s.dataset
    );
    match &s.facts {
        None => out.push_str("  dataset: missing\n"),
        Some(f) => {
            out.push_str(&format!(
                "  mounted: {} at {}\n  used: {}{}\n",
                match (&f.path_state, f.mounted) {
                    (Some(MountState::NotShown { .. }), _) => "covered (zfs says yes)",
                    (Some(MountState::Unverified { .. }), _) => "unverified (zfs says yes)",
                    (_, true) => "yes",
                    (_, false) => "no",
                },
                f.mountpoint.as_deref().unwrap_or("-"),
                f.used.map(zpersist_core::human_bytes).unwrap_or("-".into()),
                f.quota
                    .map(|q| format!(" of quota {}", zpersist_core::human_bytes(q)))
                    .unwrap_or_default()
            ));
            if let Some(p) = &f.preseed {
                out.push_str(&format!(
                    "  preseed: {p} from {} at {}\n",
                    f.preseed_source.as_deref().unwrap_or("-"),
                    f.preseed_at.as_deref().unwrap_or("-")
                ));
            }
        }
    }
    match (&s.newest_snapshot, s.snapshot_age_seconds) {
        (Some(n), Some(age)) => out.push_str(&format!(
            "  newest policy snapshot: {} ({age} s old{})\n",
            n.name,
            s.objectives
                .max_snapshot_age_seconds
                .map(|m| format!(", objective {m} s"))
                .unwrap_or_default()
        )),
        _ => out.push_str("  newest policy snapshot: none\n"),
    }
    if let Some(f) = &s.future_snapshot {
        out.push_str(&format!(
            "  snapshot dated in the future: {} ({})\n",
            f.name,
            zpersist_core::time::rfc3339(f.creation)
        ));
    }
    for (target, facts) in &s.targets {
        match facts {
            TargetFacts::Unreachable { .. } => {
                out.push_str(&format!("  target {target}: unreachable\n"))
            }
            TargetFacts::Reached {
                newest_held: Some(h),
                lag_seconds,
                ..
            } => out.push_str(&format!(
                "  target {target}: holds {} (lag {} s)\n",
                h.name,
                lag_seconds.unwrap_or(0)
            )),
            TargetFacts::Reached { .. } => out.push_str(&format!(
                "  target {target}: holds none of this host's snapshots\n"
            )),
        }
    }
    match (&s.backup, s.backup_age_seconds) {
        (
            Some(BackupFacts::Reached {
                repository,
                newest: Some(b),
                ..
            }),
            Some(age),
        ) => out.push_str(&format!(
            "  restic backup: {} in {repository} ({age} s old{})\n",
            b.id,
            s.objectives
                .max_backup_age_seconds
                .map(|m| format!(", objective {m} s"))
                .unwrap_or_default()
        )),
        (Some(BackupFacts::Reached { repository, .. }), _) => {
            out.push_str(&format!("  restic backup: none in {repository}\n"))
        }
        (Some(BackupFacts::Unreachable { repository, .. }), _) => {
            out.push_str(&format!("  restic backup: {repository} unreachable\n"))
        }
        (None, _) => {}
    }
    if let Some(BackupFacts::Reached {
        in_future: Some(f), ..
    }) = &s.backup
    {
        out.push_str(&format!(
            "  restic backup dated in the future: {} ({})\n",
            f.id,
            zpersist_core::time::rfc3339(f.time)
        ));
    }
    if let Some(d) = &s.drill {
        describe_drill(&mut out, d, s.objectives.drill.as_ref());
    }
    describe_problems(&mut out, &s.problems, colour);
    out
}

fn describe_drill(out: &mut String, d: &DrillStatus, objectives: Option<&DrillObjectives>) {
    let max_age = objective(objectives.and_then(|o| o.max_age_seconds));
    let max_rpo = objective(objectives.and_then(|o| o.max_rpo_seconds));
    match &d.facts {
        DrillFacts::Never => out.push_str(&format!("  last drill: none{}\n", max_age)),
        DrillFacts::Unreadable { .. } => {
            out.push_str(&format!("  last drill: unreadable ({})\n", d.result_file))
        }
        DrillFacts::Ran { result } => {
            out.push_str(&format!(
                "  last drill: {} at {} ({} s old{max_age})\n",
                if result.success {
                    "succeeded"
                } else {
                    "FAILED"
                },
                zpersist_core::time::rfc3339(result.started),
                d.age_seconds.unwrap_or(0)
            ));
            for src in &result.sources {
                out.push_str(&format!(
                    "    {}: {}, RPO {}{max_rpo}, RTO {:.1} s\n",
                    src.source,
                    if src.success { "ok" } else { "FAILED" },
                    src.rpo_seconds
                        .map(|r| format!("{r} s"))
                        .unwrap_or_else(|| "unknown".into()),
                    src.rto_seconds
                ));
            }
        }
    }
}

fn describe_problems(out: &mut String, problems: &[zpersist_core::status::Problem], colour: bool) {
    for p in problems {
        if colour {
            out.push_str(&format!(
                "  \x1b[31merror:\x1b[0m {}\n    help: {}\n",
                p.error, p.help
            ));
        } else {
            out.push_str(&format!("  error: {}\n    help: {}\n", p.error, p.help));
        }
    }
}

fn mark(ok: bool, colour: bool) -> &'static str {
    match (ok, colour) {
        (true, true) => "\x1b[32mok\x1b[0m",
        (false, true) => "\x1b[31mFAIL\x1b[0m",
        (true, false) => "ok",
        (false, false) => "FAIL",
    }
}

fn objective(max: Option<u64>) -> String {
    max.map(|m| format!(", objective {m} s"))
        .unwrap_or_default()
}

fn describe_pool(p: &PoolStatus, colour: bool) -> String {
    let mut out = format!("{} pool {}\n", mark(p.in_shape(), colour), p.pool);
    if let Some(f) = &p.facts {
        out.push_str(&format!("  health: {}\n", f.health));
        let max = objective(p.objectives.max_scrub_age_seconds);
        out.push_str(&match &f.scan {
            Scan::Scrubbed { at, errors } => format!(
                "  last scrub: {} ({} s old{max}), {errors} errors\n",
                zpersist_core::time::rfc3339(*at),
                p.scrub_age_seconds.unwrap_or(0)
            ),
            Scan::None => "  last scrub: never\n".into(),
            Scan::Scrubbing { .. } => "  last scrub: one is running\n".into(),
            Scan::ScrubStopped { .. } => "  last scrub: stopped before it completed\n".into(),
            Scan::Resilvered { .. } | Scan::Resilvering { .. } => {
                "  last scrub: unknown (the last scan is a resilver)\n".into()
            }
            Scan::Unknown { line } => format!("  last scrub: unknown (`{line}`)\n"),
        });
        if let Some(e) = &f.data_errors {
            out.push_str(&format!("  errors: {e}\n"));
        }
    }
    describe_problems(&mut out, &p.problems, colour);
    out
}

fn describe_postgresql(p: &PitrStatus, colour: bool) -> String {
    let mut out = format!(
        "{} postgresql (PITR, {})\n",
        mark(p.in_shape(), colour),
        p.repository
    );
    if let Some(a) = &p.archiver {
        out.push_str(&format!(
            "  last archived WAL: {} ({}{}), {} archived, {} failed{}\n",
            a.last_archived_wal.as_deref().unwrap_or("none"),
            p.last_archived_age_seconds
                .map(|age| format!("{age} s old"))
                .unwrap_or_else(|| "never".into()),
            objective(p.objectives.max_archive_age_seconds),
            a.archived_count,
            a.failed_count,
            a.last_failed_wal
                .as_ref()
                .map(|w| format!(" (last failure: {w})"))
                .unwrap_or_default()
        ));
    }
    match (&p.base_backup, p.base_backup_age_seconds) {
        (Some(b), Some(age)) => out.push_str(&format!(
            "  base backup: {} ({age} s old{})\n",
            b.id,
            objective(p.objectives.max_base_backup_age_seconds)
        )),
        _ => out.push_str("  base backup: none\n"),
    }
    match (&p.drill, p.drill_age_seconds) {
        (Some(d), Some(age)) => out.push_str(&format!(
            "  last drill: {} at {} ({age} s old{}), RPO {}{}\n",
            if d.success { "succeeded" } else { "FAILED" },
            zpersist_core::time::rfc3339(d.at),
            objective(p.objectives.max_drill_age_seconds),
            d.rpo_seconds
                .map(|r| format!("{r:.0} s"))
                .unwrap_or_else(|| "unknown".into()),
            objective(p.objectives.max_rpo_seconds)
        )),
        _ => out.push_str("  last drill: none\n"),
    }
    describe_problems(&mut out, &p.problems, colour);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// scripts/demo runs zpersist-status on examples/demo: those files
    /// must stay what this zpersist reads.
    #[test]
    fn the_demo_configuration_is_read_as_the_module_writes_it() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/demo");
        let services = load::<ServicesFile>(&dir, "services.json")
            .unwrap()
            .unwrap();
        assert_eq!(
            services.services.keys().collect::<Vec<_>>(),
            ["radarr", "sonarr"]
        );
        let replication = load::<Replication>(&dir, "replication.json")
            .unwrap()
            .unwrap();
        assert_eq!(replication.datasets.len(), 2);
        let objectives = load::<StatusFile>(&dir, "status.json").unwrap().unwrap();
        assert_eq!(
            objectives.services["sonarr"].max_snapshot_age_seconds,
            Some(3600)
        );
    }

    #[test]
    fn a_key_given_twice_is_refused_not_silently_the_last() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("status.json"),
            r#"{"version": 1, "services": {"a": {"maxSnapshotAgeSeconds": 60, "maxSnapshotAgeSeconds": 600}}}"#,
        )
        .unwrap();
        let e = load::<StatusFile>(dir.path(), "status.json").unwrap_err();
        assert!(
            e.contains("status.json is not valid") && e.contains("maxSnapshotAgeSeconds"),
            "{e}"
        );
        assert!(load::<StatusFile>(dir.path(), "absent.json")
            .unwrap()
            .is_none());
    }
}
