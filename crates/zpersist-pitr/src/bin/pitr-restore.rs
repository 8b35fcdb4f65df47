//! `pitr-restore --to TIME|latest|BACKUP --into DIR [--start]`: a cluster at
//! that moment. Exit 0 restored; 1 failed; 2 bad input, nothing touched.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use zpersist_core::pitr::target::{parse_target, TARGET_FORMS};
use zpersist_core::pitr::Target;
use zpersist_report::{JsonFlag, Reporter};

/// Restore PostgreSQL to a moment from base backups and archived WAL.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[arg(long, default_value = zpersist_ops::pitr::DEFAULT_CONTRACT)]
    contract: PathBuf,
    /// Where recovery stops.
    #[arg(long, default_value = "latest", value_parser = parse_target, long_help = format!("Where recovery stops: {TARGET_FORMS}. Default: latest, everything the archive holds."))]
    to: Target,
    /// An empty or new directory to restore into.
    #[arg(long)]
    into: PathBuf,
    /// Recover now (a throwaway server on a private socket), check the
    /// target was reached, and stop cleanly.
    #[arg(long)]
    start: bool,
    /// Keep archiving on in the restored cluster (it replaces this host's
    /// cluster); without it `archive_mode = off` is written.
    #[arg(long)]
    archive: bool,
    /// The throwaway server's port (default: the contract's drill port).
    #[arg(long)]
    port: Option<u16>,
    // --json: the report as JSON on stdout instead of text.
    #[command(flatten)]
    output: JsonFlag,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("pitr-restore", args.output.json);
    zpersist_ops::pitr::restore_from(
        &mut reporter,
        &args.contract,
        &args.to,
        &args.into,
        args.start,
        args.archive,
        args.port,
    )
}
