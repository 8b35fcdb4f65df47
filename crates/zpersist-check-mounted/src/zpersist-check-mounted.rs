//! zpersist-check-mounted SERVICE DATASET MOUNTPOINT [DATASET MOUNTPOINT]...
//!
//! The thin main over `zpersist_ops::check_mounted`. Run by
//! `zpersist-<service>-mounted.service`, which the service's units
//! require: succeeds only when each dataset is mounted on its mountpoint
//! and the mountpoint shows it.
//!
//! Exit 0: every dataset is mounted where it should be; 1: one is not (or
//! zfs could not say); 2: bad arguments (zfs was not run).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use zpersist_core::shown;
use zpersist_ops::check_mounted;
use zpersist_report::{JsonFlag, Reporter};

#[derive(Parser)]
#[command(
    version,
    about = "Checks that a service's datasets are mounted where the service keeps its data"
)]
struct Args {
    /// The service the datasets belong to (named in the messages).
    service: String,
    /// Pairs of a full dataset name and the absolute path it must be mounted on.
    #[arg(value_names = ["DATASET", "MOUNTPOINT"], required = true, num_args = 2..)]
    pairs: Vec<String>,
    /// Kill `zfs get` when it takes longer than this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
    // --json: the outcome as JSON instead of lines.
    #[command(flatten)]
    output: JsonFlag,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("zpersist-check-mounted", args.output.json);
    let checked = check_mounted::parse_pairs(&args.pairs).and_then(|pairs| {
        check_mounted::check(&args.service, &pairs, Duration::from_secs(args.timeout))
    });
    let checked = match checked {
        Ok(checked) => checked,
        Err(e) => return reporter.report(&e),
    };
    if reporter.json() {
        reporter.document(&checked);
    } else {
        for c in &checked.datasets {
            match (&c.message, &c.help) {
                (Some(message), Some(help)) => reporter.fail(message, help),
                _ => println!("{} is mounted on {}", shown(&c.dataset), shown(&c.expected)),
            }
        }
    }
    if !checked.all_mounted() {
        reporter.mark_failed();
    }
    reporter.exit_code()
}
