//! zpersist-pull-base --source NAME DATASET...
//!
//! Run after each successful pull (the pull unit's ExecStartPost, as root):
//! for each received DATASET, holds its newest snapshot in this pool's own
//! order with `zpersist-base-NAME` and releases that tag from its other
//! snapshots (zpersist_core::pull_base), so the backup host's pruning never
//! takes the base of the next incremental.
//!
//! Exit 0: done; 1: a zfs call failed (each one named, the others still
//! done); 2: bad arguments.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use zpersist_core::pull_base::{move_base, tag};
use zpersist_report::Reporter;
use zpersist_zfs::Zfs;

#[derive(Parser)]
#[command(
    version,
    about = "Holds the newest received snapshot of each pulled dataset (the base of the next incremental)"
)]
struct Args {
    /// The source pulled from (the hold tag is zpersist-base-SOURCE).
    #[arg(long)]
    source: String,
    /// The received datasets.
    #[arg(required = true)]
    datasets: Vec<String>,
    /// Kill a zfs call after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("zpersist-pull-base", false);
    let zfs = match Zfs::from_path() {
        Ok(zfs) => zfs.with_timeout(Duration::from_secs(args.timeout)),
        Err(e) => {
            reporter.fail(e.message(), "install zfs, or put it on PATH");
            return reporter.exit_code();
        }
    };
    let tag = tag(&args.source);
    for dataset in &args.datasets {
        let step = || -> Result<(), zpersist_zfs::ZfsError> {
            let snapshots = zfs.snapshots_in_txg_order(dataset)?;
            let held = zfs.held_with(&snapshots, &tag)?;
            let plan = move_base(&snapshots, &held);
            if let Some(snapshot) = &plan.hold {
                zfs.hold(&tag, snapshot)?;
                reporter.note(format!(
                    "{snapshot}: held as {tag} (the base of the next pull)"
                ));
            }
            for snapshot in &plan.release {
                zfs.release(&tag, snapshot)?;
                reporter.note(format!("{snapshot}: {tag} released"));
            }
            Ok(())
        };
        if let Err(e) = step() {
            reporter.fail(
                format!("{dataset}: {}", e.message()),
                format!("the base of the next pull from {} is not held; run `zfs holds` on its snapshots, fix what zfs says, then run this again", args.source),
            );
        }
    }
    reporter.exit_code()
}
