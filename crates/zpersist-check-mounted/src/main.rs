//! zpersist-check-mounted SERVICE DATASET MOUNTPOINT [DATASET MOUNTPOINT]...
//!
//! Run by `zpersist-<service>-mounted.service`, which the service's units
//! require: succeeds only when each dataset is mounted on its mountpoint
//! and the mountpoint shows it (its filesystem in /proc/self/mountinfo is
//! the dataset, not a tmpfs or bind mount over it), so the service never
//! starts on the directory beneath or on a cover. One bounded
//! `zfs get mounted,mountpoint` for all the datasets, and where some exist
//! unmounted, one more of their key facts: a locked dataset (its
//! encryption key not loaded) is named as locked, with the `zfs load-key`
//! that opens it (docs/encryption.md).
//!
//! Exit 0: every dataset is mounted where it should be; 1: one is not (or
//! zfs could not say); 2: bad arguments (zfs was not run).

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde::Serialize;
use zpersist_core::mounted::{
    argument_problem, confirm_shown, message_and_help, mount_state, needs_key_facts, with_key,
    MountState, Observed, PROPERTIES,
};
use zpersist_core::shown;
use zpersist_host::inuse::mount_showing;
use zpersist_report::{Diagnostic, JsonFlag, Reporter};
use zpersist_zfs::Zfs;

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

#[derive(Serialize)]
struct Checked {
    dataset: String,
    /// Where it must be mounted.
    expected: String,
    #[serde(flatten)]
    state: MountState,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    help: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut reporter = Reporter::new("zpersist-check-mounted", args.output.json);
    if args.pairs.len() % 2 != 0 {
        return reporter.bad_input(
            &[Diagnostic::new(format!(
                "`{}` has no mountpoint: give each dataset with its mountpoint",
                args.pairs.last().unwrap()
            ))],
            "zpersist-check-mounted SERVICE DATASET MOUNTPOINT [DATASET MOUNTPOINT]...",
            "nothing was checked",
        );
    }
    let pairs: Vec<(String, String)> = args
        .pairs
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    let problems: Vec<Diagnostic> = pairs
        .iter()
        .filter_map(|(dataset, mountpoint)| argument_problem(dataset, mountpoint))
        .map(Diagnostic::new)
        .collect();
    if !problems.is_empty() {
        return reporter.bad_input(
            &problems,
            "the arguments come from the zpersist NixOS module (zpersist.services); rebuild the system, or pass full dataset names and absolute paths",
            "nothing was checked",
        );
    }

    let service = shown(&args.service).into_owned();
    let zfs = match Zfs::from_path() {
        Ok(zfs) => zfs.with_timeout(Duration::from_secs(args.timeout)),
        Err(e) => {
            reporter.fail(
                e.to_string(),
                format!(
                    "not starting {service}: without zfs nothing says its datasets are mounted"
                ),
            );
            return reporter.exit_code();
        }
    };
    let datasets: Vec<String> = pairs.iter().map(|(d, _)| d.clone()).collect();
    let properties: Vec<String> = PROPERTIES.iter().map(|p| p.to_string()).collect();
    let (observed, _missing) = match zfs.observe_named(&datasets, &properties) {
        Ok(found) => found,
        Err(e) => {
            reporter.fail(e.to_string(), format!("not starting {service}: zfs could not say whether its datasets are mounted; see whether the pool is imported and healthy (zpool status), then start {service}'s units again"));
            return reporter.exit_code();
        }
    };

    let seen = |dataset: &str| {
        observed.exists(dataset).then(|| Observed {
            mounted: observed.value(dataset, "mounted").map(str::to_string),
            mountpoint: observed.value(dataset, "mountpoint").map(str::to_string),
        })
    };
    // Not mounted: locked (its key not loaded) is told apart, by one more
    // `zfs get` only then; a ZFS without encryption answers "not encrypted".
    let unmounted: Vec<String> = pairs
        .iter()
        .filter(|(dataset, expected)| {
            needs_key_facts(&mount_state(expected, seen(dataset).as_ref()))
        })
        .map(|(dataset, _)| dataset.clone())
        .collect();
    let keys = if unmounted.is_empty() {
        Default::default()
    } else {
        zpersist_zfs::encryption::key_facts(&zfs, &unmounted).unwrap_or_default()
    };

    let checked: Vec<Checked> = pairs
        .into_iter()
        .map(|(dataset, expected)| {
            let key = keys.get(&dataset).map(|facts| facts.state(&dataset));
            let seen = seen(&dataset);
            // zfs's word, then the mount table's: the path must show the
            // dataset, not a filesystem mounted over it.
            let state = confirm_shown(
                with_key(mount_state(&expected, seen.as_ref()), key.as_ref()),
                &dataset,
                &expected,
                mount_showing(std::path::Path::new(&expected))
                    .as_ref()
                    .map_err(|e| format!("{e}")),
            );
            let (message, help) = match message_and_help(&service, &dataset, &expected, &state) {
                Some((message, help)) => (Some(message), Some(help)),
                None => (None, None),
            };
            Checked {
                dataset,
                expected,
                state,
                message,
                help,
            }
        })
        .collect();
    let all_mounted = checked.iter().all(|c| c.state == MountState::Mounted);

    if reporter.json() {
        reporter.document(&serde_json::json!({ "service": args.service, "datasets": checked }));
    } else {
        for c in &checked {
            match (&c.message, &c.help) {
                (Some(message), Some(help)) => reporter.fail(message, help),
                _ => println!("{} is mounted on {}", shown(&c.dataset), shown(&c.expected)),
            }
        }
    }
    if !all_mounted {
        reporter.mark_failed();
    }
    reporter.exit_code()
}
