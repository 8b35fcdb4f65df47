//! The command line, as data: every subcommand and option of `zpersist`.
//! The completions and the man page are generated from these same
//! definitions (`zpersist completions SHELL`, `zpersist man`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use zpersist_core::pitr::target::{parse_target, TARGET_FORMS};
use zpersist_core::pitr::Target;

/// Declarative, self-healing persistence for NixOS services on ZFS.
///
/// Exit codes: 0 done (or nothing to do), 1 something failed or needs a
/// person, 2 bad arguments or configuration (and then nothing was touched).
#[derive(Debug, Parser)]
#[command(
    name = "zpersist",
    version,
    after_help = "See docs/cli.md, or `man zpersist`."
)]
pub struct Cli {
    /// Where the NixOS module's contracts are (services.json, preseed/, drill/, ...).
    #[arg(long, global = true, value_name = "DIR", default_value = zpersist_ops::config::DEFAULT_DIR)]
    pub config_dir: PathBuf,
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Whether each service's persistence keeps its promises: datasets,
    /// snapshots, replicas, backups, drills, PostgreSQL and every pool.
    Status(StatusArgs),
    /// Restore a service's data by hand from its declared sources (as
    /// preseed does); data that is there only with --replace.
    Restore(RestoreArgs),
    /// Prove a service's data restores: each source's freshest point into
    /// a scratch dataset, checked, RPO and RTO measured.
    Drill(DrillArgs),
    /// Move a service's existing directory into its own dataset (resumable).
    Migrate(MigrateArgs),
    /// PostgreSQL point-in-time recovery: restore to a moment, or drill.
    Pitr {
        #[command(subcommand)]
        command: PitrCommand,
    },
    /// The configuration the NixOS module wrote.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// The declared datasets.
    Datasets {
        #[command(subcommand)]
        command: DatasetsCommand,
    },
    /// Print shell completions (bash, zsh, fish) for zpersist.
    Completions(CompletionsArgs),
    /// Print zpersist's man page (roff).
    #[command(hide = true)]
    Man,
    /// What zpersist-<service>-preseed.service runs before the service
    /// starts (unit only).
    #[command(hide = true)]
    Preseed(PreseedArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this service (a name in services.json).
    pub service: Option<String>,
    /// Also write the report as a Prometheus textfile here (atomically).
    #[arg(long, value_name = "PATH")]
    pub textfile: Option<String>,
    /// Kill a zfs or ssh call that takes longer than this many seconds.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The service (its plan is CONFIG_DIR/preseed/SERVICE.json, or its drill plan's).
    pub service: String,
    /// Say which point would be restored (and the same restore by hand); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Restore from this declared source only (`local`, `replica:nas`, `restic:b2`, `pitr`).
    #[arg(long, value_name = "SOURCE")]
    pub from: Option<String>,
    /// Restore even though the dataset holds data: that data is moved
    /// aside (renamed, kept, never destroyed). Stop the service first.
    #[arg(long)]
    pub replace: bool,
    /// How long to wait for another restore of this service.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub lock_timeout: u64,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    /// The service to drill; none: every drilled service.
    pub service: Option<String>,
    /// Drill only this source (`local`, `replica:nas`, `restic:b2`).
    #[arg(long, value_name = "SOURCE")]
    pub source: Option<String>,
    /// How long to wait for another drill of this service.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub lock_timeout: u64,
    /// The drill plan itself, as zpersist-<service>-drill.service gives it (unit only).
    #[arg(long, hide = true, conflicts_with = "service")]
    pub plan: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The service to migrate, as named in services.json.
    pub service: String,
    /// Check everything and print the steps a run would take; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// After a finished migration: re-verify and remove the original kept aside.
    #[arg(long)]
    pub cleanup: bool,
}

#[derive(Debug, Subcommand)]
pub enum PitrCommand {
    /// Restore PostgreSQL to a moment from base backups and archived WAL.
    Restore(PitrRestoreArgs),
    /// Prove the archive restores: restore latest, read the heartbeat, report the RPO.
    Drill,
}

#[derive(Debug, Args)]
pub struct PitrRestoreArgs {
    /// Where recovery stops.
    #[arg(long, default_value = "latest", value_parser = parse_target, long_help = format!("Where recovery stops: {TARGET_FORMS}. Default: latest, everything the archive holds."))]
    pub to: Target,
    /// An empty or new directory to restore into.
    #[arg(long)]
    pub into: PathBuf,
    /// Recover now (a throwaway server on a private socket), check the
    /// target was reached, and stop cleanly.
    #[arg(long)]
    pub start: bool,
    /// Keep archiving on in the restored cluster (it replaces this host's
    /// cluster); without it `archive_mode = off` is written.
    #[arg(long)]
    pub archive: bool,
    /// The throwaway server's port (default: the contract's drill port).
    #[arg(long)]
    pub port: Option<u16>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Read every contract in the configuration directory and say what was
    /// understood; a broken one exits 2, naming the file and the field.
    Check,
}

#[derive(Debug, Subcommand)]
pub enum DatasetsCommand {
    /// Make the pool's datasets match the declared plan (CONFIG_DIR/datasets.json).
    Apply(DatasetsApplyArgs),
}

#[derive(Debug, Args)]
pub struct DatasetsApplyArgs {
    /// Print what would change; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The plan (default: CONFIG_DIR/datasets.json).
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Args)]
pub struct PreseedArgs {
    /// The service's preseed plan, as the NixOS module writes it.
    #[arg(long)]
    pub plan: PathBuf,
    /// Say what would be done, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How long to wait for another run of this service's preseed.
    #[arg(long, value_name = "SECONDS", default_value_t = 120, value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub lock_timeout: u64,
}
