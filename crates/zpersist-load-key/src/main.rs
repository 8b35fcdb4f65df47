//! zpersist-load-key DATASET: loads the key of DATASET's encryption root
//! (`zfs load-key`, bounded) unless it is loaded already; run by
//! `zpersist-load-key-<root>.service` before zpersist-datasets.service
//! mounts the root's datasets (docs/encryption.md).
//!
//! Exit 0: the key is loaded (now or before); 1: it could not be (a missing
//! key file, a passphrase this unit never asks for, a wrong key); 2: bad
//! arguments (zfs was not run).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use zpersist_report::Reporter;

#[derive(Parser)]
#[command(
    version,
    about = "Loads the key of a dataset's encryption root before its services start"
)]
struct Args {
    /// The dataset (its encryption root's key is loaded).
    dataset: String,
    /// Kill a zfs call that takes longer than this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("zpersist-load-key", false);
    match zpersist_ops::load_key::run(&args.dataset, Duration::from_secs(args.timeout)) {
        Ok(line) => println!("{line}"),
        Err((what, help)) => reporter.fail(what, help),
    }
    reporter.exit_code()
}
