//! zpersist-check-mounted SERVICE DATASET MOUNTPOINT [DATASET MOUNTPOINT]...
//!
//! Run by `zpersist-<service>-mounted.service`, which the service's units
//! require: succeeds only when each dataset is mounted on its mountpoint
//! and the mountpoint shows it (its filesystem in /proc/self/mountinfo is
//! the dataset, not a tmpfs or bind mount over it), so the service never
//! starts on the directory beneath or on a cover. One bounded
//! `zfs get mounted,mountpoint` for all the datasets.
//!
//! Exit 0: every dataset is mounted where it should be; 1: one is not (or
//! zfs could not say); 2: bad arguments (zfs was not run).

use std::time::Duration;

use serde::Serialize;
use zpersist_core::error::Error;
use zpersist_core::mounted::{
    argument_problem, confirm_shown, message_and_help, mount_state, needs_key_facts, with_key,
    MountState, Observed, PROPERTIES,
};
use zpersist_core::shown;
use zpersist_core::Diagnostic;
use zpersist_host::inuse::mount_showing;
use zpersist_zfs::Zfs;

/// One dataset checked.
#[derive(Debug, Serialize)]
pub struct Check {
    pub dataset: String,
    /// Where it must be mounted.
    pub expected: String,
    #[serde(flatten)]
    pub state: MountState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

/// A service's datasets checked: the `--json` document.
#[derive(Debug, Serialize)]
pub struct Checked {
    pub service: String,
    pub datasets: Vec<Check>,
}

impl Checked {
    /// Every dataset is mounted where it should be (exit 0); else exit 1.
    pub fn all_mounted(&self) -> bool {
        self.datasets.iter().all(|c| c.state == MountState::Mounted)
    }
}

const USAGE: &str = "zpersist-check-mounted SERVICE DATASET MOUNTPOINT [DATASET MOUNTPOINT]...";

/// `DATASET MOUNTPOINT...` as pairs, each checked (a full dataset name, an
/// absolute path); bad input otherwise (zfs is not run).
pub fn parse_pairs(arguments: &[String]) -> Result<Vec<(String, String)>, Error> {
    if !arguments.len().is_multiple_of(2) {
        return Err(Error::bad_input(format!(
            "`{}` has no mountpoint: give each dataset with its mountpoint",
            arguments.last().map(String::as_str).unwrap_or_default()
        ))
        .with_help(USAGE));
    }
    let pairs: Vec<(String, String)> = arguments
        .chunks(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    let problems: Vec<Diagnostic> = pairs
        .iter()
        .filter_map(|(dataset, mountpoint)| argument_problem(dataset, mountpoint))
        .map(Diagnostic::new)
        .collect();
    if !problems.is_empty() {
        return Err(Error::bad_inputs(problems).with_help("the arguments come from the zpersist NixOS module (zpersist.services); rebuild the system, or pass full dataset names and absolute paths"));
    }
    Ok(pairs)
}

/// Whether each dataset is mounted on its mountpoint and the mountpoint
/// shows it: one bounded `zfs get` for all, then the mount table. A
/// dataset that is not is in the answer ([`Checked::all_mounted`]); an
/// `Err` is zfs missing or failing.
pub fn check(
    service: &str,
    pairs: &[(String, String)],
    timeout: Duration,
) -> Result<Checked, Error> {
    let shown_service = shown(service).into_owned();
    let zfs = Zfs::from_path()
        .map_err(|e| {
            Error::from(e).with_help(format!(
                "not starting {shown_service}: without zfs nothing says its datasets are mounted"
            ))
        })?
        .with_timeout(timeout);
    let datasets: Vec<String> = pairs.iter().map(|(d, _)| d.clone()).collect();
    let properties: Vec<String> = PROPERTIES.iter().map(|p| p.to_string()).collect();
    let (observed, _missing) = zfs.observe_named(&datasets, &properties).map_err(|e| {
        Error::from(e).with_help(format!("not starting {shown_service}: zfs could not say whether its datasets are mounted; see whether the pool is imported and healthy (zpool status), then start {shown_service}'s units again"))
    })?;
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
    let checked = pairs
        .iter()
        .cloned()
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
            let (message, help) =
                match message_and_help(&shown_service, &dataset, &expected, &state) {
                    Some((message, help)) => (Some(message), Some(help)),
                    None => (None, None),
                };
            Check {
                dataset,
                expected,
                state,
                message,
                help,
            }
        })
        .collect();
    Ok(Checked {
        service: service.to_string(),
        datasets: checked,
    })
}
