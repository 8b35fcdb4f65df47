//! zpersist-backup-snapshot take DATASET VIEW | release DATASET
//!
//! The thin main over `zpersist_ops::backup_snapshot` (which says what
//! `take` and `release` do, around a service's restic backup).
//!
//! Exit 0: done; 1: a zfs step failed (the message says which); 2: bad
//! arguments (zfs was not run).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use zpersist_core::shown;
use zpersist_ops::backup_snapshot;
use zpersist_report::{Error, JsonFlag, Reporter};
use zpersist_zfs::Zfs;

#[derive(Parser)]
#[command(
    version,
    about = "A fresh snapshot of a service's dataset for its restic backup, and its cleanup"
)]
struct Args {
    #[command(subcommand)]
    step: Step,
    /// Kill a zfs call that takes longer than this many seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    #[command(flatten)]
    output: JsonFlag,
}

#[derive(Subcommand)]
enum Step {
    /// Release stale views, then snapshot DATASET and mount a read-only
    /// clone of the snapshot on VIEW.
    Take {
        /// The service's dataset (full name, with the pool).
        dataset: String,
        /// Where the clone mounts (the backup unit binds it over the
        /// dataset's mountpoint).
        view: String,
    },
    /// Destroy the clone and every `DATASET@zpersist-restic-*` snapshot.
    Release {
        /// The service's dataset (full name, with the pool).
        dataset: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("zpersist-backup-snapshot", args.output.json);
    let (dataset, view) = match &args.step {
        Step::Take { dataset, view } => (dataset.clone(), view.clone()),
        // The view is not used by release; "/" passes the path check.
        Step::Release { dataset } => (dataset.clone(), "/".to_string()),
    };
    if let Err(e) = backup_snapshot::check_arguments(&dataset, &view) {
        return reporter.report(&e);
    }
    let zfs =
        match Zfs::from_path() {
            Ok(zfs) => zfs.with_timeout(Duration::from_secs(args.timeout)),
            Err(e) => {
                return reporter.report(&Error::from(e).with_help(
                    "the backup runs only from a snapshot; install zfs (boot.zfs.package)",
                ))
            }
        };
    let done = match args.step {
        Step::Take { .. } => backup_snapshot::take(&zfs, &dataset, &view)
            .map(|taken| serde_json::to_value(taken).expect("a report serialises")),
        Step::Release { .. } => backup_snapshot::release(&zfs, &dataset)
            .map(|released| serde_json::json!({ "dataset": dataset, "released": released })),
    };
    match done {
        Ok(document) => {
            if reporter.json() {
                reporter.document(&document);
            } else {
                for name in document["released"].as_array().into_iter().flatten() {
                    println!("destroyed {}", shown(name.as_str().unwrap_or_default()));
                }
                if let Some(snapshot) = document["snapshot"].as_str() {
                    println!(
                        "took {}; its read-only clone {} is mounted on {}",
                        shown(snapshot),
                        shown(document["view"].as_str().unwrap_or_default()),
                        shown(&view)
                    );
                }
            }
        }
        Err(e) => {
            // As before: the error on stderr, no errors document.
            for d in e.diagnostics() {
                reporter.error(&d);
            }
        }
    }
    reporter.exit_code()
}
