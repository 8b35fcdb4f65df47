//! zpersist-pull-gate --dataset DATASET... [--bookmark] [--zfs PATH] [--zpool PATH]
//!
//! The forced command (`restrict,command="zpersist-pull-gate ..."`) of the
//! key a backup host pulls with (`zpersist.replication.pullers`, and the
//! restore key of a backup host: `zpersist.replication.pull.<source>.restoreKeys`).
//! It reads the command line ssh was asked to run from
//! `SSH_ORIGINAL_COMMAND`, decides with `zpersist_core::pull_gate` and
//! replaces itself with that zfs argv, or answers syncoid's probes itself;
//! anything else is refused with `error:`/`help:` on stderr.
//!
//! Exit: the zfs command's own status; 1 refused; 2 bad arguments.

use std::process::ExitCode;

use clap::Parser;
use zpersist_core::pull_gate::{GatePolicy, Verdict};
use zpersist_process::Command;
use zpersist_report::Reporter;

#[derive(Parser)]
#[command(
    version,
    about = "Forced command of a send-only ssh key: zfs send, get, list (and bookmark) of the allowed datasets only"
)]
struct Args {
    /// A dataset the key may read and send (and everything below it).
    #[arg(long = "dataset", value_name = "DATASET", required = true)]
    datasets: Vec<String>,
    /// Also allow `zfs bookmark` of those datasets' snapshots (a puller's
    /// protected base).
    #[arg(long)]
    bookmark: bool,
    /// The zfs to run (default: the booted system's, as nixpkgs' units do).
    #[arg(long, default_value = "/run/booted-system/sw/bin/zfs")]
    zfs: String,
    /// The zpool to run.
    #[arg(long, default_value = "/run/booted-system/sw/bin/zpool")]
    zpool: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("zpersist-pull-gate", false);
    let policy = GatePolicy {
        datasets: args.datasets.clone(),
        bookmark: args.bookmark,
    };
    let line = std::env::var("SSH_ORIGINAL_COMMAND").unwrap_or_default();
    match policy.decide(&line) {
        Ok(Verdict::Answer(code)) => ExitCode::from(code as u8),
        Ok(Verdict::Run(argv)) => {
            let program = if argv[0] == "zfs" {
                &args.zfs
            } else {
                &args.zpool
            };
            let error = Command::from_argv(&argv).program_path(program).exec();
            reporter.fail(
                error.message(),
                "the forced command of this key runs zfs by an absolute path; check --zfs/--zpool in its authorized_keys line",
            );
            reporter.exit_code()
        }
        Err(refused) => {
            reporter.fail(
                format!("refused `{}`: {refused}", zpersist_core::shown(&line)),
                format!(
                    "this ssh key is send-only (zpersist.replication.pullers): it may list, read and zfs send {}{}; ask the source's administrator for anything else",
                    args.datasets.join(", "),
                    if args.bookmark { " and bookmark their snapshots" } else { "" }
                ),
            );
            reporter.exit_code()
        }
    }
}
